-- The guard loop's memory: since when each "sustained" condition has held (so a restart does
-- not reset a 30-minute timer), and the alerts that block advancing until acknowledged.

CREATE TABLE guard_conditions (
    rollout_id  BIGINT NOT NULL REFERENCES rollouts (id),
    condition   TEXT NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rollout_id, condition)
);

CREATE TABLE alerts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id       BIGINT NOT NULL REFERENCES rollouts (id),
    kind             TEXT NOT NULL,
    message          TEXT NOT NULL,
    evidence         JSONB NOT NULL,
    raised_at        TIMESTAMPTZ NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_at  TIMESTAMPTZ,
    acknowledgement  TEXT,
    CHECK ((acknowledged_by IS NULL) = (acknowledged_at IS NULL))
);
-- At most one open alert of a kind per rollout: raising it again is a no-op.
CREATE UNIQUE INDEX alerts_one_open_per_kind ON alerts (rollout_id, kind) WHERE acknowledged_at IS NULL;
