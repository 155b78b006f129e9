-- JUnit reports (issue 21): what a run skipped, which cases passed only on a retry, how long
-- it took, which format it came in, and the cases that failed with their messages. Added
-- columns with defaults: a Rampart of the previous version keeps working beside this one.
ALTER TABLE test_results
    ADD COLUMN skipped     INT NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    ADD COLUMN flaky       INT NOT NULL DEFAULT 0 CHECK (flaky >= 0),
    ADD COLUMN duration_ms BIGINT CHECK (duration_ms >= 0),
    ADD COLUMN format      TEXT NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'junit'));

CREATE TABLE test_failures (
    result_id BIGINT NOT NULL REFERENCES test_results (id),
    position  INT NOT NULL CHECK (position >= 0),
    classname TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('failure', 'error')),
    message   TEXT NOT NULL,
    PRIMARY KEY (result_id, position)
);
