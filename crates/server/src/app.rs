//! Wiring: the only place that builds pools, clients and the HTTP server.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_server::{Server, ServerHandle};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
use actix_web::dev::{AppConfig, ServiceFactory};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use chat_api::ProxyPolicy;
use chat_db::bus::{EventBus, MemoryBus};
use chat_db::cache::{Cache, MemoryCache};
use chat_db::files::FileStore;
use chat_db::presence::{MemoryPresence, PresenceRegistry, RedisPresence};
use chat_db::redis::{RedisBus, RedisCache, open_connections};
use chat_db::{DbPool, PoolOptions, run_migrations};
use chat_selectors::Store;
use chat_services::auth::tokens::JwtKeys;
use chat_services::history_cache::{HistoryCache, NewestSeqs};
use chat_services::lifecycle::Lifecycle;
use chat_services::rate_limit::RateLimiter;
use chat_services::writer::MessageWriter;
use chat_services::{AppContext, AuthSettings, ChatSettings};
use chat_ws::{Hub, HubLimits, WsSettings};
use tracing_actix_web::TracingLogger;

use crate::telemetry::RequestSpan;
use crate::{Config, secret};

/// Builds the service context: database pool, cache and event bus for the
/// configured mode, JWT keys and rate limiter. Must run inside a tokio runtime.
pub async fn build_context(config: &Config) -> anyhow::Result<AppContext> {
    let db = DbPool::connect(
        &config.database_url,
        PoolOptions {
            max_size: config.database_pool_size,
            timeout: config.database_timeout,
            sqlite_sync: config.sqlite_sync,
        },
    )
    .await?;
    type Adapters = (Arc<dyn Cache>, Arc<dyn EventBus>, Arc<dyn PresenceRegistry>);
    let (cache, bus, presence): Adapters = match &config.redis_url {
        Some(url) => {
            let connections =
                open_connections(url).map_err(|e| anyhow::anyhow!("CHAT_REDIS_URL: {e}"))?;
            let bus = RedisBus::start(connections.clone(), &config.redis_prefix);
            let presence = RedisPresence::new(
                connections.clone(),
                &config.redis_prefix,
                config.presence_heartbeat * 3,
            );
            (
                Arc::new(RedisCache::new(connections, &config.redis_prefix)),
                Arc::new(bus),
                Arc::new(presence),
            )
        }
        None => (
            Arc::new(MemoryCache::new(
                chat_db::cache::MEMORY_CACHE_BYTES,
                chat_selectors::keys::PINNED_PREFIXES,
            )),
            Arc::new(MemoryBus::new()),
            Arc::new(MemoryPresence::default()),
        ),
    };
    if let Err(err) = cache.ping().await {
        tracing::warn!(error = %err, "redis is not reachable; running degraded until it is");
    }
    let secret = secret::resolve(config)?;
    // The message writers get connections of their own on PostgreSQL: a connection's
    // I/O is driven on the runtime that opened it, and shared ones opened by busy
    // request workers made each batch statement wait for that worker (12 ms batches).
    let writer_db = match &db {
        DbPool::Postgres(_) => {
            DbPool::connect_writers(
                &config.database_url,
                PoolOptions {
                    max_size: config.db_writers,
                    timeout: config.database_timeout,
                    sqlite_sync: config.sqlite_sync,
                },
            )
            .await?
        }
        DbPool::Sqlite(_) => db.clone(),
    };
    let metrics = Arc::new(
        chat_services::metrics::Metrics::new(config.redis_url.is_some())
            .map_err(|e| anyhow::anyhow!("metrics registry: {e}"))?,
    );
    let writer = MessageWriter::start(
        writer_db,
        config.db_writers,
        bus.clone(),
        cache.clone(),
        metrics.clone(),
    );
    Ok(AppContext {
        store: Store {
            db: db.clone(),
            cache,
        },
        bus,
        auth: AuthSettings {
            keys: match &config.jwt_secret_previous {
                Some(previous) => JwtKeys::from_secret(&secret).with_previous(previous.as_bytes()),
                None => JwtKeys::from_secret(&secret),
            },
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            bcrypt_cost: config.bcrypt_cost,
            after_password_check: config.login_after_password_check.clone(),
        },
        limits: Arc::new(
            config
                .message_rate
                .iter()
                .chain(&config.rate_overrides)
                .fold(RateLimiter::new(config.rate_limits), |limiter, limit| {
                    limiter.with_override(*limit)
                }),
        ),
        chat: ChatSettings {
            direct_requires_friendship: config.direct_requires_friendship,
            max_chats_per_user: config.max_chats_per_user,
            max_upload_bytes: config.max_upload_bytes,
        },
        writer,
        history: Arc::new(HistoryCache::new(config.history_cache_bytes)),
        presence,
        lifecycle: Arc::new(Lifecycle::default()),
        metrics,
        files: FileStore::open(&config.files)?,
        uploads: Arc::new(chat_services::attachments::UploadSlots::new(
            config.max_upload_bytes,
        )),
    })
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    context: AppContext,
    hub: Arc<Hub>,
    stop: Stopper,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
    handle_signals: bool,
}

