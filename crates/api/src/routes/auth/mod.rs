//! `/auth`: sign-up, log-in, refresh, log-out.

pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod refresh;
pub(crate) mod register;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/register").route(web::post().to(register::register_user)))
        .service(web::resource("/auth/login").route(web::post().to(login::login_user)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh::refresh_tokens)))
        .service(web::resource("/auth/logout").route(web::post().to(logout::logout_user)));
}
