//! `POST /api/v1/auth/refresh`

use actix_web::{HttpResponse, web};
use chat_services::AppContext;
use chat_services::auth::{TokenPair, refresh};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiJson, ClientAddr, Problem};

/// A refresh request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshTokens {
    /// The refresh token of the last pair; it is single-use.
    pub refresh_token: String,
}

/// Exchange a refresh token for a new token pair.
///
/// The presented token is retired. Presenting a retired token again ends the whole
/// session (`refresh_token_reused`): a stolen copy is useless once either side uses it.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshTokens,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh_tokens(
    ctx: web::Data<AppContext>,
    client: ClientAddr,
    body: ApiJson<RefreshTokens>,
) -> Result<HttpResponse, ApiError> {
    let pair = refresh(&ctx, &client.0, &body.0.refresh_token).await?;
    Ok(HttpResponse::Ok().json(pair))
}
