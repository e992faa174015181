//! `POST /api/v1/auth/logout`

use actix_web::{HttpResponse, web};
use chat_services::AppContext;
use chat_services::auth::logout;

use crate::{ApiError, AuthUser, Problem};

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
