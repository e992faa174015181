//! What clients see of an account.

use chat_db::models::UserRow;
use chat_domain::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Stored UTC time → RFC 3339 with `Z`.
pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// The caller's own account (includes private fields).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    #[schema(value_type = i64)]
    pub id: UserId,
    /// Username, as chosen.
    pub username: String,
    /// E-mail (lower-cased).
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Site administrator.
    pub is_admin: bool,
    /// False once deactivated.
    pub is_active: bool,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// Last activity.
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId(row.id),
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            is_admin: row.is_admin,
            is_active: row.is_active,
            created_at: utc(row.created_at),
            last_seen_at: row.last_seen_at.map(utc),
        }
    }
}

/// Another user's public profile: no e-mail, no flags.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PublicUser {
    /// Id.
    #[schema(value_type = i64)]
    pub id: UserId,
    /// Username.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for PublicUser {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId(row.id),
            username: row.username,
            display_name: row.display_name,
            created_at: utc(row.created_at),
        }
    }
}
