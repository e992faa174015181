//! The report: a human summary and one JSON line, plus the server's memory and CPU
//! read from `/proc/<pid>` when its pid is given.

use std::time::Duration;

use serde_json::{Value, json};

use crate::history::HistoryOutcome;
use crate::scenario::Outcome;

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time a process has used (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every architecture we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// Server-side figures measured around a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerUsage {
    /// RSS before any socket was opened, KiB.
    pub rss_before_kib: Option<u64>,
    /// RSS with every socket open, KiB.
    pub rss_connected_kib: Option<u64>,
    /// Server CPU use over the run, in cores (1.0 = one core busy).
    pub cpu_cores: Option<f64>,
}

fn per_second(count: u64, window: Duration) -> f64 {
    count as f64 / window.as_secs_f64().max(f64::EPSILON)
}

/// The JSON form of a run.
pub fn to_json(label: &str, outcome: &Outcome, usage: &ServerUsage) -> Value {
    let ms = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
    let per_socket = match (usage.rss_before_kib, usage.rss_connected_kib) {
        (Some(before), Some(after)) if outcome.connections > 0 => {
            Some((after.saturating_sub(before)) as f64 / outcome.connections as f64)
        }
        _ => None,
    };
    json!({
        "target": label,
        "connections": outcome.connections,
        "sent_per_s": per_second(outcome.sent, outcome.window),
        "stored_per_s": per_second(outcome.acked, outcome.window),
        "deliveries_per_s": per_second(outcome.delivered, outcome.window),
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": outcome.latency.max() as f64 / 1000.0},
        "delivered_total": outcome.delivered_total,
        "expected_total": outcome.expected_total,
        "lost": outcome.lost,
        "cut_off_by_drain_limit": outcome.cut_off,
        "unacknowledged_sends": outcome.unacked,
        "out_of_order": outcome.out_of_order,
        "errors": outcome.errors,
        "closed_by_server": outcome.closed_by_server,
        "server_rss_kib_per_socket": per_socket,
        "server_cpu_cores": usage.cpu_cores,
    })
}

/// A few human lines.
pub fn summary(report: &Value) -> String {
    let f = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
    };
    format!(
        "{target}: {conns} sockets | sent {sent}/s, stored {stored}/s, delivered {del}/s | latency p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms | lost {lost}, out of order {ooo}, unacked {unacked}, cut off {cut}, errors {err}, closed {closed} | server {mem} KiB/socket, {cpu} cores",
        target = report["target"].as_str().unwrap_or("?"),
        conns = report["connections"],
        sent = f(&report["sent_per_s"]),
        stored = f(&report["stored_per_s"]),
        del = f(&report["deliveries_per_s"]),
        p50 = f(&report["latency_ms"]["p50"]),
        p90 = f(&report["latency_ms"]["p90"]),
        p99 = f(&report["latency_ms"]["p99"]),
        max = f(&report["latency_ms"]["max"]),
        lost = report["lost"],
        ooo = report["out_of_order"],
        unacked = report["unacknowledged_sends"],
        cut = report["cut_off_by_drain_limit"],
        err = report["errors"],
        closed = report["closed_by_server"],
        mem = f(&report["server_rss_kib_per_socket"]),
        cpu = f(&report["server_cpu_cores"]),
    )
}

/// The JSON form of a `history` run.
pub fn history_json(label: &str, outcome: &HistoryOutcome, usage: &ServerUsage) -> Value {
    let ms = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "target": label,
        "connections": outcome.connections,
        "requests_per_s": per_second(outcome.ok, outcome.window),
        "requests": outcome.ok,
        "errors": outcome.errors,
        "mean_body_bytes": if outcome.ok > 0 { Some(outcome.body_bytes as f64 / outcome.ok as f64) } else { None },
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": outcome.latency.max() as f64 / 1000.0},
        "reconnects": outcome.connects.saturating_sub(outcome.connections as u64),
        "server_cpu_cores": usage.cpu_cores,
    })
}

/// A human line of a `history` run.
pub fn history_summary(report: &Value) -> String {
    let f = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
    };
    format!(
        "{target}: {conns} keep-alive clients | {rps} requests/s ({ok} ok), errors {err}, reconnects {rec} | latency p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms | {bytes} body bytes/answer | server {cpu} cores",
        target = report["target"].as_str().unwrap_or("?"),
        conns = report["connections"],
        rps = f(&report["requests_per_s"]),
        ok = report["requests"],
        err = report["errors"],
        rec = report["reconnects"],
        p50 = f(&report["latency_ms"]["p50"]),
        p90 = f(&report["latency_ms"]["p90"]),
        p99 = f(&report["latency_ms"]["p99"]),
        max = f(&report["latency_ms"]["max"]),
        bytes = f(&report["mean_body_bytes"]),
        cpu = f(&report["server_cpu_cores"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(cpu_time(pid).is_some());
        assert!(rss_kib(u32::MAX).is_none());
    }
}
