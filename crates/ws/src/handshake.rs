//! The WebSocket handshake: who is connecting, from where, to what. Every refusal is an
//! HTTP problem response before the upgrade (401, 403, 404, 422), never an accepted
//! socket that closes silently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chat_domain::{ChatId, Seq, UserId};
use chat_services::auth::{Principal, authenticate, redeem_ws_ticket};
use chat_services::chats::{ChatPosition, authorize_socket, my_chat_positions, open_direct};
use chat_services::client::ProxyPolicy;
use chat_services::{AppContext, ServiceError, rate_limit};
use serde::Deserialize;

use crate::hub::{Hub, Scope, TooManySockets};
use crate::protocol::MAX_RETRIEVE;
use crate::session::{Connection, FrameBudget};
use crate::upgrade::SessionSlot;

/// The sub-protocol answered when a client offers `chat, <token>`.
pub const SUBPROTOCOL: &str = "chat";

/// Something a test runs inside a handshake, to force a race (see
/// [`WsSettings::before_register`]).
pub type HandshakeHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Handshake and socket policy from configuration.
#[derive(Clone, Default)]
pub struct WsSettings {
    /// `CHAT_ALLOWED_ORIGINS`: browser origins allowed besides the server's own (`*`: any).
    pub allowed_origins: Vec<String>,
    /// `CHAT_WS_FRAME_RATE`: how fast each socket's frames are read (`None`: as fast as
    /// they come, with `CHAT_RATE_LIMITS=off`).
    pub frame_budget: Option<FrameBudget>,
    /// Tests only: awaited by `/ws` between reading the user's memberships and
    /// registering the socket — the window a concurrent leave must not slip through.
    pub before_register: Option<HandshakeHook>,
}

impl std::fmt::Debug for WsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSettings")
            .field("allowed_origins", &self.allowed_origins)
            .field("frame_budget", &self.frame_budget)
            .field("before_register", &self.before_register.is_some())
            .finish()
    }
}

/// Query parameters of the handshake.
#[derive(Debug, Default, Deserialize)]
pub struct HandshakeQuery {
    /// Single-use ticket from `POST /api/v1/ws/ticket`.
    pub ticket: Option<String>,
    /// An access token (prefer the header or a ticket: URLs end up in logs).
    pub token: Option<String>,
    /// Push this many recent messages on connect (chat sockets, at most 100).
    pub history: Option<i64>,
}

