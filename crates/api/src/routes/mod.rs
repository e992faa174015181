//! `/api/v1` routes, one file per resource (`chats/`: a chat, its members, its messages).

pub(crate) mod admin;
pub(crate) mod attachments;
pub(crate) mod auth;
pub(crate) mod chats;
pub(crate) mod friends;
pub(crate) mod groups;
pub(crate) mod search;
pub(crate) mod users;
pub(crate) mod ws_ticket;

use actix_web::web;

/// Mounts every `/api/v1` route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(auth::configure)
        .configure(users::configure)
        .configure(friends::configure)
        .configure(groups::configure)
        .configure(chats::configure)
        .configure(search::configure)
        .configure(attachments::configure)
        .configure(admin::configure)
        .configure(ws_ticket::configure);
}
