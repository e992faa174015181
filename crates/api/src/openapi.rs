//! The OpenAPI 3.1 document (generated from the handlers) and Swagger UI, both
//! served from the binary: the UI's assets are vendored at build time, nothing is
//! fetched from a CDN, so `/docs` works offline.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{admin, attachments, auth, chats, friends, groups, search, users, ws_ticket};
use crate::{Problem, ops};

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chat server",
        description = "Real-time chat server: accounts and JWT auth, friends, direct and group chats, \
            durable history, WebSockets. Errors are RFC 9457 problem details (`application/problem+json`) \
            with a stable `code`. Use **Authorize** with the OAuth2 password flow (your username and \
            password) or paste an access token into the bearer field."
    ),
    paths(
        auth::register_user,
        auth::login_user,
        auth::refresh_tokens,
        auth::logout_user,
        users::get_me,
        users::update_me,
        users::search_users,
        users::get_user,
        users::block_user,
        users::unblock_user,
        users::list_blocks,
        search::search_chat,
        search::search_my_chats,
        friends::list_friends,
        friends::list_requests,
        friends::send_request,
        friends::accept_request,
        friends::decline_request,
        friends::remove_friend,
        chats::chat::list_chats,
        chats::chat::create_group,
        chats::chat::open_direct,
        chats::chat::get_chat,
        chats::chat::update_chat,
        chats::chat::delete_chat,
        chats::chat::join_chat,
        chats::chat::leave_chat,
        chats::chat::mute_chat,
        chats::chat::unmute_chat,
        groups::discover_groups,
        chats::members::list_members,
        chats::members::add_member,
        chats::members::change_role,
        chats::members::remove_member,
        chats::messages::list_messages,
        chats::messages::send_message,
        chats::messages::edit_message,
        chats::messages::delete_message,
        chats::messages::add_reaction,
        chats::messages::remove_reaction,
        attachments::upload,
        attachments::download,
        chats::messages::mark_read,
        admin::list_users,
        admin::update_user,
        admin::list_chats,
        ws_ticket::create_ticket,
        ops::healthz,
        ops::readyz,
        ops::metrics,
    ),
    components(schemas(Problem)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Sign-up, log-in, token refresh and log-out"),
        (name = "users", description = "My account and the user directory"),
        (name = "friends", description = "Friends and friend requests"),
        (name = "chats", description = "Chat list, groups, direct chats, discovery"),
        (name = "members", description = "Group membership and roles"),
        (name = "messages", description = "History, sending, editing, deleting, read markers"),
        (name = "admin", description = "Site administration"),
        (name = "realtime", description = "WebSocket tickets (the protocol itself: docs/protocol.md)"),
        (name = "operations", description = "Health, readiness and metrics (outside /api/v1)"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to authenticate: a pasted bearer token, or the OAuth2
/// password flow against the login endpoint (which accepts the form it sends).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/v1/auth/login",
                Scopes::new(),
            ))])),
        );
    }
}

/// The document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url(OPENAPI_PATH, ApiDoc::openapi()))
        .service(web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/docs/"))
                .finish()
        })));
}
