//! A PutLogEvents request body, written as it is sent, and the way to hand it to the SDK.
//!
//! The SDK's path costs, per event: a `String` for its `InputLogEvent`, a clone of it
//! when the input is built, and, when the request is serialised, a second escaped copy of
//! every message that holds a `"` (every whole-record JSON message does). Here messages
//! are already in their wire form (escaped for a JSON string when they were encoded from
//! MessagePack, see [`crate::encode::Out`]), so a body is only their copies between fixed
//! bytes, with no allocation per event. The bytes are exactly those the SDK writes for the
//! same events (`aws-smithy-json`'s escaping: `"` `\` and control characters; `\u00xx` in
//! lower case), so CloudWatch sees no difference.
//!
//! A [`Body`] is never whole in memory: it is hashed once when it is made (SigV4 signs the
//! SHA-256 of the payload; the body's bytes are fed to the hash from the messages where
//! they lie) and written again, a piece of [`PIECE`] bytes at a time, while it is sent. A
//! flush's requests so hold its messages once, not again as bodies (~1 MB each).
//! [`write`] is the same body in one buffer, for tests and benches.
//!
//! With `add_entity`, the batch's entity ([`crate::entity`]) follows the events, where the
//! SDK writes it: `…,"logEvents":[…],"entity":{"keyAttributes":{…},"attributes":{…}}}`.
//!
//! [`put_log_events`] sends such a body through the SDK: the operation is built with the
//! group and stream only, and an interceptor, before the SDK signs, replaces the
//! serialised body with the [`Body`] and gives the signer the precomputed hash. The
//! signature, the endpoint, the timeouts and the error parsing are the SDK's as for any
//! call.
//!
//! Pure except for [`put_log_events`], which only builds the call. Must not: decode,
//! batch, or retry.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::client::customize::CustomizableOperation;
use aws_sdk_cloudwatchlogs::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::BoxError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::builders::PutLogEventsFluentBuilder;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sha2::{Digest, Sha256};

use crate::batch::Event;
use crate::deliver::Destination;
use crate::encode;
use crate::entity::Entity;

/// Bytes of the body around the names and events: `{"logGroupName":"","logStreamName":"",
/// "logEvents":[]}`.
const FRAME_BYTES: usize = 53;
/// Bytes of one event around its time and message: `{"timestamp":,"message":""},`.
const EVENT_FRAME_BYTES: usize = 28;
/// Digits of a timestamp in milliseconds (13 until the year 2286), with a sign to spare.
const TIMESTAMP_BYTES: usize = 14;
/// The end of every body without an entity.
const TAIL: &[u8] = b"]}";
/// The size a piece of a body being sent reaches before it is handed on (a piece holds
/// whole events, so one with a long message is longer): four TLS records.
pub const PIECE: usize = 64 << 10;

/// The exact size of the body of `batch`, but for the timestamps' digits (counted as
/// [`TIMESTAMP_BYTES`] each) and the names' escapes.
pub fn capacity(destination: &Destination, batch: &[Event]) -> usize {
    let messages: usize = batch.iter().map(|e| e.message.len()).sum();
    FRAME_BYTES
        + destination.group.len()
        + destination.stream.len()
        + batch.len() * (EVENT_FRAME_BYTES + TIMESTAMP_BYTES)
        + messages
}

/// Where the bytes of a body go: a buffer, or a hash.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A hash of the bytes put, and their count. The short runs between messages (an event's
/// frame and time, ~40 bytes) are gathered and hashed together: a hash update per run
/// costs more than copying it.
struct Hashing {
    sha: Sha256,
    len: usize,
    gathered: Vec<u8>,
}

impl Hashing {
    /// Runs at least this long are hashed where they lie.
    const DIRECT: usize = 4096;
    const GATHER: usize = 16384;

    fn new() -> Self {
        Hashing {
            sha: Sha256::new(),
            len: 0,
            gathered: Vec::with_capacity(Self::GATHER),
        }
    }

    /// The count of bytes put and their SHA-256 in lowercase hex.
    fn finish(mut self) -> (usize, String) {
        self.sha.update(&self.gathered);
        (self.len, hex(&self.sha.finalize()))
    }
}

