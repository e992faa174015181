-- Files uploaded to chats; their bytes live in the file store (a directory or S3).
CREATE TABLE attachments (
    id           BIGSERIAL PRIMARY KEY,
    chat_id      BIGINT    NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    uploader_id  BIGINT    NULL REFERENCES users (id) ON DELETE SET NULL,
    -- Set when a message carrying it is stored; until then only the uploader sees it.
    message_id   BIGINT    NULL REFERENCES messages (id) ON DELETE SET NULL,
    -- Taken by a send on its way to the writer: no other send may carry it.
    claimed      BOOLEAN   NOT NULL DEFAULT FALSE,
    -- Where the bytes are in the file store.
    storage_key  TEXT      NOT NULL,
    filename     TEXT      NOT NULL,
    -- Sniffed from the bytes, never taken from the client.
    content_type TEXT      NOT NULL,
    size         BIGINT    NOT NULL,
    width        INTEGER   NULL,
    height       INTEGER   NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX attachments_chat_idx ON attachments (chat_id);
CREATE INDEX attachments_message_idx ON attachments (message_id);
-- Unsent files: counted per uploader at each upload, swept by age every hour.
CREATE INDEX attachments_unsent_idx ON attachments (uploader_id) WHERE message_id IS NULL;
CREATE INDEX attachments_abandoned_idx ON attachments (created_at) WHERE message_id IS NULL;
-- The attachments a message carries, as rendered with it (a JSON array).
ALTER TABLE messages ADD COLUMN attachments TEXT NULL;
