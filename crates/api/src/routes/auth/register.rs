//! `POST /api/v1/auth/register`

use actix_web::{HttpResponse, web};
use chat_services::AppContext;
use chat_services::auth::{RegisterInput, TokenPair, register};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiJson, ClientAddr, Problem};

/// A sign-up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterUser {
    /// 3–32 characters of `[A-Za-z0-9_.-]`, unique case-insensitively.
    #[schema(example = "alice")]
    pub username: String,
    /// Unique e-mail address.
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// 8 characters to 72 bytes.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// Name shown to others (defaults to the username).
    pub display_name: Option<String>,
}

/// Create an account and log it in.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterUser,
    responses(
        (status = 201, description = "Account created; tokens of its first session", body = TokenPair),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or e-mail taken (`username_taken`, `email_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many sign-ups from this address", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register_user(
    ctx: web::Data<AppContext>,
    client: ClientAddr,
    body: ApiJson<RegisterUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let input = RegisterInput {
        username: body.username,
        email: body.email,
        password: body.password,
        display_name: body.display_name,
    };
    let pair = register(&ctx, &client.0, input).await?;
    Ok(HttpResponse::Created().json(pair))
}
