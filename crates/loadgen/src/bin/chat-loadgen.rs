//! `chat-loadgen`: drives a chat server (and optionally the bare fan-out baseline) over
//! real sockets and reports. See docs/benchmarks.md.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_loadgen::report::{self, ServerUsage};
use chat_loadgen::scenario::{self, Config};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Open the sockets and hold them: memory per socket.
    Idle,
    /// Groups of sockets, each sending steadily: throughput, latency, loss.
    Groups,
}

/// Load generator for the chat server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Which scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The chat server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: SocketAddr,
    /// Its process id (for memory and CPU figures).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A `chat-bare-broadcast` to run the same scenario against, for the ratio.
    #[arg(long)]
    baseline: Option<SocketAddr>,
    /// Its process id.
    #[arg(long)]
    baseline_pid: Option<u32>,
    /// Sockets.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Members per group.
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Messages per second per socket (groups).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Source addresses to spread sockets over (127.0.0.2,127.0.0.3,…).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<IpAddr>,
    /// Approximate bytes per message.
    #[arg(long, default_value_t = 64)]
    message_bytes: usize,
    /// Concurrent set-up requests.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
}

async fn one(
    args: &Args,
    label: &str,
    server: SocketAddr,
    pid: Option<u32>,
    baseline: bool,
) -> anyhow::Result<serde_json::Value> {
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let (rate, duration, warmup) = match args.scenario {
        Scenario::Idle => (0.0, Duration::from_secs(args.duration), Duration::ZERO),
        Scenario::Groups => (
            args.rate,
            Duration::from_secs(args.duration),
            Duration::from_secs(args.warmup),
        ),
    };
    let config = Config {
        server,
        connections: args.connections,
        group_size: args.group_size,
        rate,
        duration,
        warmup,
        sources: args.sources.clone(),
        baseline,
        message_bytes: args.message_bytes,
        run_id,
        drop_every: None,
        setup_concurrency: args.setup_concurrency,
        drain_quiet: scenario::DRAIN_QUIET,
    };
    let mut usage = ServerUsage {
        rss_before_kib: pid.and_then(report::rss_kib),
        ..ServerUsage::default()
    };
    let cpu_before = pid.and_then(report::cpu_time);
    let started = std::time::Instant::now();
    let mut rss_connected = None;
    let outcome = scenario::run(config, |_| rss_connected = pid.and_then(report::rss_kib)).await?;
    usage.rss_connected_kib = rss_connected;
    if let (Some(before), Some(after)) = (cpu_before, pid.and_then(report::cpu_time)) {
        usage.cpu_cores = Some((after - before).as_secs_f64() / started.elapsed().as_secs_f64());
    }
    Ok(report::to_json(label, &outcome, &usage))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = one(&args, "server", args.server, args.server_pid, false).await?;
    println!("{}", report::summary(&server));
    let mut line = serde_json::json!({"scenario": format!("{:?}", args.scenario).to_lowercase(), "server": server});
    if let Some(baseline_addr) = args.baseline {
        let baseline = one(
            &args,
            "bare fan-out",
            baseline_addr,
            args.baseline_pid,
            true,
        )
        .await?;
        println!("{}", report::summary(&baseline));
        let ratio = |key: &str| match (server[key].as_f64(), baseline[key].as_f64()) {
            (Some(s), Some(b)) if b > 0.0 => serde_json::json!(s / b),
            _ => serde_json::Value::Null,
        };
        let ratios = serde_json::json!({
            "deliveries_per_s": ratio("deliveries_per_s"),
            "server_rss_kib_per_socket": ratio("server_rss_kib_per_socket"),
        });
        println!(
            "server / bare fan-out: deliveries {}, memory per socket {}",
            ratios["deliveries_per_s"], ratios["server_rss_kib_per_socket"]
        );
        line["baseline"] = baseline;
        line["ratio"] = ratios;
    }
    println!("{line}");
    Ok(())
}
