//! The load generator against a real server and the bare baseline, small sizes: its
//! accounting must be right (no timing is asserted).

use std::time::Duration;

use chat_loadgen::history::{self, HistoryConfig, HistoryOutcome};
use chat_loadgen::scenario::{self, Config, Outcome, SendPlan, Spread};
use chat_test_support::{Backend, TestApp};

fn config(server: std::net::SocketAddr, baseline: bool) -> Config {
    Config {
        server,
        connections: 6,
        group_size: 3,
        plan: SendPlan::Steady { rate: 10.0 },
        senders: None,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        sources: Vec::new(),
        baseline,
        message_bytes: 64,
        run_id: chat_test_support::random_suffix(),
        drop_every: None,
        setup_concurrency: 4,
        drain_quiet: Duration::from_secs(1),
        direct: false,
        instances: Vec::new(),
        spread: Spread::Chat,
    }
}

/// One group of 8, 3 of them bursting 5 messages every 200 ms.
fn burst_config(server: std::net::SocketAddr, baseline: bool) -> Config {
    Config {
        connections: 8,
        group_size: 8,
        plan: SendPlan::Burst {
            size: 5,
            every: Duration::from_millis(200),
        },
        senders: Some(3),
        ..config(server, baseline)
    }
}

fn history_config(server: std::net::SocketAddr, baseline: bool) -> HistoryConfig {
    HistoryConfig {
        server,
        connections: 3,
        messages: 120,
        page: 50,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        sources: Vec::new(),
        baseline,
        message_bytes: 64,
        run_id: chat_test_support::random_suffix(),
        setup_concurrency: 4,
    }
}

fn assert_clean(outcome: &Outcome, connections: usize) {
    assert_eq!(outcome.connections, connections);
    assert!(outcome.sent > 0 && outcome.acked > 0, "{outcome:?}");
    assert_eq!(outcome.lost, 0, "{outcome:?}");
    assert_eq!(outcome.out_of_order, 0, "{outcome:?}");
    assert_eq!(
        outcome.cut_off, 0,
        "nothing left for the drain limit: {outcome:?}"
    );
    assert_eq!(outcome.errors, 0, "{outcome:?}");
    assert_eq!(
        outcome.delivered_total, outcome.expected_total,
        "every member got every message"
    );
    assert!(!outcome.latency.is_empty());
}

async fn bare() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    actix_web::rt::spawn(chat_loadgen::bare::run(listener));
    Ok(addr)
}

#[actix_web::test]
async fn groups_against_the_server_lose_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let outcome = scenario::run(config(addr, false), |_| {}).await?;
    assert_clean(&outcome, 6);
    // Every message is stored with its seq, as the sockets said.
    app.shutdown().await;
    Ok(())
}

/// Two instances of one deployment, each chat's members on one of them: nothing is
/// lost, and each instance's sockets needed what it received from the bus (it follows
/// only its own chats).
#[actix_web::test]
async fn groups_spread_over_two_instances_lose_nothing() -> anyhow::Result<()> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    let server = format!("127.0.0.1:{}", a.port).parse()?;
    let config = Config {
        connections: 12,
        instances: vec![format!("127.0.0.1:{}", b.port).parse()?],
        ..config(server, false)
    };
    let outcome = scenario::run(config, |_| {}).await?;
    assert_clean(&outcome, 12);
    for app in [&a, &b] {
        let received = app.metric("chat_bus_messages_received_total").await?;
        let needed = app.metric("chat_bus_messages_needed_total").await?;
        assert!(
            needed > 0.0 && needed <= received,
            "an instance holding chats' sockets: {needed} of {received} needed"
        );
    }
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

/// Pairs of friends on `/ws/direct/{peer}`, sending the seeds' `{"message": …}` frames.
fn direct_config(server: std::net::SocketAddr, baseline: bool) -> Config {
    Config {
        group_size: 2,
        direct: true,
        ..config(server, baseline)
    }
}

#[actix_web::test]
async fn direct_pairs_against_the_server_lose_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let config = direct_config(addr, false);
    let run_id = config.run_id.clone();
    let outcome = scenario::run(config, |_| {}).await?;
    assert_clean(&outcome, 6);
    // Each pair shares exactly one direct chat, which holds what they sent.
    for (a, b) in [(0, 1), (2, 3), (4, 5)] {
        let mut chats = Vec::new();
        for user in [a, b] {
            let session = app
                .login(&format!("lg{run_id}_{user}"), scenario::PASSWORD)
                .await?;
            let listed = app
                .get("/api/v1/chats", Some(&session.access_token))
                .await?;
            let items = listed.json["items"].as_array().cloned().unwrap_or_default();
            assert_eq!(items.len(), 1, "{}", listed.text);
            assert_eq!(items[0]["kind"], "direct");
            chats.push(items[0]["id"].clone());
        }
        assert_eq!(chats[0], chats[1], "both sides are in the same chat");
    }
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn direct_accounting_reports_a_dropped_message() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let mut dropping = direct_config(addr, false);
    dropping.drop_every = Some(5);
    let outcome = scenario::run(dropping, |_| {}).await?;
    assert!(
        outcome.lost > 0,
        "ignored messages must count as lost: {outcome:?}"
    );
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn groups_against_the_bare_baseline_lose_nothing() -> anyhow::Result<()> {
    let outcome = scenario::run(config(bare().await?, true), |_| {}).await?;
    assert_clean(&outcome, 6);
    Ok(())
}

