//! A PutLogEvents request body written in one pass, and the way to hand it to the SDK.
//!
//! The SDK's path costs, per event: a `String` for its `InputLogEvent`, a clone of it
//! when the input is built, and, when the request is serialised, a second escaped copy of
//! every message that holds a `"` (every whole-record JSON message does). Here messages
//! are already in their wire form (escaped for a JSON string when they were encoded from
//! MessagePack, see [`crate::encode::Out`]), so [`write`] only copies them into the body,
//! with no allocation per event. The bytes are exactly those the SDK writes for the same
//! events (`aws-smithy-json`'s escaping: `"` `\` and control characters; `\u00xx` in lower
//! case), so CloudWatch sees no difference.
//!
//! [`put_log_events`] sends such a body through the SDK: the operation is built with the
//! group and stream only, and a request mutation replaces the serialised body before the
//! SDK signs it (`mutate_request` runs in `modify_before_signing`), so the signature, the
//! endpoint, the timeouts and the error parsing are the SDK's as for any call.
//!
//! Pure except for [`put_log_events`], which only builds the call. Must not: decode,
//! batch, or retry.

use std::sync::{Mutex, PoisonError};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::client::customize::CustomizableOperation;
use aws_sdk_cloudwatchlogs::config::http::HttpRequest;
use aws_sdk_cloudwatchlogs::operation::put_log_events::builders::PutLogEventsFluentBuilder;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};

use crate::batch::Event;
use crate::deliver::Destination;
use crate::encode;

/// Bytes of the body around the names and events: `{"logGroupName":"","logStreamName":"",
/// "logEvents":[]}`.
const FRAME_BYTES: usize = 53;
/// Bytes of one event around its time and message: `{"timestamp":,"message":""},`.
const EVENT_FRAME_BYTES: usize = 28;
/// Digits of a timestamp in milliseconds (13 until the year 2286), with a sign to spare.
const TIMESTAMP_BYTES: usize = 14;

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

/// Appends the PutLogEvents body for `batch` (events whose messages' wire forms lie in
/// `messages`), in the batch's order: `{"logGroupName":…,"logStreamName":…,"logEvents":
/// [{"timestamp":…,"message":…},…]}`. The messages are copied as they are: they were
/// escaped when they were encoded. A range outside `messages` or off a character boundary
/// (a bug of the caller) is written as an empty message rather than panicking.
pub fn write(out: &mut Vec<u8>, destination: &Destination, messages: &[u8], batch: &[Event]) {
    out.reserve(capacity(destination, batch));
    out.extend_from_slice(b"{\"logGroupName\":\"");
    encode::escape_into(out, &destination.group);
    out.extend_from_slice(b"\",\"logStreamName\":\"");
    encode::escape_into(out, &destination.stream);
    out.extend_from_slice(b"\",\"logEvents\":[");
    let mut digits = itoa::Buffer::new();
    for (i, event) in batch.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"timestamp\":");
        out.extend_from_slice(digits.format(event.timestamp_ms).as_bytes());
        out.extend_from_slice(b",\"message\":\"");
        out.extend_from_slice(message(messages, event));
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
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

/// One PutLogEvents call to `destination` whose request body is `body` (from [`write`],
/// for the same destination), ready to `.send().await`. The SDK signs and sends it as any
/// call; its answer and errors are those of `client.put_log_events()`.
///
/// The replacement happens before signing, on every attempt the SDK makes (it makes one:
/// the plugin turns the SDK's retries off), without copying the body.
pub fn put_log_events(
    client: &Client,
    destination: &Destination,
    body: Vec<u8>,
) -> CustomizableOperation<PutLogEventsOutput, PutLogEventsError, PutLogEventsFluentBuilder> {
    client
        .put_log_events()
        .log_group_name(&destination.group)
        .log_stream_name(&destination.stream)
        .customize()
        .mutate_request(replace_body(body))
}

/// A request mutation that sets the body to `body` and `content-length` to its length.
///
/// The SDK's body type is not exported by the service crate, so it is reached through
/// `HttpRequest::body_mut` and inference: the first call turns `body` into it (no copy:
/// it takes the vector) and keeps it; every call puts in a cheap clone of that one (the
/// SDK rewinds the request before each attempt and mutates it again).
fn replace_body(body: Vec<u8>) -> impl Fn(&mut HttpRequest) + Send + Sync + 'static {
    let length = body.len().to_string();
    let pending = Mutex::new(Some(body));
    let made = Mutex::new(None);
    move |request: &mut HttpRequest| {
        let mut made = made.lock().unwrap_or_else(PoisonError::into_inner);
        if made.is_none() {
            let bytes = pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            *made = Some(bytes.into());
        }
        let Some(kept) = made.as_ref() else { return };
        same_type(request.body(), kept);
        // In-memory bodies always clone; were it ever not so, the SDK's own body (without
        // events) would be sent and refused by CloudWatch, never taken as delivered.
        if let Some(body) = kept.try_clone() {
            *request.body_mut() = body;
            // A valid header name and value: this cannot fail. (If it did, the old length
            // would not match the body and the call would fail; nothing else is sent.)
            let _ = request
                .headers_mut()
                .try_insert("content-length", length.clone());
        }
    }
}

/// Ties the type of `_kept` to that of the request's body, for inference.
fn same_type<T>(_body: &T, _kept: &T) {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
        object.finish();
        out
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
    type Sent = (String, Vec<(String, String)>, Vec<u8>);

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
            let body = request.body().bytes().unwrap_or_default().to_vec();
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
            let out = put_log_events(&client, &destination, body.clone())
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
        assert_eq!(wire, &body);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(header("content-length"), body.len().to_string());
        assert_eq!(header("x-amz-target"), "Logs_20140328.PutLogEvents");
        assert_eq!(header("authorization"), signature(uri, headers, wire, at));
        // And not the signature of the body the SDK serialised before the mutation.
        let own = br#"{"logGroupName":"/ecs/httpd","logStreamName":"firelens-\"httpd\""}"#;
        assert_ne!(header("authorization"), signature(uri, headers, own, at));
    }

    #[test]
    fn capacity_covers_every_message() {
        let (buffer, events) = events(&[(1_795_550_400_000, "pl\"ain\n"), (1, "text")]);
        let mut out = Vec::new();
        write(&mut out, &destination(), &buffer, &events);
        assert!(out.len() <= capacity(&destination(), &events) + 2); // 2: `"` in the stream
    }
}
