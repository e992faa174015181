//! The `friendships` table: one row per unordered pair.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::friendships;
use crate::{DbError, DbPool, with_conn};

/// A friend request or friendship.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = friendships)]
pub struct FriendshipRow {
    /// Request id.
    pub id: i64,
    /// Smaller user id.
    pub user_low: i64,
    /// Larger user id.
    pub user_high: i64,
    /// Who asked.
    pub requester_id: i64,
    /// `pending`, `accepted`, `declined`.
    pub status: String,
    /// First request.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = friendships)]
struct NewFriendship<'a> {
    user_low: i64,
    user_high: i64,
    requester_id: i64,
    status: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn ordered(a: i64, b: i64) -> (i64, i64) {
    if a < b { (a, b) } else { (b, a) }
}

impl FriendshipRow {
    /// The other user of the pair.
    pub fn other(&self, user_id: i64) -> i64 {
        if self.user_low == user_id {
            self.user_high
        } else {
            self.user_low
        }
    }

    /// The relation between two users, if any.
    pub async fn find_pair(pool: &DbPool, a: i64, b: i64) -> Result<Option<Self>, DbError> {
        let (low, high) = ordered(a, b);
        with_conn!(pool, conn => {
            Ok(friendships::table
                .filter(friendships::user_low.eq(low).and(friendships::user_high.eq(high)))
                .select(Self::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// A relation by id.
    pub async fn find(pool: &DbPool, id: i64) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(friendships::table.find(id).select(Self::as_select()).first(conn).await.optional()?)
        })
    }

    /// A new pending request; a relation for the pair already existing is a conflict.
    pub async fn insert_pending(
        pool: &DbPool,
        from: i64,
        to: i64,
        now: NaiveDateTime,
    ) -> Result<Self, DbError> {
        let (user_low, user_high) = ordered(from, to);
        let new = NewFriendship {
            user_low,
            user_high,
            requester_id: from,
            status: "pending",
            created_at: now,
            updated_at: now,
        };
        with_conn!(pool, conn => {
            Ok(diesel::insert_into(friendships::table)
                .values(&new)
                .returning(Self::as_returning())
                .get_result(conn)
                .await?)
        })
    }

    /// Moves the relation from `from_status` to `to_status` (and sets the requester)
    /// only if it is still in `from_status`: of two racing transitions one wins.
    pub async fn transition(
        pool: &DbPool,
        id: i64,
        from_status: &str,
        to_status: &str,
        requester_id: i64,
        now: NaiveDateTime,
    ) -> Result<Option<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(friendships::table.find(id).filter(friendships::status.eq(from_status)))
                .set((
                    friendships::status.eq(to_status),
                    friendships::requester_id.eq(requester_id),
                    friendships::updated_at.eq(now),
                ))
                .returning(Self::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }

    /// Deletes the accepted friendship of a pair; false if they were not friends.
    pub async fn delete_friendship(pool: &DbPool, a: i64, b: i64) -> Result<bool, DbError> {
        Self::delete_in_status(pool, a, b, &["accepted"]).await
    }

    /// Removes the pair's pending request or friendship; `true` when there was one. A
    /// declined request stays, so its cooldown still holds.
    pub async fn delete_pair(pool: &DbPool, a: i64, b: i64) -> Result<bool, DbError> {
        Self::delete_in_status(pool, a, b, &["pending", "accepted"]).await
    }

    /// Deletes the pair's relation if it is in one of `statuses`.
    async fn delete_in_status(
        pool: &DbPool,
        a: i64,
        b: i64,
        statuses: &[&str],
    ) -> Result<bool, DbError> {
        let (low, high) = ordered(a, b);
        let deleted = with_conn!(pool, conn => {
            diesel::delete(
                friendships::table
                    .filter(friendships::user_low.eq(low))
                    .filter(friendships::user_high.eq(high))
                    .filter(friendships::status.eq_any(statuses)),
            )
            .execute(conn)
            .await?
        });
        Ok(deleted == 1)
    }

    /// Relations of `user_id` in `status`, newest first.
    pub async fn of_user(
        pool: &DbPool,
        user_id: i64,
        status: &str,
        limit: i64,
    ) -> Result<Vec<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(friendships::table
                .filter(friendships::user_low.eq(user_id).or(friendships::user_high.eq(user_id)))
                .filter(friendships::status.eq(status))
                .order(friendships::updated_at.desc())
                .limit(limit)
                .select(Self::as_select())
                .load(conn)
                .await?)
        })
    }
}
