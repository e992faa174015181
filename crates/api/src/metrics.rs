//! HTTP metrics: a counter per (method, route, status) and a latency histogram per
//! (method, route), in the server's registry ([`chat_services::metrics`]). Routes are the
//! matched pattern (`/api/v1/users/{user_id}`), never the raw path, so label cardinality
//! stays bounded.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use chat_services::AppContext;
use tracing_actix_web::RequestId;

/// Middleware: records each request in the server's metrics and returns the request id
/// (the one in the logs) as `x-request-id`, so a client report can be matched to them.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppContext>>()
        .map(|ctx| ctx.metrics.clone());
    // Clients may send any extension method; only the standard ones get a series.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_owned(),
        _ => "OTHER".to_owned(),
    };
    let mut res = next.call(req).await?;
    let request_id = res
        .request()
        .extensions()
        .get::<RequestId>()
        .map(ToString::to_string);
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = res.status();
        metrics
            .http_requests
            .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method.as_str(), route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
