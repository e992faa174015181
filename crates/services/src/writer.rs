//! Group commit of messages: one writer task per process stores every send in batches,
//! one transaction per batch.
//!
//! One commit per message caps PostgreSQL at a few thousand rows a second (SPEC §7);
//! committing everything that queued up while the previous batch was committing costs
//! one fsync per batch and adds no waiting: an idle writer commits a lone message at
//! once. Every sender is answered only after its batch has committed.
//!
//! Each writer hands what it committed to two tasks of its own, batch after batch, while
//! it commits the next one: the first records each chat's newest seq in the cache and
//! answers the senders, the second publishes the events (`chat.message`) in one
//! pipelined round trip.
//! Each chat belongs to one writer (`chat_id` modulo the number of writers), so a chat's
//! events leave the process in the order their seqs were assigned — concurrent senders'
//! request tasks racing to publish could reorder them, and receivers would then have to
//! wait for a gap to fill.

use chat_db::bus::EventBus;
use chat_db::cache::Cache;
use chat_db::models::{AttachmentRow, MessageRow, NewMessage};
use chat_db::{DbError, DbPool};
use chat_domain::{ChatId, MessageId, Seq, UserId};
use chat_selectors::keys;

use crate::history_cache::LAST_SEQ_TTL;
use chrono::NaiveDateTime;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::events::{ChatEvent, Notification, UserEvent, chat_topic, user_topic};
use crate::metrics::Metrics;

/// Most messages in one PostgreSQL transaction (four writers share the load).
pub const MAX_BATCH_POSTGRES: usize = 256;
/// Most messages in one SQLite transaction. SQLite's one writer commits every page a
/// batch dirtied (chat rows, index pages) to the WAL once per batch, so at saturation the
/// rate grows with the batch: `groups` at 20 000 msg/s stored 11 000/s with 256 and
/// 17 300/s with 4 096 (docs/benchmarks.md). Below saturation batches are what queued
/// during the previous commit, far smaller.
pub const MAX_BATCH_SQLITE: usize = 4096;
/// Writers working in parallel on PostgreSQL unless configured (`CHAT_DB_WRITERS`), each
/// committing its own batch (row locks keep each chat's seqs in order). SQLite has one
/// write lock: one writer.
pub const DEFAULT_POSTGRES_WRITERS: u32 = 4;
/// Sends waiting for a writer before senders wait to enqueue.
const QUEUE: usize = 4096;
/// Batches each of a writer's stages may be ahead of the next (committed ahead of
/// answered, answered ahead of published): the next batch commits while the previous
/// ones are answered and published, and a slow cache or bus slows the stage before it
/// down after this.
const PUBLISH_AHEAD: usize = 4;

/// A message to store (owned: it crosses into the writer task).
#[derive(Debug, Clone)]
pub struct PendingMessage {
    /// The chat.
    pub chat_id: i64,
    /// Author.
    pub sender_id: i64,
    /// Text.
    pub content: String,
    /// Idempotency key.
    pub client_id: Option<String>,
    /// Answered message.
    pub reply_to: Option<i64>,
    /// Time.
    pub created_at: NaiveDateTime,
    /// Sender's username, for the `chat.message` event.
    pub sender: Option<String>,
    /// The mentioned members' ids as stored ([`chat_db::models::mention_text`]).
    pub mentions: Option<String>,
    /// The mentioned members to notify (not the sender, not muting, not blocking).
    pub notify: Vec<UserId>,
    /// The attached files' ids and their rendering (a JSON array).
    pub attachments: Option<(Vec<i64>, String)>,
}

impl PendingMessage {
    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            chat_id: self.chat_id,
            sender_id: self.sender_id,
            content: &self.content,
            client_id: self.client_id.as_deref(),
            reply_to: self.reply_to,
            created_at: self.created_at,
            mentions: self.mentions.as_deref(),
            attachments: self
                .attachments
                .as_ref()
                .map(|(ids, json)| (ids.as_slice(), json.as_str())),
        }
    }
}

type Stored = Result<Option<MessageRow>, DbError>;

