//! Request extractors: the authenticated caller and the client's address.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chat_services::AppContext;
use chat_services::auth::{Principal, authenticate};
use futures_util::future::LocalBoxFuture;

use crate::ApiError;

/// The caller, authenticated by `Authorization: Bearer <access token>` whose
/// session is still live.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

/// The bearer token of a request, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn context(req: &HttpRequest) -> Result<web::Data<AppContext>, ApiError> {
    req.app_data::<web::Data<AppContext>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("AppContext missing from app data");
            ApiError::from_status(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
        })
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ctx = context(req);
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let ctx = ctx?;
            let token = token.ok_or_else(|| {
                ApiError::new(
                    actix_web::http::StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "send an access token as Authorization: Bearer <token>",
                )
            })?;
            Ok(AuthUser(authenticate(&ctx, &token).await?))
        })
    }
}

/// Whether to believe `Forwarded` / `X-Forwarded-For` (only behind a trusted proxy;
/// otherwise any client could pick its own address and dodge per-IP limits).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyPolicy {
    /// Trust the proxy headers.
    pub trust_forwarded_headers: bool,
}

/// The client's IP address, for per-address rate limits.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req
            .app_data::<ProxyPolicy>()
            .is_some_and(|p| p.trust_forwarded_headers);
        let addr = if trust {
            req.connection_info()
                .realip_remote_addr()
                .map(str::to_owned)
        } else {
            req.peer_addr().map(|a| a.ip().to_string())
        };
        ready(Ok(ClientAddr(addr.unwrap_or_else(|| "unknown".to_owned()))))
    }
}