#[actix_web::test]
async fn a_deliberately_dropped_message_is_reported_lost() -> anyhow::Result<()> {
    let mut dropping = config(bare().await?, true);
    dropping.drop_every = Some(5);
    let outcome = scenario::run(dropping, |_| {}).await?;
    assert!(
        outcome.lost > 0,
        "ignored messages must count as lost: {outcome:?}"
    );
    assert!(outcome.delivered_total < outcome.expected_total);
    Ok(())
}

#[actix_web::test]
async fn burst_against_the_server_delivers_everything_in_order() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let outcome = scenario::run(burst_config(addr, false), |_| {}).await?;
    assert_clean(&outcome, 8);
    // Only the three senders sent, whole bursts at a time.
    assert_eq!(outcome.expected_total % 8, 0, "{outcome:?}");
    assert_eq!((outcome.expected_total / 8) % 5, 0, "{outcome:?}");
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn burst_against_the_bare_baseline_delivers_everything_in_order() -> anyhow::Result<()> {
    let outcome = scenario::run(burst_config(bare().await?, true), |_| {}).await?;
    assert_clean(&outcome, 8);
    Ok(())
}

#[actix_web::test]
async fn burst_accounting_reports_a_dropped_message() -> anyhow::Result<()> {
    let mut dropping = burst_config(bare().await?, true);
    dropping.drop_every = Some(7);
    let outcome = scenario::run(dropping, |_| {}).await?;
    assert!(
        outcome.lost > 0,
        "ignored messages must count as lost: {outcome:?}"
    );
    assert!(outcome.delivered_total < outcome.expected_total);
    Ok(())
}

fn assert_served(outcome: &HistoryOutcome) {
    assert_eq!(outcome.connections, 3);
    assert!(outcome.ok > 0, "{outcome:?}");
    assert_eq!(outcome.errors, 0, "{outcome:?}");
    assert_eq!(
        outcome.latency.len(),
        outcome.ok,
        "one latency per answered request"
    );
    assert_eq!(outcome.connects, 3, "keep-alive: one connection per client");
    assert!(
        outcome.body_bytes > outcome.ok * 1000,
        "whole pages: {outcome:?}"
    );
}

#[actix_web::test]
async fn history_against_the_server_counts_requests() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let config = history_config(addr, false);
    let target = history::setup(&config).await?;
    assert_eq!(target.last_seq, 120, "every message stored");
    let outcome = history::run_clients(config, target, async |_| Ok(())).await?;
    assert_served(&outcome);
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn history_with_a_wrong_token_counts_errors_not_requests() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let config = history_config(addr, false);
    let mut target = history::setup(&config).await?;
    target.tokens = vec![Some("not-a-token".to_owned())];
    let outcome = history::run_clients(config, target, async |_| Ok(())).await?;
    assert_eq!(outcome.ok, 0, "{outcome:?}");
    assert!(outcome.errors > 0, "{outcome:?}");
    assert!(outcome.latency.is_empty());
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn history_against_the_bare_baseline_counts_requests() -> anyhow::Result<()> {
    let outcome = history::run(history_config(bare().await?, true), |_| {}).await?;
    assert_served(&outcome);
    Ok(())
}

/// Runs the built `chat-loadgen` with `args` and returns its final JSON line.
async fn loadgen(args: Vec<String>) -> anyhow::Result<serde_json::Value> {
    let output = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chat-loadgen"))
            .args(args)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chat-loadgen failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow::anyhow!("no output"))?;
    Ok(serde_json::from_str(last)?)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[actix_web::test]
async fn two_processes_merge_groups_counts_exactly() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let baseline = bare().await?;
    let server = format!("127.0.0.1:{}", app.port);
    let line = loadgen(strings(&[
        "groups",
        "--server",
        &server,
        "--baseline",
        &baseline.to_string(),
        "--connections",
        "12",
        "--group-size",
        "3",
        "--rate",
        "5",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--drain-quiet-ms",
        "1000",
        "--processes",
        "2",
    ]))
    .await?;
    assert_eq!(line["processes"], 2);
    for target in [&line["server"], &line["baseline"]] {
        // Both processes' sockets are counted (6 each: two whole groups apiece).
        assert_eq!(target["connections"], 12, "{target}");
        assert_eq!(target["lost"], 0, "{target}");
        assert_eq!(target["out_of_order"], 0, "{target}");
        assert_eq!(target["errors"], 0, "{target}");
        let delivered = target["delivered_total"].as_u64().unwrap_or(0);
        assert!(delivered > 0, "{target}");
        assert_eq!(
            target["delivered_total"], target["expected_total"],
            "{target}"
        );
        assert!(target["latency_ms"]["max"].as_f64().unwrap_or(0.0) > 0.0);
    }
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn two_processes_merge_history_counts() -> anyhow::Result<()> {
    let baseline = bare().await?;
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let server = format!("127.0.0.1:{}", app.port);
    let line = loadgen(strings(&[
        "history",
        "--server",
        &server,
        "--baseline",
        &baseline.to_string(),
        "--connections",
        "3",
        "--messages",
        "60",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--processes",
        "2",
    ]))
    .await?;
    for target in [&line["server"], &line["baseline"]] {
        assert_eq!(target["connections"], 3, "{target}");
        assert_eq!(target["errors"], 0, "{target}");
        assert!(target["requests"].as_u64().unwrap_or(0) > 0, "{target}");
        assert_eq!(target["reconnects"], 0, "{target}");
    }
    assert!(line["ratio"]["requests_per_s"].is_number());
    app.shutdown().await;
    Ok(())
}
