export { createMatchingEngine, explainPlacement, explainUnplaced } from './engine.ts'
export { IMAGE_CACHE_BYTES } from './cache.ts'
export {
  DEFAULT_WEIGHTS,
  type EngineConstraint,
  type EngineInit,
  type EngineNearestOffer,
  type EngineStats,
  type MatchingEngine,
  type PlaceJob,
  type PlaceOptions,
  type Placed,
  type PlacementCached,
  type PlacementReason,
  type PlaceResult,
  type ProviderInput,
  type ProviderStats,
  type ProviderView,
  type ScoreWeights,
  type Unplaced,
} from './types.ts'
