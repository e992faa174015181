//! `/groups`: discover public groups.

use actix_web::web;
use chat_services::AppContext;
use chat_services::chats::{self, GroupListing};
use chat_services::pagination::Page;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{ApiError, AuthUser, Problem};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/groups").route(web::get().to(discover_groups)));
}

/// Discovery parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DiscoverGroups {
    /// Part of the name (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Public groups anyone may join, by id.
#[utoipa::path(get, path = "/api/v1/groups", tag = "chats", security(("bearer" = []), ("oauth2" = [])), params(DiscoverGroups),
    responses((status = 200, body = Page<GroupListing>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn discover_groups(
    ctx: web::Data<AppContext>,
    _user: AuthUser,
    query: web::Query<DiscoverGroups>,
) -> Result<web::Json<Page<GroupListing>>, ApiError> {
    let query = query.into_inner();
    let q = chat_services::pagination::search_text("q", query.q.as_deref(), 100)?;
    Ok(web::Json(
        chats::discover_groups(&ctx, q, query.limit, query.cursor.as_deref()).await?,
    ))
}
