//! HTTP layer: routes → extractors (auth) → one service call → JSON or problem+json.
//!
//! Handlers are thin; every rule lives in `chat-services`. Errors of every origin
//! (service errors, bad JSON, unknown routes, wrong methods, oversize bodies) leave
//! as RFC 9457 problem details.

mod detach;
mod errors;
mod extract;
pub mod metrics;
mod openapi;
mod ops;
mod problem;
mod routes;
mod security;

use actix_web::web;

pub use detach::{Finish, run_to_completion};
pub use errors::{error_handlers, path_config, payload_config, query_config};
pub use extract::{ApiJson, AuthUser, ClientAddr, ProxyPolicy, VerifiedToken};
pub use openapi::{ApiDoc, openapi_json};
pub use problem::{ApiError, Problem};
pub use security::{CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECS, HTML_CSP, cors, security_headers};

/// Largest JSON body accepted (SPEC §6).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every HTTP route: `/api/v1/*`, the OpenAPI document, Swagger UI and the
/// operations endpoints. The caller adds app data ([`chat_services::AppContext`],
/// [`ProxyPolicy`]) and the middleware.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(query_config())
        .app_data(path_config())
        .app_data(payload_config())
        .service(web::scope("/api/v1").configure(routes::configure))
        .configure(openapi::configure)
        .configure(ops::configure);
}

/// The answer for paths no route matches (use as the app's default service).
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}
