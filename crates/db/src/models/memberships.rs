//! The `memberships` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::models::UserRow;
use crate::schema::{chats, memberships, message_mentions, user_blocks, users};
use crate::{DbError, DbPool, load_rows, with_conn, with_tx};

/// A user's place in a chat.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships)]
pub struct MembershipRow {
    /// The chat.
    pub chat_id: i64,
    /// The member.
    pub user_id: i64,
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// Join time.
    pub joined_at: NaiveDateTime,
    /// Highest seq read.
    pub last_read_seq: i64,
    /// Muted.
    pub muted: bool,
}

/// A member with their account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The membership.
    pub membership: MembershipRow,
    /// The account.
    pub user: UserRow,
}

impl MembershipRow {
    /// The membership of `user_id` in `chat_id`.
    pub async fn find(pool: &DbPool, chat_id: i64, user_id: i64) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .find((chat_id, user_id))
                .select(Self::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Adds a member and counts them, in one transaction. Already a member is a
    /// [`DbError::Conflict`].
    pub async fn add(
        pool: &DbPool,
        chat_id: i64,
        user_id: i64,
        role: &str,
        now: NaiveDateTime,
    ) -> Result<Self, DbError> {
        let row = MembershipRow {
            chat_id,
            user_id,
            role: role.to_owned(),
            joined_at: now,
            last_read_seq: 0,
            muted: false,
        };
        Ok(with_tx!(pool, conn => {
            diesel::insert_into(memberships::table).values(&row).execute(conn).await?;
            diesel::update(chats::table.find(chat_id))
                .set(chats::member_count.eq(chats::member_count + 1))
                .execute(conn)
                .await?;
            Ok::<_, diesel::result::Error>(row.clone())
        })?)
    }

    /// Removes a member (never the owner: ownership may have moved to them since the
    /// caller checked) and uncounts them; false if there was no such non-owner member.
    pub async fn remove(pool: &DbPool, chat_id: i64, user_id: i64) -> Result<bool, DbError> {
        Ok(with_tx!(pool, conn => {
            let deleted = diesel::delete(memberships::table.find((chat_id, user_id)).filter(memberships::role.ne("owner")))
                .execute(conn)
                .await?;
            if deleted == 1 {
                diesel::update(chats::table.find(chat_id))
                    .set(chats::member_count.eq(chats::member_count - 1))
                    .execute(conn)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(deleted == 1)
        })?)
    }

    /// Sets a non-owner member's role; `None` if there is no such member (or they
    /// became the owner meanwhile).
    pub async fn set_role(
        pool: &DbPool,
        chat_id: i64,
        user_id: i64,
        role: &str,
    ) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(memberships::table.find((chat_id, user_id)).filter(memberships::role.ne("owner")))
                .set(memberships::role.eq(role))
                .returning(Self::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Hands ownership from `from` to `to` in one transaction: `to` becomes owner and
    /// `from` an admin, only if `from` is still the owner and `to` still a member.
    pub async fn transfer_ownership(
        pool: &DbPool,
        chat_id: i64,
        from: i64,
        to: i64,
    ) -> Result<bool, DbError> {
        Ok(with_tx!(pool, conn => {
            let demoted = diesel::update(memberships::table.find((chat_id, from)).filter(memberships::role.eq("owner")))
                .set(memberships::role.eq("admin"))
                .execute(conn)
                .await?;
            if demoted != 1 {
                return Ok(false);
            }
            let promoted = diesel::update(memberships::table.find((chat_id, to)))
                .set(memberships::role.eq("owner"))
                .execute(conn)
                .await?;
            if promoted != 1 {
                // Roll back the demotion: the target left meanwhile.
                return Err(diesel::result::Error::RollbackTransaction);
            }
            Ok::<_, diesel::result::Error>(true)
        })
        .or_else(|e| if matches!(e, diesel::result::Error::RollbackTransaction) { Ok(false) } else { Err(e) })?)
    }

    /// Mutes or unmutes the chat for a member; the row, or `None` if not a member.
    pub async fn set_muted(
        pool: &DbPool,
        chat_id: i64,
        user_id: i64,
        muted: bool,
    ) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(memberships::table.find((chat_id, user_id)))
                .set(memberships::muted.eq(muted))
                .returning(Self::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Moves the read marker forward to `seq`; never backwards. Returns the row when it moved.
    pub async fn mark_read(
        pool: &DbPool,
        chat_id: i64,
        user_id: i64,
        seq: i64,
    ) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(memberships::table.find((chat_id, user_id)).filter(memberships::last_read_seq.lt(seq)))
                .set(memberships::last_read_seq.eq(seq))
                .returning(Self::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Members of a chat with their accounts, by join time then user id, after the
    /// cursor user id.
    pub async fn members(
        pool: &DbPool,
        chat_id: i64,
        after_user: Option<i64>,
        limit: i64,
    ) -> Result<Vec<MemberEntry>, DbError> {
        let rows: Vec<(MembershipRow, UserRow)> = with_conn!(pool, conn => {
            let mut select = memberships::table
                .inner_join(users::table)
                .filter(memberships::chat_id.eq(chat_id))
                .select((MembershipRow::as_select(), UserRow::as_select()))
                .order(memberships::user_id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = after_user {
                select = select.filter(memberships::user_id.gt(after));
            }
            select.load(conn).await?
        });
        Ok(rows
            .into_iter()
            .map(|(membership, user)| MemberEntry { membership, user })
            .collect())
    }

    /// Members of several chats at once (the chat list's member previews).
    pub async fn members_of(pool: &DbPool, chat_ids: &[i64]) -> Result<Vec<MemberEntry>, DbError> {
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(MembershipRow, UserRow)> = with_conn!(pool, conn => {
            memberships::table
                .inner_join(users::table)
                .filter(memberships::chat_id.eq_any(chat_ids))
                .select((MembershipRow::as_select(), UserRow::as_select()))
                .order((memberships::chat_id.asc(), memberships::user_id.asc()))
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(membership, user)| MemberEntry { membership, user })
            .collect())
    }

    /// The owner's user id of a group.
    pub async fn owner_of(pool: &DbPool, chat_id: i64) -> Result<Option<i64>, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .filter(memberships::chat_id.eq(chat_id))
                .filter(memberships::role.eq("owner"))
                .select(memberships::user_id)
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Every chat `user_id` belongs to, with the chat's `last_seq`.
    pub async fn chat_positions_of(
        pool: &DbPool,
        user_id: i64,
    ) -> Result<Vec<(i64, i64)>, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .inner_join(chats::table)
                .filter(memberships::user_id.eq(user_id))
                .select((chats::id, chats::last_seq))
                .load(conn)
                .await?)
        })
    }

    /// The ids of every chat `user_id` belongs to.
    pub async fn chat_ids_of(pool: &DbPool, user_id: i64) -> Result<Vec<i64>, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .filter(memberships::user_id.eq(user_id))
                .select(memberships::chat_id)
                .load(conn)
                .await?)
        })
    }

    /// How many chats `user_id` belongs to.
    pub async fn count_of(pool: &DbPool, user_id: i64) -> Result<i64, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .filter(memberships::user_id.eq(user_id))
                .count()
                .get_result(conn)
                .await?)
        })
    }

    /// Every member's user id (event fan-out, notifications).
    pub async fn member_ids(pool: &DbPool, chat_id: i64) -> Result<Vec<i64>, DbError> {
        with_conn!(pool, conn => {
            Ok(memberships::table
                .filter(memberships::chat_id.eq(chat_id))
                .select(memberships::user_id)
                .load(conn)
                .await?)
        })
    }

    /// The members of `chat_id` other than `sender` whose username keys are among
    /// `keys` (a message's `@mentions`), each with whether they should be told: not
    /// muting the chat, not blocking `sender`. Anyone else named is not looked at.
    pub async fn mentioned(
        pool: &DbPool,
        chat_id: i64,
        sender: i64,
        keys: Vec<String>,
    ) -> Result<Vec<(i64, bool)>, DbError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let members: Vec<(i64, bool)> = load_rows!(
            pool,
            memberships::table
                .inner_join(users::table)
                .filter(memberships::chat_id.eq(chat_id))
                .filter(users::id.ne(sender))
                .filter(users::username_key.eq_any(keys))
                .order(users::id)
                .select((users::id, memberships::muted))
        );
        let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
        let blocking: Vec<i64> = if ids.is_empty() {
            Vec::new()
        } else {
            load_rows!(
                pool,
                user_blocks::table
                    .filter(user_blocks::blocker_id.eq_any(ids))
                    .filter(user_blocks::blocked_id.eq(sender))
                    .select(user_blocks::blocker_id)
            )
        };
        Ok(members
            .into_iter()
            .map(|(id, muted)| (id, !muted && !blocking.contains(&id)))
            .collect())
    }

    /// Per chat of `user_id` (only `chat`, when given), how many messages after their
    /// read marker mention them (chats with none are left out).
    pub async fn unread_mentions(
        pool: &DbPool,
        user_id: i64,
        chat: Option<i64>,
    ) -> Result<Vec<(i64, i64)>, DbError> {
        let rows: Vec<(i64, i64)> = load_rows!(pool, {
            let query = message_mentions::table
                .inner_join(
                    memberships::table.on(memberships::chat_id
                        .eq(message_mentions::chat_id)
                        .and(memberships::user_id.eq(message_mentions::user_id))),
                )
                .filter(message_mentions::user_id.eq(user_id))
                .filter(message_mentions::seq.gt(memberships::last_read_seq))
                .group_by(message_mentions::chat_id)
                .select((message_mentions::chat_id, diesel::dsl::count_star()))
                .into_boxed();
            match chat {
                Some(chat) => query.filter(message_mentions::chat_id.eq(chat)),
                None => query,
            }
        });
        Ok(rows)
    }
}
