//! What browsers are told: which other origins may call the API (CORS, from
//! `CHAT_ALLOWED_ORIGINS`), never to guess content types (`nosniff`, every answer), and
//! what the HTML the server serves may load (a Content-Security-Policy).

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// How long a browser may reuse a preflight answer (Chromium caps it at 2 hours).
pub const CORS_MAX_AGE_SECS: usize = 3600;

/// The policy of every HTML page the server serves (Swagger UI at `/docs/`). Its scripts
/// are all files of our own (the initializer too, no inline script), so `script-src`
/// stays `'self'`. Swagger UI's React components and its Markdown rendering set inline
/// styles, and its stylesheet draws icons from `data:` SVGs: both are allowed, neither
/// can run code. Response previews of "Try it out" use `blob:` images. Nothing may
/// frame the page.
pub const HTML_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// CORS for browser clients on other origins: `allowed_origins` are full origins
/// (`https://chat.example.com`, compared case-insensitively) or `*` for any. An allowed
/// origin gets `Access-Control-Allow-Origin` echoing it (with `Vary: Origin`) on
/// preflights and actual requests; any other origin gets no CORS headers, so its
/// browser keeps the answer from it. Empty: same origin only. No credentials: the API
/// authenticates with bearer tokens, never cookies.
pub fn cors(allowed_origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(CORS_MAX_AGE_SECS);
    if allowed_origins.iter().any(|origin| origin == "*") {
        // Echoes the request's origin rather than sending `*`.
        return cors.allow_any_origin();
    }
    let allowed = allowed_origins.to_vec();
    cors.allowed_origin_fn(move |origin, _| {
        origin
            .to_str()
            .is_ok_and(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)))
    })
}

/// Response headers an allowed origin's page may read besides the safelisted ones: how
/// long to back off after a 429, and the request id to quote.
pub const CORS_EXPOSED_HEADERS: &str = "retry-after, x-request-id";

/// Middleware: `X-Content-Type-Options: nosniff` on every answer (a browser must not
/// run a JSON body as a script), [`HTML_CSP`] on HTML answers that set no policy of
/// their own, and [`CORS_EXPOSED_HEADERS`] on answers to an allowed origin (only to
/// those: actix-cors would send its expose list to every origin).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..9)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/html"))
        });
    if headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSED_HEADERS),
        );
    }
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HTML_CSP),
        );
    }
    Ok(res)
}
