-- A rollup delta the fold cannot store (its key past an index's limit, or any other row the
-- rollups refuse) is set aside here with the reason, instead of failing every later fold for
-- every rollout. Nothing is lost, and an operator can look (docs/operations.md § Rollup
-- folding). No index: whatever a delta holds, it can be kept.
CREATE TABLE event_rollup_quarantine (LIKE event_rollup_deltas);
ALTER TABLE event_rollup_quarantine
    ADD COLUMN reason TEXT,
    ADD COLUMN quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now();