impl Sink for Hashing {
    fn put(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if bytes.len() >= Self::DIRECT || self.gathered.len() + bytes.len() > Self::GATHER {
            self.sha.update(&self.gathered);
            self.gathered.clear();
        }
        if bytes.len() >= Self::DIRECT {
            self.sha.update(bytes);
        } else {
            self.gathered.extend_from_slice(bytes);
        }
    }
}

/// The start of the body: `{"logGroupName":…,"logStreamName":…,"logEvents":[`.
fn head(destination: &Destination) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(FRAME_BYTES + destination.group.len() + destination.stream.len());
    out.extend_from_slice(b"{\"logGroupName\":\"");
    encode::escape_into(&mut out, &destination.group);
    out.extend_from_slice(b"\",\"logStreamName\":\"");
    encode::escape_into(&mut out, &destination.stream);
    out.extend_from_slice(b"\",\"logEvents\":[");
    out
}

/// Puts `events` (a run of a batch; `first`: it starts the batch) as the body's
/// `{"timestamp":…,"message":…}` items. The messages are copied as they are: they were
/// escaped when they were encoded.
fn put_events(out: &mut impl Sink, messages: &[u8], events: &[Event], first: bool) {
    let mut digits = itoa::Buffer::new();
    for (i, event) in events.iter().enumerate() {
        out.put(if first && i == 0 {
            b"{\"timestamp\":"
        } else {
            b",{\"timestamp\":"
        });
        out.put(digits.format(event.timestamp_ms).as_bytes());
        out.put(b",\"message\":\"");
        out.put(message(messages, event));
        out.put(b"\"}");
    }
}

/// The end of the body: the events' `]`, the entity if there is one, the body's `}`.
fn tail(entity: Option<&Entity>) -> Vec<u8> {
    match entity {
        None => TAIL.to_vec(),
        Some(entity) => {
            let mut out = b"],".to_vec();
            out.extend_from_slice(&entity.wire());
            out.push(b'}');
            out
        }
    }
}

/// Appends the PutLogEvents body for `batch` (events whose messages' wire forms lie in
/// `messages`), in the batch's order: `{"logGroupName":…,"logStreamName":…,"logEvents":
/// [{"timestamp":…,"message":…},…]}`. A range outside `messages` or off a character
/// boundary (a bug of the caller) is written as an empty message rather than panicking.
pub fn write(out: &mut Vec<u8>, destination: &Destination, messages: &[u8], batch: &[Event]) {
    write_with(out, destination, None, messages, batch);
}

/// [`write`], with `entity` after the events if there is one.
pub fn write_with(
    out: &mut Vec<u8>,
    destination: &Destination,
    entity: Option<&Entity>,
    messages: &[u8],
    batch: &[Event],
) {
    let tail = tail(entity);
    out.reserve(capacity(destination, batch) + tail.len());
    out.put(&head(destination));
    put_events(out, messages, batch, true);
    out.put(&tail);
}

/// The wire form of `event`'s message, or nothing when its range is outside `messages` or
/// does not start and end between characters.
fn message<'a>(messages: &'a [u8], event: &Event) -> &'a [u8] {
    let between = |at: usize| messages.get(at).is_none_or(|&b| !(0x80..0xc0).contains(&b));
    match messages.get(event.message.clone()) {
        Some(m) if between(event.message.start) && between(event.message.end) => m,
        _ => &[],
    }
}

/// The PutLogEvents body of one batch, as [`write`] would write it, without being written
/// whole: it knows its length and SHA-256 and writes itself piece by piece while it is
/// sent ([`Body::sdk_body`]). Cheap to clone; shares the flush's messages.
#[derive(Clone)]
pub struct Body(Arc<Parts>);

struct Parts {
    head: Vec<u8>,
    tail: Vec<u8>,
    messages: Arc<Vec<u8>>,
    batch: Vec<Event>,
    len: usize,
    /// Lowercase hex, as SigV4 signs it.
    sha256: String,
}

impl Body {
    /// The body of `batch` (events whose messages' wire forms lie in `messages`), hashed.
    pub fn new(destination: &Destination, messages: Arc<Vec<u8>>, batch: &[Event]) -> Body {
        Body::with_entity(destination, None, messages, batch)
    }

