//! A batch planned before any write: which messages are new, the seqs each chat
//! needs, and where each message ended up.

use super::*;

/// Where one message of a batch ended up.
pub(super) enum Slot {
    /// Its `client_id` was already used (or repeated within the batch).
    Duplicate,
    /// Its chat is gone.
    ChatGone,
    /// Stored.
    Stored(MessageRow),
}

impl Slot {
    /// Matches the stored rows to the batch's messages by `(chat, seq)`.
    pub(super) fn fill(
        planned: Vec<Option<Option<(i64, i64)>>>,
        stored: Vec<MessageRow>,
    ) -> Vec<Slot> {
        let mut by_position: std::collections::HashMap<(i64, i64), MessageRow> = stored
            .into_iter()
            .map(|row| ((row.chat_id, row.seq), row))
            .collect();
        planned
            .into_iter()
            .map(|slot| match slot {
                None => Slot::Duplicate,
                Some(None) => Slot::ChatGone,
                Some(Some(position)) => by_position
                    .remove(&position)
                    .map_or(Slot::ChatGone, Slot::Stored),
            })
            .collect()
    }

    pub(super) fn into_result(self) -> Result<Option<MessageRow>, DbError> {
        match self {
            Slot::Duplicate => Err(DbError::Conflict {
                constraint: "messages_client_id_uq".to_owned(),
            }),
            Slot::ChatGone => Ok(None),
            Slot::Stored(row) => Ok(Some(row)),
        }
    }
}

/// The `(chat, sender, client_id)` of every message of the batch that carries a
/// `client_id`: the keys to look up exactly (one index probe each), never every stored
/// message of the batch's chats.
pub(super) fn batch_keys<'a>(batch: &[NewMessage<'a>]) -> Vec<(i64, i64, &'a str)> {
    batch
        .iter()
        .filter_map(|m| Some((m.chat_id, m.sender_id, m.client_id?)))
        .collect()
}

/// A batch planned before any write: which messages are new, and how many seqs each
/// chat needs.
pub(super) struct BatchPlan {
    accepted: Vec<bool>,
    per_chat: std::collections::BTreeMap<i64, (i64, NaiveDateTime)>,
}

impl BatchPlan {
    /// `existing`: `(chat, sender, client_id)` already stored among the batch's keys (a
    /// superset; matched exactly here). A key repeated within the batch counts once.
    pub(super) fn new(
        batch: &[NewMessage<'_>],
        existing: Vec<(i64, Option<i64>, Option<String>)>,
    ) -> Self {
        let mut taken: std::collections::HashSet<(i64, i64, String)> = existing
            .into_iter()
            .filter_map(|(chat, sender, key)| Some((chat, sender?, key?)))
            .collect();
        let mut accepted = vec![false; batch.len()];
        let mut per_chat = std::collections::BTreeMap::new();
        for (i, m) in batch.iter().enumerate() {
            if let Some(key) = m.client_id
                && !taken.insert((m.chat_id, m.sender_id, key.to_owned()))
            {
                continue;
            }
            accepted[i] = true;
            let entry = per_chat.entry(m.chat_id).or_insert((0, m.created_at));
            entry.0 += 1;
            entry.1 = entry.1.max(m.created_at);
        }
        BatchPlan { accepted, per_chat }
    }

    /// One `(chat, count, latest time)` per chat, in chat id order.
    /// The messages to store (not duplicates), in input order.
    pub(super) fn accepted<'b, 'a>(
        &'b self,
        batch: &'b [NewMessage<'a>],
    ) -> impl Iterator<Item = &'b NewMessage<'a>> + Clone + 'b {
        batch
            .iter()
            .zip(&self.accepted)
            .filter_map(|(m, keep)| keep.then_some(m))
    }

    pub(super) fn bumps(&self) -> Vec<(i64, i64, NaiveDateTime)> {
        self.per_chat
            .iter()
            .map(|(chat, (count, at))| (*chat, *count, *at))
            .collect()
    }

    /// Given each existing chat's new `last_seq`, numbers the accepted messages in input
    /// order per chat: the rows to insert, and per message `None` (duplicate),
    /// `Some(None)` (chat gone) or `Some(Some((chat, seq)))`.
    #[allow(clippy::type_complexity)]
    pub(super) fn assign<'a>(
        &self,
        batch: &[NewMessage<'a>],
        bumped: Vec<(i64, i64)>,
    ) -> (Vec<MessageInsert<'a>>, Vec<Option<Option<(i64, i64)>>>) {
        let mut next_seq: std::collections::HashMap<i64, i64> = bumped
            .into_iter()
            .filter_map(|(chat, last)| {
                let (count, _) = self.per_chat.get(&chat)?;
                Some((chat, last - count + 1))
            })
            .collect();
        let mut rows = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let slot = match (self.accepted[i], next_seq.get_mut(&m.chat_id)) {
                // A key repeated within the batch, in a chat that was bumped for its first
                // use and turned out deleted: the chat is what is gone.
                (false, None) if self.per_chat.contains_key(&m.chat_id) => Some(None),
                (false, _) => None,
                (true, None) => Some(None),
                (true, Some(seq)) => {
                    rows.push(MessageInsert {
                        chat_id: m.chat_id,
                        sender_id: Some(m.sender_id),
                        seq: *seq,
                        content: m.content,
                        client_id: m.client_id,
                        reply_to: m.reply_to,
                        created_at: m.created_at,
                        mentions: m.mentions,
                        attachments: m.attachments.map(|a| a.1),
                    });
                    *seq += 1;
                    Some(Some((m.chat_id, *seq - 1)))
                }
            };
            slots.push(slot);
        }
        (rows, slots)
    }
}

