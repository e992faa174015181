//! The `messages` table: stored with a per-chat sequence number.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::{chats, messages, users};
use crate::{DbError, DbPool, with_conn, with_tx};

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    /// Primary key.
    pub id: i64,
    /// The chat.
    pub chat_id: i64,
    /// Author.
    pub sender_id: Option<i64>,
    /// Per-chat sequence number.
    pub seq: i64,
    /// Text (blank once deleted).
    pub content: String,
    /// The sender's idempotency key.
    pub client_id: Option<String>,
    /// Answered message.
    pub reply_to: Option<i64>,
    /// Sent.
    pub created_at: NaiveDateTime,
    /// Last edit.
    pub edited_at: Option<NaiveDateTime>,
    /// Soft deletion.
    pub deleted_at: Option<NaiveDateTime>,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The chat.
    pub chat_id: i64,
    /// Author.
    pub sender_id: i64,
    /// Text.
    pub content: &'a str,
    /// Idempotency key.
    pub client_id: Option<&'a str>,
    /// Answered message (already checked to be in the chat).
    pub reply_to: Option<i64>,
    /// Time.
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
struct MessageInsert<'a> {
    chat_id: i64,
    sender_id: Option<i64>,
    seq: i64,
    content: &'a str,
    client_id: Option<&'a str>,
    reply_to: Option<i64>,
    created_at: NaiveDateTime,
}

/// A message with its sender's username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    /// The message.
    pub message: MessageRow,
    /// Sender's username (`None` once the account is gone).
    pub sender: Option<String>,
}

/// Which part of a chat's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The newest messages with `seq < before` (all, if `None`), newest first.
    Before(Option<i64>),
    /// Messages with `seq > after`, oldest first (catching up after a reconnect).
    After(i64),
    /// Newest first, skipping `offset` (seed 003's `limit`/`offset`).
    Offset(i64),
}

impl MessageRow {
    /// Stores a message with the chat's next `seq`, in one transaction: the chat row's
    /// `last_seq` is bumped and read back first, so concurrent senders queue on that row
    /// (PostgreSQL row lock; SQLite's `BEGIN IMMEDIATE`) and seqs stay gapless. A
    /// duplicate `client_id` rolls everything back (the seq bump too) and is a
    /// [`DbError::Conflict`] on `messages_client_id_uq` / `messages.client_id`.
    /// `None` when the chat no longer exists (deleted while the message was on its way).
    pub async fn insert_next(
        pool: &DbPool,
        new: NewMessage<'_>,
    ) -> Result<Option<MessageRow>, DbError> {
        Ok(with_tx!(pool, conn => {
            let seq: Option<i64> = diesel::update(chats::table.find(new.chat_id))
                .set((chats::last_seq.eq(chats::last_seq + 1), chats::last_activity_at.eq(new.created_at)))
                .returning(chats::last_seq)
                .get_result(conn)
                .await
                .optional()?;
            let Some(seq) = seq else { return Ok(None) };
            diesel::insert_into(messages::table)
                .values(MessageInsert {
                    chat_id: new.chat_id,
                    sender_id: Some(new.sender_id),
                    seq,
                    content: new.content,
                    client_id: new.client_id,
                    reply_to: new.reply_to,
                    created_at: new.created_at,
                })
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .map(Some)
        })?)
    }

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
        let rows: Vec<(MessageRow, Option<String>)> = with_conn!(pool, conn => {
            let mut select = messages::table
                .left_join(users::table.on(messages::sender_id.eq(users::id.nullable())))
                .filter(messages::chat_id.eq(chat_id))
                .select((MessageRow::as_select(), users::username.nullable()))
                .limit(limit)
                .into_boxed();
            select = match range {
                HistoryRange::Before(None) => select.order(messages::seq.desc()),
                HistoryRange::Before(Some(before)) => select.filter(messages::seq.lt(before)).order(messages::seq.desc()),
                HistoryRange::After(after) => select.filter(messages::seq.gt(after)).order(messages::seq.asc()),
                HistoryRange::Offset(offset) => select.order(messages::seq.desc()).offset(offset),
            };
            select.load(conn).await?
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
        with_conn!(pool, conn => {
            Ok(diesel::update(messages::table.find(id).filter(messages::deleted_at.is_null()))
                .set((messages::content.eq(content), messages::edited_at.eq(now)))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Soft-deletes: blanks the text and stamps `deleted_at`; `None` if already deleted.
    pub async fn soft_delete(
        pool: &DbPool,
        id: i64,
        now: NaiveDateTime,
    ) -> Result<Option<MessageRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(messages::table.find(id).filter(messages::deleted_at.is_null()))
                .set((messages::content.eq(""), messages::deleted_at.eq(now)))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }
}
