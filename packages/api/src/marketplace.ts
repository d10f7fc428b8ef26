import type { Address } from '@kiln/protocol'
import type {
  JobDetailsView,
  JobView,
  LogLineView,
  NetworkInfo,
  ProviderView,
  PublicJobDetailsView,
  PublicJobView,
  RunView,
  SubmittedView,
} from './views.ts'

/**
 * What the API asks of a marketplace: every operation behind a route, on plain inputs,
 * answering declared views. The app implements it over its coordinator; the router knows
 * nothing else. Signed operations take the envelope as it came (the implementation opens and
 * checks it); owner reads take the reader the router established from the read token, never
 * null. Failures are KilnErrors, which the router maps to HTTP meanings.
 */
export interface Marketplace {
  info(): NetworkInfo
  providers(): ProviderView[]
  /** Signed by the client: a job spec. Validated, balance-checked, stored, queued. */
  submit(envelope: unknown): Promise<SubmittedView>
  /** Signed by the client: "I locked the funds in this transaction". */
  lock(envelope: unknown): Promise<JobView>
  cancel(envelope: unknown): Promise<JobView>
  /** Signed by the client: its co-signature of a settlement the provider could not (or would not) sign. */
  cosign(envelope: unknown): Promise<JobView>
  /** Signed by the client: every run of its job (spot-check re-runs are shown to the owner only). */
  runs(envelope: unknown): Promise<RunView[]>
  /**
   * The owner's view of its job. `watch`: the owner is following the job, so one parked for
   * want of its lock is placed again (its owner returned); a mere look leaves it parked.
   */
  ownedJob(q: { jobId: string; reader: Address; watch: boolean }): Promise<JobDetailsView>
  logs(q: { jobId: string; reader: Address; after: number; limit: number }): Promise<LogLineView[]>
  publicJob(jobId: string): Promise<PublicJobDetailsView>
  list(q: { client?: string; limit: number }): Promise<PublicJobView[]>
}
