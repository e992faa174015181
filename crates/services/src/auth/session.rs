//! Opening a session: the token pair every successful sign-up, log-in and refresh returns.

use chat_db::models::{SessionRow, UserRow};
use chat_domain::UserId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::tokens::{self, RefreshToken};
use crate::users::UserView;
use crate::{AppContext, ServiceError};

/// Tokens for a session, and who they are for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPair {
    /// The authenticated user.
    pub user: UserView,
    /// Short-lived bearer token for `Authorization: Bearer …`.
    pub access_token: String,
    /// Long-lived, single-use token for `POST /auth/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

fn ttl_secs(ttl: std::time::Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Records the activity (`last_seen_at`), signs an access token for the session and
/// assembles the answer.
pub(crate) async fn token_pair(
    ctx: &AppContext,
    user: &UserRow,
    session_id: &str,
    nonce: &str,
    generation: i64,
) -> Result<TokenPair, ServiceError> {
    let seen = chat_db::now();
    // Best effort: the session change is already committed, and failing now would
    // leave the client without the token it must present next.
    if let Err(err) = UserRow::touch(&ctx.store.db, user.id, seen).await {
        tracing::warn!(error = %err, "cannot record last_seen_at");
    }
    let mut user = user.clone();
    user.last_seen_at = Some(seen);
    signed_pair(ctx, user, session_id, nonce, generation)
}

/// Signs an access token for the session and assembles the answer for `user` as it is.
fn signed_pair(
    ctx: &AppContext,
    user: UserRow,
    session_id: &str,
    nonce: &str,
    generation: i64,
) -> Result<TokenPair, ServiceError> {
    let now = chrono::Utc::now().timestamp();
    let expires_in = ttl_secs(ctx.auth.access_ttl);
    let access_token = tokens::issue_access(
        &ctx.auth.keys,
        UserId(user.id),
        session_id,
        now,
        now + expires_in,
    )?;
    Ok(TokenPair {
        user: UserView::from(user),
        access_token,
        refresh_token: RefreshToken::issue(&ctx.auth.keys, session_id, generation, nonce)?,
        token_type: "Bearer",
        expires_in,
    })
}

/// A new session row for `user`, with a fresh id and refresh nonce.
fn new_session(ctx: &AppContext, user_id: UserId) -> SessionRow {
    let now = chat_db::now();
    let refresh_ttl = chrono::Duration::seconds(ttl_secs(ctx.auth.refresh_ttl));
    SessionRow {
        id: tokens::new_session_id(),
        user_id: user_id.0,
        refresh_nonce: tokens::random_token(),
        refresh_gen: 0,
        created_at: now,
        refreshed_at: now,
        expires_at: now + refresh_ttl,
        revoked_at: None,
    }
}

/// Creates a session for `user` (just signed up) and returns its first token pair.
pub(crate) async fn open_session(
    ctx: &AppContext,
    user: &UserRow,
) -> Result<TokenPair, ServiceError> {
    let row = new_session(ctx, UserId(user.id));
    SessionRow::insert(&ctx.store.db, &row).await?;
    tracing::info!(user.id = user.id, "session opened");
    token_pair(ctx, user, &row.id, &row.refresh_nonce, 0).await
}

/// Creates a session for `user`, whose password was verified against the hash in
/// `user` — only if that is still their hash and the account is still active when the
/// session is stored. `None`: the password changed (or the account was deactivated)
/// while the password was being checked, and no session exists.
pub(crate) async fn open_verified_session(
    ctx: &AppContext,
    user: &UserRow,
) -> Result<Option<TokenPair>, ServiceError> {
    let row = new_session(ctx, UserId(user.id));
    let Some(user) =
        SessionRow::insert_if_credentials_unchanged(&ctx.store.db, &row, &user.password_hash)
            .await?
    else {
        return Ok(None);
    };
    tracing::info!(user.id = user.id, "session opened");
    signed_pair(ctx, user, &row.id, &row.refresh_nonce, 0).map(Some)
}
