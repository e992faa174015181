//! `/chats`: the chat list, groups and direct chats, members, messages, read markers.

pub(crate) mod chat;
pub(crate) mod members;
pub(crate) mod messages;

use actix_web::web;

/// One scope with a static prefix: the router compares `/chats` once instead of trying
/// every dynamic pattern of the API (each a regex match) in turn, and the hot routes
/// (messages) come first inside it.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/chats")
            .service(
                web::resource("/{chat_id}/messages")
                    .route(web::get().to(messages::list_messages))
                    .route(web::post().to(messages::send_message)),
            )
            // Before `/{chat_id}/messages/{message_id}`, which would take "search" for
            // an id.
            .service(
                web::resource("/{chat_id}/messages/search")
                    .route(web::get().to(super::search::search_chat)),
            )
            .service(
                web::resource("")
                    .route(web::get().to(chat::list_chats))
                    .route(web::post().to(chat::create_group)),
            )
            .service(web::resource("/direct").route(web::post().to(chat::open_direct)))
            .service(
                web::resource("/{chat_id}")
                    .route(web::get().to(chat::get_chat))
                    .route(web::patch().to(chat::update_chat))
                    .route(web::delete().to(chat::delete_chat)),
            )
            .service(web::resource("/{chat_id}/join").route(web::post().to(chat::join_chat)))
            .service(web::resource("/{chat_id}/leave").route(web::post().to(chat::leave_chat)))
            .service(
                web::resource("/{chat_id}/mute")
                    .route(web::put().to(chat::mute_chat))
                    .route(web::delete().to(chat::unmute_chat)),
            )
            .service(
                web::resource("/{chat_id}/members").route(web::get().to(members::list_members)),
            )
            .service(
                web::resource("/{chat_id}/members/{user_id}")
                    .route(web::put().to(members::add_member))
                    .route(web::patch().to(members::change_role))
                    .route(web::delete().to(members::remove_member)),
            )
            .service(
                web::resource("/{chat_id}/messages/{message_id}")
                    .route(web::patch().to(messages::edit_message))
                    .route(web::delete().to(messages::delete_message)),
            )
            .service(
                web::resource("/{chat_id}/messages/{message_id}/reactions/{emoji}")
                    .route(web::put().to(messages::add_reaction))
                    .route(web::delete().to(messages::remove_reaction)),
            )
            .service(
                web::resource("/{chat_id}/attachments")
                    .route(web::post().to(super::attachments::upload)),
            )
            .service(web::resource("/{chat_id}/read").route(web::post().to(messages::mark_read))),
    );
}
