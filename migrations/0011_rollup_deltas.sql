-- Rollup deltas: an ingest no longer reads and rewrites the rollup rows its batch adds to.
-- It writes the batch's additions here, one row per detailed rollup key it touches, in the
-- same transaction as its raw rows, with no lock and no read; the fold (Store::fold_rollups)
-- then moves them into event_rollups and event_rollups_by_arm in bulk, deleting each delta in
-- the transaction that adds it, so a delta is counted once: pending here, or folded, never
-- both. Every rollup read adds the pending deltas to the stored rows (one statement, one
-- snapshot), so what a window shows is exact the moment a batch commits.
--
-- Every row here is deleted within a second or so of its insert: each fold vacuums the table
-- (autovacuum may be off, and visits a table at most once a minute), so inserts reuse its
-- pages. It is never truncated by vacuum: it would empty it at nearly every fold and take the
-- lock that stalls ingests to do so.
CREATE TABLE event_rollup_deltas (LIKE event_rollups INCLUDING DEFAULTS) WITH (vacuum_truncate = false);
CREATE INDEX event_rollup_deltas_window ON event_rollup_deltas (rollout_id, minute);
