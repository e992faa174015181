//! `/admin`: site administration.

use actix_web::web;
use chat_domain::UserId;
use chat_services::AppContext;
use chat_services::admin;
use chat_services::chats::ChatView;
use chat_services::pagination::Page;
use chat_services::users::UserView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, ApiJson, AuthUser, Problem};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/users").route(web::get().to(list_users)))
        .service(web::resource("/admin/users/{user_id}").route(web::patch().to(update_user)))
        .service(web::resource("/admin/chats").route(web::get().to(list_chats)));
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AdminList {
    /// Part of a username, e-mail or display name (users), or of a group's name (chats).
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every account, active or not (site admins).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = []), ("oauth2" = [])), params(AdminList),
    responses((status = 200, body = Page<UserView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a site admin (`admin_only`)", body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    query: web::Query<AdminList>,
) -> Result<web::Json<Page<UserView>>, ApiError> {
    Ok(web::Json(
        admin::list_users(
            &ctx,
            &user.0,
            query.q.as_deref(),
            query.limit,
            query.cursor.as_deref(),
        )
        .await?,
    ))
}

/// An account change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `false` deactivates the account and ends its sessions.
    pub is_active: Option<bool>,
    /// Grant or withdraw site administration.
    pub is_admin: Option<bool>,
}

/// Activate/deactivate an account or change its admin rights (site admins).
#[utoipa::path(patch, path = "/api/v1/admin/users/{user_id}", tag = "admin", security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, description = "User id")), request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a site admin (`admin_only`), or changing your own rights or deactivating yourself (`cannot_change_self`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_user(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<UserId>,
    body: ApiJson<UpdateUser>,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        admin::update_user(
            &ctx,
            &user.0,
            path.into_inner(),
            body.0.is_active,
            body.0.is_admin,
        )
        .await?,
    ))
}

/// Every chat (site admins).
#[utoipa::path(get, path = "/api/v1/admin/chats", tag = "admin", security(("bearer" = []), ("oauth2" = [])), params(AdminList),
    responses((status = 200, body = Page<ChatView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_chats(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    query: web::Query<AdminList>,
) -> Result<web::Json<Page<ChatView>>, ApiError> {
    Ok(web::Json(
        admin::list_chats(
            &ctx,
            &user.0,
            query.q.as_deref(),
            query.limit,
            query.cursor.as_deref(),
        )
        .await?,
    ))
}
