-- Counters of raw events may be deferred: an event records the additions it
-- makes (`unfolded`), the process keeps their sums in memory and folds them
-- into the counter rows now and then. SQLite's single process always does;
-- on PostgreSQL one process at a time may, the one holding the usage lock
-- (see docs/postgres-usage-counters.md). Each usage writer folds its own
-- share of the customers, so each has its own fold mark: every event of its
-- share up to `folded_seq` is in the counters.
--
-- `usage_folds.deferring` is how many writers deferred (0: nobody did, each
-- event was counted in its own transaction); `epoch` changes whenever the
-- way counters are kept changes hands. A deferring writer stores nothing
-- unless its mark's row is there with the epoch it started with (it reads
-- that row with a share lock; a takeover locks the rows, waiting for those
-- writes, and replaces them). `folded_seq` is superseded by the marks.

ALTER TABLE usage_folds ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_folds ADD COLUMN deferring INTEGER NOT NULL DEFAULT 0;
CREATE TABLE usage_fold_marks (
    writer      INTEGER PRIMARY KEY,
    folded_seq  BIGINT NOT NULL,
    epoch       BIGINT NOT NULL
);
INSERT INTO usage_fold_marks (writer, folded_seq, epoch) SELECT 0, folded_seq, 0 FROM usage_folds WHERE id = 1;
UPDATE usage_folds SET deferring = 1;
-- Recovery reads the events after the oldest mark. On SQLite `seq` is the
-- table's key; on PostgreSQL a block-range index finds recent rows (events
-- are appended in `seq` order) at almost no cost per insert.
-- postgres: CREATE INDEX usage_events_by_seq ON usage_events USING brin (seq);
