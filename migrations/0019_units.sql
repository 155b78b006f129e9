-- The unit an upload was made for, when the service names it: 64 bits of its hash
-- (`bucketing::unit_key`), never the unit itself. NULL when the event does not say.
ALTER TABLE events ADD COLUMN unit_key BIGINT;

-- The distinct units of each arm of each stage, and when each was last seen: the sample-ratio
-- check counts the units seen since its first minute. Written with each batch in the same
-- transaction (keys sorted, so concurrent batches lock in one order); recomputable from
-- `events.unit_key`. No foreign key, as for the rollups (0010).
CREATE TABLE stage_units (
    rollout_id BIGINT NOT NULL,
    stage INT NOT NULL,
    treatment BOOLEAN NOT NULL,
    unit_key BIGINT NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (rollout_id, stage, treatment, unit_key)
);
