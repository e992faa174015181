//! Logging: human-readable lines in dev and test, JSON lines in prod. Request spans
//! carry a request id (tracing-actix-web); secrets and message bodies are never logged.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Version;
use chat_api::ProxyPolicy;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::{Config, Environment};

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if config.env == Environment::Prod {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// What replaces a secret query value in logs.
pub const REDACTED: &str = "REDACTED";

/// Query parameters carrying credentials: a parameter whose name (percent-decoded,
/// any case) contains one of these has its value replaced by [`REDACTED`]. `token` and
/// `ticket` are the WebSocket handshake's; the others catch what a client may add.
const SECRET_QUERY_NAMES: [&str; 4] = ["token", "ticket", "password", "secret"];

/// The request target (path and query) as logs may show it: the values of secret
/// query parameters ([`SECRET_QUERY_NAMES`]) replaced by [`REDACTED`], everything else
/// as sent. Borrows when there is nothing to hide.
pub fn redact_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    if !query.split('&').any(is_secret_pair) {
        return Cow::Borrowed(target);
    }
    let mut redacted = String::with_capacity(target.len());
    redacted.push_str(path);
    redacted.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            redacted.push('&');
        }
        if is_secret_pair(pair) {
            redacted.push_str(raw_name(pair));
            redacted.push('=');
            redacted.push_str(REDACTED);
        } else {
            redacted.push_str(pair);
        }
    }
    Cow::Owned(redacted)
}

fn raw_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

/// Compares the decoded name, as the query extractor sees it: `tok%65n=` is `token=`.
fn is_secret_pair(pair: &str) -> bool {
    let raw = raw_name(pair);
    let name = if raw.contains(['%', '+']) {
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .ok()
            .and_then(|pairs| pairs.into_iter().next())
            .map_or_else(|| raw.to_owned(), |(name, _)| name)
    } else {
        raw.to_owned()
    };
    let name = name.to_ascii_lowercase();
    SECRET_QUERY_NAMES
        .iter()
        .any(|secret| name.contains(secret))
}

/// When the request arrived, for the "request finished" line.
#[derive(Clone, Copy)]
struct Started(Instant);

/// The root span of every HTTP request: tracing-actix-web's fields, except that
/// `http.target` has its secret query values redacted ([`redact_target`]) — the
/// default span records the raw target, and every line logged during a request
/// (a WebSocket's whole life included) carries its span's fields. It also logs one
/// `request finished` line per request at debug level.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let method = request.method().as_str();
        let route = request.match_pattern();
        let route = route.as_deref().unwrap_or("default");
        let target = request
            .uri()
            .path_and_query()
            .map_or("", |target| target.as_str());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let connection = request.connection_info();
        // Forwarded headers are the client's own words unless a trusted proxy wrote them.
        let trust_proxy = request
            .app_data::<ProxyPolicy>()
            .is_some_and(|p| p.trust_forwarded_headers);
        let client_ip = if trust_proxy {
            connection.realip_remote_addr().unwrap_or("").to_owned()
        } else {
            request
                .peer_addr()
                .map(|addr| addr.ip().to_string())
                .unwrap_or_default()
        };
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.flavor = %flavor(request.version()),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %client_ip,
            http.user_agent = %user_agent,
            http.target = %redact_target(target),
            http.status_code = tracing::field::Empty,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
        // Called inside the request's span: the line carries its fields.
        match outcome {
            Ok(response) => {
                let elapsed_us = response
                    .request()
                    .extensions()
                    .get::<Started>()
                    .map(|started| {
                        u64::try_from(started.0.elapsed().as_micros()).unwrap_or(u64::MAX)
                    });
                tracing::debug!(
                    status = response.status().as_u16(),
                    elapsed_us,
                    "request finished"
                );
            }
            Err(err) => tracing::debug!(
                status = err.as_response_error().status_code().as_u16(),
                "request finished"
            ),
        }
    }
}

fn flavor(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted_and_the_rest_kept() {
        assert_eq!(redact_target("/ws"), "/ws");
        assert_eq!(redact_target("/ws?history=5"), "/ws?history=5");
        assert_eq!(
            redact_target("/ws/chats/1?token=abc.def&history=5"),
            "/ws/chats/1?token=REDACTED&history=5"
        );
        assert_eq!(redact_target("/ws?ticket=xyz"), "/ws?ticket=REDACTED");
        assert_eq!(
            redact_target("/x?a=1&access_token=t&Refresh_Token=u&password"),
            "/x?a=1&access_token=REDACTED&Refresh_Token=REDACTED&password=REDACTED"
        );
        // Encoded names are what the query extractor decodes them to.
        assert_eq!(redact_target("/ws?tok%65n=abc"), "/ws?tok%65n=REDACTED");
        assert_eq!(
            redact_target("/ws?tick%65t=abc&q=%ZZ"),
            "/ws?tick%65t=REDACTED&q=%ZZ"
        );
        assert_eq!(redact_target("/ws?token=a=b=c&&"), "/ws?token=REDACTED&&");
    }
}
