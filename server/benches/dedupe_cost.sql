-- What one stored event costs Postgres, per part of the ingest: the raw row (COPY and
-- INSERT … SELECT) against the id check (an insert into a primary key, with and without the
-- foreign key and the index the event_ids table had), and what replaced it (migration 0010): a
-- unique index on each partition of the raw table, with ON CONFLICT DO NOTHING. 50,000 rows
-- each, in a scratch database, every statement rolled back.
--
--   createdb rampart_dedupe_cost && psql -d rampart_dedupe_cost -f server/benches/dedupe_cost.sql; dropdb rampart_dedupe_cost
\timing on
\set QUIET on
CREATE TABLE parent (id BIGINT PRIMARY KEY);
INSERT INTO parent VALUES (1);
CREATE TABLE raw_unique (rollout_id BIGINT, at TIMESTAMPTZ, event_id TEXT COLLATE "C", stage INT, variant TEXT, outcome TEXT,
                         latency_ms FLOAT8, memory_mb FLOAT8, provider TEXT, file_type TEXT, size_bytes BIGINT, error_kind TEXT,
                         critical BOOL) PARTITION BY RANGE (at);
CREATE TABLE raw_unique_all PARTITION OF raw_unique DEFAULT;
CREATE UNIQUE INDEX raw_unique_all_ids ON raw_unique_all (rollout_id, event_id);
CREATE INDEX raw_unique_rollout_at ON raw_unique (rollout_id, at);
CREATE TABLE raw (rollout_id BIGINT, at TIMESTAMPTZ, event_id TEXT, stage INT, variant TEXT, outcome TEXT, latency_ms FLOAT8,
                  memory_mb FLOAT8, provider TEXT, file_type TEXT, size_bytes BIGINT, error_kind TEXT, critical BOOL);
CREATE INDEX raw_rollout_at ON raw (rollout_id, at);
CREATE TABLE ids_as_shipped (rollout_id BIGINT REFERENCES parent (id), event_id TEXT, at TIMESTAMPTZ, PRIMARY KEY (rollout_id, event_id));
CREATE INDEX ids_as_shipped_at ON ids_as_shipped (at);
CREATE TABLE ids_no_fk (rollout_id BIGINT, event_id TEXT COLLATE "C", at TIMESTAMPTZ, PRIMARY KEY (rollout_id, event_id));
CREATE INDEX ids_no_fk_at ON ids_no_fk (at);
CREATE TEMP TABLE src AS
  SELECT 1::bigint AS rollout_id, now() - (i || ' seconds')::interval AS at, 'sim-9-' || i AS event_id, 0 AS stage,
         CASE WHEN i % 10 = 0 THEN 'treatment' ELSE 'control' END AS variant, 'success' AS outcome, 100.0 + i % 50 AS latency_ms,
         20.0 AS memory_mb, 'kimi' AS provider, 'csv' AS file_type, 1000000::bigint AS size_bytes, NULL::text AS error_kind, false AS critical
  FROM generate_series(1, 50000) i;
\copy (SELECT * FROM src) TO '/tmp/rampart-dedupe-cost.csv' WITH (FORMAT csv)
\echo '1. COPY of the raw rows (the baseline)'
BEGIN;
\copy raw FROM '/tmp/rampart-dedupe-cost.csv' WITH (FORMAT csv)
ROLLBACK;
\echo '2. INSERT … SELECT of the raw rows'
BEGIN;
INSERT INTO raw SELECT * FROM src;
ROLLBACK;
\echo '3. the id check as shipped: ON CONFLICT DO NOTHING RETURNING, with the foreign key and the at index'
BEGIN;
INSERT INTO ids_as_shipped SELECT rollout_id, event_id, at FROM src ON CONFLICT DO NOTHING RETURNING event_id \g /dev/null
ROLLBACK;
\echo '4. the id check without the foreign key, C collation'
BEGIN;
INSERT INTO ids_no_fk SELECT rollout_id, event_id, at FROM src ON CONFLICT DO NOTHING RETURNING event_id \g /dev/null
ROLLBACK;
\echo '5. COPY of the raw rows into the table as it is now (a partition with the unique id index): the new baseline'
BEGIN;
\copy raw_unique FROM '/tmp/rampart-dedupe-cost.csv' WITH (FORMAT csv)
ROLLBACK;
\echo '6. what the ingest does now: INSERT … SELECT into that table, ON CONFLICT DO NOTHING RETURNING'
BEGIN;
INSERT INTO raw_unique SELECT * FROM src ON CONFLICT DO NOTHING RETURNING event_id, at \g /dev/null
ROLLBACK;
