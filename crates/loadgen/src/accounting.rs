//! Per-receiver sequence accounting: every chat's messages must arrive as 1, 2, 3, …
//! on every member's socket. A gap is a lost message (until, if ever, it arrives late);
//! a repeated or older seq is out of order.

use std::collections::{BTreeSet, HashMap};

/// What one receiver saw of one chat.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    /// Highest seq received.
    highest: i64,
    /// Seqs below `highest` not received yet.
    missing: BTreeSet<i64>,
    /// Messages that arrived after a higher seq, or twice.
    out_of_order: u64,
    /// Messages received.
    received: u64,
}

impl SeqTracker {
    /// A tracker expecting the chat's messages from `first_seq` on.
    pub fn starting_at(first_seq: i64) -> Self {
        SeqTracker {
            highest: first_seq - 1,
            ..SeqTracker::default()
        }
    }

    /// Records one received seq.
    pub fn observe(&mut self, seq: i64) {
        self.received += 1;
        if seq == self.highest + 1 {
            self.highest = seq;
        } else if seq > self.highest {
            self.missing.extend(self.highest + 1..seq);
            self.highest = seq;
        } else if self.missing.remove(&seq) {
            // A gap filled late: not lost, but not in order either.
            self.out_of_order += 1;
        } else {
            self.out_of_order += 1;
        }
    }

    /// Seqs never received, up to `last_seq` (the chat's final seq).
    pub fn lost(&self, last_seq: i64) -> u64 {
        self.missing.len() as u64 + self.tail(last_seq)
    }

    /// Seqs after the highest received, up to `last_seq`.
    pub fn tail(&self, last_seq: i64) -> u64 {
        (last_seq - self.highest).max(0) as u64
    }

    /// Arrivals out of order (late fills and repeats).
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Messages received.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// Trackers of one receiver, per chat.
#[derive(Debug, Default)]
pub struct Receiver {
    chats: HashMap<i64, SeqTracker>,
    /// The receiver stopped listening while frames were still arriving (the run's
    /// drain limit): what it had not received yet was cut off, not lost.
    pub cut: bool,
}

/// A receiver's accounting against the chats' final seqs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Messages received.
    pub received: u64,
    /// Never received although the receiver listened long enough: gaps, and (unless
    /// cut off) the tail.
    pub lost: u64,
    /// Late fills and repeats.
    pub out_of_order: u64,
    /// The tail a cut-off receiver stopped listening before.
    pub cut_off: u64,
}

impl Receiver {
    /// Starts tracking `chat` from `first_seq`.
    pub fn follow(&mut self, chat: i64, first_seq: i64) {
        self.chats.insert(chat, SeqTracker::starting_at(first_seq));
    }

    /// Records a `chat.message` of `chat` with `seq`.
    pub fn observe(&mut self, chat: i64, seq: i64) {
        self.chats
            .entry(chat)
            .or_insert_with(|| SeqTracker::starting_at(1))
            .observe(seq);
    }

    /// Totals against each chat's final seq. A gap is lost whatever happened later; the
    /// tail of a receiver that was [`cut`](Receiver::cut) off is only "cut off".
    pub fn totals(&self, last_seqs: &HashMap<i64, i64>) -> Totals {
        self.chats
            .iter()
            .fold(Totals::default(), |mut sum, (chat, t)| {
                let last = last_seqs.get(chat).copied().unwrap_or(t.highest);
                sum.received += t.received();
                sum.out_of_order += t.out_of_order();
                if self.cut {
                    sum.lost += t.missing.len() as u64;
                    sum.cut_off += t.tail(last);
                } else {
                    sum.lost += t.lost(last);
                }
                sum
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_clean() {
        let mut t = SeqTracker::starting_at(1);
        for seq in 1..=5 {
            t.observe(seq);
        }
        assert_eq!((t.received(), t.lost(5), t.out_of_order()), (5, 0, 0));
    }

    #[test]
    fn a_dropped_message_is_detected() {
        let mut t = SeqTracker::starting_at(1);
        for seq in [1, 2, 4, 5] {
            t.observe(seq);
        }
        assert_eq!(t.lost(5), 1);
        assert_eq!(t.out_of_order(), 0);
    }

    #[test]
    fn a_missing_tail_is_lost() {
        let mut t = SeqTracker::starting_at(1);
        t.observe(1);
        assert_eq!(t.lost(3), 2);
    }

    #[test]
    fn late_and_repeated_arrivals_are_out_of_order_not_lost() {
        let mut t = SeqTracker::starting_at(1);
        for seq in [1, 3, 2, 3] {
            t.observe(seq);
        }
        assert_eq!((t.lost(3), t.out_of_order()), (0, 2));
    }

    #[test]
    fn receivers_total_over_chats() {
        let mut r = Receiver::default();
        r.follow(1, 1);
        r.follow(2, 10);
        for (chat, seq) in [(1, 1), (1, 2), (2, 10), (2, 12)] {
            r.observe(chat, seq);
        }
        let last = HashMap::from([(1, 3), (2, 12)]);
        assert_eq!(
            r.totals(&last),
            Totals {
                received: 4,
                lost: 2,
                out_of_order: 0,
                cut_off: 0
            }
        );
    }

    #[test]
    fn a_cut_off_tail_is_not_lost_but_a_gap_is() {
        let last = HashMap::from([(7, 10)]);
        let mut listening = Receiver::default();
        let mut cut = Receiver {
            cut: true,
            ..Receiver::default()
        };
        for receiver in [&mut listening, &mut cut] {
            receiver.follow(7, 1);
            for seq in [1, 2, 4, 5, 6] {
                receiver.observe(7, seq);
            }
        }
        let whole = listening.totals(&last);
        assert_eq!((whole.lost, whole.cut_off), (1 + 4, 0));
        let partial = cut.totals(&last);
        assert_eq!((partial.lost, partial.cut_off), (1, 4));
        assert_eq!(partial.received, 5);
    }
}
