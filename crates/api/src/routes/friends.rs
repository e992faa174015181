//! `/friends`: friends and friend requests.

use actix_web::{HttpResponse, web};
use chat_domain::UserId;
use chat_services::AppContext;
use chat_services::friends::{self, FriendRequestView, FriendRequests, FriendView};
use chat_services::pagination::Page;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiJson, AuthUser, Problem};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/friends").route(web::get().to(list_friends)))
        .service(
            web::resource("/friends/requests")
                .route(web::get().to(list_requests))
                .route(web::post().to(send_request)),
        )
        .service(
            web::resource("/friends/requests/{request_id}/accept")
                .route(web::post().to(accept_request)),
        )
        .service(
            web::resource("/friends/requests/{request_id}/decline")
                .route(web::post().to(decline_request)),
        )
        .service(web::resource("/friends/{user_id}").route(web::delete().to(remove_friend)));
}

/// My friends, most recent first (one page: `next_cursor` is always null).
#[utoipa::path(get, path = "/api/v1/friends", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, body = Page<FriendView>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_friends(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<web::Json<Page<FriendView>>, ApiError> {
    let items = friends::list_friends(&ctx, &user.0).await?;
    Ok(web::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// My pending friend requests, incoming and outgoing.
#[utoipa::path(get, path = "/api/v1/friends/requests", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, body = FriendRequests), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_requests(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<web::Json<FriendRequests>, ApiError> {
    Ok(web::Json(friends::list_requests(&ctx, &user.0).await?))
}

/// Whom to ask.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendFriendRequest {
    /// The user to befriend.
    #[schema(value_type = i64)]
    pub user_id: UserId,
}

/// Ask someone to be friends. If they already asked you, this accepts their request.
#[utoipa::path(post, path = "/api/v1/friends/requests", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    request_body = SendFriendRequest,
    responses(
        (status = 201, description = "Request sent", body = FriendRequestView),
        (status = 200, description = "Already requested, or their pending request was accepted", body = FriendRequestView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already friends (`already_friends`), or they declined your request less than 24 hours ago (`recently_declined`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Yourself, or bad body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many friend requests", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn send_request(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: ApiJson<SendFriendRequest>,
) -> Result<HttpResponse, ApiError> {
    let (request, created) = friends::send_request(&ctx, &user.0, body.0.user_id).await?;
    Ok(if created {
        HttpResponse::Created().json(request)
    } else {
        HttpResponse::Ok().json(request)
    })
}

/// Accept a request addressed to you.
#[utoipa::path(post, path = "/api/v1/friends/requests/{request_id}/accept", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    params(("request_id" = i64, Path, description = "Request id")),
    responses(
        (status = 200, body = FriendRequestView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Your own request (`own_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending any more (`not_pending`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept_request(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<i64>,
) -> Result<web::Json<FriendRequestView>, ApiError> {
    Ok(web::Json(
        friends::accept_request(&ctx, &user.0, path.into_inner()).await?,
    ))
}

/// Decline a request addressed to you.
#[utoipa::path(post, path = "/api/v1/friends/requests/{request_id}/decline", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    params(("request_id" = i64, Path, description = "Request id")),
    responses(
        (status = 200, body = FriendRequestView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn decline_request(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<i64>,
) -> Result<web::Json<FriendRequestView>, ApiError> {
    Ok(web::Json(
        friends::decline_request(&ctx, &user.0, path.into_inner()).await?,
    ))
}

/// End a friendship (either side may).
#[utoipa::path(delete, path = "/api/v1/friends/{user_id}", tag = "friends", security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, description = "The friend")),
    responses(
        (status = 204, description = "No longer friends"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not friends", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_friend(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    friends::remove_friend(&ctx, &user.0, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
