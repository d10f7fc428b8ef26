/**
 * Schema migrations, applied in order and recorded in kiln_migrations. Written as SQL so that
 * the embedded database and a Postgres server get the very same schema; schema.ts mirrors it.
 */
export const MIGRATIONS: readonly { id: number; sql: string }[] = [
  {
    id: 1,
    sql: `
CREATE TABLE jobs (
  id text PRIMARY KEY,
  client text NOT NULL,
  spec jsonb NOT NULL,
  submit_envelope jsonb NOT NULL,
  state text NOT NULL,
  version integer NOT NULL DEFAULT 0,
  attempt integer NOT NULL DEFAULT 0,
  provider text,
  price_per_hour bigint,
  lock_amount bigint,
  max_cost bigint NOT NULL,
  vault text,
  multisig text,
  lock_signature text,
  lock_deadline bigint,
  receipt jsonb,
  output_digest text,
  output_bytes bigint,
  paid_to_provider bigint,
  refunded_to_client bigint,
  settle_action text,
  settlement_signature text,
  error jsonb,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  started_at bigint,
  ended_at bigint
);
CREATE INDEX jobs_state_idx ON jobs (state);
CREATE INDEX jobs_client_idx ON jobs (client);
CREATE TABLE job_events (
  id bigserial PRIMARY KEY,
  job_id text NOT NULL,
  from_state text,
  to_state text NOT NULL,
  reason text NOT NULL,
  detail jsonb,
  at bigint NOT NULL
);
CREATE INDEX job_events_job_idx ON job_events (job_id);
CREATE TABLE job_logs (
  job_id text NOT NULL,
  seq integer NOT NULL,
  stream text NOT NULL,
  text text NOT NULL,
  at bigint NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE TABLE providers (
  address text PRIMARY KEY,
  advert jsonb NOT NULL,
  first_seen bigint NOT NULL,
  last_seen bigint NOT NULL,
  expires_at bigint NOT NULL,
  jobs_done integer NOT NULL DEFAULT 0,
  jobs_failed integer NOT NULL DEFAULT 0,
  earned bigint NOT NULL DEFAULT 0,
  container_seconds double precision NOT NULL DEFAULT 0
);
CREATE TABLE settlements (
  job_id text NOT NULL,
  action text NOT NULL,
  signature text NOT NULL,
  to_provider bigint NOT NULL,
  to_client bigint NOT NULL,
  at bigint NOT NULL,
  PRIMARY KEY (job_id, action)
);`,
  },
  {
    id: 2,
    sql: `
ALTER TABLE jobs ADD COLUMN excluded jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE jobs ADD COLUMN run_deadline bigint;
ALTER TABLE jobs ADD COLUMN pending_cosign jsonb;
ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE settlements DROP CONSTRAINT settlements_pkey;
ALTER TABLE settlements ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE settlements ADD PRIMARY KEY (job_id, attempt, action)`,
  },
  {
    id: 3,
    sql: `ALTER TABLE jobs ADD COLUMN cancel_requested_at bigint`,
  },
  {
    id: 4,
    sql: `ALTER TABLE providers ADD COLUMN reputation jsonb`,
  },
  {
    id: 5,
    sql: `
ALTER TABLE jobs ADD COLUMN parent_id text;
ALTER TABLE jobs ADD COLUMN role text NOT NULL DEFAULT 'primary';
ALTER TABLE jobs ADD COLUMN spot_check boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN bond bigint;
ALTER TABLE jobs ADD COLUMN fee_bps integer;
ALTER TABLE jobs ADD COLUMN fee bigint;
ALTER TABLE jobs ADD COLUMN settle_outcome text;
ALTER TABLE jobs ADD COLUMN verdict jsonb;
CREATE INDEX jobs_parent_idx ON jobs (parent_id)`,
  },
  {
    id: 6,
    sql: `
ALTER TABLE jobs ADD COLUMN lapses integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN parked_at bigint`,
  },
  {
    id: 7,
    sql: `
CREATE TABLE used_nonces (
  signer text NOT NULL,
  nonce text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (signer, nonce)
);
CREATE INDEX used_nonces_expires_idx ON used_nonces (expires_at)`,
  },
  {
    id: 8,
    sql: `
CREATE TABLE blob_owners (
  sha256 text NOT NULL,
  client text NOT NULL,
  size bigint NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (client, sha256)
);
CREATE INDEX blob_owners_sha256_idx ON blob_owners (sha256)`,
  },
]
