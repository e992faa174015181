-- Every stored message bumps its chat's row (`last_seq`, `last_activity_at`, neither
-- indexed). With room left on the row's page PostgreSQL writes the new version beside
-- the old one and touches no index (a HOT update); on a full page it moves the row and
-- writes an entry into each of the chats' indexes. Half of each page is kept free: the
-- writer's batch statement cost 46 against 38 µs of PostgreSQL CPU a message (pgbench,
-- 256-message batches over 1 000 chats, docs/benchmarks.md). Pages written before this
-- fill up to the new setting as their rows move; `VACUUM FULL chats` applies it at once.
ALTER TABLE chats SET (fillfactor = 50);
