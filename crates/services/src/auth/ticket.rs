//! Single-use WebSocket tickets: browsers cannot set headers on a WebSocket handshake,
//! and a token in the URL ends up in logs. A ticket is useless after one use or 30 s.

use chat_domain::UserId;
use std::time::Duration;

use chat_selectors::keys;
use chat_selectors::sessions::live_session;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, tokens};
use crate::{AppContext, ServiceError, rate_limit};

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// A ticket for `?ticket=` on a WebSocket URL.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WsTicket {
    /// The ticket.
    pub ticket: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

#[derive(Serialize, Deserialize)]
struct TicketData {
    user_id: i64,
    session_id: String,
}

/// Issues a ticket bound to the caller's session (within the per-user budget: each
/// ticket is a cache entry).
pub async fn issue_ws_ticket(
    ctx: &AppContext,
    principal: &Principal,
) -> Result<WsTicket, ServiceError> {
    ctx.limits.check(
        rate_limit::WS_TICKET,
        &format!("user:{}", principal.user_id),
    )?;
    let ticket = tokens::random_token();
    let data = serde_json::to_string(&TicketData {
        user_id: principal.user_id.0,
        session_id: principal.session_id.clone(),
    })
    .map_err(|e| ServiceError::Internal(e.into()))?;
    ctx.store
        .cache
        .set(&keys::ws_ticket(&ticket), &data, TICKET_TTL)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    Ok(WsTicket {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    })
}

/// Redeems a ticket (once): the principal of its session, if that is still live.
pub async fn redeem_ws_ticket(ctx: &AppContext, ticket: &str) -> Result<Principal, ServiceError> {
    let invalid = || {
        ServiceError::unauthorized(
            "invalid_ticket",
            "the ticket is invalid, expired or already used",
        )
    };
    if ticket.is_empty()
        || ticket.len() > 64
        || !ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid());
    }
    let raw = ctx
        .store
        .cache
        .take(&keys::ws_ticket(ticket))
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    let data: TicketData = raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .ok_or_else(invalid)?;
    let session = live_session(&ctx.store, &data.session_id)
        .await?
        .filter(|s| s.user_id == data.user_id)
        .ok_or_else(|| {
            ServiceError::unauthorized(
                "session_revoked",
                "this session has been ended; log in again",
            )
        })?;
    Ok(Principal {
        user_id: UserId(session.user_id),
        session_id: data.session_id,
        is_admin: session.is_admin,
    })
}
