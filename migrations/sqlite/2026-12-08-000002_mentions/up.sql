-- Same schema as migrations/postgres, in SQLite's types.
-- The mentioned members' ids, comma-separated ("3,17"), as rendered with the message.
ALTER TABLE messages ADD COLUMN mentions TEXT NULL;
-- One row per mention, for counting a member's unread mentions per chat.
CREATE TABLE message_mentions (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    chat_id    BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, chat_id, seq)
);
CREATE INDEX message_mentions_message_idx ON message_mentions (message_id);
