//! The `message_reactions` table: one row per (message, member, emoji).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;

use crate::schema::message_reactions;
use crate::{DbError, DbPool, load_rows, with_tx};

/// What adding or removing a reaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionOutcome {
    /// No such message in the chat.
    NoMessage,
    /// The message is deleted: it takes no reactions.
    MessageDeleted,
    /// Adding a new emoji would pass the limit of distinct emoji on the message.
    TooMany,
    /// Done (or already so): how many members now react with the emoji, and whether
    /// this call changed anything.
    Done {
        /// Members reacting with this emoji now.
        count: i64,
        /// `false` when it was already so (idempotent calls).
        changed: bool,
    },
}

/// One member's reaction, as history pages gather them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionRow {
    /// The message.
    pub message_id: i64,
    /// The emoji.
    pub emoji: String,
    /// Who reacted.
    pub user_id: i64,
}

#[derive(QueryableByName)]
struct Live {
    #[diesel(sql_type = Bool)]
    live: bool,
}

#[derive(Insertable)]
#[diesel(table_name = message_reactions)]
struct NewReaction<'a> {
    message_id: i64,
    user_id: i64,
    emoji: &'a str,
    created_at: NaiveDateTime,
}

/// Whether message `id` of `chat_id` exists and is not deleted, locking its row on
/// PostgreSQL until the transaction ends (SQLite's write transaction already holds the
/// only write lock): concurrent reactions to one message are counted one after another.
macro_rules! lock_message {
    ($conn:ident, $postgres:expr, $chat_id:expr, $id:expr) => {{
        // Both ids are integers: nothing a client wrote reaches the text.
        let sql = format!(
            "SELECT deleted_at IS NULL AS live FROM messages WHERE id = {} AND chat_id = {}{}",
            $id,
            $chat_id,
            if $postgres { " FOR UPDATE" } else { "" }
        );
        diesel::sql_query(sql)
            .get_result::<Live>($conn)
            .await
            .optional()?
            .map(|row| row.live)
    }};
}

/// Members reacting to `$message_id` with `$emoji`.
macro_rules! count_of {
    ($conn:ident, $message_id:expr, $emoji:expr) => {
        message_reactions::table
            .filter(message_reactions::message_id.eq($message_id))
            .filter(message_reactions::emoji.eq($emoji))
            .count()
            .get_result::<i64>($conn)
            .await?
    };
}

impl ReactionRow {
    /// `user` reacts to message `message_id` of `chat_id` with `emoji`; at most
    /// `max_distinct` different emoji per message.
    pub async fn add(
        pool: &DbPool,
        (chat_id, message_id): (i64, i64),
        user: i64,
        emoji: &str,
        max_distinct: usize,
        now: NaiveDateTime,
    ) -> Result<ReactionOutcome, DbError> {
        let postgres = matches!(pool, DbPool::Postgres(_));
        with_tx!(pool, conn => {
            match lock_message!(conn, postgres, chat_id, message_id) {
                None => return Ok(ReactionOutcome::NoMessage),
                Some(false) => return Ok(ReactionOutcome::MessageDeleted),
                Some(true) => {}
            }
            let present: Vec<String> = message_reactions::table
                .filter(message_reactions::message_id.eq(message_id))
                .select(message_reactions::emoji)
                .distinct()
                .load(conn)
                .await?;
            if !present.iter().any(|e| e == emoji) && present.len() >= max_distinct {
                return Ok(ReactionOutcome::TooMany);
            }
            let inserted = diesel::insert_into(message_reactions::table)
                .values(NewReaction { message_id, user_id: user, emoji, created_at: now })
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            let count = count_of!(conn, message_id, emoji);
            Ok::<_, DbError>(ReactionOutcome::Done { count, changed: inserted == 1 })
        })
    }

    /// `user` takes back their `emoji` reaction to message `message_id` of `chat_id`.
    pub async fn remove(
        pool: &DbPool,
        (chat_id, message_id): (i64, i64),
        user: i64,
        emoji: &str,
    ) -> Result<ReactionOutcome, DbError> {
        let postgres = matches!(pool, DbPool::Postgres(_));
        with_tx!(pool, conn => {
            if lock_message!(conn, postgres, chat_id, message_id).is_none() {
                return Ok(ReactionOutcome::NoMessage);
            }
            let deleted = diesel::delete(message_reactions::table.find((message_id, user, emoji)))
                .execute(conn)
                .await?;
            let count = count_of!(conn, message_id, emoji);
            Ok::<_, DbError>(ReactionOutcome::Done { count, changed: deleted == 1 })
        })
    }

    /// Every reaction to `message_ids`, each message's in the order they were made.
    pub async fn of_messages(pool: &DbPool, message_ids: Vec<i64>) -> Result<Vec<Self>, DbError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, i64)> = load_rows!(
            pool,
            message_reactions::table
                .filter(message_reactions::message_id.eq_any(message_ids))
                .order((
                    message_reactions::message_id,
                    message_reactions::created_at,
                    message_reactions::user_id,
                ))
                .select((
                    message_reactions::message_id,
                    message_reactions::emoji,
                    message_reactions::user_id,
                ))
        );
        Ok(rows
            .into_iter()
            .map(|(message_id, emoji, user_id)| ReactionRow {
                message_id,
                emoji,
                user_id,
            })
            .collect())
    }
}
