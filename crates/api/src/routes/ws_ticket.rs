//! `POST /api/v1/ws/ticket`: a single-use ticket for browsers' WebSocket handshakes.

use actix_web::web;
use chat_services::AppContext;
use chat_services::auth::{WsTicket, issue_ws_ticket};

use crate::{ApiError, AuthUser, Problem};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ws/ticket").route(web::post().to(create_ticket)));
}

/// A ticket for `?ticket=` on a WebSocket URL: single use, valid 30 s, bound to your
/// session. Browsers cannot set headers on a WebSocket handshake; this keeps the
/// access token out of URLs (and logs).
#[utoipa::path(post, path = "/api/v1/ws/ticket", tag = "realtime", security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, body = WsTicket), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many tickets for this user", body = Problem, content_type = "application/problem+json")))]
pub async fn create_ticket(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<web::Json<WsTicket>, ApiError> {
    Ok(web::Json(issue_ws_ticket(&ctx, &user.0).await?))
}
