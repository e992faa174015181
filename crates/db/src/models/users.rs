//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::models::lower;
use crate::schema::users;
use crate::{DbError, DbPool, with_conn};

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// Primary key.
    pub id: i64,
    /// Name as chosen.
    pub username: String,
    /// Lower-cased name.
    pub username_key: String,
    /// Lower-cased e-mail.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// Site administrator.
    pub is_admin: bool,
    /// May log in.
    pub is_active: bool,
    /// Sign-up time.
    pub created_at: NaiveDateTime,
    /// Last seen.
    pub last_seen_at: Option<NaiveDateTime>,
}

/// A new account.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Name as chosen.
    pub username: &'a str,
    /// Lower-cased name.
    pub username_key: &'a str,
    /// Lower-cased e-mail.
    pub email: &'a str,
    /// Name shown to others.
    pub display_name: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// Site administrator.
    pub is_admin: bool,
    /// Sign-up time.
    pub created_at: NaiveDateTime,
}

/// A partial update; `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    /// New display name.
    pub display_name: Option<&'a str>,
    /// New password hash.
    pub password_hash: Option<&'a str>,
    /// Grant or withdraw site administration.
    pub is_admin: Option<bool>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

impl UserRow {
    /// Inserts an account; a taken username or e-mail is a [`DbError::Conflict`]
    /// naming `users_username_key_uq` / `users_email_uq` (PostgreSQL) or
    /// `users.username_key` / `users.email` (SQLite).
    pub async fn insert(pool: &DbPool, new: NewUser<'_>) -> Result<UserRow, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::insert_into(users::table)
                .values(&new)
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await?)
        })
    }

    /// The account with this id.
    pub async fn find(pool: &DbPool, id: i64) -> Result<Option<UserRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(users::table
                .find(id)
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// The accounts with these ids (any order; missing ids are skipped).
    pub async fn find_many(pool: &DbPool, ids: &[i64]) -> Result<Vec<UserRow>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_conn!(pool, conn => {
            Ok(users::table.filter(users::id.eq_any(ids)).select(UserRow::as_select()).load(conn).await?)
        })
    }

    /// Every account (active or not) whose username or display name contains
    /// `query`, by id after the cursor: the admin listing.
    pub async fn list_all(
        pool: &DbPool,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<UserRow>, DbError> {
        let pattern = query.map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        with_conn!(pool, conn => {
            let mut select = users::table.select(UserRow::as_select()).order(users::id.asc()).limit(limit).into_boxed();
            if let Some(pattern) = &pattern {
                select = select.filter(
                    users::username_key.like(pattern.clone()).escape('\\')
                        .or(users::email.like(pattern.clone()).escape('\\'))
                        .or(lower(users::display_name).like(pattern.clone()).escape('\\')),
                );
            }
            if let Some(after) = after_id {
                select = select.filter(users::id.gt(after));
            }
            Ok(select.load(conn).await?)
        })
    }

    /// The account whose username (case-insensitively) or e-mail is `login`.
    pub async fn find_by_login(pool: &DbPool, login: &str) -> Result<Option<UserRow>, DbError> {
        let key = login.trim().to_lowercase();
        with_conn!(pool, conn => {
            Ok(users::table
                .filter(users::username_key.eq(&key).or(users::email.eq(&key)))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Active accounts whose username or display name contains `query`
    /// (case-insensitively), ordered by username, after the cursor `after_key`
    /// (a `username_key`), at most `limit`.
    pub async fn search(
        pool: &DbPool,
        query: Option<&str>,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserRow>, DbError> {
        let pattern = query.map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        with_conn!(pool, conn => {
            let mut select = users::table
                .filter(users::is_active.eq(true))
                .select(UserRow::as_select())
                .order(users::username_key.asc())
                .limit(limit)
                .into_boxed();
            if let Some(pattern) = &pattern {
                select = select.filter(
                    users::username_key
                        .like(pattern.clone())
                        .escape('\\')
                        .or(lower(users::display_name).like(pattern.clone()).escape('\\')),
                );
            }
            if let Some(after) = after_key {
                select = select.filter(users::username_key.gt(after.to_owned()));
            }
            Ok(select.load(conn).await?)
        })
    }

    /// Applies `changes` and returns the updated row (`None`: no such user).
    pub async fn update(
        pool: &DbPool,
        id: i64,
        changes: UserChanges<'_>,
    ) -> Result<Option<UserRow>, DbError> {
        with_conn!(pool, conn => {
            Ok(diesel::update(users::table.find(id))
                .set(&changes)
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .optional()?)
        })
    }
}

impl UserRow {
    /// Records activity (log-in, token refresh) for `last_seen_at`.
    pub async fn touch(pool: &DbPool, id: i64, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(pool, conn => {
            diesel::update(users::table.find(id))
                .set(users::last_seen_at.eq(now))
                .execute(conn)
                .await?;
        });
        Ok(())
    }
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(super::escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
    }
}
