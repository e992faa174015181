DROP INDEX messages_client_id_uq;
CREATE UNIQUE INDEX messages_client_id_uq ON messages (chat_id, sender_id, client_id);
