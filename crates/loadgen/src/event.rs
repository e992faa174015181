//! Decoding received frames: only the fields the accounting reads.
//!
//! At 100 000 deliveries a second on the machine that also runs the server, parsing
//! each event into a `serde_json::Value` (a map and a string per field) cost the load
//! generator a large share of a core that the server under test then did not get.
//! Here unknown fields are skipped without being built, and strings are borrowed
//! from the frame where they have no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The parts of an event the load generator looks at.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    /// `chat.message`, `ack`, `error`, …
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The chat, when the event names one.
    #[serde(default)]
    pub chat_id: Option<i64>,
    /// The message's seq (`chat.message`).
    #[serde(default)]
    pub seq: Option<i64>,
    /// The message text, when `message` is a string (other events may carry
    /// something else under that name; it is skipped).
    #[serde(default, borrow)]
    pub message: Text<'a>,
}

impl<'a> Event<'a> {
    /// Decodes a frame; `None` if it is not a JSON object with a `type`.
    pub fn parse(frame: &'a str) -> Option<Self> {
        serde_json::from_str(frame).ok()
    }

    /// The send time the load generator wrote into the text (`t=<micros>;…`).
    pub fn sent_at(&self) -> Option<u64> {
        self.message
            .0
            .as_deref()?
            .strip_prefix("t=")?
            .split(';')
            .next()?
            .parse()
            .ok()
    }
}

/// A field read only when it is a string; any other JSON value there is skipped.
#[derive(Debug, Default)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(text))))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(text.to_owned()))))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(text))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_chat_message_and_its_send_time() {
        let frame = r#"{"type":"chat.message","id":9,"chat_id":3,"seq":7,"sender":{"id":1,"username":"a"},"message":"t=1234;xxxx","created_at":"2026-01-01T00:00:00Z"}"#;
        let event = Event::parse(frame).expect("an event");
        assert_eq!(event.kind, "chat.message");
        assert_eq!((event.chat_id, event.seq), (Some(3), Some(7)));
        assert!(matches!(
            event.message.0,
            Some(Cow::Borrowed("t=1234;xxxx"))
        ));
        assert_eq!(event.sent_at(), Some(1234));
    }

    #[test]
    fn escaped_text_is_decoded() {
        let event =
            Event::parse(r#"{"type":"chat.message","message":"t=5;\"q\"\n"}"#).expect("an event");
        assert_eq!(event.message.0.as_deref(), Some("t=5;\"q\"\n"));
        assert_eq!(event.sent_at(), Some(5));
    }

    #[test]
    fn a_message_field_that_is_not_text_is_skipped() {
        for frame in [
            r#"{"type":"ack","chat_id":2,"message":{"id":1,"seq":[1,2]},"seq":4}"#,
            r#"{"type":"ack","chat_id":2,"message":[1,"x"],"seq":4}"#,
            r#"{"type":"ack","chat_id":2,"message":null,"seq":4}"#,
            r#"{"type":"ack","chat_id":2,"message":3.5,"seq":4}"#,
        ] {
            let event = Event::parse(frame).expect("an event");
            assert_eq!(
                (event.kind.as_ref(), event.chat_id, event.seq),
                ("ack", Some(2), Some(4))
            );
            assert!(event.message.0.is_none(), "{frame}");
            assert_eq!(event.sent_at(), None);
        }
    }

    #[test]
    fn frames_that_are_not_events_are_refused() {
        for frame in [
            "",
            "[]",
            "{}",
            r#"{"chat_id":1}"#,
            "not json",
            r#"{"type":5}"#,
        ] {
            assert!(Event::parse(frame).is_none(), "{frame}");
        }
    }

    #[test]
    fn text_without_a_send_time_has_none() {
        let event = Event::parse(r#"{"type":"chat.message","message":"hello"}"#).expect("event");
        assert_eq!(event.sent_at(), None);
    }
}
