//! Storing a group-commit batch: one statement (PostgreSQL) or one hand-off (SQLite)
//! for the whole batch, and the one-savepoint-per-message slow path.

use super::*;

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
                let keys = batch_keys(batch);
                // 1. client_ids already stored, probed key by key in one statement (a
                //    resend racing this look-up is caught by the unique index: the batch
                //    then goes message by message).
                let existing = if keys.is_empty() {
                    Vec::new()
                } else {
                    pg_batch::ExistingKeys::new(&keys).load(conn).await?
                };
                let plan = BatchPlan::new(batch, existing);
                // 2. Seq bumps and inserts in one statement.
                let stored = pg_batch::store(conn, &plan.bumps(), plan.accepted(batch)).await?;
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
        let sqlite = matches!(pool, DbPool::Sqlite(_));
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
                            mentions: new.mentions,
                            attachments: new.attachments.map(|a| a.1),
                        })
                        .returning(MessageRow::as_returning())
                        .get_result(conn)
                        .await
                        .map(Some)
                })
                .await;
                results.push(one.map_err(DbError::from));
            }
            let stored: Vec<MessageRow> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().and_then(Option::clone))
                .collect();
            for (message, ids) in attachment_links(batch, &stored) {
                diesel::update(
                    attachments::table
                        .filter(attachments::id.eq_any(ids))
                        .filter(attachments::message_id.is_null()),
                )
                .set(attachments::message_id.eq(message))
                .execute(conn)
                .await?;
            }
            // One row at a time: diesel-async has no multi-row insert for SQLite, and
            // this path is rare.
            for mention in mention_rows(&stored) {
                diesel::insert_into(message_mentions::table)
                    .values(&mention)
                    .execute(conn)
                    .await?;
            }
            for message in &stored {
                conn.index_text(message.id, &message.content).await?;
            }
            if sqlite {
                // What the fast path's `index_for_search` does.
                let ids: Vec<String> = results
                    .iter()
                    .filter_map(|r| r.as_ref().ok().and_then(Option::as_ref))
                    .map(|m| m.id.to_string())
                    .collect();
                if !ids.is_empty() {
                    diesel::sql_query(format!(
                        "INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages WHERE id IN ({})",
                        ids.join(",")
                    ))
                    .execute(conn)
                    .await?;
                }
            }
            Ok::<_, diesel::result::Error>(results)
        })?)
    }
}
