//! Test harness: the real server, on port 0, against a fresh database per test.
//!
//! * [`Backend::Sqlite`]: a temporary SQLite file, in-process cache and bus (the
//!   embedded mode).
//! * [`Backend::Postgres`]: a fresh PostgreSQL database cloned from a migrated
//!   template, plus Redis with a per-test key prefix (the production mode).
//!
//! Each test owns its database and prefix and removes them when it ends, so tests run
//! in parallel and twice in a row. Tracing output goes to the test writer when
//! `TEST_LOG` is set.

mod cluster;
mod database;
mod http;
mod macros;
mod process;
mod s3;
mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chat_server::config::Sources;
use chat_server::{Application, Config};
use chat_services::AppContext;

pub use cluster::RedisCluster;
pub use database::{RedisKeys, TestDatabase, WriteLock, count_redis_keys, delete_redis_prefix};
pub use http::{Response, Session, TEST_PASSWORD};
pub use process::{ServerProcess, free_port};
pub use s3::S3Server;
pub use ws::{Received, Refused, WS_WAIT, WsClient};

/// PostgreSQL server the tests use (`CHAT_TEST_POSTGRES_URL`, default local trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("CHAT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis the tests use (`CHAT_TEST_REDIS_URL`, default local).
pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The JWT secret of test servers (tests forge tokens with it).
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Which runtime mode a test server runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + in-process cache and bus.
    Sqlite,
    /// PostgreSQL + Redis.
    Postgres,
}

/// A random lower-case hex name part.
pub fn random_suffix() -> String {
    rand::random::<[u8; 6]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

thread_local! {
    /// The panic counter of the server instance whose worker this thread is (set by the
    /// instance's `worker_started` hook).
    static INSTANCE_PANICS: std::cell::RefCell<Option<Arc<AtomicUsize>>> =
        const { std::cell::RefCell::new(None) };
}

fn install_panic_counter() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = INSTANCE_PANICS.try_with(|counter| {
                if let Ok(counter) = counter.try_borrow()
                    && let Some(counter) = counter.as_ref()
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            previous(info);
        }));
    });
}

fn init_tracing() {
    install_panic_counter();
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .with_test_writer()
            .try_init();
    }
}

