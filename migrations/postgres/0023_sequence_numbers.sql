-- Ingest's write transactions commit side by side (issue 20). Until here each took its sequence
-- numbers from the `seq` row of `counters`, whose row lock it then held to its commit, so
-- numbers became visible in commit order and a pull's cursor never passed a change that would
-- commit later with a lower number; but every push waited for the one before to commit. Numbers
-- now come from a sequence, which no transaction holds. A pull keeps its promise by waiting for
-- the pushes in flight instead: each ingest transaction holds a shared advisory lock from its
-- first statement to its commit, and a pull reads the last number given out, takes that lock
-- exclusively for a moment (every push that could hold a lower number has then ended), and
-- serves up to that number from a snapshot opened afterwards (`sync::pull`).
--
-- The canvass roll-ups (`canvass_months`, `canvass_worry_months`) relied on that counter to
-- keep two writers from updating their rows in opposite orders. A push that writes canvass
-- interviews now first takes an advisory lock per grid they lie in, in one order
-- (`Tx::lock_rollups`), so pushes of the same grids take turns and others write side by side.
-- Keep in step with migrations/sqlite/0023_sequence_numbers.sql.
CREATE SEQUENCE change_seq AS BIGINT;
SELECT setval('change_seq', value) FROM counters WHERE name = 'seq' AND value > 0;
-- Nothing reads the old counter any more; a statement that did would now fail rather than
-- read a number that no longer moves.
DELETE FROM counters WHERE name = 'seq';