    /// [`Body::new`], with `entity` after the events if there is one.
    pub fn with_entity(
        destination: &Destination,
        entity: Option<&Entity>,
        messages: Arc<Vec<u8>>,
        batch: &[Event],
    ) -> Body {
        let head = head(destination);
        let tail = tail(entity);
        let mut hash = Hashing::new();
        hash.put(&head);
        put_events(&mut hash, &messages, batch, true);
        hash.put(&tail);
        let (len, sha256) = hash.finish();
        Body(Arc::new(Parts {
            head,
            tail,
            messages,
            batch: batch.to_vec(),
            len,
            sha256,
        }))
    }

    /// The body's length in bytes.
    pub fn size(&self) -> usize {
        self.0.len
    }

    /// The SHA-256 of the body, in lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.0.sha256
    }

    /// The body for the SDK: a stream of its [`Pieces`], made afresh for every attempt.
    pub fn sdk_body(&self) -> SdkBody {
        let body = self.clone();
        SdkBody::retryable(move || SdkBody::from_body_1_x(body.pieces()))
    }

    /// The body from its start, a piece at a time.
    pub fn pieces(&self) -> Pieces {
        Pieces {
            body: self.clone(),
            next: 0,
            sent: 0,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A [`Body`] being written: pieces of at least [`PIECE`] bytes (but the last), each
/// holding whole events.
pub struct Pieces {
    body: Body,
    /// The batch's next event to write.
    next: usize,
    /// Bytes handed on so far (none: the head is still to come).
    sent: usize,
}

impl Pieces {
    /// The next piece, or `None` after the last.
    pub fn next_piece(&mut self) -> Option<Vec<u8>> {
        if self.is_done() {
            return None;
        }
        let parts = &*self.body.0;
        let mut piece = Vec::with_capacity(PIECE + PIECE / 4);
        if self.sent == 0 {
            piece.put(&parts.head);
        }
        while piece.len() < PIECE {
            let Some(event) = parts.batch.get(self.next) else {
                break;
            };
            let first = self.next == 0;
            put_events(
                &mut piece,
                &parts.messages,
                std::slice::from_ref(event),
                first,
            );
            self.next += 1;
        }
        if self.next == parts.batch.len() {
            piece.put(&parts.tail);
            self.next += 1; // past the tail
        }
        self.sent += piece.len();
        Some(piece)
    }

    /// Whether the tail was written: `next` is past the last event only then.
    fn is_done(&self) -> bool {
        self.next > self.body.0.batch.len()
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.get_mut().next_piece();
        Poll::Ready(piece.map(|p| Ok(Frame::data(Bytes::from(p)))))
    }

    fn is_end_stream(&self) -> bool {
        self.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.body.size().saturating_sub(self.sent) as u64)
    }
}

/// One PutLogEvents call to `destination` whose request body is `body` (for the same
/// destination), ready to `.send().await`. The SDK signs and sends it as any call; its
/// answer and errors are those of `client.put_log_events()`.
pub fn put_log_events(
    client: &Client,
    destination: &Destination,
    body: Body,
) -> CustomizableOperation<PutLogEventsOutput, PutLogEventsError, PutLogEventsFluentBuilder> {
    client
        .put_log_events()
        .log_group_name(&destination.group)
        .log_stream_name(&destination.stream)
        .customize()
        .interceptor(SendBody(body))
}

/// Before each attempt is signed: the request's body becomes the [`Body`] (and
/// `content-length` its length), and the signer is given its precomputed SHA-256 instead
/// of reading a body that is not in memory.
#[derive(Clone)]
struct SendBody(Body);

impl std::fmt::Debug for SendBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendBody({} bytes)", self.0.size())
    }
}

