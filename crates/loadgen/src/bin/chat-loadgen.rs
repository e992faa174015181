//! `chat-loadgen`: drives a chat server (and optionally the bare fan-out baseline) over
//! real sockets and reports. See docs/benchmarks.md.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_loadgen::history::{self, HistoryConfig, HistoryOutcome, Target};
use chat_loadgen::report::{self, ServerUsage};
use chat_loadgen::scenario::{self, Config, Member, Outcome, SendPlan, Spread};
use chat_loadgen::shard::{self, ChildShard, ShardId};
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Open the sockets and hold them: memory per socket.
    Idle,
    /// Groups of sockets, each sending steadily: throughput, latency, loss.
    Groups,
    /// One big group (--connections members), --senders of them sending --burst
    /// messages back to back every --burst-interval-ms: latency, loss, order.
    Burst,
    /// Keep-alive HTTP clients reading history pages: requests/s, latency, errors.
    History,
    /// Pairs of friends, each socket on `/ws/direct/{the other's id}` sending the seeds'
    /// `{"message": …}` frames steadily at --rate: throughput, latency, loss.
    Direct,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Groups => "groups",
            Scenario::Burst => "burst",
            Scenario::History => "history",
            Scenario::Direct => "direct",
        }
    }
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
    /// Sockets (idle, groups: default 100; burst: the group's size, default 1000) or
    /// keep-alive HTTP clients (history: default 32).
    #[arg(long)]
    connections: Option<usize>,
    /// Members per group (idle, groups).
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Messages per second per socket (groups, direct).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Members of the group that send (burst).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages each sender sends back to back per burst (burst).
    #[arg(long, default_value_t = 20)]
    burst: u32,
    /// Milliseconds between bursts (burst).
    #[arg(long, default_value_t = 1000)]
    burst_interval_ms: u64,
    /// Messages stored before the run (history).
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// `limit` of each history page (history).
    #[arg(long, default_value_t = 50)]
    page: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds (not idle).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Source addresses to spread sockets over (127.0.0.2,127.0.0.3,…).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<IpAddr>,
    /// More instances of the server's deployment (same database and Redis): sockets
    /// spread over `--server` and these (`--spread`); set-up goes to `--server`.
    #[arg(long, value_delimiter = ',')]
    instances: Vec<SocketAddr>,
    /// How sockets spread over the instances: `chat` (a chat's members on one
    /// instance) or `member` (every instance has members of every chat).
    #[arg(long, value_enum, default_value = "chat")]
    spread: Spread,
    /// Approximate bytes per message.
    #[arg(long, default_value_t = 64)]
    message_bytes: usize,
    /// Concurrent set-up requests.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// After the senders stop, receivers wait this long past their last frame.
    #[arg(long, default_value_t = 8000)]
    drain_quiet_ms: u64,
    /// Load-generator processes (each opens its share of the sockets; a process may
    /// hold at most 20 000 open files here). Not for burst (one group, one process).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Fail (exit status 1) when the server's memory per socket is above this many KiB:
    /// the regression check of SPEC §7's 12 KiB per idle socket (`make bench`).
    #[arg(long)]
    max_kib_per_socket: Option<f64>,
    /// Internal: this process is shard i/N of a run started with --processes.
    #[arg(long, hide = true, requires = "shard_file")]
    shard: Option<ShardId>,
    /// Internal: the shard's set-up data.
    #[arg(long, hide = true)]
    shard_file: Option<PathBuf>,
}

/// What a child process runs (the contents of its shard file).
#[derive(Debug, Serialize, Deserialize)]
enum ShardJob {
    Sockets {
        config: Config,
        members: Vec<Member>,
    },
    History {
        config: HistoryConfig,
        target: Target,
    },
}

impl Args {
    fn connections(&self) -> usize {
        self.connections.unwrap_or(match self.scenario {
            Scenario::Idle | Scenario::Groups | Scenario::Direct => 100,
            Scenario::Burst => 1000,
            Scenario::History => 32,
        })
    }

    fn sockets_config(&self, server: SocketAddr, baseline: bool, run_id: String) -> Config {
        let connections = self.connections();
        let (plan, group_size, senders, warmup) = match self.scenario {
            Scenario::Idle | Scenario::History => {
                (SendPlan::Idle, self.group_size, None, Duration::ZERO)
            }
            Scenario::Groups => (
                SendPlan::Steady { rate: self.rate },
                self.group_size,
                None,
                Duration::from_secs(self.warmup),
            ),
            Scenario::Direct => (
                SendPlan::Steady { rate: self.rate },
                2,
                None,
                Duration::from_secs(self.warmup),
            ),
            Scenario::Burst => (
                SendPlan::Burst {
                    size: self.burst,
                    every: Duration::from_millis(self.burst_interval_ms),
                },
                connections,
                Some(self.senders),
                Duration::from_secs(self.warmup),
            ),
        };
        Config {
            server,
            connections,
            group_size,
            plan,
            senders,
            duration: Duration::from_secs(self.duration),
            warmup,
            sources: self.sources.clone(),
            baseline,
            message_bytes: self.message_bytes,
            run_id,
            drop_every: None,
            setup_concurrency: self.setup_concurrency,
            drain_quiet: Duration::from_millis(self.drain_quiet_ms),
            direct: self.scenario == Scenario::Direct,
            // The bare fan-out is one process.
            instances: if baseline {
                Vec::new()
            } else {
                self.instances.clone()
            },
            spread: self.spread,
        }
    }

