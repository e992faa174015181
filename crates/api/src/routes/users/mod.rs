//! `/users`: my account and the user directory.

pub(crate) mod get;
pub(crate) mod me;
pub(crate) mod search;
pub(crate) mod update_me;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/me")
            .route(web::get().to(me::get_me))
            .route(web::patch().to(update_me::update_me)),
    )
    .service(web::resource("/users").route(web::get().to(search::search_users)))
    .service(web::resource("/users/{user_id}").route(web::get().to(get::get_user)));
}
