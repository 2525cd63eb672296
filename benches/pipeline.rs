//! The pure stages of a flush, with criterion: chunk → events (`prepare`), events →
//! batches (`batch::plan`), record → JSON (`encode::json`, as the message and in its wire
//! form, and `encode::json_with` as `prepare` calls it), and batch → PutLogEvents request body, the SDK's way (plain messages, an
//! `InputLogEvent` per event, cloned into the input, serialised by `aws-smithy-json` as
//! the generated code does) against `body::write` (messages escaped once, when encoded,
//! and copied into the body).
//!
//! Inputs: `v2-firelens-httpd.msgpack` (300 records captured from Fluent Bit v5.1.1) and a
//! synthetic FireLens chunk of about 2 MB with 519-byte messages (the workload of issue 16).
//!
//! `cargo bench --bench pipeline` (add `-- <filter>` for one group, e.g. `-- request_body`).

mod common;

use std::hint::black_box;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsInput;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_smithy_json::serialize::JsonObjectWriter;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flb_out_cloudwatch::batch::{self, Event};
use flb_out_cloudwatch::decode::{self, Item};
use flb_out_cloudwatch::deliver::Destination;
use flb_out_cloudwatch::prepare::{Prepared, prepare};
use flb_out_cloudwatch::{body, encode, scan};

struct Input {
    name: &'static str,
    chunk: Vec<u8>,
    records: usize,
}

fn inputs() -> Vec<Input> {
    let fixture = common::fixture();
    let (chunk, records) = common::firelens_chunk();
    vec![
        Input {
            name: "fixture-300",
            records: decode::records(&fixture).count(),
            chunk: fixture,
        },
        Input {
            name: "synthetic-2MB",
            chunk,
            records,
        },
    ]
}

/// The SDK's way: each record's message as it is (JSON text, not escaped for the body),
/// sorted and batched.
fn plain(chunk: &[u8]) -> (Vec<u8>, Vec<Event>, Vec<std::ops::Range<usize>>) {
    let mut messages = Vec::with_capacity(chunk.len());
    let mut events = Vec::new();
    for item in decode::records(chunk) {
        if let Item::Record(r) = item {
            let start = messages.len();
            let _ = encode::json(r.body, &mut encode::Out::plain(&mut messages));
            let size = messages.len() - start;
            events.push(Event::new(r.time.as_millis(), start..messages.len(), size));
        }
    }
    let batches = batch::plan(&mut events);
    (messages, events, batches)
}

/// Events, sorted, and their batches: what `deliver` gets.
fn planned(chunk: &[u8]) -> (Prepared, Vec<std::ops::Range<usize>>) {
    let mut p = prepare(&common::config(), common::TAG, chunk);
    let batches = batch::plan(&mut p.streams[0].1);
    (p, batches)
}

/// The request body as the SDK builds it today: `deliver::put_batch` makes an
/// `InputLogEvent` (a `String`) per event, `deliver::put` clones them into the input, and
/// the generated serialiser (`ser_put_log_events_input`, not public) writes them with
/// `aws-smithy-json`, as here.
fn sdk_body(destination: &Destination, messages: &[u8], batch: &[Event]) -> String {
    let events = batch
        .iter()
        .map(|e| {
            InputLogEvent::builder()
                .timestamp(e.timestamp_ms)
                .message(std::str::from_utf8(&messages[e.message.clone()]).expect("UTF-8"))
                .build()
                .expect("timestamp and message set")
        })
        .collect::<Vec<_>>();
    let input = PutLogEventsInput::builder()
        .log_group_name(&destination.group)
        .log_stream_name(&destination.stream)
        .set_log_events(Some(events.to_vec()))
        .build()
        .expect("no required field checked");
    let mut out = String::new();
    let mut object = JsonObjectWriter::new(&mut out);
    if let Some(group) = input.log_group_name() {
        object.key("logGroupName").string(group);
    }
    if let Some(stream) = input.log_stream_name() {
        object.key("logStreamName").string(stream);
    }
    let mut array = object.key("logEvents").start_array();
    for event in input.log_events() {
        let mut o = array.value().start_object();
        o.key("timestamp")
            .number(aws_smithy_types::Number::NegInt(event.timestamp()));
        o.key("message").string(event.message());
        o.finish();
    }
    array.finish();
    object.finish();
    out
}

