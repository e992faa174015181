//! `POST /api/v1/auth/login` — JSON, or the OAuth2 password-grant form that
//! Swagger UI's Authorize button sends.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chat_domain::FieldErrors;
use chat_services::AppContext;
use chat_services::auth::{LoginInput, TokenPair, login};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::errors::parse_json;
use crate::{ApiError, ClientAddr, Problem};

/// Credentials as JSON: `username` (or `email`, or `login`) and `password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginUser {
    /// Username (any case) or e-mail.
    #[schema(example = "alice")]
    pub username: Option<String>,
    /// E-mail, as an alternative to `username`.
    pub email: Option<String>,
    /// Username or e-mail, as an alternative to both.
    pub login: Option<String>,
    /// Password.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// Credentials as an OAuth2 password-grant form (RFC 6749 §4.3); `scope`,
/// `client_id` and `client_secret` are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// Must be `password` when present.
    pub grant_type: Option<String>,
    /// Username or e-mail.
    pub username: String,
    /// Password.
    pub password: String,
}

fn parse(req: &HttpRequest, body: &[u8]) -> Result<LoginInput, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let form: LoginForm = serde_urlencoded::from_bytes(body).map_err(|e| {
            let mut errors = FieldErrors::new();
            errors.add("body", e.to_string());
            ApiError::validation(errors)
        })?;
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=password is supported",
            ));
        }
        return Ok(LoginInput {
            login: form.username,
            password: form.password,
        });
    }
    if crate::extract::is_json(req) == Some(false) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/x-www-form-urlencoded",
        ));
    }
    let json: LoginUser = parse_json(body)?;
    let login = json
        .username
        .or(json.email)
        .or(json.login)
        .unwrap_or_default();
    Ok(LoginInput {
        login,
        password: json.password,
    })
}

/// Log in with username or e-mail and password.
///
/// Unknown users and wrong passwords get the same 401, in the same time.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body(content(
        (LoginUser = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Tokens of a new session", body = TokenPair),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid credentials (`invalid_credentials`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account deactivated (`account_disabled`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login_user(
    ctx: web::Data<AppContext>,
    client: ClientAddr,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input = parse(&req, &body)?;
    let pair = login(&ctx, &client.0, input).await?;
    Ok(HttpResponse::Ok().json(pair))
}
