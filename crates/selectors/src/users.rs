//! User profiles, cached: message events and chat views name senders and members.

use chat_db::DbError;
use chat_db::models::UserRow;
use serde::{Deserialize, Serialize};

use crate::cached::{put, read_through};
use crate::{Store, keys};

/// What other users may know of an account, plus whether it is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Not deactivated.
    pub is_active: bool,
}

impl From<&UserRow> for UserProfile {
    fn from(row: &UserRow) -> Self {
        UserProfile {
            id: row.id,
            username: row.username.clone(),
            display_name: row.display_name.clone(),
            is_active: row.is_active,
        }
    }
}

/// The user's profile, if the account exists.
pub async fn user_profile(store: &Store, user_id: i64) -> Result<Option<UserProfile>, DbError> {
    read_through(store, &keys::user(user_id), async || {
        load_user_profile(store, user_id).await
    })
    .await
}

pub(crate) async fn load_user_profile(
    store: &Store,
    user_id: i64,
) -> Result<Option<UserProfile>, DbError> {
    Ok(UserRow::find(&store.db, user_id)
        .await?
        .as_ref()
        .map(UserProfile::from))
}

/// Records a profile change.
pub async fn put_user_profile(store: &Store, profile: &UserProfile) {
    put(store, &keys::user(profile.id), Some(profile)).await;
}