    fn history_config(&self, server: SocketAddr, baseline: bool, run_id: String) -> HistoryConfig {
        HistoryConfig {
            server,
            connections: self.connections(),
            messages: self.messages,
            page: self.page,
            duration: Duration::from_secs(self.duration),
            warmup: Duration::from_secs(self.warmup),
            sources: self.sources.clone(),
            baseline,
            message_bytes: self.message_bytes,
            run_id,
            setup_concurrency: self.setup_concurrency,
        }
    }
}

/// Starts shards 1..N (shard 0 is this process) with their jobs.
fn spawn_children(
    args: &Args,
    run_id: &str,
    label: &str,
    jobs: Vec<ShardJob>,
) -> anyhow::Result<Vec<ChildShard>> {
    let exe = std::env::current_exe()?;
    let count = jobs.len() + 1;
    let target = label.replace(' ', "-");
    jobs.into_iter()
        .enumerate()
        .map(|(i, job)| {
            let file = shard::shard_file_path(run_id, &target, i + 1);
            shard::write_shard_file(&file, &job)?;
            ChildShard::spawn(
                &exe,
                args.scenario.name(),
                ShardId {
                    index: i + 1,
                    count,
                },
                file,
            )
        })
        .collect()
}

/// Once this process's share is connected: waits for every child's `connected`, reads
/// the server's memory, and lets every child go.
async fn all_connected(
    children: &mut [ChildShard],
    pid: Option<u32>,
    rss: &mut Option<u64>,
) -> anyhow::Result<()> {
    for child in children.iter_mut() {
        child.connected().await?;
    }
    *rss = pid.and_then(report::rss_kib);
    for child in children.iter_mut() {
        child.go().await?;
    }
    Ok(())
}

async fn run_sockets(
    args: &Args,
    config: Config,
    label: &str,
    pid: Option<u32>,
    usage: &mut ServerUsage,
) -> anyhow::Result<Outcome> {
    let run_id = config.run_id.clone();
    let members = scenario::setup(&config).await?;
    let mut shards = shard::split_by_chat(members, args.processes).into_iter();
    let local = shards.next().unwrap_or_default();
    let jobs = shards
        .map(|members| ShardJob::Sockets {
            config: config.clone(),
            members,
        })
        .collect();
    let mut children = spawn_children(args, &run_id, label, jobs)?;
    let mut rss = None;
    let mut outcome = scenario::run_members(config, local, async |_| {
        all_connected(&mut children, pid, &mut rss).await
    })
    .await?;
    usage.rss_connected_kib = rss;
    for child in children {
        outcome.merge(&child.outcome::<Outcome>().await?)?;
    }
    Ok(outcome)
}

async fn run_history(
    args: &Args,
    config: HistoryConfig,
    label: &str,
    pid: Option<u32>,
    cpu: &mut Option<(Duration, Instant)>,
) -> anyhow::Result<HistoryOutcome> {
    let run_id = config.run_id.clone();
    let target = history::setup(&config).await?;
    let mut shares = shard::share(config.connections, args.processes).into_iter();
    let mut local = config.clone();
    local.connections = shares.next().unwrap_or(0);
    let jobs = shares
        .map(|connections| ShardJob::History {
            config: HistoryConfig {
                connections,
                ..config.clone()
            },
            target: target.clone(),
        })
        .collect();
    let mut children = spawn_children(args, &run_id, label, jobs)?;
    let mut rss = None;
    let mut outcome = history::run_clients(local, target, async |_| {
        all_connected(&mut children, pid, &mut rss).await?;
        // Server CPU over the load only (the set-up stored the messages).
        *cpu = pid.and_then(report::cpu_time).map(|t| (t, Instant::now()));
        Ok(())
    })
    .await?;
    for child in children {
        outcome.merge(&child.outcome::<HistoryOutcome>().await?)?;
    }
    Ok(outcome)
}

