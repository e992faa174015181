//! The `sessions` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::models::UserRow;
use crate::schema::{sessions, users};
use crate::{DbError, DbPool, with_conn, with_tx};

/// A stored login session.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// Random id (`sid` in access tokens).
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Per-session secret mixed into refresh-token MACs.
    pub refresh_nonce: String,
    /// Generation of the current refresh token.
    pub refresh_gen: i64,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Last rotation.
    pub refreshed_at: NaiveDateTime,
    /// End of the refresh window.
    pub expires_at: NaiveDateTime,
    /// Set when revoked.
    pub revoked_at: Option<NaiveDateTime>,
}

/// A new session is a full row.
pub type NewSession = SessionRow;

impl SessionRow {
    /// Stores a new session.
    pub async fn insert(pool: &DbPool, new: &NewSession) -> Result<(), DbError> {
        with_conn!(pool, conn => {
            diesel::insert_into(sessions::table).values(new).execute(conn).await?;
        });
        Ok(())
    }

    /// Stores a new log-in session only if its user is active and their password hash is
    /// still `password_hash` — the one the caller verified the password against — and
    /// records the log-in as their `last_seen_at`. Returns the user as updated, or `None`
    /// (nothing stored) when the password changed or the account was deactivated since.
    ///
    /// The check is an `UPDATE` of the user row in the session's transaction, so it locks
    /// that row: a password change either commits first (PostgreSQL re-checks the
    /// condition against the new row once it may go on; SQLite has one writer at a time)
    /// and nothing is stored, or waits for this commit and then finds, and revokes, the
    /// new session with the others.
    pub async fn insert_if_credentials_unchanged(
        pool: &DbPool,
        new: &NewSession,
        password_hash: &str,
    ) -> Result<Option<UserRow>, DbError> {
        Ok(with_tx!(pool, conn => {
            let user = diesel::update(
                users::table
                    .find(new.user_id)
                    .filter(users::password_hash.eq(password_hash))
                    .filter(users::is_active.eq(true)),
            )
            .set(users::last_seen_at.eq(new.created_at))
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            if user.is_some() {
                diesel::insert_into(sessions::table).values(new).execute(conn).await?;
            }
            Ok::<_, diesel::result::Error>(user)
        })?)
    }

    /// The session with its user, whatever their state.
    pub async fn find_with_user(
        pool: &DbPool,
        id: &str,
    ) -> Result<Option<(SessionRow, UserRow)>, DbError> {
        with_conn!(pool, conn => {
            Ok(sessions::table
                .inner_join(users::table)
                .filter(sessions::id.eq(id))
                .select((SessionRow::as_select(), UserRow::as_select()))
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Moves the session from refresh generation `from_gen` to the next, if — and only
    /// if — `from_gen` is still current and the session is live: of two concurrent
    /// refreshes with one token, exactly one wins.
    pub async fn rotate(
        pool: &DbPool,
        id: &str,
        from_gen: i64,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let updated = with_conn!(pool, conn => {
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id))
                    .filter(sessions::refresh_gen.eq(from_gen))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now)),
            )
            .set((sessions::refresh_gen.eq(from_gen + 1), sessions::refreshed_at.eq(now)))
            .execute(conn)
            .await?
        });
        Ok(updated == 1)
    }

    /// Ids of a user's live sessions.
    pub async fn live_ids_for_user(
        pool: &DbPool,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<Vec<String>, DbError> {
        with_conn!(pool, conn => {
            Ok(sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .select(sessions::id)
                .load(conn)
                .await?)
        })
    }

    /// Revokes one session (idempotent).
    pub async fn revoke(pool: &DbPool, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(pool, conn => {
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set(sessions::revoked_at.eq(now))
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Revokes every live session of a user except `keep`; returns their ids so
    /// caches can be invalidated and sockets closed.
    pub async fn revoke_all_for_user(
        pool: &DbPool,
        user_id: i64,
        keep: Option<&str>,
        now: NaiveDateTime,
    ) -> Result<Vec<String>, DbError> {
        let keep = keep.unwrap_or_default().to_owned();
        with_conn!(pool, conn => {
            Ok(diesel::update(
                sessions::table
                    .filter(sessions::user_id.eq(user_id))
                    .filter(sessions::id.ne(&keep))
                    .filter(sessions::revoked_at.is_null()),
            )
            .set(sessions::revoked_at.eq(now))
            .returning(sessions::id)
            .get_results(conn)
            .await?)
        })
    }
}
