DROP TABLE attachments;
ALTER TABLE messages DROP COLUMN attachments;
