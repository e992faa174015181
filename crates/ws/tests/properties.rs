//! Property tests of what a client controls: the frame decoder (any bytes, cut
//! anywhere, never panics; what a client encodes decodes back, however the network
//! splits it) and the protocol parser (any text or JSON never panics; `request_id`
//! comes back). Case counts are kept small so the file runs in seconds.

use chat_domain::ChatId;
use std::collections::VecDeque;

use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Item, Message};
use actix_web::web::{Bytes, BytesMut};
use chat_ws::close::Closing;
use chat_ws::frames::{self, Inbound, Incoming, Source};
use chat_ws::protocol;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The frame-size limit the decoder is built with here: small, so that messages on
/// both sides of it are cheap to generate.
const LIMIT: usize = 256;

/// Most messages read from one input: decoding must end well before.
const MAX_MESSAGES: usize = 10_000;

/// Every reason the server closes a socket for.
const CLOSINGS: [Closing; 10] = [
    Closing::Lagging,
    Closing::SessionRevoked,
    Closing::Reauthenticate,
    Closing::RemovedFromChat,
    Closing::ChatDeleted,
    Closing::TooLarge,
    Closing::Idle,
    Closing::GoingAway,
    Closing::ProtocolError,
    Closing::InvalidText,
];

/// What the decoder gave: messages, then the first error if any (the session closes
/// the socket on it, so nothing after it is read).
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    messages: Vec<Incoming>,
    error: Option<String>,
}

/// A socket whose reads return these chunks, then the end of the stream.
struct Chunks(VecDeque<Bytes>);

impl Source for Chunks {
    async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        let chunk = self.0.pop_front().unwrap_or_default();
        buf.extend_from_slice(&chunk);
        Ok(chunk.len())
    }
}

/// Feeds `bytes`, cut at `cuts`, to [`Inbound`] as a socket's reads.
fn decode(bytes: &[u8], cuts: &[usize], limit: usize) -> Decoded {
    let chunks = split(bytes, cuts).into_iter().filter(|c| !c.is_empty());
    let mut inbound = Inbound::new(Chunks(chunks.collect()), BytesMut::new(), limit);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime needs no resources that can be missing");
    runtime.block_on(async {
        let mut decoded = Decoded {
            messages: Vec::new(),
            error: None,
        };
        while let Some(next) = inbound.recv().await {
            match next {
                Ok(message) => decoded.messages.push(message),
                Err(err) => {
                    decoded.error = Some(err.to_string());
                    break;
                }
            }
            assert!(
                decoded.messages.len() < MAX_MESSAGES,
                "decoding does not end"
            );
        }
        decoded
    })
}

/// `bytes` in chunks ending at the given offsets (taken modulo the length).
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut ends: Vec<usize> = cuts
        .iter()
        .map(|cut| cut % (bytes.len() + 1))
        .chain([bytes.len()])
        .collect();
    ends.sort_unstable();
    ends.dedup();
    let mut start = 0;
    let mut chunks = Vec::new();
    for end in ends {
        chunks.push(Bytes::copy_from_slice(&bytes[start..end]));
        start = end;
    }
    chunks
}

