//! A three-master Redis Cluster of Debian's `redis-server`, on free loopback ports, for
//! one test: started by [`RedisCluster::start`], stopped (processes killed, files
//! removed) when the value is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, random_suffix};

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16_384;
/// How long the nodes get to agree on the cluster.
const FORMING: Duration = Duration::from_secs(30);

/// A running local Redis Cluster.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

struct Node {
    port: u16,
    child: Child,
}

impl RedisCluster {
    /// Starts three masters, gives each a third of the slots, introduces them to each
    /// other and waits until every node reports the cluster healthy. Tried three times:
    /// a free port picked here may be taken by another test before a node binds it.
    pub async fn start() -> anyhow::Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_once().await {
                Ok(cluster) => return Ok(cluster),
                Err(err) => failures.push(err.to_string()),
            }
        }
        anyhow::bail!("no redis cluster after three tries: {failures:?}")
    }

    async fn start_once() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("chat-redis-cluster-{}", random_suffix()));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        let mut buses = Vec::new();
        for _ in 0..3 {
            let (port, bus) = (free_port()?, free_port()?);
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("redis-server could not start: {e}"))?;
            cluster.nodes.push(Node { port, child });
            buses.push(bus);
        }
        let mut conns = Vec::new();
        for node in &cluster.nodes {
            conns.push(connect(node.port).await?);
        }
        let third = SLOTS / 3;
        for (i, conn) in conns.iter_mut().enumerate() {
            let index = u16::try_from(i)?;
            let first = index * third;
            let last = if i == 2 { SLOTS - 1 } else { first + third - 1 };
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async::<()>(conn)
                .await?;
        }
        for (node, bus) in cluster.nodes.iter().zip(&buses).skip(1) {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .arg(*bus)
                .query_async::<()>(&mut conns[0])
                .await?;
        }
        let deadline = tokio::time::Instant::now() + FORMING;
        'forming: loop {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the redis cluster did not form within {FORMING:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            for conn in &mut conns {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(conn).await?;
                if !(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")) {
                    continue 'forming;
                }
            }
            return Ok(cluster);
        }
    }

    /// `CHAT_REDIS_URL` for the cluster: every node, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Each node's answer to `command` as a count (an integer, or an array's length):
    /// how something is spread over the shards (`DBSIZE`, `PUBSUB SHARDCHANNELS`).
    pub async fn count_on_each_node(&self, command: &[&str]) -> anyhow::Result<Vec<i64>> {
        let (name, args) = command
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("no command"))?;
        let mut counts = Vec::new();
        for node in &self.nodes {
            let mut conn = connect(node.port).await?;
            let mut cmd = redis::cmd(name);
            for arg in args {
                cmd.arg(*arg);
            }
            counts.push(match cmd.query_async::<redis::Value>(&mut conn).await? {
                redis::Value::Int(n) => n,
                redis::Value::Array(items) => i64::try_from(items.len())?,
                other => anyhow::bail!("{command:?} answered {other:?}"),
            });
        }
        Ok(counts)
    }
}

/// A connection to a node that has just been started (it may take a moment to listen).
async fn connect(port: u16) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut last = None;
    for _ in 0..100 {
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => return Ok(conn),
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(anyhow::anyhow!(
        "redis-server on port {port} never listened: {last:?}"
    ))
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
