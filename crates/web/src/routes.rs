//! `GET /` (the page) and `GET /app/{version}/{path}` (its files).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chat_api::ApiError;

use crate::catalog::catalog;

/// Files of the current version never change under their URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page, and files asked for under another version (a page cached before a
/// deploy, or served by a replica still on the previous build): always revalidated.
const REVALIDATE: &str = "no-cache";

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index))
            .route(web::head().to(index)),
    )
    .service(
        web::resource("/app/{version}/{path:.+}")
            .route(web::get().to(asset))
            .route(web::head().to(asset)),
    );
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, as RFC 9110
/// asks for this header: a `W/` prefix is ignored).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn respond(
    req: &HttpRequest,
    body: &'static [u8],
    content_type: &'static str,
    etag: &str,
    cache: &'static str,
) -> HttpResponse {
    let mut response = if not_modified(req, etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().content_type(content_type).body(body)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The single page. Its Content-Security-Policy comes from the app's
/// `security_headers` middleware, like every HTML answer's.
async fn index(req: HttpRequest) -> HttpResponse {
    let catalog = catalog();
    respond(
        &req,
        &catalog.index,
        "text/html; charset=utf-8",
        &catalog.index_etag,
        REVALIDATE,
    )
}

/// A file of the client; an unknown one is a `404` problem like any unknown route.
async fn asset(
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (version, path) = path.into_inner();
    let catalog = catalog();
    let asset = catalog
        .files
        .get(path.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no such file of the web client: {path}")))?;
    let cache = if version == catalog.version {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    Ok(respond(
        &req,
        asset.body,
        asset.content_type,
        &asset.etag,
        cache,
    ))
}
