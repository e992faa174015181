//! Request extractors: the authenticated caller and the client's address.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chat_services::AppContext;
use chat_services::auth::tokens::{self, AccessClaims};
use chat_services::auth::{Principal, authenticate};
use futures_util::future::LocalBoxFuture;

use crate::ApiError;
use crate::errors::parse_json;

pub use chat_services::client::ProxyPolicy;

/// A JSON request body (at most [`crate::MAX_BODY_BYTES`]). Unlike `web::Json`, it
/// tells broken JSON (400) from JSON of the wrong shape (422) reliably, and accepts
/// a missing content type. Any other content type is a 415.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Whether a content type is JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(req: &HttpRequest) -> Option<bool> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    Some(
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json")),
    )
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req).unwrap_or(req.headers().get(header::CONTENT_TYPE).is_none());
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                )
                .into());
            }
            let bytes = body.await?;
            Ok(ApiJson(parse_json(&bytes)?))
        })
    }
}

/// The caller, authenticated by `Authorization: Bearer <access token>` whose
/// session is still live.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

/// The bearer token of a request, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    chat_services::auth::bearer_token(value)
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
            let token = token.ok_or_else(missing_token)?;
            Ok(AuthUser(authenticate(&ctx, &token).await?))
        })
    }
}

/// A bearer access token whose signature and expiry are verified — no I/O yet: the
/// handler checks its session together with what else it reads from the cache (see
/// `messages::history_json_for_token`). A missing, malformed, forged or expired token is
/// refused here, before the other extractors run (401, as [`AuthUser`] does); an ended
/// session is refused by the handler — so after a malformed path or query has already
/// answered 404/422.
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub AccessClaims);

impl FromRequest for VerifiedToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let ctx = context(req)?;
            let token = bearer_token(req).ok_or_else(missing_token)?;
            Ok(VerifiedToken(tokens::verify_access(&ctx.auth.keys, token)?))
        })())
    }
}

fn missing_token() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "missing_token",
        "send an access token as Authorization: Bearer <token>",
    )
}

/// The client's IP address (IPv6: its /64), for per-address rate limits.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let policy = req.app_data::<ProxyPolicy>().copied().unwrap_or_default();
        let forwarded_for = req
            .headers()
            .get_all("x-forwarded-for")
            .last()
            .and_then(|v| v.to_str().ok());
        ready(Ok(ClientAddr(
            policy.client_key(req.peer_addr().map(|a| a.ip()), forwarded_for),
        )))
    }
}
