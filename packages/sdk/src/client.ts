import { createTRPCClient, httpLink } from '@trpc/client'
import { Connection } from '@solana/web3.js'
import { cosignSettlement, lockFunds, tokenBalance } from '@kiln/escrow'
import {
  authorizationHeader,
  isKilnError,
  kilnErrorFromJSON,
  JobSpec,
  Kind,
  KilnError,
  maxLeaseCost,
  moneyFormat,
  parseOrThrow,
  seal,
  sealReadToken,
  sealSecrets,
  sha256Hex,
  TERMINAL_STATES,
  type Address,
  type Envelope,
  type Identity,
  type JobSpecInput,
  type JobState,
  type MoneyFormat,
  type SecretBundle,
  type SecretsPayload,
} from '@kiln/protocol'
import { guarantee, resolveVerification, type Guarantee } from '@kiln/verifier'
import type {
  AppRouter,
  JobDetailsView,
  LogLineView,
  NetworkInfo,
  PublicJobDetailsView,
  PublicJobView,
  RunView,
} from '@kiln/api'
import { call as callAt, unreachable } from './errors.ts'

export interface KilnClientInit {
  /** The marketplace API, e.g. http://127.0.0.1:7700 */
  url: string
  /** The client's own keypair: it signs requests and escrow locks, and never leaves this process. */
  identity: Identity
  /** Overrides the ledger the marketplace names. */
  rpcUrl?: string
}

export type KilnApi = ReturnType<typeof createTRPCClient<AppRouter>>
/** The API's declared views (@kiln/api), by the names this SDK has always given them. */
export type JobDetails = JobDetailsView
export type LogLine = LogLineView
export type PublicJob = PublicJobDetailsView
export type JobSummary = PublicJobView
export type RunDetails = RunView
export type { NetworkInfo }

/** What a job may cost and what verification buys, shown before anything is paid. */
export interface Quote {
  /**
   * The most one run can cost: the max price over the whole timeout. A ceiling: the lock and
   * the bond follow the matched provider's price, which may be lower.
   */
  maxCost: number
  /** What the wallet must hold to submit: room for one spot-check re-run when p > 0. */
  required: number
  p: number
  bond: number
  feeBps: number
  guarantee: Guarantee
  lines: string[]
}

export interface WatchHandlers {
  onState?: (job: JobDetails) => void
  onLog?: (line: LogLine) => void
  /** Called after this client locked the job's funds on chain; `lock` is what it locked, and where. */
  onLocked?: (signature: string, job: JobDetails, lock: NonNullable<RunDetails['lock']>) => void
  /** A refund co-signature this client tried to give failed (it is retried when the request changes). */
  onCosignError?: (err: unknown) => void
  signal?: AbortSignal
  pollMs?: number
  /** How long the marketplace may be unreachable (a restart) before watching gives up; default 60 s. */
  outageMs?: number
  /**
   * The values of the spec's secret names (and registry credentials for a private image):
   * sealed anew to each run's own provider as its lock is sent. Required when the spec names secrets.
   */
  secrets?: SecretBundle
}

/** What of a job's spec says which secrets its runs need. */
type SecretsSpec = Pick<JobDetails['spec'], 'secrets' | 'privateImage'>

/**
 * Seals the secrets one run's provider needs, before anything is locked for it: exactly the
 * spec's names (a bundle may hold more; they stay here), and the registry credentials only
 * for a private image. Undefined when the spec needs none. Refuses with SECRETS_UNSEALABLE,
 * naming the missing names (never a value), so no money is locked for a run that cannot start.
 */
export function secretsForRun(
  identity: Identity,
  job: Pick<JobDetails, 'id'> & { spec: SecretsSpec },
  lock: Pick<NonNullable<RunDetails['lock']>, 'provider' | 'escrowId'>,
  bundle: SecretBundle | undefined,
): Envelope<SecretsPayload> | undefined {
  const { secrets: names, privateImage } = job.spec
  if (names.length === 0 && !privateImage) return undefined
  const missing = names.filter((n) => bundle === undefined || !Object.hasOwn(bundle.values, n))
  if (missing.length > 0)
    throw new KilnError(
      'SECRETS_UNSEALABLE',
      `job ${job.id} names secrets with no value given: ${missing.join(', ')} (give them with the lock: secrets.values); nothing was locked`,
      { missing },
    )
  if (privateImage && bundle?.registry === undefined)
    throw new KilnError(
      'SECRETS_UNSEALABLE',
      `job ${job.id} has privateImage but no registry credentials were given (secrets.registry); nothing was locked`,
      { privateImage: true },
    )
  const values = Object.fromEntries(names.map((n) => [n, bundle!.values[n]!]))
  return sealSecrets(
    identity,
    { provider: lock.provider as Address, jobId: job.id, escrowId: lock.escrowId },
    privateImage ? { values, registry: bundle!.registry } : { values },
  )
}