/// Waits until `receiver` (a fresh subscription of `bus`) hears events: Redis
/// subscriptions come up asynchronously, so probes are published until one returns.
/// The probes are drained; they use topic `probe.<random>`, followed for the purpose
/// (the instance hears only topics it follows, and its follows take effect in order:
/// once the probe returns, every topic followed before it is heard too).
pub async fn await_bus_ready(
    bus: &std::sync::Arc<dyn chat_db::bus::EventBus>,
    receiver: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<chat_db::bus::BusMessage>>,
) -> anyhow::Result<()> {
    let probe = format!("probe.{}", random_suffix());
    bus.follow(vec![probe.clone()]);
    for _ in 0..100 {
        bus.publish(&probe, String::new()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(Ok(message)) = tokio::time::timeout_at(deadline, receiver.recv()).await {
            if message.topic == probe {
                while receiver.try_recv().is_ok() {}
                bus.unfollow(vec![probe]);
                return Ok(());
            }
        }
    }
    anyhow::bail!("the event bus subscription never came up")
}

/// Makes the instance of `bus` hear `topics` (as a socket following them would), and
/// waits until it does.
pub async fn follow_topics(
    bus: &std::sync::Arc<dyn chat_db::bus::EventBus>,
    receiver: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<chat_db::bus::BusMessage>>,
    topics: &[String],
) -> anyhow::Result<()> {
    bus.follow(topics.to_vec());
    await_bus_ready(bus, receiver).await
}

/// A running server and what it runs against.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// The mode.
    pub backend: Backend,
    /// The server's service context (to inspect or arrange state directly).
    pub context: AppContext,
    /// The configuration the server was started with.
    pub config: Config,
    /// The database (dropped with the last app using it).
    pub database: Arc<TestDatabase>,
    /// The Redis keys (production mode; deleted with the last app using them).
    redis_keys: Option<Arc<RedisKeys>>,
    client: awc::Client,
    panics: Arc<AtomicUsize>,
    handle: ServerHandle,
    stopper: chat_server::Stopper,
    running: Option<actix_web::rt::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts a server in `backend` mode with test defaults: rate limits off, bcrypt
    /// cost 4, one worker.
    pub async fn spawn(backend: Backend) -> anyhow::Result<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], after `adjust` has changed the configuration.
    pub async fn spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        init_tracing();
        let database = TestDatabase::create(backend).await?;
        let prefix = format!("test-{}", random_suffix());
        let redis = redis_url();
        let mut pairs = vec![
            ("CHAT_BIND", "127.0.0.1:0"),
            ("CHAT_ENV", "test"),
            ("CHAT_DATABASE_URL", database.url()),
            ("CHAT_RATE_LIMITS", "off"),
            ("CHAT_BCRYPT_COST", "4"),
            ("CHAT_JWT_SECRET", TEST_JWT_SECRET),
            ("CHAT_WORKERS", "1"),
            ("CHAT_DATABASE_POOL_SIZE", "5"),
            ("CHAT_LOG", "warn"),
            ("CHAT_ATTACHMENTS_DIR", database.files_dir()),
        ];
        if backend == Backend::Postgres {
            pairs.push(("CHAT_REDIS_URL", &redis));
            pairs.push(("CHAT_REDIS_PREFIX", &prefix));
        }
        let mut config = Config::from_sources(&Sources::from_pairs(pairs))?;
        config.handle_signals = false;
        // The template (PostgreSQL) or a first run (SQLite) already migrated it.
        config.auto_migrate = backend == Backend::Sqlite;
        adjust(&mut config);
        let redis_keys =
            (backend == Backend::Postgres).then(|| Arc::new(RedisKeys::new(prefix.clone())));
        Self::start(backend, config, Arc::new(database), redis_keys).await
    }

    /// A production-mode server (PostgreSQL) whose Redis is `cluster`.
    pub async fn spawn_on_cluster(cluster: &RedisCluster) -> anyhow::Result<Self> {
        let url = cluster.url();
        Self::spawn_with(Backend::Postgres, |c| c.redis_url = Some(url)).await
    }

    /// A second server instance on the same database and Redis prefix: what a
    /// load-balanced deployment looks like.
    pub async fn spawn_peer(&self) -> anyhow::Result<Self> {
        self.spawn_peer_with(|_| {}).await
    }

    /// Like [`TestApp::spawn_peer`], after `adjust` has changed the peer's configuration.
    /// In SQLite mode the peer shares the database file but not the in-process cache and
    /// bus: use it to read, not to see another instance's writes live.
    pub async fn spawn_peer_with(&self, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::start(
            self.backend,
            config,
            self.database.clone(),
            self.redis_keys.clone(),
        )
        .await
    }

    async fn start(
        backend: Backend,
        mut config: Config,
        database: Arc<TestDatabase>,
        redis_keys: Option<Arc<RedisKeys>>,
    ) -> anyhow::Result<Self> {
        // Each instance counts the panics of its own worker threads.
        let panics = Arc::new(AtomicUsize::new(0));
        let counter = panics.clone();
        config.worker_started = Some(Arc::new(move || {
            INSTANCE_PANICS.with(|own| *own.borrow_mut() = Some(counter.clone()));
        }));
        let app = Application::build(config.clone()).await?;
        let port = app.port();
        let handle = app.handle();
        let stopper = app.stopper();
        let context = app.context().clone();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        // Redis subscribes asynchronously: a test must not publish before it listens.
        let mut probe = context.bus.subscribe();
        await_bus_ready(&context.bus, &mut probe).await?;
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .disable_redirects()
            .finish();
        Ok(TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            backend,
            context,
            config,
            database,
            redis_keys,
            client,
            panics,
            handle,
            stopper,
            running: Some(running),
        })
    }

    /// Panics on this instance's worker threads so far. A panic in a request's or a
    /// socket's task does not stop the server (tokio contains it), so tests that
    /// provoke edge cases assert this did not move.
    pub fn panics(&self) -> usize {
        self.panics.load(Ordering::SeqCst)
    }

    /// Starts the graceful stop SIGTERM starts, and returns at once.
    pub fn begin_graceful_stop(&self) {
        self.stopper.stop();
    }

    /// Waits until the server has stopped (after [`TestApp::begin_graceful_stop`]);
    /// its result.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        let running = self
            .running
            .take()
            .ok_or_else(|| anyhow::anyhow!("already awaited"))?;
        Ok(running.await??)
    }

    /// Stops the server; its Redis keys and database go when the last app using them
    /// is dropped (also when a test fails before calling this).
    pub async fn shutdown(self) {
        self.handle.stop(false).await;
    }
}