struct Job {
    message: PendingMessage,
    reply: oneshot::Sender<Stored>,
    /// When it was handed to the writer (for the queue-wait histogram).
    enqueued: Instant,
    /// Counts the send as in flight until it is answered and its events published
    /// (dropped after its batch's publish).
    _in_flight: InFlight,
}

/// One send not yet answered and published (see [`MessageWriter::drained`]).
struct InFlight(Arc<Counters>);

impl InFlight {
    fn new(counters: &Arc<Counters>) -> Self {
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handle to the writer tasks.
#[derive(Clone)]
pub struct MessageWriter {
    /// One queue per writer; a chat's sends always go to the same one.
    queues: Arc<[mpsc::Sender<Job>]>,
    stats: Arc<Counters>,
}

/// What the writers have done since the process started (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Batches committed.
    pub batches: u64,
    /// Batches whose transaction failed (every sender in them got an error).
    pub failed_batches: u64,
    /// Messages stored (resent duplicates not counted).
    pub stored: u64,
    /// Time spent in batch transactions, committed or not.
    pub commit_time: Duration,
    /// Time spent publishing committed batches.
    pub publish_time: Duration,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    failed_batches: AtomicU64,
    stored: AtomicU64,
    commit_micros: AtomicU64,
    publish_micros: AtomicU64,
    in_flight: AtomicU64,
}

fn add_micros(counter: &AtomicU64, since: Instant) {
    let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    counter.fetch_add(micros, Ordering::Relaxed);
}

impl MessageWriter {
    /// Starts the writer tasks (inside a tokio runtime): `postgres_writers` of them on
    /// PostgreSQL (`db` should hold as many connections), one on SQLite. `cache` gets each
    /// chat's newest seq after every commit (`history_last`, see [`crate::history_cache`]).
    pub fn start(
        db: DbPool,
        postgres_writers: u32,
        bus: Arc<dyn EventBus>,
        cache: Arc<dyn Cache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (writers, max_batch) = match db {
            DbPool::Postgres(_) => (postgres_writers.max(1), MAX_BATCH_POSTGRES),
            DbPool::Sqlite(_) => (1, MAX_BATCH_SQLITE),
        };
        let stats = Arc::new(Counters::default());
        let stages = Stages {
            bus,
            cache,
            stats: stats.clone(),
            metrics,
        };
        let queues: Vec<mpsc::Sender<Job>> = (0..writers)
            .map(|_| {
                let (jobs, queue) = mpsc::channel(QUEUE);
                let (committed, to_answer) = mpsc::channel(PUBLISH_AHEAD);
                let (answered, to_publish) = mpsc::channel(PUBLISH_AHEAD);
                tokio::spawn(publish(stages.clone(), to_publish));
                tokio::spawn(answer(stages.clone(), to_answer, answered));
                tokio::spawn(run(
                    db.clone(),
                    (queue, max_batch),
                    committed,
                    stages.clone(),
                ));
                jobs
            })
            .collect();
        MessageWriter {
            queues: queues.into(),
            stats,
        }
    }

    /// Totals since the writers started.
    pub fn stats(&self) -> WriterStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WriterStats {
            batches: load(&self.stats.batches),
            failed_batches: load(&self.stats.failed_batches),
            stored: load(&self.stats.stored),
            commit_time: Duration::from_micros(load(&self.stats.commit_micros)),
            publish_time: Duration::from_micros(load(&self.stats.publish_micros)),
        }
    }

    /// Sends handed to the writers and not yet answered and published.
    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until every send handed to the writers has been committed (or failed),
    /// answered and published, or until `deadline`; `true` when nothing is left. A stopping process
    /// calls it after refusing new sends, so none it acknowledged is lost.
    pub async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stores a message with its chat's next seq and publishes it; returns once it is
    /// committed. `Ok(None)`: the chat no longer exists.
    pub async fn store(&self, message: PendingMessage) -> Stored {
        self.enqueue(message).await?.stored().await
    }

