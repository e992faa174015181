//! Message search: in one chat (`/chats/{id}/messages/search`) and across my chats
//! (`/search/messages`).

use actix_web::web;
use chat_domain::ChatId;
use chat_services::AppContext;
use chat_services::chats::MessageView;
use chat_services::pagination::Page;
use chat_services::search::{self, SearchQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{ApiError, AuthUser, Problem};

/// What to look for.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchMessages {
    /// Words to find (up to 200 characters; letters and digits count, the rest
    /// separates words): a message must hold every word, each also as the start of a
    /// longer one.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (results go 1 000 deep).
    pub cursor: Option<String>,
}

impl From<SearchMessages> for SearchQuery {
    fn from(query: SearchMessages) -> Self {
        SearchQuery {
            q: query.q,
            limit: query.limit,
            cursor: query.cursor,
        }
    }
}

/// Search a chat's messages, most relevant first (whoever may read its history).
/// Deleted messages are never found.
#[utoipa::path(get, path = "/api/v1/chats/{chat_id}/messages/search", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), SearchMessages),
    responses((status = 200, body = Page<MessageView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No word in `q`, bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn search_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    query: web::Query<SearchMessages>,
) -> Result<web::Json<Page<MessageView>>, ApiError> {
    let page =
        search::search_chat(&ctx, &user.0, path.into_inner(), query.into_inner().into()).await?;
    Ok(web::Json(page))
}

/// Search the messages of every chat I am a member of, most relevant first; each item
/// carries its `chat_id`. Chats I left are not searched; deleted messages are never
/// found.
#[utoipa::path(get, path = "/api/v1/search/messages", tag = "messages", security(("bearer" = []), ("oauth2" = [])),
    params(SearchMessages),
    responses((status = 200, body = Page<MessageView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No word in `q`, bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn search_my_chats(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    query: web::Query<SearchMessages>,
) -> Result<web::Json<Page<MessageView>>, ApiError> {
    let page = search::search_my_chats(&ctx, &user.0, query.into_inner().into()).await?;
    Ok(web::Json(page))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search/messages").route(web::get().to(search_my_chats)));
}
