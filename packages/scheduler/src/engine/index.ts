export { createMatchingEngine, explainUnplaced } from './engine.ts'
export {
  DEFAULT_WEIGHTS,
  type EngineConstraint,
  type EngineInit,
  type EngineNearestOffer,
  type EngineStats,
  type MatchingEngine,
  type PlaceJob,
  type PlaceOptions,
  type PlaceResult,
  type ProviderInput,
  type ProviderStats,
  type ProviderView,
  type ScoreWeights,
  type Unplaced,
} from './types.ts'
