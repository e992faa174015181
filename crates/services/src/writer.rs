//! Group commit of messages: one writer task per process stores every send in batches,
//! one transaction per batch.
//!
//! One commit per message caps PostgreSQL at a few thousand rows a second (SPEC §7);
//! committing everything that queued up while the previous batch was committing costs
//! one fsync per batch and adds no waiting: an idle writer commits a lone message at
//! once. Every sender is answered only after its batch has committed.

use chat_db::models::{MessageRow, NewMessage};
use chat_db::{DbError, DbPool};
use chrono::NaiveDateTime;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 256;
/// Writers working in parallel on PostgreSQL, each committing its own batch (row locks
/// keep each chat's seqs in order). SQLite has one write lock: one writer.
pub const POSTGRES_WRITERS: usize = 4;
/// Sends waiting for the writer before senders wait to enqueue.
const QUEUE: usize = 8192;

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

/// Handle to the writer task.
#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Starts the writer tasks (inside a tokio runtime).
    pub fn start(db: DbPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writers = match db {
            DbPool::Postgres(_) => POSTGRES_WRITERS,
            DbPool::Sqlite(_) => 1,
        };
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers {
            tokio::spawn(run(db.clone(), queue.clone()));
        }
        MessageWriter { jobs }
    }

    /// Stores a message with its chat's next seq; returns once it is committed.
    /// `Ok(None)`: the chat no longer exists.
    pub async fn store(&self, message: PendingMessage) -> Stored {
        let (reply, stored) = oneshot::channel();
        self.jobs
            .send(Job { message, reply })
            .await
            .map_err(|_| DbError::Unavailable("the message writer has stopped".to_owned()))?;
        stored
            .await
            .map_err(|_| DbError::Unavailable("the message writer has stopped".to_owned()))?
    }
}

async fn run(db: DbPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // Take a batch, then let the next writer take the next one while this one
            // commits.
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let outcome = {
            let batch: Vec<NewMessage<'_>> = jobs.iter().map(|j| j.message.as_new()).collect();
            MessageRow::insert_batch(&db, &batch).await
        };
        match outcome {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
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