/// Asks a running [`Application`] to stop gracefully, as SIGTERM does.
#[derive(Clone, Default)]
pub struct Stopper(Arc<tokio::sync::Notify>);

impl Stopper {
    /// Begins the graceful stop (see [`Application::run_until_stopped`]).
    pub fn stop(&self) {
        // A stored permit: a stop asked before the server awaits it is not lost.
        self.0.notify_one();
    }
}

impl Application {
    /// Applies migrations (unless `CHAT_AUTO_MIGRATE=false`), builds the context and
    /// binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.auto_migrate {
            let url = config.database_url.clone();
            let applied = tokio::task::spawn_blocking(move || run_migrations(&url)).await??;
            if !applied.is_empty() {
                tracing::info!(?applied, "migrations applied");
            }
        }
        let context = build_context(&config).await?;
        chat_services::attachments::spawn_janitor(context.clone());
        if config.redis_url.is_some() {
            chat_services::presence::start_heartbeat(context.clone(), config.presence_heartbeat);
        }
        let listener = TcpListener::bind(config.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (CHAT_BIND): {e}", config.bind))?;
        let port = listener.local_addr()?.port();
        let hub_arc = Hub::start(
            context.bus.clone(),
            NewestSeqs::new(context.store.cache.clone()),
            HubLimits {
                max_queued_bytes: config.ws_max_queued_bytes,
                max_sockets_per_user: config.max_sockets_per_user,
            },
            context.metrics.clone(),
        );
        let hub = web::Data::from(hub_arc.clone());
        let ws_settings = web::Data::new(WsSettings {
            allowed_origins: config.allowed_origins.clone(),
            // CHAT_RATE_LIMITS=off lifts every budget, this one too.
            frame_budget: config.rate_limits.then_some(config.ws_frame_budget),
            before_register: config.ws_before_register.clone(),
        });
        let ctx = web::Data::new(context.clone());
        let allowed_origins = config.allowed_origins.clone();
        let proxy = ProxyPolicy {
            trust_forwarded_headers: config.trust_proxy_headers,
        };
        let worker_started = config.worker_started.clone();
        // The app, built once per worker for ordinary requests and once for upgrades.
        let app = move || {
            App::new()
                .app_data(ctx.clone())
                .app_data(proxy)
                .app_data(hub.clone())
                .app_data(ws_settings.clone())
                .configure(chat_api::configure)
                .configure(chat_ws::configure)
                // `/` and `/app/…` only: registered last, it shadows none of the above.
                .configure(chat_web::configure)
                .default_service(web::to(chat_api::not_found))
                .wrap(from_fn(chat_api::run_to_completion))
                // Inside the error handlers, so a refused preflight becomes problem+json
                // and the CORS headers survive that rewrite.
                .wrap(chat_api::cors(&allowed_origins))
                .wrap(chat_api::error_handlers())
                .wrap(from_fn(chat_api::metrics::observe))
                // Outside the error handlers: their rewritten answers get the headers too.
                .wrap(from_fn(chat_api::security_headers))
                .wrap(TracingLogger::<RequestSpan>::new())
        };
        let local = listener.local_addr()?;
        let mut builder = Server::build()
            .workers(config.workers)
            // Signals are handled by `run_until_stopped` (sockets and writers drain first).
            .disable_signals()
            .shutdown_timeout(config.shutdown_grace.as_secs().max(1));
        let shutdown = builder.graceful_shutdown_signal();
        builder = builder.listen("chat-http", listener, move || {
            // Runs once on each worker thread, as it starts.
            if let Some(started) = &worker_started {
                started();
            }
            let shutdown = shutdown.clone();
            let upgrade_app = app.clone();
            // `Connection: Upgrade` requests come here with their connection (actix-http's
            // upgrade hook): the app answers them, and an accepted WebSocket is served on
            // the bare socket, without the HTTP dispatcher and its buffers (see
            // chat_ws::upgrade and docs/decisions.md).
            let upgrade = fn_factory(move || {
                let factory = upgrade_app().into_factory();
                async move {
                    let app = Rc::new(factory.new_service(AppConfig::default()).await?);
                    Ok::<_, ()>(fn_service(move |(req, framed)| {
                        let app = app.clone();
                        async move {
                            chat_ws::serve_upgrade(&*app, req, framed).await;
                            Ok::<_, actix_web::Error>(())
                        }
                    }))
                }
            });
            HttpService::build()
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // Chat frames are small and latency-bound: never hold them back for Nagle
                // (with delayed ACKs that added a flat ~40 ms to deliveries).
                .tcp_nodelay(true)
                .local_addr(local)
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .upgrade(upgrade)
                .finish(map_config(
                    app().into_factory().map_err(|err| err.error_response()),
                    |()| AppConfig::default(),
                ))
                .tcp()
        })?;
        let server = builder;
        tracing::info!(
            addr = %config.bind, port, database = config.database_url.backend(),
            cache = context.store.cache.backend(), "listening"
        );
        Ok(Self {
            port,
            server: server.run(),
            context,
            hub: hub_arc,
            stop: Stopper::default(),
            shutdown_grace: config.shutdown_grace,
            shutdown_delay: config.shutdown_delay,
            handle_signals: config.handle_signals,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service context the server uses (tests inspect state through it).
    pub fn context(&self) -> &AppContext {
        &self.context
    }

    /// A handle to stop the server at once (no draining).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Asks for the graceful stop that SIGTERM starts.
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Serves until stopped. SIGTERM, SIGINT (when signals are handled) or
    /// [`Stopper::stop`] start a graceful stop: `/readyz` answers 503 and sends and
    /// handshakes are refused (`shutting_down`) at once, sockets close with 1001 after
    /// answering what they were doing; after `CHAT_SHUTDOWN_DELAY` no connection is
    /// accepted any more; every send already handed to the writers is committed and
    /// acknowledged — all within `CHAT_SHUTDOWN_GRACE`, after which the process stops
    /// anyway. [`Application::handle`] stops at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        tokio::select! {
            result = &mut server => return result,
            () = stop_requested(&self.stop, self.handle_signals) => {}
        }
        let started = tokio::time::Instant::now();
        let deadline = started + self.shutdown_grace;
        tracing::info!(
            grace_secs = self.shutdown_grace.as_secs(),
            sockets = self.hub.connections(),
            "stopping: draining sockets and queued messages"
        );
        self.context.lifecycle.begin_drain();
        self.hub.shutdown();
        // Still listening meanwhile (readiness 503, new work refused with a clear error):
        // a proxy that polls readiness moves traffic away before connections fail.
        tokio::time::sleep_until((started + self.shutdown_delay).min(deadline)).await;
        // Stops accepting now (open keep-alive connections are closed); open
        // connections get until the grace runs out.
        let stopping = handle.stop(true);
        let result = match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("connections still open when the grace ran out; closing them");
                handle.stop(false).await;
                Ok(())
            }
        };
        drop(stopping);
        if !self.context.writer.drained(deadline).await {
            tracing::error!(
                unanswered = self.context.writer.in_flight(),
                "sends still uncommitted when the grace ran out"
            );
        }
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "stopped");
        result
    }
}

/// Resolves on SIGTERM or SIGINT (when `signals`) or on [`Stopper::stop`].
async fn stop_requested(stop: &Stopper, signals: bool) {
    if !signals {
        return stop.0.notified().await;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                    () = stop.0.notified() => {}
                }
            }
            _ => {
                tracing::warn!("cannot listen for signals; stop with the process manager");
                stop.0.notified().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
            () = stop.0.notified() => {}
        }
    }
}
