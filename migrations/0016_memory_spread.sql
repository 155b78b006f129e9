-- The sum of squared memory readings per rollup row, so the memory rules can judge the mean
-- with a confidence sequence (app::domain::sequential::MeanSequence) rather than a point
-- estimate: the spread of the readings is what the interval's width comes from.
--
-- Rows written before this migration carry no spread. They get the square of their mean times
-- their count — as if every reading of that minute had been the minute's mean — which is the
-- least the sum can be: the spread between minutes still counts, the spread within them is
-- left out (docs/statistics.md, Known limits). Every row written after it is exact.
ALTER TABLE event_rollups ADD COLUMN memory_sq_sum_mb2 DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE event_rollups_by_arm ADD COLUMN memory_sq_sum_mb2 DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE event_rollup_deltas ADD COLUMN memory_sq_sum_mb2 DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE event_rollup_quarantine ADD COLUMN memory_sq_sum_mb2 DOUBLE PRECISION NOT NULL DEFAULT 0;

UPDATE event_rollups SET memory_sq_sum_mb2 = memory_sum_mb * memory_sum_mb / (success + error + timeout)
WHERE success + error + timeout > 0;
UPDATE event_rollups_by_arm SET memory_sq_sum_mb2 = memory_sum_mb * memory_sum_mb / (success + error + timeout)
WHERE success + error + timeout > 0;
UPDATE event_rollup_deltas SET memory_sq_sum_mb2 = memory_sum_mb * memory_sum_mb / (success + error + timeout)
WHERE success + error + timeout > 0;
UPDATE event_rollup_quarantine SET memory_sq_sum_mb2 = memory_sum_mb * memory_sum_mb / (success + error + timeout)
WHERE success + error + timeout > 0;