impl Intercept for SendBody {
    fn name(&self) -> &'static str {
        "SendBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        *request.body_mut() = self.0.sdk_body();
        // A valid header name and value: this cannot fail. (If it did, the SDK's length
        // would not match the body and the call would fail; nothing else is sent.)
        let _ = request
            .headers_mut()
            .try_insert("content-length", self.0.size().to_string());
        cfg.interceptor_state()
            .store_put(PayloadSigningOverride::Precomputed(
                self.0.sha256().to_owned(),
            ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::Mutex;

    fn destination() -> Destination {
        Destination {
            group: "/ecs/httpd".into(),
            stream: "firelens-\"httpd\"".into(),
        }
    }

    /// Messages laid end to end in one buffer in their wire forms, as `prepare` lays them,
    /// and their events.
    fn events(messages: &[(i64, &str)]) -> (Vec<u8>, Vec<Event>) {
        let mut buffer = Vec::new();
        let mut events = Vec::new();
        for (t, m) in messages {
            let start = buffer.len();
            let mut out = encode::Out::wire(&mut buffer);
            encode::text(m.as_bytes(), &mut out);
            let size = out.raw();
            events.push(Event::new(*t, start..buffer.len(), size));
        }
        (buffer, events)
    }

    /// Every byte value that needs escaping, and text around and between them.
    fn awkward() -> Vec<(i64, String)> {
        let controls: String = (0u8..0x20).map(char::from).collect();
        vec![
            (
                1_795_550_400_000,
                r#"{"log":"GET / \"q\" \\ 200","n":1}"#.to_owned(),
            ),
            (
                1_795_550_400_001,
                "日本語 é \u{fffd} ✓ 𝄞 <a>&amp;/".to_owned(),
            ),
            (0, controls.clone()),
            (-1, format!("a{controls}b\u{7f}c")),
            (i64::MAX, "\"".repeat(3)),
            (i64::MIN, "\\".to_owned()),
            (42, "x".to_owned()),
        ]
    }

    fn body_of(destination: &Destination, messages: &[(i64, String)]) -> Vec<u8> {
        let borrowed: Vec<(i64, &str)> = messages.iter().map(|(t, m)| (*t, m.as_str())).collect();
        let (buffer, events) = events(&borrowed);
        let mut out = Vec::new();
        write(&mut out, destination, &buffer, &events);
        out
    }

    #[test]
    fn the_body_parses_and_round_trips_every_message_and_time() {
        let messages = awkward();
        let body = body_of(&destination(), &messages);
        assert!(std::str::from_utf8(&body).is_ok());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["logGroupName"], "/ecs/httpd");
        assert_eq!(v["logStreamName"], "firelens-\"httpd\"");
        let got: Vec<(i64, String)> = v["logEvents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["timestamp"].as_i64().unwrap(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(got, messages);
    }

    /// The same bytes as the SDK's own serialiser (`aws-smithy-json`, as the generated
    /// `ser_put_log_events_input` calls it) for the same input.
    fn sdk_body(destination: &Destination, messages: &[(i64, String)]) -> String {
        sdk_body_with(destination, messages, None)
    }

    /// [`sdk_body`] with an entity, its maps in the entity's order (the SDK's are
    /// `HashMap`s, in any order).
    fn sdk_body_with(
        destination: &Destination,
        messages: &[(i64, String)],
        entity: Option<&Entity>,
    ) -> String {
        use aws_smithy_json::serialize::JsonObjectWriter;
        let mut out = String::new();
        let mut object = JsonObjectWriter::new(&mut out);
        object.key("logGroupName").string(&destination.group);
        object.key("logStreamName").string(&destination.stream);
        let mut array = object.key("logEvents").start_array();
        for (t, m) in messages {
            let mut event = array.value().start_object();
            event
                .key("timestamp")
                .number(aws_smithy_types::Number::NegInt(*t));
            event.key("message").string(m);
            event.finish();
        }
        array.finish();
        if let Some(entity) = entity {
            let mut e = object.key("entity").start_object();
            for (name, pairs) in [
                ("keyAttributes", &entity.key_attributes),
                ("attributes", &entity.attributes),
            ] {
                let mut map = e.key(name).start_object();
                for (k, v) in pairs {
                    map.key(k).string(v);
                }
                map.finish();
            }
            e.finish();
        }
        object.finish();
        out
    }

    #[test]
    fn the_entity_follows_the_events_as_the_sdk_writes_it() {
        let entity = Entity {
            key_attributes: vec![
                ("Type", "Service".into()),
                ("Name", "check\"out\\".into()),
                ("AwsAccountId", "111122223333".into()),
            ],
            attributes: vec![
                ("PlatformType", "Generic".into()),
                ("K8s.Node", "日本".into()),
            ],
        };
        let messages = awkward();
        let borrowed: Vec<(i64, &str)> = messages.iter().map(|(t, m)| (*t, m.as_str())).collect();
        let (buffer, events) = events(&borrowed);
        let mut written = Vec::new();
        write_with(
            &mut written,
            &destination(),
            Some(&entity),
            &buffer,
            &events,
        );
        assert_eq!(
            String::from_utf8(written.clone()).unwrap(),
            sdk_body_with(&destination(), &messages, Some(&entity))
        );
        let v: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(v["entity"]["keyAttributes"]["Name"], "check\"out\\");
        let body = Body::with_entity(
            &destination(),
            Some(&entity),
            std::sync::Arc::new(buffer),
            &events,
        );
        assert_eq!(body.size(), written.len());
        assert_eq!(body.sha256(), hex(&Sha256::digest(&written)));
        let mut pieces = body.pieces();
        let mut streamed = Vec::new();
        while let Some(piece) = pieces.next_piece() {
            streamed.extend_from_slice(&piece);
        }
        assert_eq!(streamed, written);
    }

    #[test]
    fn the_body_is_byte_for_byte_the_sdks() {
        let messages = awkward();
        assert_eq!(
            String::from_utf8(body_of(&destination(), &messages)).unwrap(),
            sdk_body(&destination(), &messages)
        );
        assert_eq!(
            String::from_utf8(body_of(&destination(), &[])).unwrap(),
            sdk_body(&destination(), &[])
        );
    }

    proptest::proptest! {
        /// Escapes at every offset of the eight-byte scan, among multi-byte characters.
        #[test]
        fn any_messages_are_written_as_the_sdk_writes_them(
            messages in proptest::collection::vec(
                (proptest::num::i64::ANY, "[\\x00-\\x7f\"\\\\é日\u{fffd}𝄞]{0,40}"),
                0..8,
            )
        ) {
            let body = body_of(&destination(), &messages);
            proptest::prop_assert_eq!(
                String::from_utf8(body).unwrap(),
                sdk_body(&destination(), &messages)
            );
        }
    }

    #[test]
    fn appends_and_survives_bad_ranges() {
        let (buffer, mut events) = events(&[(5, "é")]);
        let mut out = b"keep".to_vec();
        write(&mut out, &destination(), &buffer, &events);
        assert!(out.starts_with(b"keep{"));
        events[0].message = 1..2; // inside 'é'
        events.push(Event::new(6, 10..20, 10));
        let mut out = Vec::new();
        write(&mut out, &destination(), &buffer, &events);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["logEvents"][0]["message"], "");
        assert_eq!(v["logEvents"][1]["message"], "");
    }

    /// What the SDK put on the wire for one call, after signing.
    type Sent = (String, Vec<(String, String)>, Option<Vec<u8>>);

    #[derive(Debug)]
    struct Capture(std::sync::Arc<Mutex<Vec<Sent>>>);

    impl aws_sdk_cloudwatchlogs::config::Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }

