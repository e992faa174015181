//! The `user_blocks` table: one row per (blocker, blocked) pair.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::user_blocks;
use crate::{DbError, DbPool, with_conn};

/// A block.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_blocks)]
pub struct BlockRow {
    /// Who blocked.
    pub blocker_id: i64,
    /// Who is blocked.
    pub blocked_id: i64,
    /// Since.
    pub created_at: NaiveDateTime,
}

impl BlockRow {
    /// Records that `blocker` blocks `blocked`; `false` when it already did.
    pub async fn insert(
        pool: &DbPool,
        blocker: i64,
        blocked: i64,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let row = BlockRow {
            blocker_id: blocker,
            blocked_id: blocked,
            created_at: now,
        };
        let inserted = with_conn!(pool, conn => {
            diesel::insert_into(user_blocks::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?
        });
        Ok(inserted == 1)
    }

    /// Lifts the block; `false` when there was none.
    pub async fn delete(pool: &DbPool, blocker: i64, blocked: i64) -> Result<bool, DbError> {
        let deleted = with_conn!(pool, conn => {
            diesel::delete(user_blocks::table.find((blocker, blocked)))
                .execute(conn)
                .await?
        });
        Ok(deleted == 1)
    }

    /// Whether either of the two users blocks the other.
    pub async fn between(pool: &DbPool, a: i64, b: i64) -> Result<bool, DbError> {
        let found: i64 = with_conn!(pool, conn => {
            user_blocks::table
                .filter(
                    (user_blocks::blocker_id.eq(a).and(user_blocks::blocked_id.eq(b)))
                        .or(user_blocks::blocker_id.eq(b).and(user_blocks::blocked_id.eq(a))),
                )
                .count()
                .get_result(conn)
                .await?
        });
        Ok(found > 0)
    }

    /// Whether `blocker` blocks `blocked`.
    pub async fn exists(pool: &DbPool, blocker: i64, blocked: i64) -> Result<bool, DbError> {
        let found: i64 = with_conn!(pool, conn => {
            user_blocks::table
                .find((blocker, blocked))
                .count()
                .get_result(conn)
                .await?
        });
        Ok(found > 0)
    }

    /// The users on the other side of a block with `user`, either way (usually none).
    pub async fn partners_of(pool: &DbPool, user: i64) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64, i64)> = with_conn!(pool, conn => {
            user_blocks::table
                .filter(user_blocks::blocker_id.eq(user).or(user_blocks::blocked_id.eq(user)))
                .select((user_blocks::blocker_id, user_blocks::blocked_id))
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(blocker, blocked)| if blocker == user { blocked } else { blocker })
            .collect())
    }

    /// The users `blocker` blocks, most recent first.
    pub async fn of_blocker(pool: &DbPool, blocker: i64, limit: i64) -> Result<Vec<Self>, DbError> {
        with_conn!(pool, conn => {
            Ok(user_blocks::table
                .filter(user_blocks::blocker_id.eq(blocker))
                .order((user_blocks::created_at.desc(), user_blocks::blocked_id.desc()))
                .limit(limit)
                .select(Self::as_select())
                .load(conn)
                .await?)
        })
    }
}
