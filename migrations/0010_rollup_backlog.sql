-- The detailed rollups (per provider, file type and size) leave the ingest transaction: each
-- stored batch writes its deltas as one backlog row, in the same transaction as its raw rows.
-- A catch-up merges backlog rows into event_rollups and deletes them in one transaction, so a
-- delta is counted exactly once; readers of the detailed rollups catch up first.
CREATE TABLE rollup_backlog (
    id              BIGSERIAL PRIMARY KEY,
    rollout_id      BIGINT NOT NULL,
    minute          TIMESTAMPTZ[] NOT NULL,
    stage           INT[] NOT NULL,
    variant         TEXT[] NOT NULL,
    provider        TEXT[] NOT NULL,
    file_type       TEXT[] NOT NULL,
    size_class_mb   INT[] NOT NULL,
    success         BIGINT[] NOT NULL,
    error           BIGINT[] NOT NULL,
    timeout         BIGINT[] NOT NULL,
    critical        BIGINT[] NOT NULL,
    latency_sum_ms  FLOAT8[] NOT NULL,
    latency_sketch  BYTEA[] NOT NULL,
    memory_sum_mb   FLOAT8[] NOT NULL,
    memory_max_mb   FLOAT8[] NOT NULL
);