fn refuse(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    let body = serde_json::json!({
        "type": format!("urn:chat:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut response = HttpResponse::build(status);
    response.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    ));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.body(body.to_string())
}

fn refuse_service(err: ServiceError) -> HttpResponse {
    let client = err.into_client();
    let status = StatusCode::from_u16(client.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = refuse(status, client.code, &client.detail);
    if let Some(seconds) = client.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Browsers send `Origin`; it must be the server's own or an allowed one. Clients that
/// send none (native apps, servers) are not browsers and pass.
fn origin_allowed(req: &HttpRequest, settings: &WsSettings) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    if settings
        .allowed_origins
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = req.connection_info().host().to_ascii_lowercase();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.to_ascii_lowercase() == host)
}

/// Whether the request asks for a WebSocket upgrade (and came as one: see `upgrade`).
fn is_upgrade(req: &HttpRequest) -> bool {
    SessionSlot::of(req).is_some()
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The token of `Sec-WebSocket-Protocol: chat, <token>` (seed 004's clients).
fn subprotocol_token(req: &HttpRequest) -> Option<String> {
    let offered = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    let mut parts = offered.split(',').map(str::trim);
    (parts.next()? == SUBPROTOCOL)
        .then(|| parts.next().map(str::to_owned))
        .flatten()
}

async fn principal(
    req: &HttpRequest,
    ctx: &AppContext,
    query: &HandshakeQuery,
) -> Result<Principal, HttpResponse> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(chat_services::auth::bearer_token)
        .map(str::to_owned);
    if let Some(token) = header {
        return authenticate(ctx, &token).await.map_err(refuse_service);
    }
    if let Some(ticket) = &query.ticket {
        return redeem_ws_ticket(ctx, ticket).await.map_err(refuse_service);
    }
    if let Some(token) = query.token.clone().or_else(|| subprotocol_token(req)) {
        return authenticate(ctx, &token).await.map_err(refuse_service);
    }
    Err(refuse(
        StatusCode::UNAUTHORIZED,
        "missing_token",
        "authenticate with Authorization: Bearer, ?ticket=, ?token= or Sec-WebSocket-Protocol: chat, <token>",
    ))
}

struct Accepted {
    principal: Principal,
    scope: Scope,
    /// The chats it follows, from where.
    chats: Vec<ChatPosition>,
}

async fn upgrade(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    hub: web::Data<Hub>,
    settings: &WsSettings,
    history: Option<i64>,
    accepted: Accepted,
) -> HttpResponse {
    let mut response = match actix_http::ws::handshake(req.head()) {
        Ok(response) => response,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, "not_a_websocket", &err.to_string()),
    };
    let Some(slot) = SessionSlot::of(&req) else {
        return not_upgradable();
    };
    if offers_subprotocol(&req) {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL));
    }
    let hub: Arc<Hub> = hub.into_inner();
    let registration = match hub.register(
        accepted.principal.user_id,
        &accepted.principal.session_id,
        accepted.scope,
        &accepted.chats,
    ) {
        Ok(registration) => registration,
        Err(TooManySockets { max }) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sockets",
                &format!(
                    "at most {max} open sockets per user (CHAT_MAX_SOCKETS_PER_USER); close one first"
                ),
            );
        }
    };
    let barrier = ctx.bus.barrier();
    let mut connection = Registered(Some(Connection {
        ctx: ctx.into_inner(),
        hub,
        principal: accepted.principal,
        scope: accepted.scope,
        registration,
        history,
        frame_budget: settings.frame_budget,
        grant: Default::default(),
    }));
    // With a broker, the instance subscribes to what the socket follows before the
    // socket is answered, so it hears whatever is published once the client has its
    // 101. A broker that does not answer in time costs the wait, not the socket: what
    // it missed shows as a seq gap and a `resync` hint.
    if let Some(ready) = barrier
        && tokio::time::timeout(SUBSCRIBE_WAIT, ready).await.is_err()
    {
        tracing::warn!("the event bus did not confirm a socket's subscriptions in time");
    }
    // Served on the connection once the 101 is written (see `upgrade`).
    if let Some(connection) = connection.0.take() {
        slot.put(connection);
    }
    HttpResponse::from(response.finish().map_into_boxed_body())
}

/// How long a handshake waits for the bus to subscribe to what the socket follows.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A registered socket not yet handed to its connection: unregistered if the handshake
/// is dropped (the client went away) while it waits.
struct Registered(Option<Connection>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            connection.abandon();
        }
    }
}

/// A WebSocket handshake that did not come as an HTTP/1.1 upgrade (`Connection: Upgrade`
/// missing): there is no connection to take over.
fn not_upgradable() -> HttpResponse {
    refuse(
        StatusCode::BAD_REQUEST,
        "not_a_websocket",
        "this endpoint only accepts WebSocket handshakes (HTTP/1.1 with Connection: Upgrade and Upgrade: websocket)",
    )
}