#[cfg(test)]
mod batch_plan_tests {
    use super::*;

    fn message(chat_id: i64, client_id: Option<&str>) -> NewMessage<'_> {
        NewMessage {
            chat_id,
            sender_id: 7,
            content: "hi",
            client_id,
            reply_to: None,
            created_at: NaiveDateTime::default(),
            mentions: None,
            attachments: None,
        }
    }

    #[test]
    fn seqs_are_consecutive_per_chat_and_duplicates_take_none() {
        let batch = [
            message(1, Some("a")),
            message(2, None),
            message(1, Some("a")),
            message(1, None),
            message(1, Some("b")),
        ];
        // "b" is already stored for this sender in chat 1.
        let plan = BatchPlan::new(&batch, vec![(1, Some(7), Some("b".to_owned()))]);
        assert_eq!(
            plan.bumps().iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
            vec![(1, 2), (2, 1)]
        );
        // Chat 1 now ends at 12 (two new seqs: 11, 12), chat 2 at 5.
        let (rows, slots) = plan.assign(&batch, vec![(1, 12), (2, 5)]);
        assert_eq!(
            rows.iter().map(|r| (r.chat_id, r.seq)).collect::<Vec<_>>(),
            vec![(1, 11), (2, 5), (1, 12)]
        );
        assert_eq!(
            slots,
            vec![
                Some(Some((1, 11))),
                Some(Some((2, 5))),
                None,
                Some(Some((1, 12))),
                None
            ]
        );
    }

    #[test]
    fn a_resend_alone_in_its_chat_is_a_duplicate() {
        let batch = [message(4, Some("k"))];
        let plan = BatchPlan::new(&batch, vec![(4, Some(7), Some("k".to_owned()))]);
        assert!(plan.bumps().is_empty());
        let (rows, slots) = plan.assign(&batch, Vec::new());
        assert!(rows.is_empty());
        assert_eq!(slots, vec![None]);
    }

    #[test]
    fn a_deleted_chat_answers_chat_gone_even_for_a_repeated_key() {
        let batch = [message(3, Some("k")), message(3, Some("k"))];
        let plan = BatchPlan::new(&batch, Vec::new());
        // Chat 3 has no row to bump: it was deleted.
        let (rows, slots) = plan.assign(&batch, Vec::new());
        assert!(rows.is_empty());
        assert_eq!(slots, vec![Some(None), Some(None)]);
    }
}