/// One message as a client sends it.
#[derive(Debug, Clone)]
enum Sent {
    Text(String),
    /// A text message in continuation frames, cut at these byte offsets (possibly
    /// inside a character: frames carry bytes, the message must still come out whole).
    Fragmented(String, Vec<usize>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn sent() -> impl Strategy<Value = Sent> {
    let text = "\\PC{0,60}";
    prop_oneof![
        text.prop_map(Sent::Text),
        (text, prop::collection::vec(any::<usize>(), 1..4))
            .prop_map(|(text, cuts)| Sent::Fragmented(text, cuts)),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(Sent::Binary),
        prop::collection::vec(any::<u8>(), 0..=125).prop_map(Sent::Ping),
        prop::collection::vec(any::<u8>(), 0..=125).prop_map(Sent::Pong),
    ]
}

/// Encodes as a client does (masked frames).
fn encode(messages: &[Sent]) -> Vec<u8> {
    let mut codec = Codec::new().client_mode();
    let mut out = BytesMut::new();
    let mut put = |message: Message| {
        codec
            .encode(message, &mut out)
            .expect("encoding into memory cannot fail");
    };
    for message in messages {
        match message.clone() {
            Sent::Text(text) => put(Message::Text(text.into())),
            Sent::Fragmented(text, cuts) => {
                let parts = split(text.as_bytes(), &cuts);
                let last = parts.len() - 1;
                for (i, part) in parts.into_iter().enumerate() {
                    put(Message::Continuation(match i {
                        0 => Item::FirstText(part),
                        i if i == last => Item::Last(part),
                        _ => Item::Continue(part),
                    }));
                }
            }
            Sent::Binary(bytes) => put(Message::Binary(bytes.into())),
            Sent::Ping(bytes) => put(Message::Ping(bytes.into())),
            Sent::Pong(bytes) => put(Message::Pong(bytes.into())),
        }
    }
    put(Message::Close(Some(CloseReason::from(CloseCode::Normal))));
    out.to_vec()
}

fn expected(messages: &[Sent]) -> Vec<Incoming> {
    messages
        .iter()
        .map(|message| match message {
            Sent::Text(text) | Sent::Fragmented(text, _) => Incoming::Text(text.clone()),
            Sent::Binary(_) => Incoming::Binary,
            Sent::Ping(bytes) => Incoming::Ping(Bytes::copy_from_slice(bytes)),
            Sent::Pong(_) => Incoming::Pong,
        })
        .chain([Incoming::Close])
        .collect()
}

/// A single-fragment message would be sent as a plain frame.
fn with_real_fragments(messages: Vec<Sent>) -> Vec<Sent> {
    messages
        .into_iter()
        .map(|message| match message {
            Sent::Fragmented(text, cuts) if split(text.as_bytes(), &cuts).len() < 2 => {
                Sent::Text(text)
            }
            other => other,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_cut_anywhere_decode_without_panicking_and_alike(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = decode(&bytes, &[], LIMIT);
        let cut = decode(&bytes, &cuts, LIMIT);
        // Where the network splits the bytes changes nothing.
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn encoded_messages_decode_back_however_they_are_split(
        messages in prop::collection::vec(sent(), 0..12).prop_map(with_real_fragments),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let bytes = encode(&messages);
        let decoded = decode(&bytes, &cuts, LIMIT);
        prop_assert_eq!(decoded.error, None);
        prop_assert_eq!(decoded.messages, expected(&messages));
    }

    #[test]
    fn damaged_client_streams_never_panic_and_do_not_depend_on_the_cuts(
        messages in prop::collection::vec(sent(), 1..6).prop_map(with_real_fragments),
        damage in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        keep in any::<usize>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = encode(&messages);
        for (at, xor) in damage {
            let len = bytes.len();
            bytes[at % len] ^= xor;
        }
        bytes.truncate(keep % (bytes.len() + 1));
        prop_assert_eq!(decode(&bytes, &[], LIMIT), decode(&bytes, &cuts, LIMIT));
    }

    #[test]
    fn messages_over_the_limit_are_refused_and_the_rest_accepted(
        len in (LIMIT - 8)..(LIMIT + 8),
        fragments in prop::collection::vec(any::<usize>(), 0..3),
    ) {
        let text = "x".repeat(len);
        let message = match fragments.is_empty() {
            true => Sent::Text(text.clone()),
            false => Sent::Fragmented(text.clone(), fragments),
        };
        let decoded = decode(&encode(&with_real_fragments(vec![message])), &[], LIMIT);
        if len <= LIMIT {
            prop_assert_eq!(decoded.messages.first(), Some(&Incoming::Text(text)));
            prop_assert_eq!(decoded.error, None);
        } else {
            prop_assert!(decoded.messages.is_empty(), "{:?}", decoded.messages);
            prop_assert!(decoded.error.is_some());
        }
    }

    #[test]
    fn server_frames_decode_as_a_client_sees_them(
        text in "\\PC{0,300}",
        closing in prop::sample::select(CLOSINGS.to_vec()),
        reason in "\\PC{0,200}",
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut client = Codec::new().client_mode().max_size(1 << 20);
        let mut decode_one = |bytes: Bytes| {
            let mut buf = BytesMut::from(&bytes[..]);
            actix_codec::Decoder::decode(&mut client, &mut buf)
                .map_err(|e| e.to_string())
                .map(|frame| (frame, buf.is_empty()))
        };
        let frame = frames::text(&text);
        prop_assert_eq!(frames::text_payload(&frame), Some(text.as_str()));
        match decode_one(frame) {
            Ok((Some(Frame::Text(bytes)), true)) => prop_assert_eq!(&bytes[..], text.as_bytes()),
            other => prop_assert!(false, "text frame decoded as {:?}", other),
        }
        // The codes the server closes with, with any reason (a client refuses reserved
        // codes such as 1005 or 1015, and reasons that are not UTF-8).
        match decode_one(frames::close(closing.code(), &reason)) {
            Ok((Some(Frame::Close(Some(close))), true)) => {
                prop_assert_eq!(u16::from(close.code), closing.code());
                let description = close.description.unwrap_or_default();
                // Cut to fit a control frame, at a character boundary.
                prop_assert!(description.len() <= 123);
                prop_assert!(reason.starts_with(&description));
            }
            other => prop_assert!(false, "close frame decoded as {:?}", other),
        }
        match decode_one(frames::pong(&payload)) {
            Ok((Some(Frame::Pong(bytes)), true)) => {
                prop_assert_eq!(&bytes[..], &payload[..payload.len().min(125)]);
            }
            other => prop_assert!(false, "pong frame decoded as {:?}", other),
        }
    }
}

/// Any JSON value, nested a few levels, with the protocol's field names among the keys
/// so that typed fields see wrong types too.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "action",
            "request_id",
            "chat_id",
            "message",
            "client_id",
            "reply_to",
            "number",
            "before_seq",
            "seq",
            "message_id",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

/// A `request_id` as clients send them: short strings and numbers.
fn request_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,32}".prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,200}") {
        let _ = protocol::parse(&text);
    }

    #[test]
    fn any_json_parses_or_is_refused_and_only_objects_are_frames(value in json_value()) {
        let parsed = protocol::parse(&value.to_string());
        if parsed.is_ok() {
            prop_assert!(value.is_object());
        }
        if let Ok(frame) = parsed {
            // What the session asks next never panics either.
            let _ = frame.action();
            let _ = frame.chat(Some(ChatId(1)));
            let _ = frame.chat(None);
        }
    }

    #[test]
    fn request_id_comes_back_with_the_frame_or_its_error(
        id in request_id(),
        fields in prop::collection::vec((key(), json_value()), 0..6),
    ) {
        let mut frame: serde_json::Map<String, Value> = fields.into_iter().collect();
        frame.insert("request_id".to_owned(), id.clone());
        let returned = match protocol::parse(&Value::Object(frame).to_string()) {
            Ok(frame) => frame.request_id,
            Err((request_id, _)) => request_id,
        };
        prop_assert_eq!(returned, Some(id));
    }

    #[test]
    fn well_typed_frames_parse_to_their_fields(
        id in request_id(),
        chat_id in any::<i64>(),
        message in "\\PC{0,100}",
        number in any::<i64>(),
    ) {
        let text = json!({
            "action": "send_message", "request_id": id, "chat_id": chat_id,
            "message": message, "number": number,
        })
        .to_string();
        let frame = protocol::parse(&text);
        prop_assert!(frame.is_ok(), "{:?}", frame.err());
        if let Ok(frame) = frame {
            prop_assert_eq!(frame.request_id.as_ref(), Some(&id));
            prop_assert_eq!(frame.chat_id, Some(ChatId(chat_id)));
            prop_assert_eq!(frame.message.as_deref(), Some(message.as_str()));
            prop_assert_eq!(frame.number, Some(number));
            prop_assert_eq!(frame.action().ok(), Some("send_message"));
        }
    }
}
