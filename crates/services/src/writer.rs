//! Group commit of messages: one writer task per process stores every send in batches,
//! one transaction per batch.
//!
//! One commit per message caps PostgreSQL at a few thousand rows a second (SPEC §7);
//! committing everything that queued up while the previous batch was committing costs
//! one fsync per batch and adds no waiting: an idle writer commits a lone message at
//! once. Every sender is answered only after its batch has committed.
//!
//! The writer also publishes what it stored (`chat.message`), in `seq` order, one
//! pipelined round trip per batch. Each chat belongs to one writer (`chat_id` modulo the
//! number of writers), so a chat's events leave the process in the order their seqs were
//! assigned — concurrent senders' request tasks racing to publish could reorder them,
//! and receivers would then have to wait for a gap to fill.

use chat_db::bus::EventBus;
use chat_db::models::{MessageRow, NewMessage};
use chat_db::{DbError, DbPool};
use chrono::NaiveDateTime;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::events::{ChatEvent, chat_topic};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 256;
/// Writers working in parallel on PostgreSQL, each committing its own batch (row locks
/// keep each chat's seqs in order). SQLite has one write lock: one writer.
pub const POSTGRES_WRITERS: usize = 4;
/// Sends waiting for a writer before senders wait to enqueue.
const QUEUE: usize = 4096;

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
        }
    }
}

type Stored = Result<Option<MessageRow>, DbError>;

struct Job {
    message: PendingMessage,
    reply: oneshot::Sender<Stored>,
}

/// Handle to the writer tasks.
#[derive(Clone)]
pub struct MessageWriter {
    /// One queue per writer; a chat's sends always go to the same one.
    queues: Arc<[mpsc::Sender<Job>]>,
}

impl MessageWriter {
    /// Starts the writer tasks (inside a tokio runtime).
    pub fn start(db: DbPool, bus: Arc<dyn EventBus>) -> Self {
        let writers = match db {
            DbPool::Postgres(_) => POSTGRES_WRITERS,
            DbPool::Sqlite(_) => 1,
        };
        let queues: Vec<mpsc::Sender<Job>> = (0..writers)
            .map(|_| {
                let (jobs, queue) = mpsc::channel(QUEUE);
                tokio::spawn(run(db.clone(), bus.clone(), queue));
                jobs
            })
            .collect();
        MessageWriter {
            queues: queues.into(),
        }
    }

    /// Stores a message with its chat's next seq and publishes it; returns once it is
    /// committed. `Ok(None)`: the chat no longer exists.
    pub async fn store(&self, message: PendingMessage) -> Stored {
        let stopped = || DbError::Unavailable("the message writer has stopped".to_owned());
        let writers = i64::try_from(self.queues.len()).map_err(|_| stopped())?;
        let index = usize::try_from(message.chat_id.rem_euclid(writers)).map_err(|_| stopped())?;
        let queue = self.queues.get(index).ok_or_else(stopped)?;
        let (reply, stored) = oneshot::channel();
        queue
            .send(Job { message, reply })
            .await
            .map_err(|_| stopped())?;
        stored.await.map_err(|_| stopped())?
    }
}

async fn run(db: DbPool, bus: Arc<dyn EventBus>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Everything that queued up while the previous batch was committing.
        if queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        let outcome = {
            let batch: Vec<NewMessage<'_>> = jobs.iter().map(|j| j.message.as_new()).collect();
            MessageRow::insert_batch(&db, &batch).await
        };
        match outcome {
            Ok(results) => {
                let mut events = Vec::with_capacity(jobs.len());
                for (job, result) in jobs.drain(..).zip(results) {
                    if let Ok(Some(row)) = &result {
                        match serde_json::to_string(&ChatEvent::stored(row, job.message.sender)) {
                            Ok(payload) => events.push((chat_topic(row.chat_id), payload)),
                            Err(err) => {
                                tracing::error!(error = %err, "cannot serialize chat event")
                            }
                        }
                    }
                    let _ = job.reply.send(result);
                }
                // Awaited before the next batch: that is what keeps each chat's events
                // in seq order on the bus.
                bus.publish_many(events).await;
            }
            Err(err) => {
                tracing::error!(error = %err, messages = jobs.len(), "a message batch failed to commit");
                let detail = err.to_string();
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(DbError::Unavailable(detail.clone())));
                }
            }
        }
    }
}
