//! The `messages` table: stored with a per-chat sequence number.
//!
//! By job: the row types here; storing a group-commit batch in `batch` (its plan in
//! `plan`, the PostgreSQL statement in `pg_batch`, the SQLite statements in
//! `sqlite_batch`); single messages and history pages in `queries`.

mod batch;
mod pg_batch;
mod plan;
mod queries;
mod search;
mod sqlite_batch;

pub use pg_batch::store_batch_statement;
use search::SearchIndex;
pub use search::SearchScope;

use plan::{BatchPlan, Slot, batch_keys};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::{attachments, chats, message_mentions, message_reactions, messages, users};
use crate::{DbError, DbPool, load_rows, with_conn, with_tx};

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
    #[diesel(deserialize_as = crate::StoredTime)]
    pub created_at: NaiveDateTime,
    /// Last edit.
    pub edited_at: Option<NaiveDateTime>,
    /// Soft deletion.
    pub deleted_at: Option<NaiveDateTime>,
    /// Mentioned members' ids, comma-separated ([`MessageRow::mention_ids`]).
    pub mentions: Option<String>,
    /// The attachments it carries, as rendered when it was sent (a JSON array).
    pub attachments: Option<String>,
}

impl MessageRow {
    /// The members this message mentions, as resolved when it was sent.
    pub fn mention_ids(&self) -> Vec<i64> {
        self.mentions
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect()
    }
}

/// How a message's mentioned ids are stored: `None` for none.
pub fn mention_text(ids: &[i64]) -> Option<String> {
    (!ids.is_empty()).then(|| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
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
    /// Mentioned members' ids ([`mention_text`]).
    pub mentions: Option<&'a str>,
    /// The attachments it carries: their ids (linked to the message in its transaction)
    /// and their rendering.
    pub attachments: Option<(&'a [i64], &'a str)>,
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
    mentions: Option<&'a str>,
    attachments: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = message_mentions)]
struct MentionInsert {
    user_id: i64,
    chat_id: i64,
    seq: i64,
    message_id: i64,
}

/// Per stored message carrying attachments, its id and theirs (`batch` in input order,
/// `stored` the rows of its accepted messages).
fn attachment_links(batch: &[NewMessage<'_>], stored: &[MessageRow]) -> Vec<(i64, Vec<i64>)> {
    stored
        .iter()
        .filter(|row| row.attachments.is_some())
        .filter_map(|row| {
            // The message of the batch this row stores: same chat, sender and text; each
            // attachment id is the uploader's and unsent, so the first match is it.
            let new = batch.iter().find(|m| {
                m.chat_id == row.chat_id
                    && Some(m.sender_id) == row.sender_id
                    && m.attachments.map(|a| a.1) == row.attachments.as_deref()
            })?;
            Some((row.id, new.attachments?.0.to_vec()))
        })
        .collect()
}

/// The `message_mentions` rows of stored messages.
fn mention_rows(stored: &[MessageRow]) -> Vec<MentionInsert> {
    stored
        .iter()
        .flat_map(|m| {
            m.mention_ids().into_iter().map(|user_id| MentionInsert {
                user_id,
                chat_id: m.chat_id,
                seq: m.seq,
                message_id: m.id,
            })
        })
        .collect()
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
