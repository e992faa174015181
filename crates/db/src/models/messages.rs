//! The `messages` table: stored with a per-chat sequence number.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::{chats, messages, users};
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

/// The batch statement on PostgreSQL: one round trip for the whole batch.
mod pg_batch {
    use super::*;
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};

    /// The seq bump of every chat in the batch and the insert of its messages, as **one**
    /// statement: one round trip (no `BEGIN`/`COMMIT`; a single statement is atomic) and
    /// one text whatever the batch size, so PostgreSQL parses and plans it once per
    /// connection (diesel caches it by type). diesel's multi-row `INSERT` and
    /// `sql_query` are never cached: their text varies or is opaque to the cache.
    ///
    /// Chat rows are locked in id order (concurrent batches from other instances cannot
    /// deadlock); messages are numbered in input order per chat from the bumped
    /// `last_seq`; a chat that is gone has no row to bump, so its messages are not
    /// inserted. Returns the stored rows.
    pub(super) struct StoreBatch<'a> {
        pub(super) bump_ids: Vec<i64>,
        pub(super) bump_counts: Vec<i64>,
        pub(super) bump_times: Vec<NaiveDateTime>,
        pub(super) chat_ids: Vec<i64>,
        pub(super) sender_ids: Vec<i64>,
        pub(super) contents: Vec<&'a str>,
        pub(super) client_ids: Vec<Option<&'a str>>,
        pub(super) reply_tos: Vec<Option<i64>>,
        pub(super) created: Vec<NaiveDateTime>,
    }

    impl QueryId for StoreBatch<'_> {
        type QueryId = StoreBatch<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl Query for StoreBatch<'_> {
        type SqlType = (
            BigInt,
            BigInt,
            Nullable<BigInt>,
            BigInt,
            Text,
            Nullable<Text>,
            Nullable<BigInt>,
            Timestamp,
            Nullable<Timestamp>,
            Nullable<Timestamp>,
        );
    }

    impl QueryFragment<Pg> for StoreBatch<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH bump AS (SELECT * FROM unnest(");
            out.push_bind_param::<Array<BigInt>, _>(&self.bump_ids)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(&self.bump_counts)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Timestamp>, _>(&self.bump_times)?;
            out.push_sql(
                ") AS b(id, n, at)), \
                 locked AS (SELECT id FROM chats WHERE id IN (SELECT id FROM bump) \
                   ORDER BY id FOR UPDATE), \
                 bumped AS (UPDATE chats SET last_seq = chats.last_seq + bump.n, \
                   last_activity_at = bump.at FROM bump \
                   WHERE chats.id = bump.id AND chats.id IN (SELECT id FROM locked) \
                   RETURNING chats.id, chats.last_seq, bump.n), \
                 input AS (SELECT * FROM unnest(",
            );
            out.push_bind_param::<Array<BigInt>, _>(&self.chat_ids)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(&self.sender_ids)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(&self.contents)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ids)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.reply_tos)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Timestamp>, _>(&self.created)?;
            out.push_sql(
                ") WITH ORDINALITY AS i(chat_id, sender_id, content, client_id, reply_to, \
                   created_at, ord)) \
                 INSERT INTO messages (chat_id, sender_id, seq, content, client_id, reply_to, \
                   created_at) \
                 SELECT i.chat_id, i.sender_id, \
                   b.last_seq - b.n + row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord), \
                   i.content, i.client_id, i.reply_to, i.created_at \
                 FROM input i JOIN bumped b ON b.id = i.chat_id \
                 RETURNING id, chat_id, sender_id, seq, content, client_id, reply_to, \
                   created_at, edited_at, deleted_at",
            );
            Ok(())
        }
    }

    impl<'a> StoreBatch<'a> {
        /// The statement for the accepted messages of `batch` (the plan's bumps must
        /// count exactly those).
        pub(super) fn new<'b>(
            bumps: &[(i64, i64, NaiveDateTime)],
            accepted: impl Iterator<Item = &'b NewMessage<'a>>,
        ) -> Self
        where
            'a: 'b,
        {
            let mut statement = StoreBatch {
                bump_ids: bumps.iter().map(|b| b.0).collect(),
                bump_counts: bumps.iter().map(|b| b.1).collect(),
                bump_times: bumps.iter().map(|b| b.2).collect(),
                chat_ids: Vec::new(),
                sender_ids: Vec::new(),
                contents: Vec::new(),
                client_ids: Vec::new(),
                reply_tos: Vec::new(),
                created: Vec::new(),
            };
            for m in accepted {
                statement.chat_ids.push(m.chat_id);
                statement.sender_ids.push(m.sender_id);
                statement.contents.push(m.content);
                statement.client_ids.push(m.client_id);
                statement.reply_tos.push(m.reply_to);
                statement.created.push(m.created_at);
            }
            statement
        }
    }
}