fn one_pass_body(out: &mut Vec<u8>, destination: &Destination, messages: &[u8], batch: &[Event]) {
    out.clear();
    body::write(out, destination, messages, batch);
}

fn bench_prepare(c: &mut Criterion, inputs: &[Input]) {
    let config = common::config();
    let mut g = c.benchmark_group("prepare");
    for input in inputs {
        g.throughput(Throughput::ElementsAndBytes {
            elements: input.records as u64,
            bytes: input.chunk.len() as u64,
        });
        g.bench_function(input.name, |b| {
            b.iter(|| prepare(&config, common::TAG, black_box(&input.chunk)))
        });
    }
    g.finish();
}

fn bench_plan(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("plan");
    for input in inputs {
        let p = prepare(&common::config(), common::TAG, &input.chunk);
        let events = p.streams[0].1.clone();
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(input.name, |b| {
            b.iter_batched_ref(
                || events.clone(),
                |events| batch::plan(black_box(events)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_encode_json(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("encode_json");
    for input in inputs {
        let bodies: Vec<&[u8]> = decode::records(&input.chunk)
            .filter_map(|item| match item {
                Item::Record(r) => Some(r.body),
                _ => None,
            })
            .collect();
        g.throughput(Throughput::ElementsAndBytes {
            elements: bodies.len() as u64,
            bytes: common::message_bytes(&input.chunk) as u64,
        });
        let mut out = Vec::with_capacity(input.chunk.len() * 2);
        // As `prepare` writes them: in the wire form, one `Scratch` (and its memo of
        // repeated entries) from one record to the next.
        let mut scratch = encode::Scratch::default();
        g.bench_function(format!("wire_scratch/{}", input.name), |b| {
            b.iter(|| {
                out.clear();
                let mut o = encode::Out::wire(&mut out);
                for body in &bodies {
                    let _ = encode::json_with(black_box(body), &mut o, &mut scratch);
                }
                o.raw()
            })
        });
        for (form, wire) in [("message", false), ("wire", true)] {
            g.bench_function(format!("{form}/{}", input.name), |b| {
                b.iter(|| {
                    out.clear();
                    let mut o = if wire {
                        encode::Out::wire(&mut out)
                    } else {
                        encode::Out::plain(&mut out)
                    };
                    for body in &bodies {
                        let _ = encode::json(black_box(body), &mut o);
                    }
                    o.raw()
                })
            });
        }
    }
    g.finish();
}

/// Every string (keys and values) of a chunk's records, in order.
fn strings(chunk: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for item in decode::records(chunk) {
        if let Item::Record(r) = item {
            let mut reader = decode::Reader::new(r.body);
            while let Ok(token) = reader.token() {
                if let decode::Token::Str(s) = token {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The escaping scan on each path this CPU has (`scalar`, `sse2`, `avx2`): over every
/// string of a chunk (as the encoder meets them: mostly short keys and values, and each
/// record's `log`), and over one 64 KiB text with an escape every ~100 bytes. Throughput
/// in bytes scanned.
fn bench_scan(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("scan");
    let text: Vec<u8> = (0..65_536)
        .map(|i| match i % 97 {
            0 => b'"',
            _ => b'a' + (i % 26) as u8,
        })
        .collect();
    let mut cases: Vec<(String, Vec<&[u8]>)> = inputs
        .iter()
        .map(|input| (format!("strings/{}", input.name), strings(&input.chunk)))
        .collect();
    cases.push(("text-64KiB".to_owned(), vec![&text[..]]));
    for (name, strings) in &cases {
        g.throughput(Throughput::Bytes(
            strings.iter().map(|s| s.len() as u64).sum(),
        ));
        for path in scan::Path::available() {
            g.bench_function(format!("{}/{name}", path.name()), |b| {
                b.iter(|| {
                    let mut n = 0usize;
                    for s in strings {
                        let high = path.run(black_box(s), |at| n += at);
                        n += usize::from(high);
                    }
                    n
                })
            });
        }
    }
    g.finish();
}

/// One batch → its request body, both ways. Throughput in events and message bytes.
fn bench_request_body(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("request_body");
    for input in inputs {
        let (p, batches) = planned(&input.chunk);
        let (destination, events) = &p.streams[0];
        let events = &events[batches[0].clone()];
        let messages: usize = events.iter().map(|e| e.size).sum();
        let (plain_messages, plain_events, plain_batches) = plain(&input.chunk);
        let plain_events = &plain_events[plain_batches[0].clone()];
        let sdk = sdk_body(destination, &plain_messages, plain_events);
        let mut ours = Vec::new();
        one_pass_body(&mut ours, destination, &p.messages, events);
        assert_eq!(sdk.as_bytes(), ours, "the same bytes both ways");
        g.throughput(Throughput::ElementsAndBytes {
            elements: events.len() as u64,
            bytes: messages as u64,
        });
        g.bench_function(format!("sdk/{}", input.name), |b| {
            b.iter(|| sdk_body(destination, &plain_messages, black_box(plain_events)))
        });
        g.bench_function(format!("one_pass/{}", input.name), |b| {
            b.iter(|| one_pass_body(&mut ours, destination, &p.messages, black_box(events)))
        });
        g.bench_function(format!("one_pass_fresh/{}", input.name), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(body::capacity(destination, events));
                body::write(&mut out, destination, &p.messages, black_box(events));
                out
            })
        });
    }
    g.finish();
}

/// The whole CPU path of a flush without the network: chunk → events → batches → request
/// bodies, both ways. Throughput in records and chunk bytes.
fn bench_chunk_to_bodies(c: &mut Criterion, inputs: &[Input]) {
    let config = common::config();
    let mut g = c.benchmark_group("chunk_to_bodies");
    for input in inputs {
        g.throughput(Throughput::ElementsAndBytes {
            elements: input.records as u64,
            bytes: input.chunk.len() as u64,
        });
        let destination = prepare(&config, common::TAG, &input.chunk).streams[0]
            .0
            .clone();
        g.bench_function(format!("sdk/{}", input.name), |b| {
            b.iter(|| {
                let (messages, events, batches) = plain(black_box(&input.chunk));
                let mut total = 0;
                for range in batches {
                    total += sdk_body(&destination, &messages, &events[range]).len();
                }
                total
            })
        });
        let mut out = Vec::new();
        g.bench_function(format!("one_pass/{}", input.name), |b| {
            b.iter(|| {
                let mut p = prepare(&config, common::TAG, black_box(&input.chunk));
                let mut total = 0;
                for (destination, events) in &mut p.streams {
                    for range in batch::plan(events) {
                        one_pass_body(&mut out, destination, &p.messages, &events[range]);
                        total += out.len();
                    }
                }
                total
            })
        });
    }
    g.finish();
}

/// One batch → what is sent for it: its body's SHA-256 (what SigV4 signs) and its bytes,
/// as the plugin did before (the body written whole, then hashed) and does now (hashed from
/// the messages, then written a piece at a time as it is sent). Throughput in body bytes.
fn bench_signed_body(c: &mut Criterion, inputs: &[Input]) {
    use sha2::Digest;
    let mut g = c.benchmark_group("signed_body");
    for input in inputs {
        let (p, batches) = planned(&input.chunk);
        let (destination, events) = &p.streams[0];
        let events = &events[batches[0].clone()];
        let messages = std::sync::Arc::new(p.messages.clone());
        let mut whole = Vec::new();
        body::write(&mut whole, destination, &messages, events);
        g.throughput(Throughput::Bytes(whole.len() as u64));
        g.bench_function(format!("whole/{}", input.name), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(body::capacity(destination, events));
                body::write(&mut out, destination, &messages, black_box(events));
                (sha2::Sha256::digest(&out), out.len())
            })
        });
        g.bench_function(format!("streamed/{}", input.name), |b| {
            b.iter(|| {
                let body = body::Body::new(destination, messages.clone(), black_box(events));
                let mut pieces = body.pieces();
                let mut sent = 0;
                while let Some(piece) = pieces.next_piece() {
                    sent += black_box(piece).len();
                }
                (body.sha256().len(), sent)
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let inputs = inputs();
    for input in &inputs {
        eprintln!(
            "{}: {} records, {} bytes of MessagePack, {} bytes of messages",
            input.name,
            input.records,
            input.chunk.len(),
            common::message_bytes(&input.chunk)
        );
    }
    bench_prepare(c, &inputs);
    bench_plan(c, &inputs);
    bench_scan(c, &inputs);
    bench_encode_json(c, &inputs);
    bench_request_body(c, &inputs);
    bench_chunk_to_bodies(c, &inputs);
    bench_signed_body(c, &inputs);
}

criterion_group! {
    name = pipeline;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(pipeline);
