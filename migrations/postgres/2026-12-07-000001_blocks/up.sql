-- Who blocked whom. A block stops the blocked user's friend requests, new direct chats
-- and direct messages to the blocker (and the blocker's to them) until it is lifted.
CREATE TABLE user_blocks (
    blocker_id BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id);
