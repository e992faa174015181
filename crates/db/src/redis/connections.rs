//! Redis connections: one multiplexed connection per thread that talks to Redis.
//!
//! Not a pool, for two measured reasons (docs/benchmarks.md, 2026-12-03 fourth
//! session):
//! - deadpool-redis checks every pooled connection out with an `UNWATCH` + `PING`
//!   round trip — two round trips per cache read — and a pooled connection serves one
//!   caller at a time. A multiplexed connection serves every concurrent caller of its
//!   thread at once, their commands pipelined over one socket.
//! - A connection's I/O is driven by a task on the runtime that opened it. Shared by
//!   actix's single-threaded workers, a command issued on one worker waited for
//!   another, busy worker to get round to that task. Each thread opening its own keeps
//!   a worker's round trips on that worker (the background runtime's threads, which
//!   share their tasks, each have one too).
//!
//! A connection that fails in a way that leaves it unusable (closed socket, I/O error,
//! timeout) is forgotten, and that thread's next command opens a new one.
//!
//! A comma-separated list of URLs means a Redis Cluster: each thread's connection is
//! then a cluster connection (itself multiplexed per node), which routes every command
//! by its key's slot. Commands that take several keys must keep them in one slot unless
//! the client splits them (it does for `MGET` and `DEL`); pipelines must too.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::OnceCell;

use crate::cache::{BackendFailures, CacheError};

/// This thread's connection, opened by the first command that needs it (concurrent
/// first commands wait for the same connect).
type Slot = Arc<OnceCell<RedisConn>>;

/// One thread's connection: to a single Redis, or to a cluster.
#[derive(Clone)]
pub enum RedisConn {
    /// A single Redis server.
    Single(MultiplexedConnection),
    /// A Redis Cluster; commands are routed by slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where the connections go.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server.
    Single(Client),
    /// A cluster, reached through any of its nodes.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// A single URL is one server; a comma-separated list is a cluster's nodes.
    pub fn parse(url: &str) -> Result<Self, String> {
        let nodes: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        match nodes.as_slice() {
            [] => Err("no Redis URL".to_owned()),
            [one] => Client::open(one.as_str())
                .map(RedisTarget::Single)
                .map_err(|e| e.to_string()),
            _ => {
                // Checked now, so a typo fails at start rather than at first use.
                ClusterClient::new(nodes.iter().map(String::as_str)).map_err(|e| e.to_string())?;
                Ok(RedisTarget::Cluster(nodes))
            }
        }
    }

    /// A cluster client for the nodes, with `timeout` on connects and answers.
    /// `push` receives pub/sub messages (RESP3), when given.
    pub fn cluster_client(
        nodes: &[String],
        timeout: Duration,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> RedisResult<ClusterClient> {
        let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1);
        if let Some(push) = push {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push);
        }
        builder.build()
    }
}

/// Lazily opened multiplexed connections to one Redis, one per thread using it.
#[derive(Clone)]
pub struct RedisConnections {
    inner: Arc<Inner>,
}

struct Inner {
    target: RedisTarget,
    timeout: Duration,
    slots: Mutex<HashMap<ThreadId, Slot>>,
    failures: Failures,
}

/// Commands that failed since start, by how.
#[derive(Default)]
struct Failures {
    timed_out: AtomicU64,
    errors: AtomicU64,
}

impl RedisConnections {
    /// Connections to `url`; nothing connects until the first command. Every command
    /// (with the connect it may need) is bounded by `timeout`.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, String> {
        let target = RedisTarget::parse(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                target,
                timeout,
                slots: Mutex::new(HashMap::new()),
                failures: Failures::default(),
            }),
        })
    }

    /// Where the connections go, for connections that are not shared (pub/sub).
    pub fn target(&self) -> &RedisTarget {
        &self.inner.target
    }

    /// Whether this is a Redis Cluster (commands of one pipeline must share a slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.target, RedisTarget::Cluster(_))
    }

    /// The timeout every command is bounded by.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Commands (cache, publishing, presence) that failed since start.
    pub fn failures(&self) -> BackendFailures {
        BackendFailures {
            timed_out: self.inner.failures.timed_out.load(Ordering::Relaxed),
            errors: self.inner.failures.errors.load(Ordering::Relaxed),
        }
    }

    /// Runs `op` on this thread's connection within the timeout. A failure that leaves
    /// the connection unusable makes the thread's next command reconnect.
    pub async fn run<T, F>(&self, op: impl FnOnce(RedisConn) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let slot = self.slot();
        let outcome = tokio::time::timeout(self.inner.timeout, async {
            let conn = slot.get_or_try_init(|| self.connect()).await?.clone();
            op(conn).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                self.inner.failures.errors.fetch_add(1, Ordering::Relaxed);
                if leaves_connection_unusable(&err) {
                    self.forget(&slot);
                }
                Err(CacheError(err.to_string()))
            }
            Err(_) => {
                self.inner
                    .failures
                    .timed_out
                    .fetch_add(1, Ordering::Relaxed);
                // A hung connection stays hung: the next command gets a fresh one.
                self.forget(&slot);
                Err(CacheError("timed out".to_owned()))
            }
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<ThreadId, Slot>> {
        // The map is consistent between statements: a panic elsewhere cannot break it.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self) -> Slot {
        self.slots()
            .entry(std::thread::current().id())
            .or_default()
            .clone()
    }

    /// Drops the connection of `slot` if its thread still has it (a concurrent command
    /// may already have replaced it). Looked up by identity, not by the current thread:
    /// on a multi-threaded runtime a command may resume on another thread than the one
    /// whose connection it used.
    fn forget(&self, slot: &Slot) {
        self.slots().retain(|_, held| !Arc::ptr_eq(held, slot));
    }

    async fn connect(&self) -> RedisResult<RedisConn> {
        match &self.inner.target {
            RedisTarget::Single(client) => {
                // `run`'s timeout bounds each command, connect included.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.timeout))
                    .set_response_timeout(None);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(RedisConn::Single)
            }
            RedisTarget::Cluster(nodes) => {
                RedisTarget::cluster_client(nodes, self.inner.timeout, None)?
                    .get_async_connection()
                    .await
                    .map(RedisConn::Cluster)
            }
        }
    }
}

/// Errors after which the connection must not be used again.
fn leaves_connection_unusable(err: &RedisError) -> bool {
    err.is_unrecoverable_error()
        || err.is_connection_dropped()
        || err.is_io_error()
        || err.is_timeout()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command may resume on another thread than the one whose connection it used
    /// (multi-threaded runtime): its failure must still drop that connection.
    #[test]
    fn a_failed_connection_is_forgotten_from_another_thread() -> Result<(), String> {
        let connections = RedisConnections::open("redis://127.0.0.1:1", Duration::from_secs(1))?;
        let (slot, thread) = {
            let connections = connections.clone();
            std::thread::spawn(move || (connections.slot(), std::thread::current().id()))
                .join()
                .map_err(|_| "the thread panicked".to_owned())?
        };
        assert!(connections.slots().contains_key(&thread));
        let mine = connections.slot();
        connections.forget(&slot);
        assert!(!connections.slots().contains_key(&thread), "not forgotten");
        assert!(
            connections
                .slots()
                .values()
                .any(|held| Arc::ptr_eq(held, &mine)),
            "another thread's connection was dropped too"
        );
        Ok(())
    }
}