        fn read_before_transmit(
            &self,
            context: &aws_sdk_cloudwatchlogs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
            _: &aws_sdk_cloudwatchlogs::config::RuntimeComponents,
            _: &mut aws_sdk_cloudwatchlogs::config::ConfigBag,
        ) -> Result<(), aws_sdk_cloudwatchlogs::error::BoxError> {
            let request = context.request();
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            // The body is a stream (not in memory): what went out is checked at the stand-in.
            let body = request.body().bytes().map(<[u8]>::to_vec);
            self.0
                .lock()
                .unwrap()
                .push((request.uri().to_owned(), headers, body));
            Ok(())
        }
    }

    /// The `Authorization` header SigV4 gives this request: the headers the SDK signed (its
    /// `SignedHeaders`), as sent, and `body`.
    fn signature(
        uri: &str,
        headers: &[(String, String)],
        body: &[u8],
        at: std::time::SystemTime,
    ) -> String {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = aws_sdk_cloudwatchlogs::config::Credentials::new(
            "AKIDBODYTEST",
            "body-test-secret",
            None,
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("ap-northeast-1")
            .name("logs")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let authorization = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        let signed: Vec<&str> = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .split(';')
            .collect();
        let unsigned = headers
            .iter()
            .filter(|(k, _)| k != "x-amz-date" && signed.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let request =
            SignableRequest::new("POST", uri, unsigned, SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        instructions
            .headers()
            .find(|(k, _)| *k == "authorization")
            .map(|(_, v)| v.to_owned())
            .unwrap()
    }

    /// Through the SDK to the stand-in: every event lands as written, and the signature
    /// the SDK sent is the one of the body that went out (it signed our body, not its own).
    #[test]
    fn put_log_events_sends_the_body_signed_by_the_sdk() {
        use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
        use std::time::{Duration, UNIX_EPOCH};

        let stub = flb_host::stub::Stub::start(flb_host::stub::Rules::default());
        let at = UNIX_EPOCH + Duration::from_secs(1_795_550_400);
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let config = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(crate::credentials::https_client())
            .region(Region::new("ap-northeast-1"))
            .endpoint_url(stub.url())
            .credentials_provider(Credentials::new(
                "AKIDBODYTEST",
                "body-test-secret",
                None,
                None,
                "test",
            ))
            .time_source(aws_smithy_async::time::StaticTimeSource::new(at))
            .interceptor(Capture(sent.clone()))
            .build();
        let client = Client::from_conf(config);
        let destination = destination();
        let messages = awkward();
        let body = body_of(&destination, &messages);
        let borrowed: Vec<(i64, &str)> = messages.iter().map(|(t, m)| (*t, m.as_str())).collect();
        let (buffer, events) = events(&borrowed);
        let streamed = Body::new(&destination, std::sync::Arc::new(buffer), &events);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            client
                .create_log_group()
                .log_group_name(&destination.group)
                .send()
                .await
                .unwrap();
            client
                .create_log_stream()
                .log_group_name(&destination.group)
                .log_stream_name(&destination.stream)
                .send()
                .await
                .unwrap();
            let out = put_log_events(&client, &destination, streamed)
                .send()
                .await
                .unwrap();
            assert!(out.rejected_log_events_info().is_none());
        });
        assert_eq!(
            stub.events(&destination.group, &destination.stream),
            messages
        );

        let sent = sent.lock().unwrap();
        let (uri, headers, wire) = sent.last().unwrap();
        assert_eq!(wire, &None, "the body is sent as a stream, not held whole");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(header("content-length"), body.len().to_string());
        assert_eq!(header("x-amz-target"), "Logs_20140328.PutLogEvents");
        // The signature is that of the bytes `write` writes (the stand-in got the events
        // they hold, in order), so the precomputed hash was of exactly those.
        assert_eq!(header("authorization"), signature(uri, headers, &body, at));
        // And not the signature of the body the SDK serialised before the mutation.
        let own = br#"{"logGroupName":"/ecs/httpd","logStreamName":"firelens-\"httpd\""}"#;
        assert_ne!(header("authorization"), signature(uri, headers, own, at));
    }

    /// A streamed body is, piece after piece, exactly what `write` writes; its length and
    /// hash are those of those bytes; pieces hold whole events and reach [`PIECE`].
    #[test]
    fn a_streamed_body_is_the_written_body() {
        let long = "x".repeat(PIECE / 3);
        let mut messages: Vec<(i64, String)> = awkward();
        for i in 0..20 {
            messages.push((i, format!("{i} {long}")));
        }
        for n in [0, 1, 7, messages.len()] {
            let messages = &messages[..n];
            let borrowed: Vec<(i64, &str)> =
                messages.iter().map(|(t, m)| (*t, m.as_str())).collect();
            let (buffer, events) = events(&borrowed);
            let mut written = Vec::new();
            write(&mut written, &destination(), &buffer, &events);
            let body = Body::new(&destination(), std::sync::Arc::new(buffer), &events);
            assert_eq!(body.size(), written.len());
            assert_eq!(body.sha256(), hex(&Sha256::digest(&written)));
            for _ in 0..2 {
                // Every attempt starts over.
                let mut pieces = body.pieces();
                let mut streamed = Vec::new();
                let mut count = 0;
                while let Some(piece) = pieces.next_piece() {
                    assert_eq!(
                        http_body::Body::size_hint(&pieces).exact(),
                        Some((written.len() - streamed.len() - piece.len()) as u64)
                    );
                    streamed.extend_from_slice(&piece);
                    count += 1;
                }
                assert!(http_body::Body::is_end_stream(&pieces));
                assert_eq!(streamed, written);
                assert!(count <= 1 + written.len() / PIECE, "{count} pieces");
            }
        }
    }

    #[test]
    fn capacity_covers_every_message() {
        let (buffer, events) = events(&[(1_795_550_400_000, "pl\"ain\n"), (1, "text")]);
        let mut out = Vec::new();
        write(&mut out, &destination(), &buffer, &events);
        assert!(out.len() <= capacity(&destination(), &events) + 2); // 2: `"` in the stream
    }
}
