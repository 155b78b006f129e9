-- Hourly detailed rollups: the rows of event_rollups summed by hour (the `minute` column holds
-- the hour's first minute), kept by the same transactions that add to event_rollups
-- (store::rollups::add). What a whole stage is judged on by cell — the end-to-end matrix, the
-- impact by provider and file type — is read from them for the stage's whole hours and from
-- the minute rows only at its ragged ends: a week at 48 cells is about 16,000 rows where it
-- was about 1,000,000, on every view of the control room and every scrape of /metrics
-- (docs/benchmarks.md § The end-to-end matrix).
CREATE TABLE event_rollups_hourly (LIKE event_rollups INCLUDING DEFAULTS INCLUDING INDEXES);

-- From which hour a rollout's hourly rows are complete. A rollout created from here on has
-- every row of its hourly table from the start. One that existed before has none for the
-- minutes already stored, so its hourly rows count only from the hour after the newest of
-- them (and after the newest an event may yet be stamped: up to an hour ahead of now, as the
-- ingest allows); before that hour its reads keep to the minute rows. An earlier hour that
-- gets new rows later (a backfill) also gets hourly rows, partial, which no read uses.
ALTER TABLE rollouts ADD COLUMN hourly_rollups_from TIMESTAMPTZ NOT NULL DEFAULT '-infinity';
UPDATE rollouts r SET hourly_rollups_from = date_trunc('hour', GREATEST(
    now() + interval '1 hour',
    (SELECT max(e.minute) FROM event_rollups e WHERE e.rollout_id = r.id)
)) + interval '1 hour';

-- A replica of an earlier release would add to event_rollups and not to the hourly rows, and
-- the reads would miss what it added: stop every older replica before this release starts.
UPDATE schema_floor SET oldest_binary = 22;
