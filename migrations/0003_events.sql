-- Upload events: raw rows partitioned by day, the ids seen (so a replay is never counted twice),
-- per-minute rollups maintained in the same transaction as the raw rows, and frozen baselines.

CREATE TABLE event_ids (
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    event_id    TEXT NOT NULL,
    -- The event's own time, so retention can forget ids together with their events.
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rollout_id, event_id)
);
CREATE INDEX event_ids_at ON event_ids (at);

CREATE TABLE events (
    rollout_id   BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    event_id     TEXT NOT NULL,
    stage        INT NOT NULL,
    variant      TEXT NOT NULL CHECK (variant IN ('control', 'treatment')),
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'error', 'timeout')),
    latency_ms   DOUBLE PRECISION NOT NULL CHECK (latency_ms >= 0),
    memory_mb    DOUBLE PRECISION NOT NULL CHECK (memory_mb >= 0),
    provider     TEXT NOT NULL,
    file_type    TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL CHECK (size_bytes >= 0),
    error_kind   TEXT,
    critical     BOOLEAN NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL DEFAULT now()
) PARTITION BY RANGE (at);
-- Daily partitions are created before rows for a day arrive; the default one stays empty
-- unless that fails, and nothing is lost if it does.
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_rollout_at ON events (rollout_id, at);

CREATE TABLE event_rollups (
    rollout_id      BIGINT NOT NULL REFERENCES rollouts (id),
    minute          TIMESTAMPTZ NOT NULL,
    stage           INT NOT NULL,
    variant         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    file_type       TEXT NOT NULL,
    size_class_mb   INT NOT NULL,
    success         BIGINT NOT NULL,
    error           BIGINT NOT NULL,
    timeout         BIGINT NOT NULL,
    critical        BIGINT NOT NULL,
    latency_sum_ms  DOUBLE PRECISION NOT NULL,
    -- app::domain::sketch::Sketch::to_bytes: mergeable, quantiles within 1%.
    latency_sketch  BYTEA NOT NULL,
    memory_sum_mb   DOUBLE PRECISION NOT NULL,
    memory_max_mb   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollout_id, minute, stage, variant, provider, file_type, size_class_mb)
);

-- The same per minute, by arm only: what gates, guardrails and charts read, so a 48-hour
-- window is a few thousand rows however many providers, file types and sizes there are.
CREATE TABLE event_rollups_by_arm (
    rollout_id      BIGINT NOT NULL REFERENCES rollouts (id),
    minute          TIMESTAMPTZ NOT NULL,
    stage           INT NOT NULL,
    variant         TEXT NOT NULL,
    success         BIGINT NOT NULL,
    error           BIGINT NOT NULL,
    timeout         BIGINT NOT NULL,
    critical        BIGINT NOT NULL,
    latency_sum_ms  DOUBLE PRECISION NOT NULL,
    latency_sketch  BYTEA NOT NULL,
    memory_sum_mb   DOUBLE PRECISION NOT NULL,
    memory_max_mb   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollout_id, minute, stage, variant)
);

CREATE TABLE baselines (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id   BIGINT NOT NULL REFERENCES rollouts (id),
    captured_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    captured_by  TEXT NOT NULL,
    window_from  TIMESTAMPTZ NOT NULL,
    window_to    TIMESTAMPTZ NOT NULL,
    -- app::domain::stats::Summary of the control events in the window, frozen.
    summary      JSONB NOT NULL,
    CHECK (window_from < window_to)
);
CREATE INDEX baselines_rollout ON baselines (rollout_id, id DESC);
