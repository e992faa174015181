//! PostgreSQL's search column follows every write of a message's text: the batch
//! statement, the one-by-one path a racing duplicate sends a batch down, edits and
//! deletions. Runs against the real server at `CHAT_TEST_POSTGRES_URL` (default: the
//! local one), in a database of its own that it drops.

use std::time::Duration;

use chat_db::models::{ChatRow, MessageRow, NewChat, NewMessage, NewUser, UserRow};
use chat_db::{DatabaseUrl, DbError, DbPool, PoolOptions, SqliteSync, run_migrations};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

fn admin_url() -> String {
    std::env::var("CHAT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database, dropped when the value goes.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> anyhow::Result<Self> {
        let admin = admin_url();
        let name = format!("chat_db_search_{:016x}", rand::random::<u64>());
        let mut conn = AsyncPgConnection::establish(&admin).await?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        Ok(Database {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        // Its own thread and runtime: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = AsyncPgConnection::establish(&admin).await?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

#[derive(QueryableByName)]
struct Search {
    #[diesel(sql_type = Text)]
    search: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The message's search column as PostgreSQL prints it.
async fn search_of(url: &str, id: i64) -> anyhow::Result<String> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    let row: Search = diesel::sql_query(
        "SELECT coalesce(search::text, 'NULL') AS search FROM messages WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .get_result(&mut conn)
    .await?;
    Ok(row.search)
}

fn message<'a>(
    chat: i64,
    user: i64,
    content: &'a str,
    client_id: Option<&'a str>,
) -> NewMessage<'a> {
    NewMessage {
        chat_id: chat,
        sender_id: user,
        content,
        client_id,
        reply_to: None,
        created_at: chrono::Utc::now().naive_utc(),
        mentions: None,
        attachments: None,
    }
}

fn stored(result: &Result<Option<MessageRow>, DbError>) -> anyhow::Result<i64> {
    match result {
        Ok(Some(row)) => Ok(row.id),
        other => anyhow::bail!("not stored: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_message_text_writes_its_search_words() -> anyhow::Result<()> {
    let database = Database::create().await?;
    let url = DatabaseUrl::parse(&database.url).map_err(anyhow::Error::msg)?;
    run_migrations(&url)?;
    let options = PoolOptions {
        max_size: 2,
        timeout: Duration::from_secs(10),
        sqlite_sync: SqliteSync::Full,
    };
    let db = DbPool::connect(&url, options).await?;
    let now = chrono::Utc::now().naive_utc();
    let user = UserRow::insert(
        &db,
        NewUser {
            username: "ann",
            username_key: "ann",
            email: "ann@example.com",
            display_name: "Ann",
            password_hash: "-",
            is_admin: false,
            created_at: now,
        },
    )
    .await?
    .id;
    let chat = NewChat {
        kind: "group",
        name: Some("search"),
        description: None,
        visibility: "private",
        direct_key: None,
        created_by: Some(user),
        created_at: now,
        last_activity_at: now,
        member_count: 1,
    };
    let chat = ChatRow::create(&db, chat, &[(user, "owner")]).await?.0.id;

    // The batch statement; a word too long to index is left out, not an error.
    let too_long = format!("{} kept", "a".repeat(2047));
    let batch = [
        message(chat, user, "The quick, QUICK Fox", None),
        message(chat, user, &too_long, None),
    ];
    let results = MessageRow::insert_batch(&db, &batch).await?;
    assert_eq!(
        search_of(&database.url, stored(&results[1])?).await?,
        "'kept':2"
    );
    let first = stored(&results[0])?;
    assert_eq!(
        search_of(&database.url, first).await?,
        "'fox':4 'quick':2,3 'the':1"
    );

    // A duplicate the batch's look-up could not see (another connection's insert, still
    // uncommitted) sends the batch down the one-by-one path once it commits.
    let mut other = AsyncPgConnection::establish(&database.url).await?;
    diesel::sql_query("BEGIN").execute(&mut other).await?;
    diesel::sql_query(
        "INSERT INTO messages (chat_id, sender_id, seq, content, client_id, created_at) \
         VALUES ($1, $2, 1000000, 'held', 'k1', now())",
    )
    .bind::<BigInt, _>(chat)
    .bind::<BigInt, _>(user)
    .execute(&mut other)
    .await?;
    let racing = {
        let db = db.clone();
        tokio::spawn(async move {
            let batch = [
                message(chat, user, "resent", Some("k1")),
                message(chat, user, "Slow path WORDS", None),
            ];
            MessageRow::insert_batch(&db, &batch).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !racing.is_finished(),
        "the batch waits for the uncommitted duplicate"
    );
    diesel::sql_query("COMMIT").execute(&mut other).await?;
    let results = racing.await??;
    assert!(
        matches!(results[0], Err(DbError::Conflict { .. })),
        "{:?}",
        results[0]
    );
    let slow = stored(&results[1])?;
    assert_eq!(
        search_of(&database.url, slow).await?,
        "'path':2 'slow':1 'words':3"
    );

    // What an instance of the previous version writes (no `search`) is indexed the old
    // way by the migration's triggers, inserts and edits alike.
    let held: Id = diesel::sql_query("SELECT id FROM messages WHERE client_id = 'k1'")
        .get_result(&mut other)
        .await?;
    assert_eq!(search_of(&database.url, held.id).await?, "'held':1");
    diesel::sql_query("UPDATE messages SET content = 'Edited the old way' WHERE id = $1")
        .bind::<BigInt, _>(held.id)
        .execute(&mut other)
        .await?;
    assert_eq!(
        search_of(&database.url, held.id).await?,
        "'edited':1 'old':3 'the':2 'way':4"
    );

    // Edits write the new words, deletions none.
    MessageRow::edit(&db, first, "Édité: new words", now).await?;
    assert_eq!(
        search_of(&database.url, first).await?,
        "'new':2 'words':3 'édité':1"
    );
    MessageRow::soft_delete(&db, first, now).await?;
    assert_eq!(search_of(&database.url, first).await?, "");
    Ok(())
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// The generic plan of the batch statement (`links`: the variant with attachments and
/// mentions) on one connection of `pool`, after `session` (SQL run first, if any).
async fn batch_plan(pool: &DbPool, links: bool, session: &str) -> anyhow::Result<String> {
    let DbPool::Postgres(pool) = pool else {
        anyhow::bail!("not a PostgreSQL pool");
    };
    let mut conn = pool.get().await?;
    if !session.is_empty() {
        conn.batch_execute(session).await?;
    }
    let (sql, types) = chat_db::models::store_batch_statement(links);
    diesel::sql_query(format!("PREPARE store_batch ({types}) AS {sql}"))
        .execute(&mut *conn)
        .await?;
    diesel::sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    let at = r#"'{"2026-01-01 00:00:00"}'"#;
    let lines: Vec<PlanLine> = diesel::sql_query(format!(
        "EXPLAIN EXECUTE store_batch ('{{1}}', '{{1}}', {at}, '{{1}}', '{{1}}', '{{a}}', \
         '{{NULL}}', '{{NULL}}', {at}, '{{NULL}}', '{{NULL}}', '{{\"''a'':1\"}}')"
    ))
    .load(&mut *conn)
    .await?;
    conn.batch_execute("DEALLOCATE store_batch; RESET plan_cache_mode")
        .await?;
    Ok(lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The writers' connections read `chats` by its key in the batch statement's cached
/// plan, however small the table: with PostgreSQL's default costs that plan reads the
/// whole table, twice per batch (a small batch's plan then costs four times as much).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_batch_plan_reads_chats_by_key() -> anyhow::Result<()> {
    let database = Database::create().await?;
    let url = DatabaseUrl::parse(&database.url).map_err(anyhow::Error::msg)?;
    run_migrations(&url)?;
    let options = || PoolOptions {
        max_size: 1,
        timeout: Duration::from_secs(10),
        sqlite_sync: SqliteSync::Full,
    };
    let mut admin = AsyncPgConnection::establish(&database.url).await?;
    diesel::sql_query(
        "INSERT INTO chats (kind, visibility, created_at, last_activity_at) \
         SELECT 'group', 'public', now(), now() FROM generate_series(1, 1000)",
    )
    .execute(&mut admin)
    .await?;
    // Statistics as autovacuum would leave them, whether or not it has run yet.
    admin.batch_execute("ANALYZE chats").await?;

    let writers = DbPool::connect_writers(&url, options()).await?;
    for links in [false, true] {
        let plan = batch_plan(&writers, links, "").await?;
        assert!(
            plan.contains("Index Scan using chats_pkey on chats"),
            "the writers' plan should probe chats by key:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on chats"),
            "the writers' plan reads all of chats:\n{plan}"
        );
    }

    // What the writers' session setting is for: at PostgreSQL's default cost (set here,
    // whatever this server's configuration says) the same statement scans the table.
    let ordinary = DbPool::connect(&url, options()).await?;
    let plan = batch_plan(&ordinary, false, "SET random_page_cost = 4").await?;
    assert!(
        plan.contains("Seq Scan on chats"),
        "expected the default costs to scan chats:\n{plan}"
    );
    Ok(())
}
