//! The check behind every authenticated request.

use chat_domain::UserId;
use chat_selectors::sessions::live_session;

use crate::auth::tokens;
use crate::{AppContext, ServiceError};

/// Who is calling: the user and the session their token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Their session.
    pub session_id: String,
    /// Site admin.
    pub is_admin: bool,
}

/// The principal as it stands now: `None` once the session has ended, otherwise with
/// the current admin flag (sockets re-check this right after registering, so a logout or
/// permission change racing the handshake is not missed).
pub async fn current_principal(
    ctx: &AppContext,
    principal: &Principal,
) -> Result<Option<Principal>, ServiceError> {
    Ok(live_session(&ctx.store, &principal.session_id)
        .await?
        .filter(|s| s.user_id == principal.user_id.0)
        .map(|s| Principal {
            user_id: UserId(s.user_id),
            session_id: principal.session_id.clone(),
            is_admin: s.is_admin,
        }))
}

/// Verifies an access token and that its session is still live (through the
/// session cache, so logout and deactivation take effect at once on every instance).
pub async fn authenticate(ctx: &AppContext, access_token: &str) -> Result<Principal, ServiceError> {
    let claims = tokens::verify_access(&ctx.auth.keys, access_token)?;
    let session = live_session(&ctx.store, &claims.sid)
        .await?
        .filter(|s| s.user_id.to_string() == claims.sub)
        .ok_or_else(session_ended)?;
    Ok(Principal {
        user_id: UserId(session.user_id),
        session_id: claims.sid,
        is_admin: session.is_admin,
    })
}

/// The 401 for a token whose session is over (logout, revocation, deactivation).
pub(crate) fn session_ended() -> ServiceError {
    ServiceError::unauthorized(
        "session_revoked",
        "this session has been ended; log in again",
    )
}
