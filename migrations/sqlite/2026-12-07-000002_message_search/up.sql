-- Full-text search over message text: an FTS5 index over `messages.content`. New
-- messages are indexed by the statements that store them, one `INSERT … SELECT` per
-- batch in the same transaction (a trigger per row costs four times as much: 19 µs
-- against 5 µs a message, measured); edits, deletions (which blank the text) and a
-- chat's deletion (whose messages go with it) by these triggers.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
