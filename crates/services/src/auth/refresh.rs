//! Refresh-token rotation with reuse detection.

use chat_db::models::SessionRow;
use chat_domain::UserId;

use crate::auth::revoke_session;
use crate::auth::session::{TokenPair, token_pair};
use crate::auth::tokens::RefreshToken;
use crate::rate_limit;
use crate::{AppContext, ServiceError};

fn refused(code: &'static str, detail: &str) -> ServiceError {
    ServiceError::unauthorized(code, detail)
}

/// Exchanges a refresh token for a new pair. The presented token is retired: using a
/// genuine retired token again (a stolen copy, or a replay) revokes the whole session,
/// so a thief and the victim cannot both keep it alive. A token that does not verify
/// is only refused.
pub async fn refresh(
    ctx: &AppContext,
    client: &str,
    raw_token: &str,
) -> Result<TokenPair, ServiceError> {
    ctx.limits.check(rate_limit::REFRESH, client)?;
    let token = RefreshToken::parse(raw_token.trim())?;
    let Some((session, user)) = SessionRow::find_with_user(&ctx.store.db, token.session_id).await?
    else {
        return Err(refused("invalid_token", "the refresh token is invalid"));
    };
    let now = chat_db::now();
    if session.revoked_at.is_some() {
        return Err(refused(
            "session_revoked",
            "this session has been ended; log in again",
        ));
    }
    if session.expires_at <= now {
        return Err(refused(
            "token_expired",
            "the session has expired; log in again",
        ));
    }
    if !user.is_active {
        return Err(ServiceError::forbidden(
            "account_disabled",
            "this account has been deactivated",
        ));
    }
    if !token.verify(&ctx.auth.keys, &session.refresh_nonce)
        || token.generation > session.refresh_gen
    {
        // Not a token this server issued for this session: refuse it, and leave the
        // session alone (its id alone is no secret).
        return Err(refused("invalid_token", "the refresh token is invalid"));
    }
    let rotated = token.generation == session.refresh_gen
        && SessionRow::rotate(&ctx.store.db, &session.id, token.generation, now).await?;
    if !rotated {
        tracing::warn!(
            user.id = user.id,
            "refresh token reused; revoking the session"
        );
        revoke_session(ctx, UserId(user.id), &session.id).await?;
        return Err(refused(
            "refresh_token_reused",
            "this refresh token was already used; the session has been ended",
        ));
    }
    token_pair(
        ctx,
        &user,
        &session.id,
        &session.refresh_nonce,
        token.generation + 1,
    )
    .await
}
