//! HTTP metrics in the Prometheus text format, without a metrics framework: a
//! counter per (method, route, status) and a latency histogram per (method, route).
//! Routes are the matched pattern (`/api/v1/users/{user_id}`), never the raw path,
//! so label cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use chat_services::history_cache::HistoryCacheStats;
use chat_services::writer::WriterStats;
use tracing_actix_web::RequestId;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Series {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
}

/// The metrics registry of one process.
pub struct Metrics {
    series: Mutex<Series>,
    started: Instant,
    abandoned: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            series: Mutex::new(Series::default()),
            started: Instant::now(),
            abandoned: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // Every update is complete before the lock is released: a poisoned lock is usable.
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *series
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let histogram = series
            .latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// Counts a request its client hung up on before the answer (finished anyway, see
    /// [`crate::run_to_completion`]).
    pub fn abandoned(&self) {
        self.abandoned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        unlabelled(
            &mut out,
            "chat_uptime_seconds",
            "gauge",
            "Seconds since the process started.",
            format!("{:.3}", self.started.elapsed().as_secs_f64()),
        );
        unlabelled(
            &mut out,
            "http_requests_abandoned_total",
            "counter",
            "Requests whose client hung up before the answer; each was finished anyway.",
            self.abandoned
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for ((method, route, status), count) in &series.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds HTTP request latency by method and route."
        );
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        for ((method, route), histogram) in &series.latency {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        out
    }
}

/// One metric without labels: its `HELP` and `TYPE` lines and its value.
/// Appends the message writers' totals (group commit: batches, messages, time).
pub fn render_writer(out: &mut String, stats: WriterStats) {
    let series = [
        (
            "chat_message_batches_total",
            "Message batches committed (one transaction each).",
            stats.batches.to_string(),
        ),
        (
            "chat_message_batches_failed_total",
            "Message batches whose transaction failed; every sender in them got an error.",
            stats.failed_batches.to_string(),
        ),
        (
            "chat_messages_stored_total",
            "Messages stored by the writers (resends of a client_id not counted).",
            stats.stored.to_string(),
        ),
        (
            "chat_message_batch_seconds_total",
            "Time spent in message batch transactions.",
            format!("{:.6}", stats.commit_time.as_secs_f64()),
        ),
        (
            "chat_message_publish_seconds_total",
            "Time spent publishing committed batches.",
            format!("{:.6}", stats.publish_time.as_secs_f64()),
        ),
    ];
    for (name, help, value) in series {
        unlabelled(out, name, "counter", help, value);
    }
}

/// Appends the history cache's series (Prometheus text format).
pub fn render_history_cache(out: &mut String, stats: HistoryCacheStats) {
    let series = [
        (
            "chat_history_cache_hits_total",
            "counter",
            "History pages served from this process's memory.",
            stats.hits,
        ),
        (
            "chat_history_cache_misses_total",
            "counter",
            "History pages read from the database.",
            stats.misses,
        ),
        (
            "chat_history_cache_bytes",
            "gauge",
            "Rendered history kept in memory (bytes, with bookkeeping).",
            stats.bytes,
        ),
        (
            "chat_history_cache_chats",
            "gauge",
            "Chats with history kept in memory.",
            stats.chats,
        ),
    ];
    for (name, kind, help, value) in series {
        unlabelled(out, name, kind, help, value.to_string());
    }
}

fn unlabelled(out: &mut String, name: &str, kind: &str, help: &str, value: String) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Middleware: records each request in [`Metrics`] and returns the request id
/// (the one in the logs) as `x-request-id`, so a client report can be matched to them.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
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
        metrics.observe(&method, &route, res.status().as_u16(), started.elapsed());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::new();
        metrics.observe("GET", "/x", 200, Duration::from_millis(3));
        metrics.observe("GET", "/x", 200, Duration::from_millis(30));
        metrics.observe("GET", "/x", 404, Duration::from_millis(1));
        let text = metrics.render();
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 2"));
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/x\",status=\"404\"} 1"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"0.005\"} 2"
        ));
        assert!(
            text.contains("http_request_duration_seconds_count{method=\"GET\",route=\"/x\"} 3")
        );
    }
}
