//! Recently read history pages' messages, kept rendered in this process's memory.
//!
//! A history page costs a database read and the JSON rendering of up to 201 messages,
//! and pages are read far more often than stored messages change: a stored message
//! changes only by an edit or a deletion, and a send only adds a seq above the others.
//! So each process keeps the messages it has rendered, per chat, and serves a page from
//! them when it holds **every** message of the page and knows they are current. Two
//! shared cache entries per chat (Redis in production, in-process in embedded mode),
//! read in the same round trip as the caller's session and access, say what is current:
//!
//! - `history_epoch:{chat}` — a random token, replaced after every edit or deletion of
//!   one of the chat's messages. Messages are kept under the token they were read under
//!   and thrown away when it changes. A reader that finds no token adds one (it is then
//!   the token for everyone) and keeps nothing that time.
//! - `history_last:{chat}` — the chat's newest seq, raised (never lowered: writers on
//!   several instances may land out of order) by the message writer after each commit
//!   and before any sender is answered, so a sender who reads right after the
//!   acknowledgement, on any instance, is never served a page without its message. Only
//!   the writer writes it: while it is missing (a chat with no send for an hour, or since
//!   Redis lost it), that chat's pages are read from the database.
//!
//! A token is read before the database is, so kept messages are never older than the
//! token they are kept under; writers replace it after their commit. Seqs are gapless,
//! so the seqs a page needs follow from its range, its size and the newest seq alone.

use chat_domain::ChatId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_db::models::HistoryRange;

use crate::reactions::Tally;

/// Lifetime of a chat's shared `history_last` entry (renewed by every send): longer than
/// the other entries' 5 minutes, so a quiet chat's kept pages stay usable for a while;
/// also how long a failed write of it can leave instances serving pages without a batch.
pub const LAST_SEQ_TTL: Duration = Duration::from_secs(3600);
/// Most messages kept for one chat; beyond it the oldest go first.
const MAX_PER_CHAT: usize = 2048;
/// Bookkeeping per kept message on top of its text (map node, `Arc` header).
const ENTRY_OVERHEAD: usize = 64;

/// The seqs one page needs, in the order the page lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Lowest seq.
    pub low: i64,
    /// Highest seq (`< low`: the page is empty).
    pub high: i64,
    /// Newest first (`before_seq`, `offset`, the newest page) or oldest first.
    pub newest_first: bool,
}

impl Span {
    /// The seqs `fetch` rows of `range` cover, given the chat's newest seq `last` (seqs
    /// are gapless from 1).
    pub fn of(range: HistoryRange, fetch: i64, last: i64) -> Span {
        let fetch = fetch.max(0);
        let newest_first = |top: i64| Span {
            low: top.saturating_sub(fetch).saturating_add(1).max(1),
            high: top,
            newest_first: true,
        };
        match range {
            HistoryRange::Before(None) => newest_first(last),
            HistoryRange::Before(Some(before)) => newest_first(before.saturating_sub(1).min(last)),
            HistoryRange::Offset(offset) => newest_first(last.saturating_sub(offset)),
            HistoryRange::After(after) => Span {
                low: after.saturating_add(1),
                high: after.saturating_add(fetch).min(last),
                newest_first: false,
            },
        }
    }

    fn len(self) -> usize {
        usize::try_from(self.high.saturating_sub(self.low).saturating_add(1)).unwrap_or(0)
    }
}

/// A kept, rendered message: its seq and what is kept of it.
pub type Rendered = (i64, Kept);

/// A rendered message as kept: its JSON up to its reactions, which are kept as who
/// chose what because each reader's `me` differs (`crate::reactions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The message's JSON without its closing `]}`: it ends with `"reactions":[`.
    pub head: Arc<str>,
    /// Its reactions, in the order first used (`None`: none).
    pub reactions: Option<Arc<[Tally]>>,
}

impl Kept {
    /// Bytes it takes (texts and ids).
    pub fn len(&self) -> usize {
        self.head.len()
            + self.reactions.as_ref().map_or(0, |tallies| {
                tallies
                    .iter()
                    .map(|t| t.emoji.len() + t.users.len() * 8 + 32)
                    .sum()
            })
    }

