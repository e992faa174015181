-- The writer's batch statement paid two foreign-key checks per message (a `SELECT …
-- FOR KEY SHARE` on the chat and on the sender, each locking a row): 31 µs of
-- PostgreSQL's ≈ 105 µs a message (pgbench, 256-message batches, 2026-12-07). What they
-- guarded holds without them: a message is inserted only for a chat row its own
-- statement has locked `FOR UPDATE` (a chat being deleted is waited for, then skipped);
-- senders are members when they send, and accounts are deactivated, never deleted.
-- A chat's messages still go with it, by a trigger on `chats` (it costs only deletions,
-- and works for every deleter, an instance of the previous version included): its
-- `DELETE` runs after the chat row's, which waited for any batch holding that row, and
-- in READ COMMITTED it takes a fresh snapshot, so it sees that batch's messages.
ALTER TABLE messages
    DROP CONSTRAINT messages_chat_id_fkey,
    DROP CONSTRAINT messages_sender_id_fkey;
CREATE FUNCTION delete_messages_of_chat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE chat_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER chats_delete_messages AFTER DELETE ON chats
    FOR EACH ROW EXECUTE FUNCTION delete_messages_of_chat();