/// Does the client offer the `chat` sub-protocol (`Sec-WebSocket-Protocol: chat, <token>`)?
fn offers_subprotocol(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

async fn checked(
    req: &HttpRequest,
    ctx: &AppContext,
    settings: &WsSettings,
    query: &HandshakeQuery,
) -> Result<Principal, HttpResponse> {
    // A stopping process takes no new socket: the client goes to another instance.
    ctx.lifecycle.accepting().map_err(refuse_service)?;
    // Each handshake costs a token check and database reads: budgets per client address
    // (before authentication, so guessing pays too) and per user.
    let forwarded_for = req.headers().get_all("x-forwarded-for").last();
    let address = req
        .app_data::<ProxyPolicy>()
        .copied()
        .unwrap_or_default()
        .client_key(
            req.peer_addr().map(|a| a.ip()),
            forwarded_for.and_then(|v| v.to_str().ok()),
        );
    ctx.limits
        .check(rate_limit::WS_HANDSHAKE_ADDRESS, &address)
        .map_err(refuse_service)?;
    // Who first: an unauthenticated request learns nothing else.
    let principal = principal(req, ctx, query).await?;
    let user = format!("user:{}", principal.user_id);
    ctx.limits
        .check(rate_limit::WS_HANDSHAKE_USER, &user)
        .map_err(refuse_service)?;
    if !origin_allowed(req, settings) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open WebSockets here (CHAT_ALLOWED_ORIGINS)",
        ));
    }
    if query
        .history
        .is_some_and(|n| !(0..=MAX_RETRIEVE).contains(&n))
    {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "history must be between 0 and 100",
        ));
    }
    Ok(principal)
}

/// `GET /ws`: every chat of the user, and their notifications.
pub async fn ws_all(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    hub: web::Data<Hub>,
    settings: web::Data<WsSettings>,
    query: web::Query<HandshakeQuery>,
) -> HttpResponse {
    let principal = match checked(&req, &ctx, &settings, &query).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let chats = match my_chat_positions(&ctx, principal.user_id).await {
        Ok(chats) => chats,
        Err(err) => return refuse_service(err),
    };
    if let Some(hook) = &settings.before_register {
        hook().await;
    }
    upgrade(
        req,
        ctx,
        hub,
        &settings,
        None,
        Accepted {
            principal,
            scope: Scope::AllChats,
            chats,
        },
    )
    .await
}

/// `GET /ws/chats/{chat_id}`: one chat (members only).
pub async fn ws_chat(
    req: HttpRequest,
    path: web::Path<ChatId>,
    ctx: web::Data<AppContext>,
    hub: web::Data<Hub>,
    settings: web::Data<WsSettings>,
    query: web::Query<HandshakeQuery>,
) -> HttpResponse {
    let chat = path.into_inner();
    let principal = match checked(&req, &ctx, &settings, &query).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let last_seq = match authorize_socket(&ctx, &principal, chat).await {
        Ok(last_seq) => last_seq,
        Err(err) => return refuse_service(err),
    };
    let history = query.history;
    let accepted = Accepted {
        principal,
        scope: Scope::Chat(chat),
        chats: vec![ChatPosition {
            chat_id: chat,
            last_seq,
        }],
    };
    upgrade(req, ctx, hub, &settings, history, accepted).await
}

/// `GET /ws/direct/{user_id}`: the direct chat with that user, created if allowed
/// (seed 002's style).
pub async fn ws_direct(
    req: HttpRequest,
    path: web::Path<UserId>,
    ctx: web::Data<AppContext>,
    hub: web::Data<Hub>,
    settings: web::Data<WsSettings>,
    query: web::Query<HandshakeQuery>,
) -> HttpResponse {
    let other = path.into_inner();
    let principal = match checked(&req, &ctx, &settings, &query).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    // Opening the chat has effects: only for a real WebSocket handshake.
    if !is_upgrade(&req) {
        return not_upgradable();
    }
    let (chat, last_seq) = match open_direct(&ctx, &principal, other).await {
        Ok((chat, _)) => (chat.id, Seq(chat.last_seq)),
        Err(err) => return refuse_service(err),
    };
    let history = query.history;
    let accepted = Accepted {
        principal,
        scope: Scope::Chat(chat),
        chats: vec![ChatPosition {
            chat_id: chat,
            last_seq,
        }],
    };
    upgrade(req, ctx, hub, &settings, history, accepted).await
}
