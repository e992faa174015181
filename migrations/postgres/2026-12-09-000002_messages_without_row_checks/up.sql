-- The writer's batch statement paid two foreign-key checks per message (a `SELECT …
-- FOR KEY SHARE` on the chat and on the sender, each locking a row): 31 µs of
-- PostgreSQL's ≈ 105 µs a message (pgbench, 256-message batches, 2026-12-07). What they
-- guarded holds without them: a message is inserted only for a chat row its own
-- statement has locked `FOR UPDATE` (a chat being deleted is waited for, then skipped);
-- a chat's deletion removes its messages in the same transaction (`ChatRow::delete`);
-- senders are members when they send, and accounts are deactivated, never deleted.
ALTER TABLE messages
    DROP CONSTRAINT messages_chat_id_fkey,
    DROP CONSTRAINT messages_sender_id_fkey;
