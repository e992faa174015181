//! Finding other users.

use chat_db::models::UserRow;
use chat_domain::UserId;

use crate::pagination::{self, Page};
use crate::users::PublicUser;
use crate::{AppContext, ServiceError};

/// Longest search string accepted.
const MAX_QUERY_LEN: usize = 64;

/// Active users whose username or display name contains `query`, by username.
pub async fn search_users(
    ctx: &AppContext,
    query: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<PublicUser>, ServiceError> {
    let limit = pagination::limit(limit)?;
    let query = pagination::search_text("q", query, MAX_QUERY_LEN)?;
    let after = cursor.map(pagination::decode_cursor).transpose()?;
    let rows = UserRow::search(&ctx.store.db, query, after.as_deref(), limit + 1).await?;
    Ok(pagination::page(
        rows,
        limit,
        |u| u.username_key.clone(),
        PublicUser::from,
    ))
}

/// One user's public profile; deactivated users are not found.
pub async fn get_user(ctx: &AppContext, user_id: UserId) -> Result<PublicUser, ServiceError> {
    UserRow::find(&ctx.store.db, user_id.0)
        .await?
        .filter(|u| u.is_active)
        .map(PublicUser::from)
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))
}