    /// Hands a message to its chat's writer and returns without waiting for the commit:
    /// sends enqueued one after the other by one task keep that order in their chat
    /// (one queue per chat), so a socket can have several in flight and still see its
    /// messages take seqs in the order it sent them. Waits only while the queue is full.
    pub async fn enqueue(&self, message: PendingMessage) -> Result<Ticket, DbError> {
        let writers = i64::try_from(self.queues.len()).map_err(|_| stopped())?;
        let index = usize::try_from(message.chat_id.rem_euclid(writers)).map_err(|_| stopped())?;
        let queue = self.queues.get(index).ok_or_else(stopped)?;
        let in_flight = InFlight::new(&self.stats);
        let (reply, stored) = oneshot::channel();
        queue
            .send(Job {
                message,
                reply,
                enqueued: Instant::now(),
                _in_flight: in_flight,
            })
            .await
            .map_err(|_| stopped())?;
        Ok(Ticket(stored))
    }
}

/// A message handed to a writer (see [`MessageWriter::enqueue`]); dropping it does not
/// cancel the store.
#[derive(Debug)]
pub struct Ticket(oneshot::Receiver<Stored>);

impl Ticket {
    /// Waits for the message's batch to commit. `Ok(None)`: the chat no longer exists.
    pub async fn stored(self) -> Stored {
        self.0.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbError {
    DbError::Unavailable("the message writer has stopped".to_owned())
}

/// What a writer's three tasks (commit, answer, publish) share.
#[derive(Clone)]
struct Stages {
    bus: Arc<dyn EventBus>,
    cache: Arc<dyn Cache>,
    stats: Arc<Counters>,
    metrics: Arc<Metrics>,
}

/// A batch whose transaction has ended, on its way to its senders.
struct Committed {
    jobs: Vec<Job>,
    outcome: Result<Vec<Stored>, DbError>,
    /// When the writer handed it on, right after its transaction.
    at: Instant,
}

/// An answered batch's events, on their way to the bus, with the guards that count its
/// sends in flight until they are published.
struct Answered {
    events: Vec<(String, String)>,
    _in_flight: Vec<InFlight>,
}

async fn run(
    db: DbPool,
    (mut queue, max_batch): (mpsc::Receiver<Job>, usize),
    committed: mpsc::Sender<Committed>,
    stages: Stages,
) {
    let Stages { stats, metrics, .. } = &stages;
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        // Everything that queued up while the previous batch was committing.
        if queue.recv_many(&mut jobs, max_batch).await == 0 {
            return;
        }
        let started = Instant::now();
        for job in &jobs {
            metrics
                .message_queue
                .observe(started.duration_since(job.enqueued).as_secs_f64());
        }
        let outcome = {
            let batch: Vec<NewMessage<'_>> = jobs.iter().map(|j| j.message.as_new()).collect();
            MessageRow::insert_batch(&db, &batch).await
        };
        add_micros(&stats.commit_micros, started);
        metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        // Sends not stored (a deleted chat, a resent client_id, a failed batch) give
        // back the files they took, before anyone is answered: a retry may take them.
        let stored = |i: usize| matches!(&outcome, Ok(results) if matches!(results.get(i), Some(Ok(Some(_)))));
        let unstored: Vec<i64> = jobs
            .iter()
            .enumerate()
            .filter(|(i, _)| !stored(*i))
            .filter_map(|(_, job)| job.message.attachments.as_ref())
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        if !unstored.is_empty()
            && let Err(err) = AttachmentRow::release(&db, &unstored).await
        {
            tracing::warn!(error = %err, "cannot give back unsent attachments");
        }
        match &outcome {
            Ok(results) => {
                metrics.batch_size.observe(jobs.len() as f64);
                let stored = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.stored.fetch_add(stored as u64, Ordering::Relaxed);
            }
            Err(err) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %err, messages = jobs.len(), "a message batch failed to commit");
            }
        }
        // Answered, then published, by this writer's next two tasks in batch order (which
        // keeps each chat's events in seq order on the bus) while this one commits the
        // next batch.
        let batch = Committed {
            jobs: std::mem::take(&mut jobs),
            outcome,
            at: Instant::now(),
        };
        if let Err(mpsc::error::SendError(batch)) = committed.send(batch).await {
            // Committed rows are never reported as failed: finish the batch here.
            tracing::error!("the message answering task has stopped; answering in the writer");
            let answered = stages.answer_batch(batch).await;
            stages.publish_batch(answered).await;
        }
    }
}