/// A batch's statements on SQLite: in process, row by row, all inside **one**
/// blocking-pool hand-off (the synchronous diesel API), not one hand-off per statement.
mod sqlite_batch {
    use chrono::NaiveDateTime;
    use diesel::SqliteConnection;
    use diesel::prelude::*;

    use super::{BatchPlan, MessageRow, NewMessage, Slot, batch_keys};
    use crate::DbError;
    use crate::schema::{chats, messages};

    /// A message the blocking closure owns (it must be `'static`).
    pub(super) struct Owned {
        chat_id: i64,
        sender_id: i64,
        content: String,
        client_id: Option<String>,
        reply_to: Option<i64>,
        created_at: NaiveDateTime,
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
            }
        }
    }

    /// The whole fast path of a batch in one `BEGIN IMMEDIATE` transaction.
    pub(super) fn store(
        conn: &mut SqliteConnection,
        owned: &[Owned],
    ) -> Result<Vec<Slot>, DbError> {
        let batch: Vec<NewMessage<'_>> = owned.iter().map(Owned::as_new).collect();
        let (chat_ids, keyed) = batch_keys(&batch);
        conn.immediate_transaction(|conn| {
            let existing = if keyed.is_empty() {
                Vec::new()
            } else {
                messages::table
                    .filter(messages::chat_id.eq_any(&chat_ids))
                    .filter(messages::client_id.eq_any(&keyed))
                    .select((messages::chat_id, messages::sender_id, messages::client_id))
                    .load(conn)?
            };
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
            let mut stored = Vec::with_capacity(rows.len());
            for row in &rows {
                stored.push(
                    diesel::insert_into(messages::table)
                        .values(row)
                        .returning(MessageRow::as_returning())
                        .get_result(conn)?,
                );
            }
            Ok(Slot::fill(slots, stored))
        })
    }
}

/// Where one message of a batch ended up.
enum Slot {
    /// Its `client_id` was already used (or repeated within the batch).
    Duplicate,
    /// Its chat is gone.
    ChatGone,
    /// Stored.
    Stored(MessageRow),
}

impl Slot {
    /// Matches the stored rows to the batch's messages by `(chat, seq)`.
    fn fill(planned: Vec<Option<Option<(i64, i64)>>>, stored: Vec<MessageRow>) -> Vec<Slot> {
        let mut by_position: std::collections::HashMap<(i64, i64), MessageRow> = stored
            .into_iter()
            .map(|row| ((row.chat_id, row.seq), row))
            .collect();
        planned
            .into_iter()
            .map(|slot| match slot {
                None => Slot::Duplicate,
                Some(None) => Slot::ChatGone,
                Some(Some(position)) => by_position
                    .remove(&position)
                    .map_or(Slot::ChatGone, Slot::Stored),
            })
            .collect()
    }

    fn into_result(self) -> Result<Option<MessageRow>, DbError> {
        match self {
            Slot::Duplicate => Err(DbError::Conflict {
                constraint: "messages_client_id_uq".to_owned(),
            }),
            Slot::ChatGone => Ok(None),
            Slot::Stored(row) => Ok(Some(row)),
        }
    }
}