/** The API's owner-only reads: they carry this client's read token, and nothing else does. */
const OWNER_READS: ReadonlySet<string> = new Set(['jobs.get', 'jobs.logs'])

export function createKilnClient(init: KilnClientInit) {
  const base = init.url.replace(/\/$/, '')
  const call = <T>(fn: () => Promise<T>): Promise<T> => callAt(fn, base)
  let infoCache: NetworkInfo | undefined
  let connection: Connection | undefined
  let token: { header: string; renewAt: number } | undefined
  /** A read token for this marketplace, signed again a minute before the last one expires. */
  const authorization = async (): Promise<string> => {
    if (!token || Date.now() >= token.renewAt) {
      const t = sealReadToken(init.identity, (await info()).arbiter as Address)
      token = { header: authorizationHeader(t), renewAt: t.expiresAt - 60_000 }
    }
    return token.header
  }
  const api = createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${base}/trpc`,
        headers: async ({ op }) => (OWNER_READS.has(op.path) ? { authorization: await authorization() } : {}),
      }),
    ],
  })

  const info = async () => (infoCache ??= await call(() => api.network.info.query()))
  const chain = async () => (connection ??= new Connection(init.rpcUrl ?? (await info()).rpcUrl, 'confirmed'))

  const client = {
    api,
    address: init.identity.address,
    info,
    /** Shows amounts in the marketplace's unit: the same formatter the CLI and the web app use. */
    money: async (): Promise<MoneyFormat> => moneyFormat((await info()).token),
    async balance(): Promise<number> {
      const i = await info()
      return tokenBalance(await chain(), i.mint as Address, init.identity.address)
    },
    /** Validates the spec locally (every bad field named), signs it and submits it. */
    async submit(spec: JobSpecInput): Promise<{ jobId: string; maxCost: number }> {
      const parsed = parseOrThrow(JobSpec, spec, 'job spec')
      const envelope = seal(init.identity, Kind.submit, { spec: parsed })
      return call(() => api.jobs.submit.mutate({ envelope }))
    },
    /** This client's own job, whole (signed with a read token: only the owner may read it). */
    get: (jobId: string, opts: { watch?: boolean } = {}) => call(() => api.jobs.get.query({ jobId, ...opts })),
    /** What this client's job printed (owner only). */
    logs: (jobId: string, after = -1) => call(() => api.jobs.logs.query({ jobId, after })),
    /** Anyone's job, as a market explorer sees it: no env, command, logs or outputs. */
    publicJob: (jobId: string) => call(() => api.jobs.public.query({ jobId })),
    /** Recent jobs, as a market explorer sees them. */
    list: (opts: { client?: string; limit?: number } = {}) => call(() => api.jobs.list.query({ limit: 50, ...opts })),
    providers: () => call(() => api.network.providers.query()),
    async cancel(jobId: string) {
      return call(() => api.jobs.cancel.mutate({ envelope: seal(init.identity, Kind.cancel, { jobId }) }))
    },
    /**
     * The quote for a spec, from the marketplace's defaults: the most it can cost, the fee,
     * and the guarantee (the chance a provider cheating k times is caught, whether cheating pays).
     */
    async quote(spec: JobSpecInput, k = 20): Promise<Quote> {
      const parsed = parseOrThrow(JobSpec, spec, 'job spec')
      const i = await info()
      const maxCost = maxLeaseCost(parsed.maxPricePerHour, parsed.timeoutSec)
      const v = resolveVerification(parsed.verification, maxCost, i.verification)
      const required = v.p > 0 ? 2 * maxCost : maxCost
      const m = moneyFormat(i.token)
      // Priced at the client's max price: the matched provider's may be lower, and so its lock and bond.
      const g = guarantee({ p: v.p, bond: v.bond, pricePerJob: maxCost, k, token: i.token, ceiling: true })
      const lines = [
        `max cost: at most ${m.amount(maxCost)}, at your max price ${m.rate(parsed.maxPricePerHour)} for ${parsed.timeoutSec} s; your wallet must hold ${m.amount(required)}${v.p > 0 ? ' (room for one re-run)' : ''}`,
        "the matched provider's price sets the lock and its bond (at most the amounts here); both are shown once matched",
        `marketplace fee: ${(i.feeBps / 100).toFixed(2)}% of the work's pay; comparator: ${v.comparator.kind}`,
        ...g.quoteLines,
      ]
      return { maxCost, required, p: v.p, bond: v.bond, feeBps: i.feeBps, guarantee: g, lines }
    },
    /** Signed: every run of this client's job, re-runs included (only the owner sees them). */
    runs: (jobId: string) => call(() => api.jobs.runs.mutate({ envelope: seal(init.identity, Kind.runs, { jobId }) })),
    /**
     * Locks the job's funds in its escrow vault, signed by this client's key, then tells the
     * marketplace. Refuses to lock more than the job's maximum cost.
     */
    async lock(job: JobDetails, opts: { secrets?: SecretBundle } = {}): Promise<string> {
      if (!job.lock || job.state !== 'matched')
        throw new KilnError('JOB_WRONG_STATE', `job ${job.id} is ${job.state}, not waiting for a lock`)
      return client.lockRun(job, job, opts)
    },
    /**
     * Locks one run's vault (the job's own, or a re-run's). A spec that names secrets needs
     * `opts.secrets`: they are sealed to this run's provider and sent with the lock.
     */
    async lockRun(
      job: Pick<JobDetails, 'id' | 'maxCost'> & { spec: SecretsSpec },
      run: Pick<RunDetails, 'lock' | 'state'>,
      opts: { secrets?: SecretBundle } = {},
    ): Promise<string> {
      const lock = run.lock
      if (!lock || run.state !== 'matched')
        throw new KilnError('JOB_WRONG_STATE', `this run of job ${job.id} is ${run.state}, not waiting for a lock`)
      // Sealed before the money moves: a bundle that cannot be sealed must not leave funds locked.
      const secrets = secretsForRun(init.identity, job, lock, opts.secrets)
      const i = await info()
      if (lock.amount > job.maxCost) {
        const m = moneyFormat(i.token)
        throw new KilnError(
          'PAYLOAD_INVALID',
          `the marketplace asks to lock ${m.amount(lock.amount)}, above the job's maximum cost ${m.amount(job.maxCost)}`,
        )
      }
      if (lock.mint !== i.mint || lock.arbiter !== i.arbiter)
        throw new KilnError('ESCROW_WRONG_ACCOUNT', 'the lock names another mint or arbiter than the marketplace')
      const signature = await lockFunds({
        connection: await chain(),
        from: init.identity,
        amount: lock.amount,
        token: i.token,
        jobId: lock.escrowId,
        mint: lock.mint as Address,
        vault: lock.vault as Address,
        client: init.identity.address,
        provider: lock.provider as Address,
        arbiter: lock.arbiter as Address,
      })
      await call(() =>
        api.jobs.lock.mutate({
          envelope: seal(init.identity, Kind.lock, {
            jobId: job.id,
            signature,
            escrowId: lock.escrowId,
            ...(secrets === undefined ? {} : { secrets }),
          }),
        }),
      )
      return signature
    },
    /**
     * Co-signs a settlement that waits for this client: a refund the provider could not
     * co-sign (it is gone), or a slash (a caught provider's bond coming to us). Only a
     * transaction that pays this client at least what it was promised is signed.
     */
    async cosignRefund(
      job: Pick<JobDetails, 'id'>,
      run: Pick<RunDetails, 'lock' | 'pendingCosign'> = job as JobDetails,
    ): Promise<void> {
      const pending = run.pendingCosign
      if (!pending || !run.lock)
        throw new KilnError('JOB_WRONG_STATE', `job ${job.id} has no settlement waiting for you`)
      const transaction = cosignSettlement({
        tx: pending.transaction,
        signer: init.identity,
        expect: {
          vault: run.lock.vault as Address,
          mint: run.lock.mint as Address,
          minPayout: { to: init.identity.address, amount: pending.toClient },
        },
      })
      await call(() =>
        api.jobs.cosign.mutate({
          envelope: seal(init.identity, Kind.cosign, { jobId: job.id, transaction, escrowId: run.lock!.escrowId }),
        }),
      )
    },
    /** Follows a job to its end: reports state changes and logs, locks funds when matched. */
    async watch(jobId: string, h: WatchHandlers = {}): Promise<JobDetails> {
      let lastState: JobState | undefined
      let lastLog = -1
      const locked = new Set<string>()
      let runsDone = false
      const cosigned = new Set<string>()
      let downSince: number | undefined
      for (;;) {
        if (h.signal?.aborted) throw new KilnError('JOB_WRONG_STATE', 'stopped watching')
        let job: JobDetails
        let lines: LogLine[]
        try {
          // The first read says we are following the job: one its owner had left is placed again.
          job = await client.get(jobId, lastState === undefined ? { watch: true } : {})
          // Logs first, then the state: what the job printed comes before what became of it.
          lines = await client.logs(jobId, lastLog)
          downSince = undefined
        } catch (e) {
          // The marketplace restarting is not the job failing: keep asking for a while.
          if (!isKilnError(e, 'PEER_UNREACHABLE')) throw e
          downSince ??= Date.now()
          if (Date.now() - downSince > (h.outageMs ?? 60_000)) throw e
          await new Promise((r) => setTimeout(r, 500))
          continue
        }
        for (const l of lines) h.onLog?.(l)
        if (lines.length) lastLog = lines[lines.length - 1]!.seq
        if (job.state !== lastState) {
          lastState = job.state
          h.onState?.(job)
        }
        // Every run of the job (a spot-check re-run too) needs the client's lock, and may need
        // its co-signature; re-runs are visible to the owner only, through a signed request.
        // They need nothing while the job's own run is queued or running (they are placed after
        // it), and a caught re-run's slash may still wait for us after the job has ended.
        const quiet: boolean = runsDone || job.state === 'queued' || job.state === 'locked' || job.state === 'running'
        const runs: RunDetails[] | undefined = quiet
          ? []
          : await client.runs(jobId).catch((e: unknown) => {
              if (isKilnError(e, 'PEER_UNREACHABLE')) return undefined
              throw e
            })
        if (runs && TERMINAL_STATES.includes(job.state)) runsDone = runs.every((r) => TERMINAL_STATES.includes(r.state))
        for (const run of runs ?? []) {
          if (run.state === 'matched' && run.lock && !locked.has(run.lock.vault)) {
            locked.add(run.lock.vault)
            // Each run is sealed anew: a re-run or tie-break goes to another provider, under another escrow.
            const sig = await client.lockRun(job, run, { secrets: h.secrets })
            if (run.role === 'primary') h.onLocked?.(sig, job, run.lock)
          }
          if (run.pendingCosign && !cosigned.has(run.pendingCosign.transaction)) {
            cosigned.add(run.pendingCosign.transaction)
            await client.cosignRefund(job, run).catch((e: unknown) => h.onCosignError?.(e))
          }
        }
        if (TERMINAL_STATES.includes(job.state) && lines.length === 0 && runsDone) return job
        await new Promise((r) => setTimeout(r, h.pollMs ?? 300))
      }
    },
    /** Downloads one of this client's outputs by digest (owner only) and checks it hashes to that digest. */
    async download(digest: string): Promise<Buffer> {
      const res = await fetch(`${base}/artifacts/${digest}`, {
        headers: { authorization: await authorization() },
      }).catch((e: unknown) => {
        throw unreachable(base, (e as Error).cause ?? e)
      })
      if (!res.ok) {
        const body = (await res.json().catch(() => undefined)) as unknown
        throw (
          kilnErrorFromJSON(body) ??
          new KilnError('ARTIFACT_NOT_FOUND', `no output ${digest} at the marketplace (HTTP ${res.status})`, { digest })
        )
      }
      const bytes = Buffer.from(await res.arrayBuffer())
      const actual = sha256Hex(bytes)
      if (actual !== digest)
        throw new KilnError('ARTIFACT_DIGEST_MISMATCH', `downloaded output hashes to ${actual}, expected ${digest}`, {
          expected: digest,
          actual,
        })
      return bytes
    },
  }
  return client
}

export type KilnClient = ReturnType<typeof createKilnClient>
