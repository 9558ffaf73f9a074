-- Delivery policy per subscription (retry backoff, max attempts, dead lettering), the dead-letter
-- table, and the failure history a dead letter reports. pg-boss keeps the live deliveries; a dead
-- letter leaves pg-boss in the same transaction that writes its row here, so an event is always in
-- exactly one of pending, in flight, acked, dead-lettered.

ALTER TABLE pgmesh.subscriptions
  ADD COLUMN max_delivery_attempts integer NOT NULL DEFAULT 5 CHECK (max_delivery_attempts BETWEEN 1 AND 1000),
  ADD COLUMN dead_lettering boolean NOT NULL DEFAULT true,
  ADD COLUMN backoff_initial_seconds integer NOT NULL DEFAULT 1 CHECK (backoff_initial_seconds BETWEEN 0 AND 3600),
  ADD COLUMN backoff_max_seconds integer NOT NULL DEFAULT 60 CHECK (backoff_max_seconds BETWEEN 0 AND 86400),
  ADD COLUMN backoff_multiplier double precision NOT NULL DEFAULT 2 CHECK (backoff_multiplier BETWEEN 1 AND 10),
  ADD COLUMN backoff_jitter double precision NOT NULL DEFAULT 0.1 CHECK (backoff_jitter BETWEEN 0 AND 1);

ALTER TABLE pgmesh.events ADD COLUMN deliver_after timestamptz;

-- One row per delivery job that has failed at least once, kept until the job is settled for good.
CREATE TABLE pgmesh.delivery_failures (
  job_id          uuid PRIMARY KEY,
  subscription    text NOT NULL REFERENCES pgmesh.subscriptions (name) ON DELETE CASCADE,
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  last_failed_at  timestamptz NOT NULL DEFAULT now(),
  last_error      text NOT NULL DEFAULT ''
);

CREATE TABLE pgmesh.dead_letters (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription     text NOT NULL REFERENCES pgmesh.subscriptions (name) ON DELETE CASCADE,
  event_seq        bigint NOT NULL REFERENCES pgmesh.events (seq),
  attempts         integer NOT NULL,
  reason           text NOT NULL CHECK (reason IN ('max_attempts', 'rejected')),
  last_error       text NOT NULL DEFAULT '',
  first_failed_at  timestamptz NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  -- Set once, in the transaction that queues the event again: a retried redrive finds it set.
  redriven_at      timestamptz,
  redrive_job_id   uuid
);
CREATE INDEX dead_letters_open ON pgmesh.dead_letters (subscription, id) WHERE redriven_at IS NULL;