impl Stages {
    /// Records each chat's newest seq, then answers the batch's senders (an error for
    /// each if the batch failed) and builds its events.
    async fn answer_batch(&self, Committed { jobs, outcome, at }: Committed) -> Answered {
        let mut in_flight = Vec::with_capacity(jobs.len());
        let results = match outcome {
            Ok(results) => results,
            Err(err) => {
                let detail = err.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(DbError::Unavailable(detail.clone())));
                    in_flight.push(job._in_flight);
                }
                return Answered {
                    events: Vec::new(),
                    _in_flight: in_flight,
                };
            }
        };
        // Before anyone is answered: a sender reading history right after its
        // acknowledgement must not be served a kept page without its message.
        record_newest(self.cache.as_ref(), &results).await;
        // Observed before the first answer, so a sender that has its answer finds its
        // batch counted.
        self.metrics
            .answer_delay
            .observe(at.elapsed().as_secs_f64());
        let mut events = Vec::with_capacity(jobs.len());
        for (job, result) in jobs.into_iter().zip(results) {
            let Job {
                message,
                reply,
                _in_flight: guard,
                ..
            } = job;
            in_flight.push(guard);
            if let Ok(Some(row)) = &result {
                match ChatEvent::stored(row, message.sender.clone()).to_payload() {
                    Ok(payload) => events.push((chat_topic(ChatId(row.chat_id)), payload)),
                    Err(err) => tracing::error!(error = %err, "cannot serialize chat event"),
                }
                mention_notifications(&mut events, row, message);
            }
            let _ = reply.send(result);
        }
        Answered {
            events,
            _in_flight: in_flight,
        }
    }

    /// Publishes an answered batch's events in one round trip; its sends are then no
    /// longer in flight.
    async fn publish_batch(&self, batch: Answered) {
        let publishing = Instant::now();
        self.bus.publish_many(batch.events).await;
        add_micros(&self.stats.publish_micros, publishing);
        self.metrics
            .publish_duration
            .observe(publishing.elapsed().as_secs_f64());
    }
}

/// Answers one writer's committed batches, one after the other: the cache round trip
/// and the answers overlap the writer's next commit instead of preceding it, and a slow
/// bus delays the answers only once [`PUBLISH_AHEAD`] answered batches wait for it.
async fn answer(
    stages: Stages,
    mut committed: mpsc::Receiver<Committed>,
    answered: mpsc::Sender<Answered>,
) {
    while let Some(batch) = committed.recv().await {
        let batch = stages.answer_batch(batch).await;
        if let Err(mpsc::error::SendError(batch)) = answered.send(batch).await {
            tracing::error!("the message publisher has stopped; publishing in the answering task");
            stages.publish_batch(batch).await;
        }
    }
}

/// Publishes one writer's answered batches, one after the other.
async fn publish(stages: Stages, mut answered: mpsc::Receiver<Answered>) {
    while let Some(batch) = answered.recv().await {
        stages.publish_batch(batch).await;
    }
}

/// The `notification` (`kind: mention`) of each member `message` mentions and should
/// tell, on their own topics: published with the batch, after its commit.
fn mention_notifications(
    events: &mut Vec<(String, String)>,
    row: &MessageRow,
    message: PendingMessage,
) {
    if message.notify.is_empty() {
        return;
    }
    let notification = UserEvent::Notification(Notification::Mention {
        chat_id: ChatId(row.chat_id),
        message_id: MessageId(row.id),
        seq: Seq(row.seq),
        from_user_id: UserId(row.sender_id.unwrap_or_default()),
        from_username: message.sender.unwrap_or_default(),
        excerpt: excerpt(&row.content),
    });
    match notification.to_payload() {
        Ok(payload) => {
            for user in message.notify {
                events.push((user_topic(user), payload.clone()));
            }
        }
        Err(err) => tracing::error!(error = %err, "cannot serialize a mention"),
    }
}

