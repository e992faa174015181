//! Single messages (look-ups, edits, deletions) and history pages.

use super::*;

impl MessageRow {
    /// The message `sender_id` sent to `chat_id` with `client_id`, if any.
    pub async fn find_by_client_id(
        pool: &DbPool,
        chat_id: i64,
        sender_id: i64,
        client_id: &str,
    ) -> Result<Option<MessageRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(messages::table
                .filter(messages::chat_id.eq(chat_id))
                .filter(messages::sender_id.eq(sender_id))
                .filter(messages::client_id.is_not_null())
                .filter(messages::client_id.eq(client_id))
                .select(MessageRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// A message of a chat, by id.
    pub async fn find(pool: &DbPool, chat_id: i64, id: i64) -> Result<Option<MessageRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(messages::table
                .find(id)
                .filter(messages::chat_id.eq(chat_id))
                .select(MessageRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// A page of history with senders' usernames.
    pub async fn history(
        pool: &DbPool,
        chat_id: i64,
        range: HistoryRange,
        limit: i64,
    ) -> Result<Vec<MessageEntry>, DbError> {
        let rows: Vec<(MessageRow, Option<String>)> = load_rows!(pool, {
            let select = messages::table
                .left_join(users::table.on(messages::sender_id.eq(users::id.nullable())))
                .filter(messages::chat_id.eq(chat_id))
                .select((MessageRow::as_select(), users::username.nullable()))
                .limit(limit)
                .into_boxed();
            match range {
                HistoryRange::Before(None) => select.order(messages::seq.desc()),
                HistoryRange::Before(Some(before)) => select
                    .filter(messages::seq.lt(before))
                    .order(messages::seq.desc()),
                HistoryRange::After(after) => select
                    .filter(messages::seq.gt(after))
                    .order(messages::seq.asc()),
                HistoryRange::Offset(offset) => select.order(messages::seq.desc()).offset(offset),
            }
        });
        Ok(rows
            .into_iter()
            .map(|(message, sender)| MessageEntry { message, sender })
            .collect())
    }

    /// Replaces the text of a live message; `None` if it is gone or deleted.
    pub async fn edit(
        pool: &DbPool,
        id: i64,
        content: &str,
        now: NaiveDateTime,
    ) -> Result<Option<MessageRow>, DbError> {
        with_tx!(pool, conn => {
            let edited = diesel::update(messages::table.find(id).filter(messages::deleted_at.is_null()))
                .set((messages::content.eq(content), messages::edited_at.eq(now)))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?;
            if edited.is_some() {
                conn.index_text(id, content).await?;
            }
            Ok::<_, DbError>(edited)
        })
    }

    /// Soft-deletes: blanks the text, stamps `deleted_at` and drops the message's
    /// reactions, mentions (a deleted message is nobody's unread mention) and
    /// attachments, all in one transaction; returns the message and where its files'
    /// bytes are (the caller's to remove: no row refers to them any more). `None` if
    /// already deleted.
    pub async fn soft_delete(
        pool: &DbPool,
        id: i64,
        now: NaiveDateTime,
    ) -> Result<Option<(MessageRow, Vec<String>)>, DbError> {
        with_tx!(pool, conn => {
            let deleted = diesel::update(messages::table.find(id).filter(messages::deleted_at.is_null()))
                .set((
                    messages::content.eq(""),
                    messages::deleted_at.eq(now),
                    messages::attachments.eq(None::<String>),
                    messages::mentions.eq(None::<String>),
                ))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?;
            let Some(deleted) = deleted else {
                return Ok(None);
            };
            conn.index_text(id, "").await?;
            diesel::delete(message_reactions::table.filter(message_reactions::message_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(message_mentions::table.filter(message_mentions::message_id.eq(id)))
                .execute(conn)
                .await?;
            let files: Vec<String> =
                diesel::delete(attachments::table.filter(attachments::message_id.eq(id)))
                    .returning(attachments::storage_key)
                    .get_results(conn)
                    .await?;
            Ok::<_, DbError>(Some((deleted, files)))
        })
    }
}
