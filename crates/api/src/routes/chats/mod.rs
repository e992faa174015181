//! `/chats`: the chat list, groups and direct chats, members, messages, read markers.

pub(crate) mod chat;
pub(crate) mod members;
pub(crate) mod messages;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/chats")
            .route(web::get().to(chat::list_chats))
            .route(web::post().to(chat::create_group)),
    )
    .service(web::resource("/chats/direct").route(web::post().to(chat::open_direct)))
    .service(
        web::resource("/chats/{chat_id}")
            .route(web::get().to(chat::get_chat))
            .route(web::patch().to(chat::update_chat))
            .route(web::delete().to(chat::delete_chat)),
    )
    .service(web::resource("/chats/{chat_id}/join").route(web::post().to(chat::join_chat)))
    .service(web::resource("/chats/{chat_id}/leave").route(web::post().to(chat::leave_chat)))
    .service(web::resource("/chats/{chat_id}/members").route(web::get().to(members::list_members)))
    .service(
        web::resource("/chats/{chat_id}/members/{user_id}")
            .route(web::put().to(members::add_member))
            .route(web::patch().to(members::change_role))
            .route(web::delete().to(members::remove_member)),
    )
    .service(
        web::resource("/chats/{chat_id}/messages")
            .route(web::get().to(messages::list_messages))
            .route(web::post().to(messages::send_message)),
    )
    .service(
        web::resource("/chats/{chat_id}/messages/{message_id}")
            .route(web::patch().to(messages::edit_message))
            .route(web::delete().to(messages::delete_message)),
    )
    .service(web::resource("/chats/{chat_id}/read").route(web::post().to(messages::mark_read)));
}