async fn one(
    args: &Args,
    label: &str,
    server: SocketAddr,
    pid: Option<u32>,
    baseline: bool,
) -> anyhow::Result<Value> {
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let mut usage = ServerUsage {
        rss_before_kib: pid.and_then(report::rss_kib),
        ..ServerUsage::default()
    };
    let mut cpu = pid.and_then(report::cpu_time).map(|t| (t, Instant::now()));
    let report = if args.scenario == Scenario::History {
        let config = args.history_config(server, baseline, run_id);
        let outcome = run_history(args, config, label, pid, &mut cpu).await?;
        cpu_cores(&mut usage, pid, cpu);
        report::history_json(label, &outcome, &usage)
    } else {
        let config = args.sockets_config(server, baseline, run_id);
        let outcome = run_sockets(args, config, label, pid, &mut usage).await?;
        cpu_cores(&mut usage, pid, cpu);
        report::to_json(label, &outcome, &usage)
    };
    Ok(report)
}

fn cpu_cores(usage: &mut ServerUsage, pid: Option<u32>, before: Option<(Duration, Instant)>) {
    if let (Some((before, since)), Some(after)) = (before, pid.and_then(report::cpu_time)) {
        usage.cpu_cores =
            Some((after.saturating_sub(before)).as_secs_f64() / since.elapsed().as_secs_f64());
    }
}

/// A child process: runs its shard and reports over stdout (see `chat_loadgen::shard`).
async fn child(file: &std::path::Path) -> anyhow::Result<()> {
    match shard::read_shard_file::<ShardJob>(file)? {
        ShardJob::Sockets { config, members } => {
            let outcome =
                scenario::run_members(config, members, async |n| shard::child_connected(n).await)
                    .await?;
            shard::child_outcome(&outcome).await
        }
        ShardJob::History { config, target } => {
            let outcome =
                history::run_clients(config, target, async |n| shard::child_connected(n).await)
                    .await?;
            shard::child_outcome(&outcome).await
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(_), Some(file)) = (args.shard, &args.shard_file) {
        return child(file).await;
    }
    anyhow::ensure!(args.processes >= 1, "--processes must be at least 1");
    anyhow::ensure!(
        args.processes == 1 || args.scenario != Scenario::Burst,
        "burst runs its one group in one process: use --processes 1"
    );
    let history = args.scenario == Scenario::History;
    let summary = if history {
        report::history_summary
    } else {
        report::summary
    };
    let server = one(&args, "server", args.server, args.server_pid, false).await?;
    println!("{}", summary(&server));
    let mut line = json!({
        "scenario": args.scenario.name(),
        "processes": args.processes,
        "server": server,
    });
    if let Some(baseline_addr) = args.baseline {
        let baseline = one(
            &args,
            "bare fan-out",
            baseline_addr,
            args.baseline_pid,
            true,
        )
        .await?;
        println!("{}", summary(&baseline));
        let ratio = |key: &str| match (server[key].as_f64(), baseline[key].as_f64()) {
            (Some(s), Some(b)) if b > 0.0 => json!(s / b),
            _ => Value::Null,
        };
        let ratios = if history {
            let ratios = json!({"requests_per_s": ratio("requests_per_s")});
            println!(
                "server / bare HTTP: requests/s {}",
                ratios["requests_per_s"]
            );
            ratios
        } else {
            let ratios = json!({
                "deliveries_per_s": ratio("deliveries_per_s"),
                "server_rss_kib_per_socket": ratio("server_rss_kib_per_socket"),
            });
            println!(
                "server / bare fan-out: deliveries {}, memory per socket {}",
                ratios["deliveries_per_s"], ratios["server_rss_kib_per_socket"]
            );
            ratios
        };
        line["baseline"] = baseline;
        line["ratio"] = ratios;
    }
    println!("{line}");
    if let Some(max) = args.max_kib_per_socket {
        check_memory(&server, max)?;
    }
    Ok(())
}

/// The memory budget of `--max-kib-per-socket`: a run that cannot measure it fails too.
fn check_memory(server: &Value, max_kib: f64) -> anyhow::Result<()> {
    let per_socket = server["server_rss_kib_per_socket"]
        .as_f64()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--max-kib-per-socket: the server's memory was not measured (--server-pid)"
            )
        })?;
    anyhow::ensure!(
        per_socket <= max_kib,
        "memory per socket regressed: {per_socket:.1} KiB > {max_kib} KiB (--max-kib-per-socket)"
    );
    println!("memory per socket {per_socket:.1} KiB: within {max_kib} KiB");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_fails_a_run_above_it_or_without_a_measure() {
        let run = |kib: Value| json!({"server_rss_kib_per_socket": kib});
        assert!(check_memory(&run(json!(10.1)), 12.0).is_ok());
        assert!(check_memory(&run(json!(12.0)), 12.0).is_ok());
        let over = check_memory(&run(json!(12.4)), 12.0);
        assert!(over.is_err_and(|e| e.to_string().contains("regressed: 12.4 KiB")));
        assert!(check_memory(&run(Value::Null), 12.0).is_err());
    }
}
