//! The load generator against a real server and the bare baseline, small sizes: its
//! accounting must be right (no timing is asserted).

use std::time::Duration;

use chat_loadgen::scenario::{self, Config, Outcome};
use chat_test_support::{Backend, TestApp};

fn config(server: std::net::SocketAddr, baseline: bool) -> Config {
    Config {
        server,
        connections: 6,
        group_size: 3,
        rate: 10.0,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        sources: Vec::new(),
        baseline,
        message_bytes: 64,
        run_id: chat_test_support::random_suffix(),
        drop_every: None,
        setup_concurrency: 4,
        drain_quiet: Duration::from_secs(1),
    }
}

fn assert_clean(outcome: &Outcome) {
    assert_eq!(outcome.connections, 6);
    assert!(outcome.sent > 0 && outcome.acked > 0, "{outcome:?}");
    assert_eq!(outcome.lost, 0, "{outcome:?}");
    assert_eq!(outcome.out_of_order, 0, "{outcome:?}");
    assert_eq!(outcome.errors, 0, "{outcome:?}");
    assert_eq!(
        outcome.delivered_total, outcome.expected_total,
        "every member got every message"
    );
    assert!(!outcome.latency.is_empty());
}

#[actix_web::test]
async fn groups_against_the_server_lose_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let addr = format!("127.0.0.1:{}", app.port).parse()?;
    let outcome = scenario::run(config(addr, false), |_| {}).await?;
    assert_clean(&outcome);
    // Every message is stored with its seq, as the sockets said.
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn groups_against_the_bare_baseline_lose_nothing() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    actix_web::rt::spawn(chat_loadgen::bare::run(listener));
    let outcome = scenario::run(config(addr, true), |_| {}).await?;
    assert_clean(&outcome);
    Ok(())
}

#[actix_web::test]
async fn a_deliberately_dropped_message_is_reported_lost() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    actix_web::rt::spawn(chat_loadgen::bare::run(listener));
    let mut dropping = config(addr, true);
    dropping.drop_every = Some(5);
    let outcome = scenario::run(dropping, |_| {}).await?;
    assert!(
        outcome.lost > 0,
        "ignored messages must count as lost: {outcome:?}"
    );
    assert!(outcome.delivered_total < outcome.expected_total);
    Ok(())
}