/// The batch's chats (sorted, distinct) and its `client_id`s.
fn batch_keys<'a>(batch: &[NewMessage<'a>]) -> (Vec<i64>, Vec<&'a str>) {
    let keyed: Vec<&str> = batch.iter().filter_map(|m| m.client_id).collect();
    let mut ids: Vec<i64> = batch.iter().map(|m| m.chat_id).collect();
    ids.sort_unstable();
    ids.dedup();
    (ids, keyed)
}

/// A batch planned before any write: which messages are new, and how many seqs each
/// chat needs.
struct BatchPlan {
    accepted: Vec<bool>,
    per_chat: std::collections::BTreeMap<i64, (i64, NaiveDateTime)>,
}

impl BatchPlan {
    /// `existing`: `(chat, sender, client_id)` already stored among the batch's keys (a
    /// superset; matched exactly here). A key repeated within the batch counts once.
    fn new(batch: &[NewMessage<'_>], existing: Vec<(i64, Option<i64>, Option<String>)>) -> Self {
        let mut taken: std::collections::HashSet<(i64, i64, String)> = existing
            .into_iter()
            .filter_map(|(chat, sender, key)| Some((chat, sender?, key?)))
            .collect();
        let mut accepted = vec![false; batch.len()];
        let mut per_chat = std::collections::BTreeMap::new();
        for (i, m) in batch.iter().enumerate() {
            if let Some(key) = m.client_id
                && !taken.insert((m.chat_id, m.sender_id, key.to_owned()))
            {
                continue;
            }
            accepted[i] = true;
            let entry = per_chat.entry(m.chat_id).or_insert((0, m.created_at));
            entry.0 += 1;
            entry.1 = entry.1.max(m.created_at);
        }
        BatchPlan { accepted, per_chat }
    }

    /// One `(chat, count, latest time)` per chat, in chat id order.
    /// The messages to store (not duplicates), in input order.
    fn accepted<'b, 'a>(
        &'b self,
        batch: &'b [NewMessage<'a>],
    ) -> impl Iterator<Item = &'b NewMessage<'a>> + 'b {
        batch
            .iter()
            .zip(&self.accepted)
            .filter_map(|(m, keep)| keep.then_some(m))
    }

    fn bumps(&self) -> Vec<(i64, i64, NaiveDateTime)> {
        self.per_chat
            .iter()
            .map(|(chat, (count, at))| (*chat, *count, *at))
            .collect()
    }

    /// Given each existing chat's new `last_seq`, numbers the accepted messages in input
    /// order per chat: the rows to insert, and per message `None` (duplicate),
    /// `Some(None)` (chat gone) or `Some(Some((chat, seq)))`.
    #[allow(clippy::type_complexity)]
    fn assign<'a>(
        &self,
        batch: &[NewMessage<'a>],
        bumped: Vec<(i64, i64)>,
    ) -> (Vec<MessageInsert<'a>>, Vec<Option<Option<(i64, i64)>>>) {
        let mut next_seq: std::collections::HashMap<i64, i64> = bumped
            .into_iter()
            .filter_map(|(chat, last)| {
                let (count, _) = self.per_chat.get(&chat)?;
                Some((chat, last - count + 1))
            })
            .collect();
        let mut rows = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let slot = match (self.accepted[i], next_seq.get_mut(&m.chat_id)) {
                // A key repeated within the batch, in a chat that was bumped for its first
                // use and turned out deleted: the chat is what is gone.
                (false, None) if self.per_chat.contains_key(&m.chat_id) => Some(None),
                (false, _) => None,
                (true, None) => Some(None),
                (true, Some(seq)) => {
                    rows.push(MessageInsert {
                        chat_id: m.chat_id,
                        sender_id: Some(m.sender_id),
                        seq: *seq,
                        content: m.content,
                        client_id: m.client_id,
                        reply_to: m.reply_to,
                        created_at: m.created_at,
                    });
                    *seq += 1;
                    Some(Some((m.chat_id, *seq - 1)))
                }
            };
            slots.push(slot);
        }
        (rows, slots)
    }
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
    /// Stores several messages in **one transaction** (group commit): one commit for
    /// everything queued while the previous batch was committing, and per batch only one
    /// look-up of `client_id`s, one seq bump per chat and one insert per message — on
    /// PostgreSQL one statement each for all chats and all messages of the batch.
    /// Duplicate `client_id`s (resends, also within the batch) and messages to chats
    /// deleted meanwhile are left out before seqs are assigned, so seqs stay gapless.
    /// Results are in input order: `Ok(Some(row))` stored, `Ok(None)` chat gone,
    /// `Err(Conflict)` duplicate `client_id`. If a duplicate races in from another
    /// instance after the look-up, the batch is retried one savepoint per message.
    pub async fn insert_batch(
        pool: &DbPool,
        batch: &[NewMessage<'_>],
    ) -> Result<Vec<Result<Option<MessageRow>, DbError>>, DbError> {
        match Self::insert_batch_fast(pool, batch).await {
            Err(DbError::Conflict { .. }) => Self::insert_batch_one_by_one(pool, batch).await,
            other => other,
        }
    }

    async fn insert_batch_fast(
        pool: &DbPool,
        batch: &[NewMessage<'_>],
    ) -> Result<Vec<Result<Option<MessageRow>, DbError>>, DbError> {
        let slots = match pool {
            DbPool::Postgres(pool) => {
                let mut guard = pool.get().await.map_err(DbError::pool)?;
                let conn: &mut crate::PgConn = &mut guard;
                let (chat_ids, keyed) = batch_keys(batch);
                // 1. client_ids already stored (a resend racing this look-up is caught
                //    by the unique index: the batch then goes message by message).
                let existing = if keyed.is_empty() {
                    Vec::new()
                } else {
                    messages::table
                        .filter(messages::chat_id.eq_any(&chat_ids))
                        .filter(messages::client_id.eq_any(&keyed))
                        .select((messages::chat_id, messages::sender_id, messages::client_id))
                        .load(conn)
                        .await?
                };
                let plan = BatchPlan::new(batch, existing);
                // 2. Seq bumps and inserts in one statement.
                let statement = pg_batch::StoreBatch::new(&plan.bumps(), plan.accepted(batch));
                let stored: Vec<MessageRow> = statement.load(conn).await?;
                // Each bumped chat's messages were all inserted, so its new last_seq is
                // its highest stored seq; the plan numbers the slots from it.
                let mut bumped: std::collections::BTreeMap<i64, i64> = Default::default();
                for row in &stored {
                    let last = bumped.entry(row.chat_id).or_insert(row.seq);
                    *last = (*last).max(row.seq);
                }
                let (_, slots) = plan.assign(batch, bumped.into_iter().collect());
                Slot::fill(slots, stored)
            }
            DbPool::Sqlite(pool) => {
                let mut guard = pool.get().await.map_err(DbError::pool)?;
                let owned: Vec<sqlite_batch::Owned> =
                    batch.iter().map(sqlite_batch::Owned::from_new).collect();
                // The closure's error type is diesel's; DbError travels inside it.
                let outcome = guard
                    .spawn_blocking(move |conn| Ok(sqlite_batch::store(conn, &owned)))
                    .await?;
                outcome?
            }
        };
        Ok(slots.into_iter().map(Slot::into_result).collect())
    }

    /// The slow path of [`MessageRow::insert_batch`]: one savepoint per message, so a
    /// duplicate fails alone (its seq bump rolled back with it).
    async fn insert_batch_one_by_one(
        pool: &DbPool,
        batch: &[NewMessage<'_>],
    ) -> Result<Vec<Result<Option<MessageRow>, DbError>>, DbError> {
        Ok(with_tx!(pool, conn => {
            let mut results = Vec::with_capacity(batch.len());
            for new in batch {
                let one = diesel_async::AsyncConnection::transaction(conn, async |conn| {
                    let seq: Option<i64> = diesel::update(chats::table.find(new.chat_id))
                        .set((chats::last_seq.eq(chats::last_seq + 1), chats::last_activity_at.eq(new.created_at)))
                        .returning(chats::last_seq)
                        .get_result(conn)
                        .await
                        .optional()?;
                    let Some(seq) = seq else { return Ok::<_, diesel::result::Error>(None) };
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
                })
                .await;
                results.push(one.map_err(DbError::from));
            }
            Ok::<_, diesel::result::Error>(results)
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

#[cfg(test)]
mod batch_plan_tests {
    use super::*;

    fn message(chat_id: i64, client_id: Option<&str>) -> NewMessage<'_> {
        NewMessage {
            chat_id,
            sender_id: 7,
            content: "hi",
            client_id,
            reply_to: None,
            created_at: NaiveDateTime::default(),
        }
    }

    #[test]
    fn seqs_are_consecutive_per_chat_and_duplicates_take_none() {
        let batch = [
            message(1, Some("a")),
            message(2, None),
            message(1, Some("a")),
            message(1, None),
            message(1, Some("b")),
        ];
        // "b" is already stored for this sender in chat 1.
        let plan = BatchPlan::new(&batch, vec![(1, Some(7), Some("b".to_owned()))]);
        assert_eq!(
            plan.bumps().iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
            vec![(1, 2), (2, 1)]
        );
        // Chat 1 now ends at 12 (two new seqs: 11, 12), chat 2 at 5.
        let (rows, slots) = plan.assign(&batch, vec![(1, 12), (2, 5)]);
        assert_eq!(
            rows.iter().map(|r| (r.chat_id, r.seq)).collect::<Vec<_>>(),
            vec![(1, 11), (2, 5), (1, 12)]
        );
        assert_eq!(
            slots,
            vec![
                Some(Some((1, 11))),
                Some(Some((2, 5))),
                None,
                Some(Some((1, 12))),
                None
            ]
        );
    }

    #[test]
    fn a_resend_alone_in_its_chat_is_a_duplicate() {
        let batch = [message(4, Some("k"))];
        let plan = BatchPlan::new(&batch, vec![(4, Some(7), Some("k".to_owned()))]);
        assert!(plan.bumps().is_empty());
        let (rows, slots) = plan.assign(&batch, Vec::new());
        assert!(rows.is_empty());
        assert_eq!(slots, vec![None]);
    }

    #[test]
    fn a_deleted_chat_answers_chat_gone_even_for_a_repeated_key() {
        let batch = [message(3, Some("k")), message(3, Some("k"))];
        let plan = BatchPlan::new(&batch, Vec::new());
        // Chat 3 has no row to bump: it was deleted.
        let (rows, slots) = plan.assign(&batch, Vec::new());
        assert!(rows.is_empty());
        assert_eq!(slots, vec![Some(None), Some(None)]);
    }
}

#[cfg(test)]
mod pg_batch_tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::query_builder::{QueryFragment, QueryId};

    fn message(chat_id: i64, content: &str) -> NewMessage<'_> {
        NewMessage {
            chat_id,
            sender_id: 7,
            content,
            client_id: None,
            reply_to: None,
            created_at: NaiveDateTime::default(),
        }
    }

    fn sql(statement: &pg_batch::StoreBatch<'_>) -> String {
        let text = diesel::debug_query::<Pg, _>(statement).to_string();
        text.split("-- binds").next().unwrap_or_default().to_owned()
    }

    /// What makes the batch statement cheap: PostgreSQL sees one text whatever the batch
    /// holds, and diesel is allowed to keep it prepared.
    #[test]
    fn the_batch_statement_is_one_cacheable_text_for_every_batch() -> QueryResult<()> {
        let one = [message(1, "a")];
        let many = [message(1, "a"), message(2, "b"), message(1, "c")];
        let at = NaiveDateTime::default();
        let small = pg_batch::StoreBatch::new(&[(1, 1, at)], one.iter());
        let large = pg_batch::StoreBatch::new(&[(1, 2, at), (2, 1, at)], many.iter());
        assert_eq!(sql(&small), sql(&large));
        assert!(sql(&small).contains("FOR UPDATE"));
        const { assert!(<pg_batch::StoreBatch<'_> as QueryId>::HAS_STATIC_QUERY_ID) };
        assert!(large.is_safe_to_cache_prepared(&Pg)?);
        assert_eq!(large.contents, ["a", "b", "c"], "input order kept");
        assert_eq!(large.bump_counts, [2, 1]);
        Ok(())
    }
}
