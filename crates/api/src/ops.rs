//! Operations endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{HttpResponse, web};
use chat_services::AppContext;
use serde::Serialize;
use utoipa::ToSchema;

/// Readiness of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `unavailable`, or `draining` (the process is stopping: send it no
    /// more work).
    pub status: &'static str,
    /// `ok`, or what failed.
    pub database: String,
    /// `ok` (in-process cache, or Redis reachable), or what failed.
    pub cache: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database (and Redis, when configured) answer.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down, or the process is stopping", body = Readiness),
    )
)]
pub async fn readyz(ctx: web::Data<AppContext>) -> HttpResponse {
    let now = chat_services::lifecycle::readiness(&ctx).await;
    let ready = now.ready();
    let body = Readiness {
        status: match (ready, now.draining) {
            (true, _) => "ready",
            (false, true) => "draining",
            (false, false) => "unavailable",
        },
        database: now.database.err().unwrap_or_else(|| "ok".to_owned()),
        cache: now.cache.err().unwrap_or_else(|| "ok".to_owned()),
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition of request counts and latencies.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(ctx: web::Data<AppContext>) -> HttpResponse {
    let text = chat_services::metrics::render(&ctx).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}
