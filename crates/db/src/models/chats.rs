//! The `chats` table, and the chat list of a user.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::models::lower;
use crate::models::users::escape_like;
use crate::models::{MembershipRow, MessageRow};
use crate::schema::{chats, memberships, messages, users};
use crate::{DbError, DbPool, with_conn, with_tx};

/// A stored chat.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = chats)]
pub struct ChatRow {
    /// Primary key.
    pub id: i64,
    /// `direct` or `group`.
    pub kind: String,
    /// Group name.
    pub name: Option<String>,
    /// Group description.
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: String,
    /// `low:high` for direct chats.
    pub direct_key: Option<String>,
    /// Creator.
    pub created_by: Option<i64>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Highest message seq.
    pub last_seq: i64,
    /// Creation or last message.
    pub last_activity_at: NaiveDateTime,
    /// Members.
    pub member_count: i32,
}

/// A new chat.
#[derive(Debug, Insertable)]
#[diesel(table_name = chats)]
pub struct NewChat<'a> {
    /// `direct` or `group`.
    pub kind: &'a str,
    /// Group name.
    pub name: Option<&'a str>,
    /// Group description.
    pub description: Option<&'a str>,
    /// `public` or `private`.
    pub visibility: &'a str,
    /// `low:high` for direct chats.
    pub direct_key: Option<&'a str>,
    /// Creator.
    pub created_by: Option<i64>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub last_activity_at: NaiveDateTime,
    /// Initial members.
    pub member_count: i32,
}

/// A change to a group's settings; `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = chats)]
pub struct ChatChanges<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<&'a str>>,
    /// New visibility.
    pub visibility: Option<&'a str>,
}

/// One line of a user's chat list: the chat, the user's membership, and the last
/// message with its sender's username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatListEntry {
    /// The chat.
    pub chat: ChatRow,
    /// The user's membership.
    pub membership: MembershipRow,
    /// The newest message, if any.
    pub last_message: Option<MessageRow>,
    /// Its sender's username.
    pub last_sender: Option<String>,
}

impl ChatRow {
    /// Creates a chat with its first members (`(user, role)`), in one transaction.
    pub async fn create(
        pool: &DbPool,
        new: NewChat<'_>,
        members: &[(i64, &str)],
    ) -> Result<(ChatRow, Vec<MembershipRow>), DbError> {
        let created_at = new.created_at;
        Ok(with_tx!(pool, conn => {
            let chat: ChatRow = diesel::insert_into(chats::table)
                .values(&new)
                .returning(ChatRow::as_returning())
                .get_result(conn)
                .await?;
            let rows: Vec<MembershipRow> = members
                .iter()
                .map(|(user_id, role)| MembershipRow {
                    chat_id: chat.id,
                    user_id: *user_id,
                    role: (*role).to_owned(),
                    joined_at: created_at,
                    last_read_seq: 0,
                    muted: false,
                })
                .collect();
            for row in &rows {
                diesel::insert_into(memberships::table).values(row).execute(conn).await?;
            }
            Ok::<_, diesel::result::Error>((chat, rows))
        })?)
    }

    /// The chat with this id.
    pub async fn find(pool: &DbPool, id: i64) -> Result<Option<ChatRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(chats::table.find(id).select(ChatRow::as_select()).first(conn).await.optional()?)
        })
    }

    /// The direct chat of a user pair (see `chat_domain::chat::direct_key`).
    pub async fn find_direct(pool: &DbPool, key: &str) -> Result<Option<ChatRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(chats::table
                .filter(chats::direct_key.eq(key))
                .select(ChatRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// The ids of the direct chats with these pair keys (those that exist).
    pub async fn direct_ids(pool: &DbPool, keys: Vec<String>) -> Result<Vec<i64>, DbError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        with_conn!(pool, conn => {
            Ok(chats::table
                .filter(chats::direct_key.eq_any(&keys))
                .select(chats::id)
                .load(conn)
                .await?)
        })
    }

    /// Applies `changes`; `None` when the chat does not exist.
    pub async fn update(
        pool: &DbPool,
        id: i64,
        changes: ChatChanges<'_>,
    ) -> Result<Option<ChatRow>, DbError> {
        if changes.name.is_none() && changes.description.is_none() && changes.visibility.is_none() {
            return Self::find(pool, id).await;
        }
        with_conn!(pool, conn => {
            Ok(diesel::update(chats::table.find(id))
                .set(&changes)
                .returning(ChatRow::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Deletes the chat with its memberships and messages; false if it was gone. (On
    /// PostgreSQL the messages go by a trigger on `chats`, not a foreign key: see the
    /// migration `2026-12-09-000002_messages_without_row_checks`.)
    pub async fn delete(pool: &DbPool, id: i64) -> Result<bool, DbError> {
        let deleted = with_conn!(pool, conn => {
            diesel::delete(chats::table.find(id)).execute(conn).await?
        });
        Ok(deleted == 1)
    }

    /// Groups: public ones whose name contains `query`, or (`public_only = false`,
    /// for site admins) every chat; by id, after the cursor id.
    pub async fn list(
        pool: &DbPool,
        public_only: bool,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ChatRow>, DbError> {
        let pattern = query.map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        with_conn!(pool, conn => {
            let mut select = chats::table.select(ChatRow::as_select()).order(chats::id.asc()).limit(limit).into_boxed();
            if public_only {
                select = select.filter(chats::kind.eq("group")).filter(chats::visibility.eq("public"));
            }
            if let Some(pattern) = &pattern {
                select = select.filter(lower(chats::name.assume_not_null()).like(pattern.clone()).escape('\\'));
            }
            if let Some(after) = after_id {
                select = select.filter(chats::id.gt(after));
            }
            Ok(select.load(conn).await?)
        })
    }

    /// A user's chats, most recent activity first, each with the user's membership
    /// and the last message — one query, whatever the number of chats. `after` is
    /// the `(last_activity_at, id)` of the previous page's last chat.
    pub async fn list_for_user(
        pool: &DbPool,
        user_id: i64,
        after: Option<(NaiveDateTime, i64)>,
        limit: i64,
    ) -> Result<Vec<ChatListEntry>, DbError> {
        let rows: Vec<(ChatRow, MembershipRow, Option<MessageRow>, Option<String>)> = with_conn!(pool, conn => {
            let mut select = memberships::table
                .inner_join(chats::table)
                .left_join(messages::table.on(messages::chat_id.eq(chats::id).and(messages::seq.eq(chats::last_seq))))
                .left_join(users::table.on(messages::sender_id.eq(users::id.nullable())))
                .filter(memberships::user_id.eq(user_id))
                .select((
                    ChatRow::as_select(),
                    MembershipRow::as_select(),
                    Option::<MessageRow>::as_select(),
                    users::username.nullable(),
                ))
                .order((chats::last_activity_at.desc(), chats::id.desc()))
                .limit(limit)
                .into_boxed();
            if let Some((at, id)) = after {
                select = select.filter(chats::last_activity_at.lt(at).or(chats::last_activity_at.eq(at).and(chats::id.lt(id))));
            }
            select.load(conn).await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(chat, membership, last_message, last_sender)| ChatListEntry {
                    chat,
                    membership,
                    last_message,
                    last_sender,
                },
            )
            .collect())
    }
}