/// The start of a text, as a notification shows it: at most 200 characters.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Raises each chat's `history_last:{chat}` to the newest seq of a committed batch (only
/// ever raised: instances' writers of one chat may land out of order). Tried twice (the
/// second time on a fresh connection if the first failed); a failure is logged, and until
/// the chat's next batch raises it, instances (this one too) may serve kept pages without
/// this batch's messages.
async fn record_newest(cache: &dyn Cache, results: &[Stored]) {
    let mut newest: HashMap<i64, i64> = HashMap::new();
    for row in results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(Option::as_ref))
    {
        let seq = newest.entry(row.chat_id).or_insert(row.seq);
        *seq = (*seq).max(row.seq);
    }
    if newest.is_empty() {
        return;
    }
    let entries: Vec<(String, i64)> = newest
        .into_iter()
        .map(|(chat, seq)| (keys::history_last(chat), seq))
        .collect();
    let mut outcome = cache.raise_many(&entries, LAST_SEQ_TTL).await;
    if outcome.is_err() {
        outcome = cache.raise_many(&entries, LAST_SEQ_TTL).await;
    }
    if let Err(err) = outcome {
        tracing::warn!(error = %err, "cannot record the newest seqs of a batch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chat_db::bus::MemoryBus;
    use chat_db::cache::{CacheError, MemoryCache};
    use chat_db::models::{ChatRow, NewChat, NewUser, UserRow};
    use chat_db::{DatabaseUrl, PoolOptions, SqliteSync, run_migrations};
    use tokio::sync::Semaphore;

    /// The in-process cache, except that recording a batch's newest seqs waits for a
    /// permit (a slow cache round trip, under the test's control).
    struct Gated {
        inner: MemoryCache,
        permits: Semaphore,
    }

    #[async_trait]
    impl Cache for Gated {
        async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
            self.inner.get(key).await
        }
        async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>, CacheError> {
            self.inner.get_many(keys).await
        }
        async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
            self.inner.set(key, value, ttl).await
        }
        async fn raise_many(
            &self,
            entries: &[(String, i64)],
            ttl: Duration,
        ) -> Result<(), CacheError> {
            let permit = self.permits.acquire().await;
            permit.map_err(|e| CacheError(e.to_string()))?.forget();
            self.inner.raise_many(entries, ttl).await
        }
        async fn add(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
            self.inner.add(key, value, ttl).await
        }
        async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, CacheError> {
            self.inner.incr(key, delta, ttl).await
        }
        async fn take(&self, key: &str) -> Result<Option<String>, CacheError> {
            self.inner.take(key).await
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.inner.delete(key).await
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
        fn backend(&self) -> &'static str {
            "gated"
        }
    }

    /// A directory removed when the test ends, passed or not.
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn message(chat_id: i64, sender_id: i64, content: &str) -> PendingMessage {
        PendingMessage {
            chat_id,
            sender_id,
            content: content.to_owned(),
            client_id: None,
            reply_to: None,
            created_at: chrono::Utc::now().naive_utc(),
            sender: Some("writer".to_owned()),
            mentions: None,
            notify: Vec::new(),
            attachments: None,
        }
    }

    async fn batches_reach(writer: &MessageWriter, batches: u64) -> bool {
        for _ in 0..500 {
            if writer.stats().batches >= batches {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A migrated SQLite database in a directory of its own, with one user in one group.
    struct Fixture {
        db: DbPool,
        user: i64,
        chat: i64,
        _dir: TempDir,
    }

    async fn fixture(pool_size: u32, timeout: Duration) -> anyhow::Result<Fixture> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir = TempDir(
            std::env::temp_dir().join(format!("chat-writer-{}-{nanos}", std::process::id())),
        );
        let url = DatabaseUrl::parse(&format!("sqlite://{}/chat.db", dir.0.display()))
            .map_err(anyhow::Error::msg)?;
        run_migrations(&url)?;
        let options = PoolOptions {
            max_size: pool_size,
            timeout,
            sqlite_sync: SqliteSync::Normal,
        };
        let db = DbPool::connect(&url, options).await?;
        let now = chrono::Utc::now().naive_utc();
        let user = UserRow::insert(
            &db,
            NewUser {
                username: "writer",
                username_key: "writer",
                email: "writer@example.com",
                display_name: "Writer",
                password_hash: "-",
                is_admin: false,
                created_at: now,
            },
        )
        .await?;
        let chat = NewChat {
            kind: "group",
            name: Some("batches"),
            description: None,
            visibility: "private",
            direct_key: None,
            created_by: Some(user.id),
            created_at: now,
            last_activity_at: now,
            member_count: 1,
        };
        let (chat, _) = ChatRow::create(&db, chat, &[(user.id, "owner")]).await?;
        Ok(Fixture {
            db,
            user: user.id,
            chat: chat.id,
            _dir: dir,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_batch_commits_while_the_previous_one_is_recorded_and_answered()
    -> anyhow::Result<()> {
        let fixture = fixture(4, Duration::from_secs(5)).await?;
        let (db, user, chat) = (fixture.db.clone(), fixture.user, fixture.chat);
        let cache = Arc::new(Gated {
            inner: MemoryCache::default(),
            permits: Semaphore::new(0),
        });
        let writer = MessageWriter::start(
            db.clone(),
            DEFAULT_POSTGRES_WRITERS,
            Arc::new(MemoryBus::new()),
            cache.clone(),
            Arc::new(Metrics::new(false)?),
        );

        let first = writer.enqueue(message(chat, user, "first")).await?;
        assert!(
            batches_reach(&writer, 1).await,
            "the first batch was not committed (or was counted only after its cache record)"
        );
        // Its cache record is held: the writer takes and commits the next batch anyway.
        let second = writer.enqueue(message(chat, user, "second")).await?;
        assert!(
            batches_reach(&writer, 2).await,
            "the second batch waited for the first one's cache round trip"
        );
        let mut first = std::pin::pin!(first.stored());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut first)
                .await
                .is_err(),
            "answered before the chat's newest seq was recorded"
        );
        cache.permits.add_permits(2);
        let wait = Duration::from_secs(5);
        let first = tokio::time::timeout(wait, first)
            .await??
            .ok_or_else(|| anyhow::anyhow!("first not stored"))?;
        let second = tokio::time::timeout(wait, second.stored())
            .await??
            .ok_or_else(|| anyhow::anyhow!("second not stored"))?;
        assert_eq!(second.seq, first.seq + 1);
        let newest = cache.get(&keys::history_last(chat)).await?;
        assert_eq!(newest, Some(second.seq.to_string()));
        drop((writer, db, fixture));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_cannot_commit_answers_its_sender_with_an_error_and_takes_no_seq()
    -> anyhow::Result<()> {
        let fixture = fixture(1, Duration::from_millis(200)).await?;
        let (db, user, chat) = (fixture.db.clone(), fixture.user, fixture.chat);
        let writer = MessageWriter::start(
            db.clone(),
            DEFAULT_POSTGRES_WRITERS,
            Arc::new(MemoryBus::new()),
            Arc::new(MemoryCache::default()),
            Arc::new(Metrics::new(false)?),
        );
        let DbPool::Sqlite(pool) = &db else {
            anyhow::bail!("the fixture is SQLite");
        };
        // The pool's one connection is taken: the batch cannot get one and fails.
        let held = pool.get().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let wait = Duration::from_secs(5);
        let refused = writer.enqueue(message(chat, user, "refused")).await?;
        let answer = tokio::time::timeout(wait, refused.stored()).await?;
        assert!(matches!(answer, Err(DbError::Unavailable(_))), "{answer:?}");
        assert_eq!(writer.stats().failed_batches, 1);
        drop(held);
        // The next send takes the chat's first seq: the failed one left no gap.
        let stored = writer.enqueue(message(chat, user, "stored")).await?;
        let row = tokio::time::timeout(wait, stored.stored())
            .await??
            .ok_or_else(|| anyhow::anyhow!("not stored"))?;
        assert_eq!(row.seq, 1);
        assert_eq!(row.content, "stored");
        // Nothing left in flight once the batch is published too.
        assert!(writer.drained(tokio::time::Instant::now() + wait).await);
        Ok(())
    }
}
