//! `chat-server`: the chat server binary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chat_server::{Application, Config, build_context, telemetry};
use chat_services::auth::{RegisterInput, create_admin};
use clap::{Parser, Subcommand};

/// Real-time chat server: REST API and WebSockets, on SQLite (embedded, the default) or
/// PostgreSQL + Redis.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Settings come from CHAT_* environment variables, a .env file in the \
working directory, or --config FILE (the environment wins); every variable is listed in \
docs/configuration.md. Without a command, `serve` runs."
)]
struct Cli {
    /// A file of `CHAT_*=value` lines (same syntax as `.env`); environment variables win.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default). SIGTERM or SIGINT stops it gracefully: readiness
    /// turns 503, sockets close with 1001, queued messages are committed, within
    /// CHAT_SHUTDOWN_GRACE.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a site admin, or promote an existing user (prompts for what is missing).
    CreateAdmin {
        /// Username of the admin.
        #[arg(long)]
        username: Option<String>,
        /// E-mail (for a new account).
        #[arg(long)]
        email: Option<String>,
        /// Password (for a new account). Prefer the prompt or CHAT_ADMIN_PASSWORD:
        /// arguments are visible to other local users.
        #[arg(long, env = "CHAT_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Write a consistent copy of the embedded SQLite database to FILE, safe while the
    /// server runs (restore: stop the server, put the copy in place of the database
    /// file). PostgreSQL is backed up with pg_dump.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Fill a fresh database with demo accounts (alice, bob, carol, dave: one printed
    /// password), friendships, a public and a private group and a direct chat with some
    /// history. Refused in production and when a demo username is taken.
    SeedDemo {
        /// The demo accounts' password (default: a random one, printed).
        #[arg(long, env = "CHAT_DEMO_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Probe the running server's `/readyz` (for container health checks: no curl
    /// needed). Exits 0 when it answers 200, 1 otherwise.
    Healthcheck {
        /// The server's address (default: CHAT_BIND; an unspecified address such as
        /// 0.0.0.0 is probed on the loopback).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// How long to wait for the answer, in seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// `GET /readyz` over plain HTTP/1.1 (no client library: the runtime image has only this
/// binary); the status code of the answer.
fn probe_readyz(addr: std::net::SocketAddr, timeout: std::time::Duration) -> anyhow::Result<u16> {
    use std::io::Read;
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])?
        .parse::<u16>()
        .map_err(|_| anyhow::anyhow!("not an HTTP answer"))
}

fn prompt(label: &str) -> anyhow::Result<String> {
    print!("{label}: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn ask(value: Option<String>, label: &str, secret: bool) -> anyhow::Result<String> {
    if let Some(value) = value {
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("--{label} is required when not running interactively");
    }
    if secret {
        Ok(rpassword::prompt_password(format!("{label}: "))?)
    } else {
        prompt(label)
    }
}

async fn run(cli: Cli, config: Config, unknown: Vec<String>) -> anyhow::Result<()> {
    telemetry::init(&config);
    for key in unknown {
        tracing::warn!(key, "unknown CHAT_ environment variable ignored (typo?)");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate => {
            let url = config.database_url.clone();
            let applied =
                tokio::task::spawn_blocking(move || chat_db::run_migrations(&url)).await??;
            println!("{} migration(s) applied", applied.len());
        }
        Command::Backup { file } => {
            let url = config.database_url.clone();
            let target = file.clone();
            tokio::task::spawn_blocking(move || chat_db::backup_sqlite(&url, &target)).await??;
            println!("backed up to {}", file.display());
        }
        Command::SeedDemo { password } => {
            if config.env == chat_server::Environment::Prod {
                anyhow::bail!("seed-demo is refused when CHAT_ENV=prod (known demo passwords)");
            }
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || chat_db::run_migrations(&url)).await??;
            // Seeding registers several accounts from one "client" in a second.
            let mut config = config.clone();
            config.rate_limits = false;
            let ctx = build_context(&config).await?;
            let password = password.unwrap_or_else(chat_server::demo::random_password);
            let seeded = chat_server::demo::seed(&ctx, &password).await?;
            println!("demo data created ({} messages)", seeded.messages);
            for (username, id) in &seeded.users {
                println!("  user  {username:<8} id {id}");
            }
            for (name, id) in &seeded.chats {
                println!("  chat  {name:<12} id {id}");
            }
            println!("password of every demo account: {password}");
        }
        Command::Healthcheck { addr, timeout } => {
            let addr = addr.unwrap_or(config.bind);
            match probe_readyz(addr, std::time::Duration::from_secs(timeout)) {
                Ok(200) => println!("ready ({addr})"),
                Ok(status) => {
                    eprintln!("not ready: /readyz answered {status} ({addr})");
                    std::process::exit(1);
                }
                Err(err) => {
                    eprintln!("not ready: {err} ({addr})");
                    std::process::exit(1);
                }
            }
        }
        Command::CreateAdmin {
            username,
            email,
            password,
        } => {
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || chat_db::run_migrations(&url)).await??;
            let username = ask(username, "username", false)?;
            let ctx = build_context(&config).await?;
            let exists = chat_db::models::UserRow::find_by_login(&ctx.store.db, &username)
                .await?
                .is_some();
            let (email, password) = if exists {
                (email.unwrap_or_default(), password.unwrap_or_default())
            } else {
                (
                    ask(email, "email", false)?,
                    ask(password, "password", true)?,
                )
            };
            let input = RegisterInput {
                username,
                email,
                password,
                display_name: None,
            };
            match create_admin(&ctx, input).await {
                Ok((user, true)) => println!("created admin {} (id {})", user.username, user.id),
                Ok((user, false)) => println!("{} (id {}) is now an admin", user.username, user.id),
                Err(err) => anyhow::bail!("{err}"),
            }
        }
    }
    Ok(())
}

/// The runtime of the main thread. With background threads, what the main thread spawns
/// with `tokio::spawn` (the message writers, their publishers, the broker subscriber, the
/// hub's router) runs on that many threads of its own instead of sharing the main thread:
/// under load one thread could not keep up with all of them (docs/benchmarks.md). The
/// HTTP workers keep their own single-threaded runtimes either way.
fn system(background_threads: usize) -> std::io::Result<actix_web::rt::SystemRunner> {
    if background_threads == 0 {
        return Ok(actix_web::rt::System::new());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(background_threads)
        .thread_name("chat-background")
        .enable_all()
        .build()?;
    Ok(actix_web::rt::System::with_tokio_rt(move || runtime))
}

fn main() {
    let cli = Cli::parse();
    let (config, unknown) = match Config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(2);
        }
    };
    // Only a serving process has background work to spread.
    let threads = match cli.command {
        None | Some(Command::Serve) => config.background_threads,
        Some(_) => 0,
    };
    let result = system(threads)
        .map_err(anyhow::Error::from)
        .and_then(|system| system.block_on(run(cli, config, unknown)));
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