    /// Whether it takes no bytes at all (never: a message renders as some JSON).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hits and misses since start, and what is kept now (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryCacheStats {
    /// Pages served from memory.
    pub hits: u64,
    /// Pages read from the database.
    pub misses: u64,
    /// Bytes kept (texts plus bookkeeping).
    pub bytes: u64,
    /// Chats with kept messages.
    pub chats: u64,
}

/// The per-process store of rendered history (see the module docs).
pub struct HistoryCache {
    budget: usize,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct State {
    chats: HashMap<i64, Window>,
    bytes: usize,
    clock: u64,
}

struct Window {
    epoch: u64,
    messages: BTreeMap<i64, Kept>,
    bytes: usize,
    used: u64,
}

impl HistoryCache {
    /// Keeps at most `budget` bytes; `0` keeps nothing (every page is read).
    pub fn new(budget: usize) -> Self {
        HistoryCache {
            budget,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether anything is ever kept.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every operation leaves the state consistent before it can panic (allocation
        // failure aside), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The page's messages in page order, if every one of them is kept under `epoch`.
    /// Counts a hit or a miss.
    pub fn get(&self, chat_id: ChatId, epoch: u64, span: Span) -> Option<Vec<Rendered>> {
        let found = self.find(chat_id, epoch, span);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Counts a page that could not even be looked for (no token or newest seq known).
    pub fn count_miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    fn find(&self, chat_id: ChatId, epoch: u64, span: Span) -> Option<Vec<Rendered>> {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let window = state.chats.get_mut(&chat_id.0)?;
        if window.epoch != epoch {
            return None;
        }
        window.used = clock;
        let wanted = span.len();
        if wanted == 0 {
            return Some(Vec::new());
        }
        let kept = window.messages.range(span.low..=span.high);
        let mut out = Vec::with_capacity(wanted);
        if span.newest_first {
            out.extend(kept.rev().map(|(seq, json)| (*seq, json.clone())));
        } else {
            out.extend(kept.map(|(seq, json)| (*seq, json.clone())));
        }
        (out.len() == wanted).then_some(out)
    }

    /// Keeps `messages` (read from the database under `epoch`) for `chat_id`; messages
    /// kept under another token are dropped first.
    pub fn put(&self, chat_id: ChatId, epoch: u64, messages: &[Rendered]) {
        if !self.enabled() || messages.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let State { chats, bytes, .. } = &mut *state;
        let window = chats.entry(chat_id.0).or_insert_with(|| Window {
            epoch,
            messages: BTreeMap::new(),
            bytes: 0,
            used: clock,
        });
        if window.epoch != epoch {
            *bytes -= window.bytes;
            window.epoch = epoch;
            window.messages.clear();
            window.bytes = 0;
        }
        window.used = clock;
        for (seq, json) in messages {
            let size = json.len() + ENTRY_OVERHEAD;
            if let Some(old) = window.messages.insert(*seq, json.clone()) {
                window.bytes -= old.len() + ENTRY_OVERHEAD;
                *bytes -= old.len() + ENTRY_OVERHEAD;
            }
            window.bytes += size;
            *bytes += size;
        }
        while window.messages.len() > MAX_PER_CHAT {
            if let Some((_, old)) = window.messages.pop_first() {
                window.bytes -= old.len() + ENTRY_OVERHEAD;
                *bytes -= old.len() + ENTRY_OVERHEAD;
            }
        }
        if state.bytes > self.budget {
            evict(&mut state, self.budget / 4 * 3);
        }
    }

    /// Drops what is kept for `chat_id` (its messages changed here; other instances
    /// notice by the token).
    pub fn forget(&self, chat_id: ChatId) {
        let mut state = self.lock();
        if let Some(window) = state.chats.remove(&chat_id.0) {
            state.bytes -= window.bytes;
        }
    }

    /// Totals for `/metrics`.
    pub fn stats(&self) -> HistoryCacheStats {
        let (bytes, chats) = {
            let state = self.lock();
            (state.bytes, state.chats.len())
        };
        HistoryCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: bytes as u64,
            chats: chats as u64,
        }
    }
}

/// Drops the least recently used chats until at most `target` bytes are kept.
fn evict(state: &mut State, target: usize) {
    let mut by_use: Vec<(u64, i64)> = state
        .chats
        .iter()
        .map(|(chat, window)| (window.used, *chat))
        .collect();
    by_use.sort_unstable();
    for (_, chat) in by_use {
        if state.bytes <= target {
            break;
        }
        if let Some(window) = state.chats.remove(&chat) {
            state.bytes -= window.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(seqs: std::ops::RangeInclusive<i64>) -> Vec<Rendered> {
        seqs.map(|seq| {
            let kept = Kept {
                head: Arc::from(format!("{{\"seq\":{seq},\"reactions\":[")),
                reactions: None,
            };
            (seq, kept)
        })
        .collect()
    }

    fn seqs(page: Option<Vec<Rendered>>) -> Option<Vec<i64>> {
        page.map(|p| p.into_iter().map(|(seq, _)| seq).collect())
    }

    #[test]
    fn spans_follow_the_range_and_the_newest_seq() {
        let newest = |low, high| Span {
            low,
            high,
            newest_first: true,
        };
        assert_eq!(
            Span::of(HistoryRange::Before(None), 51, 1000),
            newest(950, 1000)
        );
        assert_eq!(
            Span::of(HistoryRange::Before(Some(500)), 51, 1000),
            newest(449, 499)
        );
        // A before_seq above the newest reads the newest page.
        assert_eq!(
            Span::of(HistoryRange::Before(Some(5000)), 51, 1000),
            newest(950, 1000)
        );
        // Near the start the page is short; below it, empty.
        assert_eq!(
            Span::of(HistoryRange::Before(Some(10)), 51, 1000),
            newest(1, 9)
        );
        assert_eq!(Span::of(HistoryRange::Before(Some(1)), 51, 1000).len(), 0);
        assert_eq!(Span::of(HistoryRange::Before(None), 51, 0).len(), 0);
        assert_eq!(
            Span::of(HistoryRange::Offset(100), 51, 1000),
            newest(850, 900)
        );
        assert_eq!(Span::of(HistoryRange::Offset(5000), 51, 1000).len(), 0);
        assert_eq!(
            Span::of(HistoryRange::After(990), 51, 1000),
            Span {
                low: 991,
                high: 1000,
                newest_first: false
            }
        );
        assert_eq!(Span::of(HistoryRange::After(1000), 51, 1000).len(), 0);
        assert_eq!(Span::of(HistoryRange::After(i64::MAX), 51, 1000).len(), 0);
        assert_eq!(
            Span::of(HistoryRange::Before(Some(i64::MAX)), 51, i64::MAX).len(),
            51
        );
    }

    #[test]
    fn a_page_is_served_only_when_every_message_is_kept_under_the_token() {
        let cache = HistoryCache::new(1 << 20);
        cache.put(ChatId(7), 1, &rendered(10..=60));
        let span = Span::of(HistoryRange::Before(Some(61)), 51, 100);
        assert_eq!(
            seqs(cache.get(ChatId(7), 1, span)),
            Some((10..=60).rev().collect())
        );
        let after = Span::of(HistoryRange::After(9), 51, 100);
        assert_eq!(
            seqs(cache.get(ChatId(7), 1, after)),
            Some((10..=60).collect())
        );
        // One message short, another token, another chat: read the database.
        assert_eq!(
            cache.get(
                ChatId(7),
                1,
                Span::of(HistoryRange::Before(Some(62)), 51, 100)
            ),
            None
        );
        assert_eq!(cache.get(ChatId(7), 2, span), None);
        assert_eq!(cache.get(ChatId(8), 1, span), None);
        // An empty page under the current token needs nothing kept.
        assert_eq!(
            seqs(cache.get(ChatId(7), 1, Span::of(HistoryRange::After(100), 51, 100))),
            Some(vec![])
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.chats), (3, 3, 1));
    }

    #[test]
    fn a_new_token_drops_what_was_kept_under_the_old_one() {
        let cache = HistoryCache::new(1 << 20);
        cache.put(ChatId(7), 1, &rendered(1..=10));
        cache.put(ChatId(7), 2, &rendered(5..=6));
        assert_eq!(
            cache.get(ChatId(7), 2, Span::of(HistoryRange::After(0), 3, 10)),
            None
        );
        assert_eq!(
            seqs(cache.get(ChatId(7), 2, Span::of(HistoryRange::After(4), 2, 10))),
            Some(vec![5, 6])
        );
        let bytes = cache.stats().bytes;
        assert_eq!(
            bytes,
            2 * (rendered(5..=5)[0].1.len() as u64 + ENTRY_OVERHEAD as u64)
        );
        cache.forget(ChatId(7));
        assert_eq!(cache.stats().bytes, 0);
        assert_eq!(
            cache.get(ChatId(7), 2, Span::of(HistoryRange::After(4), 2, 10)),
            None
        );
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used_chats() {
        let one_chat = 100 * (rendered(100..=100)[0].1.len() + ENTRY_OVERHEAD);
        let budget = one_chat * 3 + one_chat / 2;
        let cache = HistoryCache::new(budget);
        for chat in 1..=3 {
            cache.put(ChatId(chat), 1, &rendered(101..=200));
        }
        let span = Span::of(HistoryRange::Before(None), 10, 200);
        assert!(cache.get(ChatId(1), 1, span).is_some());
        // Over the budget: down to three quarters of it, the least recently used first
        // (2, then 3; 1 was read since).
        cache.put(ChatId(4), 1, &rendered(101..=200));
        let kept: Vec<bool> = (1..=4)
            .map(|chat| cache.get(ChatId(chat), 1, span).is_some())
            .collect();
        assert_eq!(kept, [true, false, false, true]);
        assert_eq!(cache.stats().bytes, 2 * one_chat as u64);
        // A chat keeps at most MAX_PER_CHAT messages, the newest.
        let big = HistoryCache::new(usize::MAX);
        big.put(ChatId(9), 1, &rendered(1..=(MAX_PER_CHAT as i64 + 10)));
        assert!(
            big.get(ChatId(9), 1, Span::of(HistoryRange::After(0), 5, 10_000))
                .is_none()
        );
        assert!(
            big.get(
                ChatId(9),
                1,
                Span::of(HistoryRange::Before(None), 5, MAX_PER_CHAT as i64 + 10)
            )
            .is_some()
        );
        // Nothing is kept with no budget.
        let off = HistoryCache::new(0);
        off.put(ChatId(1), 1, &rendered(1..=3));
        assert_eq!(off.stats().chats, 0);
    }
}

/// Reads chats' newest committed seqs (`history_last`): what a socket that began
/// following a chat mid-stream compares with what reached it, to know whether a message
/// passed before the bus subscription took effect.
#[derive(Clone)]
pub struct NewestSeqs(Arc<dyn chat_db::cache::Cache>);

impl NewestSeqs {
    /// Reads from `cache` (the shared cache the writers raise the entries in).
    pub fn new(cache: Arc<dyn chat_db::cache::Cache>) -> Self {
        NewestSeqs(cache)
    }

    /// The chat's newest committed seq: `Ok(None)` when no batch of the chat was
    /// committed for [`LAST_SEQ_TTL`] (the writers raise the entry before publishing),
    /// an error when the cache did not answer.
    pub async fn get(
        &self,
        chat: ChatId,
    ) -> Result<Option<chat_domain::Seq>, chat_db::cache::CacheError> {
        let value = self
            .0
            .get(&chat_selectors::keys::history_last(chat.0))
            .await?;
        Ok(value.and_then(|v| v.parse().ok()).map(chat_domain::Seq))
    }
}
