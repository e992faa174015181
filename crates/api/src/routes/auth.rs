//! `/auth`: sign-up, log-in, refresh, log-out.

use crate::errors::parse_json;
use crate::{ApiError, ApiJson, AuthUser, ClientAddr, Problem};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chat_domain::FieldErrors;
use chat_services::AppContext;
use chat_services::auth::{LoginInput, RegisterInput, TokenPair, login, logout, refresh, register};
use serde::Deserialize;
use utoipa::ToSchema;

// `POST /api/v1/auth/register`

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

// `POST /api/v1/auth/login` — JSON, or the OAuth2 password-grant form that Swagger UI's Authorize button sends.

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

// `POST /api/v1/auth/refresh`

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

// `POST /api/v1/auth/logout`

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, description = "Missing, invalid, expired or already revoked token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout_user(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    logout(&ctx, &user.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/register").route(web::post().to(register_user)))
        .service(web::resource("/auth/login").route(web::post().to(login_user)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh_tokens)))
        .service(web::resource("/auth/logout").route(web::post().to(logout_user)));
}
