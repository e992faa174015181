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
//!   every round trip on the thread that waits for it.
//!
//! A connection that fails in a way that leaves it unusable (closed socket, I/O error,
//! timeout) is forgotten, and that thread's next command opens a new one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult};
use tokio::sync::OnceCell;

use crate::cache::{BackendFailures, CacheError};

/// This thread's connection, opened by the first command that needs it (concurrent
/// first commands wait for the same connect).
type Slot = Arc<OnceCell<MultiplexedConnection>>;

/// Lazily opened multiplexed connections to one Redis, one per thread using it.
#[derive(Clone)]
pub struct RedisConnections {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
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
        let client = Client::open(url).map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                timeout,
                slots: Mutex::new(HashMap::new()),
                failures: Failures::default(),
            }),
        })
    }

    /// The client, for connections that are not shared (pub/sub).
    pub fn client(&self) -> &Client {
        &self.inner.client
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
    pub async fn run<T, F>(
        &self,
        op: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Result<T, CacheError>
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

    /// Drops this thread's connection if it is still `slot` (a concurrent command may
    /// already have replaced it).
    fn forget(&self, slot: &Slot) {
        let mut slots = self.slots();
        let thread = std::thread::current().id();
        if slots.get(&thread).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&thread);
        }
    }

    async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        // `run`'s timeout bounds each command, connect included.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(None);
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// Errors after which the connection must not be used again.
fn leaves_connection_unusable(err: &RedisError) -> bool {
    err.is_unrecoverable_error()
        || err.is_connection_dropped()
        || err.is_io_error()
        || err.is_timeout()
}
