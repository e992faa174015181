//! A batch's statements on SQLite: in process, row by row, all inside **one**
//! blocking-pool hand-off (the synchronous diesel API), not one hand-off per statement.

use chrono::NaiveDateTime;
use diesel::SqliteConnection;
use diesel::prelude::*;

use super::{BatchPlan, MessageRow, NewMessage, Slot, batch_keys};
use crate::DbError;
use crate::schema::{attachments, chats, message_mentions, messages};

/// A message the blocking closure owns (it must be `'static`).
pub(super) struct Owned {
    chat_id: i64,
    sender_id: i64,
    content: String,
    client_id: Option<String>,
    reply_to: Option<i64>,
    created_at: NaiveDateTime,
    mentions: Option<String>,
    attachments: Option<(Vec<i64>, String)>,
}

impl Owned {
    pub(super) fn from_new(m: &NewMessage<'_>) -> Self {
        Owned {
            chat_id: m.chat_id,
            sender_id: m.sender_id,
            content: m.content.to_owned(),
            client_id: m.client_id.map(str::to_owned),
            reply_to: m.reply_to,
            created_at: m.created_at,
            mentions: m.mentions.map(str::to_owned),
            attachments: m
                .attachments
                .map(|(ids, json)| (ids.to_vec(), json.to_owned())),
        }
    }

    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            chat_id: self.chat_id,
            sender_id: self.sender_id,
            content: &self.content,
            client_id: self.client_id.as_deref(),
            reply_to: self.reply_to,
            created_at: self.created_at,
            mentions: self.mentions.as_deref(),
            attachments: self
                .attachments
                .as_ref()
                .map(|(ids, json)| (ids.as_slice(), json.as_str())),
        }
    }
}

/// Adds stored messages to the full-text index (`messages_fts`), in one statement for
/// the lot: inside the transaction that stored them, so the index never lacks a
/// committed message.
pub(super) fn index_for_search(
    conn: &mut SqliteConnection,
    ids: impl Iterator<Item = i64>,
) -> QueryResult<usize> {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    if ids.is_empty() {
        return Ok(0);
    }
    // Ids come from the rows just stored (integers), never from a client.
    diesel::sql_query(format!(
        "INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages WHERE id IN ({})",
        ids.join(",")
    ))
    .execute(conn)
}

/// The whole fast path of a batch in one `BEGIN IMMEDIATE` transaction.
pub(super) fn store(conn: &mut SqliteConnection, owned: &[Owned]) -> Result<Vec<Slot>, DbError> {
    let batch: Vec<NewMessage<'_>> = owned.iter().map(Owned::as_new).collect();
    let keys = batch_keys(&batch);
    conn.immediate_transaction(|conn| {
        // One probe of the unique index per key (prepared once, cached by diesel).
        let mut existing = Vec::new();
        for &(chat, sender, key) in &keys {
            let found = messages::table
                .filter(messages::chat_id.eq(chat))
                .filter(messages::sender_id.eq(sender))
                .filter(messages::client_id.is_not_null())
                .filter(messages::client_id.eq(key))
                .select((messages::chat_id, messages::sender_id, messages::client_id))
                .first(conn)
                .optional()?;
            existing.extend(found);
        }
        let plan = BatchPlan::new(&batch, existing);
        let mut bumped = Vec::new();
        for (chat, count, at) in plan.bumps() {
            let last: Option<i64> = diesel::update(chats::table.find(chat))
                .set((
                    chats::last_seq.eq(chats::last_seq + count),
                    chats::last_activity_at.eq(at),
                ))
                .returning(chats::last_seq)
                .get_result(conn)
                .optional()?;
            if let Some(last) = last {
                bumped.push((chat, last));
            }
        }
        let (rows, slots) = plan.assign(&batch, bumped);
        let mut stored: Vec<MessageRow> = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push(
                diesel::insert_into(messages::table)
                    .values(row)
                    .returning(MessageRow::as_returning())
                    .get_result(conn)?,
            );
        }
        index_for_search(conn, stored.iter().map(|m| m.id))?;
        for (message, ids) in super::attachment_links(&batch, &stored) {
            diesel::update(
                attachments::table
                    .filter(attachments::id.eq_any(ids))
                    .filter(attachments::message_id.is_null()),
            )
            .set(attachments::message_id.eq(message))
            .execute(conn)?;
        }
        let mentions = super::mention_rows(&stored);
        if !mentions.is_empty() {
            diesel::insert_into(message_mentions::table)
                .values(&mentions)
                .execute(conn)?;
        }
        Ok(Slot::fill(slots, stored))
    })
}
