//! What operators watch, in one Prometheus registry per server (the `prometheus` crate;
//! no global recorder, so servers sharing a test process keep their own counts).
//!
//! Hot paths touch only atomics: counters and gauges are pre-resolved handles, and
//! labelled series are looked up once per request (HTTP) or per close (sockets). What
//! other parts already count (the writers, the history cache, the pool) is copied into
//! the registry when `/metrics` is scraped.

use std::time::{Duration, Instant};

use prometheus::{
    Counter, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::AppContext;

/// Upper bounds (seconds) of the HTTP latency buckets.
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds (seconds) of the delivery latency buckets (SPEC §7's targets are in
/// tens of milliseconds).
const DELIVERY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    /// `http_requests_total{method,route,status}`.
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{method,route}`.
    pub http_duration: HistogramVec,
    /// `http_requests_abandoned_total`: the client hung up; the request was finished.
    pub http_abandoned: IntCounter,
    /// `chat_ws_connections`: sockets open now.
    pub ws_connections: IntGauge,
    /// `chat_ws_opened_total`.
    pub ws_opened: IntCounter,
    /// `chat_ws_closed_total{code}`: by the close code the server sent (1000 when the
    /// client closed or vanished).
    pub ws_closed: IntCounterVec,
    /// `chat_events_delivered_total`: events queued to local sockets.
    pub events_delivered: IntCounter,
    /// `chat_delivery_latency_seconds`: from a message's acceptance to its event being
    /// queued on this instance's sockets (once per message and instance).
    pub delivery_latency: Histogram,
    /// `chat_bus_receive_latency_seconds`: from a message's acceptance to the hub's router
    /// taking its event from the bus (before routing; once per message and instance).
    pub bus_receive_latency: Histogram,
    /// `chat_hub_backlog_events`: bus events waiting for the hub's router when it takes
    /// one (how far routing runs behind the bus).
    pub hub_backlog: Histogram,
    /// `chat_ws_action_seconds`: how long a socket's action held up its reading (a send:
    /// until handed to the writer, its acknowledgement follows the commit without
    /// holding the socket; any other action: until answered).
    pub ws_action: Histogram,
    /// `chat_ws_outbox_wait_seconds`: how long the oldest frame queued for a socket waited
    /// for the connection to take it for writing (once per run of queued frames).
    pub ws_outbox_wait: Histogram,
    /// `chat_message_prepare_seconds`: from a send reaching the service to its being
    /// handed to the writer (budget, access check, validation, reply check).
    pub message_prepare: Histogram,
    /// `chat_message_queue_seconds`: how long a send waited for its writer's batch to
    /// start (from being handed to the writer).
    pub message_queue: Histogram,
    /// `chat_message_batch_size`: messages per committed batch.
    pub batch_size: Histogram,
    /// `chat_message_commit_duration_seconds`: one batch's transaction.
    pub commit_duration: Histogram,
    /// `chat_message_publish_duration_seconds`: publishing one committed batch.
    pub publish_duration: Histogram,
    /// `chat_message_answer_seconds`: from a batch's commit to its senders being answered
    /// (waiting behind earlier batches, then recording the chats' newest seqs).
    pub answer_delay: Histogram,
    /// `chat_bus_lagged_total`: bus messages this instance skipped because it fell
    /// `chat_bus_messages_received_total`: every bus message this instance received,
    /// whatever its kind (handled or skipped because the instance fell behind).
    pub bus_received: IntCounter,
    /// `chat_bus_messages_needed_total`: bus messages that reached at least one of this
    /// instance's sockets (the rest were received for nothing).
    pub bus_needed: IntCounter,
    /// `chat_bus_subscriptions`: broker subscriptions (channels or patterns) held now.
    bus_subscriptions: IntGauge,
    /// behind (its sockets were told to resynchronise).
    pub bus_lagged: IntCounter,
    /// `chat_bus_gaps_total`: event streams that may have lost events (broker
    /// reconnects, a chat's seq gap that did not fill).
    pub bus_gaps: IntCounter,
    uptime: Gauge,
    batches: IntCounter,
    failed_batches: IntCounter,
    stored: IntCounter,
    commit_seconds: Counter,
    publish_seconds: Counter,
    in_flight: IntGauge,
    history_hits: IntCounter,
    history_misses: IntCounter,
    history_bytes: IntGauge,
    history_chats: IntGauge,
    pool_connections: IntGaugeVec,
    pool_waiting: IntGauge,
    pool_timeouts: IntCounter,
    pool_wait_seconds: Counter,
    redis_up: Option<IntGauge>,
    redis_failures: Option<IntCounterVec>,
    /// One scrape at a time copies the totals in (each adds only what is new).
    refresh: tokio::sync::Mutex<()>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn seconds(registry: &Registry, name: &str, help: &str) -> prometheus::Result<Counter> {
    let c = Counter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Raises a counter to `total` (a total kept elsewhere).
fn raise(counter: &IntCounter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

fn raise_seconds(counter: &Counter, total: Duration) {
    let (now, total) = (counter.get(), total.as_secs_f64());
    if total > now {
        counter.inc_by(total - now);
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A registry with every series (`redis`: the Redis gauge is exported).
    pub fn new(redis: bool) -> prometheus::Result<Self> {
        let r = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status.",
            ),
            &["method", "route", "status"],
        )?;
        r.register(Box::new(http_requests.clone()))?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        r.register(Box::new(http_duration.clone()))?;
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "chat_ws_closed_total",
                "WebSockets closed, by the close code the server sent (1000: the client closed).",
            ),
            &["code"],
        )?;
        r.register(Box::new(ws_closed.clone()))?;
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "chat_delivery_latency_seconds",
                "From a message's acceptance to its event being queued on this instance's sockets.",
            )
            .buckets(DELIVERY_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(delivery_latency.clone()))?;
        let stage = |name: &str, help: &str| -> prometheus::Result<Histogram> {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(DELIVERY_BUCKETS.to_vec()),
            )?;
            r.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let bus_receive_latency = stage(
            "chat_bus_receive_latency_seconds",
            "From a message's acceptance to the hub's router taking its event from the bus.",
        )?;
        let hub_backlog = Histogram::with_opts(
            HistogramOpts::new(
                "chat_hub_backlog_events",
                "Bus events waiting for the hub's router when it takes one.",
            )
            .buckets(vec![0.0, 1.0, 10.0, 100.0, 1000.0, 4000.0, 16384.0]),
        )?;
        r.register(Box::new(hub_backlog.clone()))?;
        let ws_action = stage(
            "chat_ws_action_seconds",
            "How long a socket's action held up its reading (a send: until handed to the writer).",
        )?;
        let ws_outbox_wait = stage(
            "chat_ws_outbox_wait_seconds",
            "How long a socket's oldest queued frame waited for its connection to take it for writing.",
        )?;
        let message_prepare = stage(
            "chat_message_prepare_seconds",
            "From a send reaching the service to its being handed to the writer.",
        )?;
        let message_queue = stage(
            "chat_message_queue_seconds",
            "How long a send waited for its writer's batch to start.",
        )?;
        let commit_duration = stage(
            "chat_message_commit_duration_seconds",
            "Duration of one message batch's transaction.",
        )?;
        let publish_duration = stage(
            "chat_message_publish_duration_seconds",
            "Duration of publishing one committed batch.",
        )?;
        let answer_delay = stage(
            "chat_message_answer_seconds",
            "From a message batch's commit to its senders being answered.",
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("chat_message_batch_size", "Messages per committed batch.").buckets(
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                ],
            ),
        )?;
        r.register(Box::new(batch_size.clone()))?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "chat_db_pool_connections",
                "Database connections of the request pool, by state (in_use, idle).",
            ),
            &["state"],
        )?;
        r.register(Box::new(pool_connections.clone()))?;
        let uptime = Gauge::new("chat_uptime_seconds", "Seconds since the process started.")?;
        r.register(Box::new(uptime.clone()))?;
        let redis_up = if redis {
            Some(gauge(
                &r,
                "chat_redis_up",
                "1 when Redis answered a PING during this scrape, 0 otherwise.",
            )?)
        } else {
            None
        };
        let redis_failures = if redis {
            let failures = IntCounterVec::new(
                Opts::new(
                    "chat_redis_failures_total",
                    "Redis commands (cache, publishing, presence) without an answer, by how: \
                     timed_out (waited 500 ms), error. Cache reads fall back to the database.",
                ),
                &["kind"],
            )?;
            r.register(Box::new(failures.clone()))?;
            Some(failures)
        } else {
            None
        };
        Ok(Metrics {
            http_requests,
            http_duration,
            http_abandoned: counter(
                &r,
                "http_requests_abandoned_total",
                "Requests whose client hung up before the answer; each was finished anyway.",
            )?,
            ws_connections: gauge(&r, "chat_ws_connections", "WebSockets open now.")?,
            ws_opened: counter(&r, "chat_ws_opened_total", "WebSockets opened.")?,
            ws_closed,
            events_delivered: counter(
                &r,
                "chat_events_delivered_total",
                "Events queued to this instance's sockets (one per socket).",
            )?,
            delivery_latency,
            bus_receive_latency,
            hub_backlog,
            ws_action,
            ws_outbox_wait,
            message_prepare,
            message_queue,
            batch_size,
            commit_duration,
            publish_duration,
            answer_delay,
            bus_received: counter(
                &r,
                "chat_bus_messages_received_total",
                "Bus messages this instance received, whatever their kind.",
            )?,
            bus_needed: counter(
                &r,
                "chat_bus_messages_needed_total",
                "Bus messages that reached at least one socket of this instance.",
            )?,
            bus_subscriptions: gauge(
                &r,
                "chat_bus_subscriptions",
                "Broker subscriptions (channels or patterns) this instance holds now.",
            )?,
            bus_lagged: counter(
                &r,
                "chat_bus_lagged_total",
                "Bus messages skipped because this instance fell behind (sockets resynchronised).",
            )?,
            bus_gaps: counter(
                &r,
                "chat_bus_gaps_total",
                "Times events may have been lost: broker reconnects, unfilled seq gaps.",
            )?,
            uptime,
            batches: counter(
                &r,
                "chat_message_batches_total",
                "Message batches committed (one transaction each).",
            )?,
            failed_batches: counter(
                &r,
                "chat_message_batches_failed_total",
                "Message batches whose transaction failed; every sender in them got an error.",
            )?,
            stored: counter(
                &r,
                "chat_messages_stored_total",
                "Messages stored by the writers (resends of a client_id not counted).",
            )?,
            commit_seconds: seconds(
                &r,
                "chat_message_batch_seconds_total",
                "Time spent in message batch transactions.",
            )?,
            publish_seconds: seconds(
                &r,
                "chat_message_publish_seconds_total",
                "Time spent publishing committed batches.",
            )?,
            in_flight: gauge(
                &r,
                "chat_messages_in_flight",
                "Sends handed to the writers and not yet answered.",
            )?,
            history_hits: counter(
                &r,
                "chat_history_cache_hits_total",
                "History pages served from this process's memory.",
            )?,
            history_misses: counter(
                &r,
                "chat_history_cache_misses_total",
                "History pages read from the database.",
            )?,
            history_bytes: gauge(
                &r,
                "chat_history_cache_bytes",
                "Rendered history kept in memory (bytes, with bookkeeping).",
            )?,
            history_chats: gauge(
                &r,
                "chat_history_cache_chats",
                "Chats with history kept in memory.",
            )?,
            pool_connections,
            pool_waiting: gauge(
                &r,
                "chat_db_pool_waiting",
                "Requests waiting for a database connection now.",
            )?,
            pool_timeouts: counter(
                &r,
                "chat_db_pool_timeouts_total",
                "Requests that waited CHAT_DATABASE_TIMEOUT for a connection and got 503.",
            )?,
            pool_wait_seconds: seconds(
                &r,
                "chat_db_pool_wait_seconds_total",
                "Time requests spent waiting for a database connection.",
            )?,
            redis_up,
            redis_failures,
            registry: r,
            started: Instant::now(),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// Records a socket opened.
    pub fn socket_opened(&self) {
        self.ws_opened.inc();
        self.ws_connections.inc();
    }

    /// Records a socket closed with `code`.
    pub fn socket_closed(&self, code: u16) {
        self.ws_connections.dec();
        self.ws_closed.with_label_values(&[&code.to_string()]).inc();
    }
}

/// The Prometheus text exposition of `ctx`'s metrics, with the totals kept elsewhere
/// (writers, history cache, pool, Redis) copied in first.
pub async fn render(ctx: &AppContext) -> String {
    let m = &ctx.metrics;
    {
        let _turn = m.refresh.lock().await;
        m.uptime.set(m.started.elapsed().as_secs_f64());
        let w = ctx.writer.stats();
        raise(&m.batches, w.batches);
        raise(&m.failed_batches, w.failed_batches);
        raise(&m.stored, w.stored);
        raise_seconds(&m.commit_seconds, w.commit_time);
        raise_seconds(&m.publish_seconds, w.publish_time);
        m.in_flight.set(to_i64(ctx.writer.in_flight()));
        let h = ctx.history.stats();
        raise(&m.history_hits, h.hits);
        raise(&m.history_misses, h.misses);
        m.history_bytes.set(to_i64(h.bytes));
        m.history_chats.set(to_i64(h.chats));
        let p = ctx.store.db.stats();
        m.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(p.connections.saturating_sub(p.idle)));
        m.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(p.idle));
        m.pool_waiting.set(to_i64(p.waiting));
        raise(&m.pool_timeouts, p.timed_out);
        raise_seconds(&m.pool_wait_seconds, p.wait_time);
        m.bus_subscriptions
            .set(to_i64(ctx.bus.subscriptions() as u64));
        if let Some(failures) = &m.redis_failures {
            let f = ctx.store.cache.failures();
            raise(&failures.with_label_values(&["timed_out"]), f.timed_out);
            raise(&failures.with_label_values(&["error"]), f.errors);
        }
        if let Some(up) = &m.redis_up {
            up.set(i64::from(ctx.store.cache.ping().await.is_ok()));
        }
    }
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::error!(error = %err, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_registers_once_and_renders() -> prometheus::Result<()> {
        let m = Metrics::new(true)?;
        m.http_requests
            .with_label_values(&["GET", "/x", "200"])
            .inc_by(2);
        m.http_duration
            .with_label_values(&["GET", "/x"])
            .observe(0.003);
        m.socket_opened();
        m.socket_opened();
        m.socket_closed(1001);
        raise(&m.stored, 5);
        raise(&m.stored, 3);
        let mut out = Vec::new();
        TextEncoder::new().encode(&m.registry.gather(), &mut out)?;
        let text = String::from_utf8_lossy(&out);
        for line in [
            r#"http_requests_total{method="GET",route="/x",status="200"} 2"#,
            r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="0.005"} 1"#,
            "chat_ws_connections 1",
            "chat_ws_opened_total 2",
            r#"chat_ws_closed_total{code="1001"} 1"#,
            "chat_messages_stored_total 5",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        Ok(())
    }
}
