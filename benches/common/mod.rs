//! Inputs shared by the benches: the captured FireLens chunk and synthetic FireLens chunks
//! of the workload (records of 519 bytes of JSON, as in issue 16, chunks of about 2 MB).

#![allow(dead_code)] // Each bench uses its own subset.

use flb_host::msgpack::{Format, Writer, firelens_record};
use flb_out_cloudwatch::config::{Config, StreamName};

/// The tag of the FireLens fixture (and of the synthetic chunks).
pub const TAG: &str = "firelens-httpd";
/// The size of a record's message (the whole record as JSON), as in the workload.
pub const MESSAGE_BYTES: usize = 519;
/// The size of a chunk as Fluent Bit typically flushes it.
pub const CHUNK_BYTES: usize = 2_000_000;
/// 2026-11-24T20:00:00Z, the fixtures' capture day.
pub const START_SECS: u32 = 1_795_550_400;

/// `v2-firelens-httpd.msgpack`: 300 records exactly as Fluent Bit v5.1.1 flushed them.
pub fn fixture() -> Vec<u8> {
    let path = flb_host::fixtures_dir().join("v2-firelens-httpd.msgpack");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The plugin's configuration for the benches: one fixed stream, defaults otherwise.
pub fn config() -> Config {
    Config::new(
        "ap-northeast-1",
        "/ecs/httpd",
        StreamName::Fixed("httpd-task".into()),
    )
}

/// An httpd access log line for record `i`, padded in its query to `len` bytes.
fn log_line(i: usize, len: usize) -> String {
    let mut line = format!(
        "10.0.{}.{} - - [24/Nov/2026:20:00:00 +0000] \"GET /index.html?q={i}",
        (i / 256) % 256,
        i % 256
    );
    let tail = " HTTP/1.1\" 200 45 \"https://example.com/start\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\"";
    let pad = len.saturating_sub(line.len() + tail.len());
    line.extend(std::iter::repeat_n('x', pad));
    line.push_str(tail);
    line
}

/// One FireLens record (V2, as Fluent Bit 2.1+ flushes) whose JSON message is
/// [`MESSAGE_BYTES`] long, at `START_SECS` + `i` milliseconds.
fn record(w: &mut Writer, i: usize, log_len: usize) {
    let ms = i % 86_400_000; // keep a chunk within CloudWatch's 24 hours
    firelens_record(
        w,
        Format::V2,
        START_SECS + (ms / 1000) as u32,
        (ms % 1000) as u32 * 1_000_000,
        if i.is_multiple_of(10) {
            "stderr"
        } else {
            "stdout"
        },
        &log_line(i, log_len),
    );
}

/// The `log` length that makes a record's JSON [`MESSAGE_BYTES`] long (padding adds one
/// byte of JSON per byte of `log`).
fn log_len() -> usize {
    let mut w = Writer::new();
    record(&mut w, 0, 0);
    let p = flb_out_cloudwatch::prepare::prepare(&config(), TAG, &w.buf);
    let unpadded = p.streams[0].1[0].size;
    log_line(0, 0).len() + MESSAGE_BYTES.saturating_sub(unpadded)
}

/// FireLens chunks of about `chunk_bytes` each holding `records` records in all, numbered
/// from 0 (so times and addresses differ from record to record).
pub fn firelens_chunks(records: usize, chunk_bytes: usize) -> Vec<(Vec<u8>, usize)> {
    let log_len = log_len();
    let mut chunks = Vec::new();
    let mut w = Writer::new();
    let mut in_chunk = 0;
    for i in 0..records {
        record(&mut w, i, log_len);
        in_chunk += 1;
        if w.buf.len() >= chunk_bytes {
            chunks.push((std::mem::take(&mut w.buf), in_chunk));
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        chunks.push((w.buf, in_chunk));
    }
    chunks
}

/// One chunk of about [`CHUNK_BYTES`] and its record count.
pub fn firelens_chunk() -> (Vec<u8>, usize) {
    let mut chunks = firelens_chunks(CHUNK_BYTES / 300, CHUNK_BYTES);
    chunks.swap_remove(0)
}

/// The bytes of the messages `chunk` becomes.
pub fn message_bytes(chunk: &[u8]) -> usize {
    let p = flb_out_cloudwatch::prepare::prepare(&config(), TAG, chunk);
    p.streams
        .iter()
        .flat_map(|(_, events)| events)
        .map(|e| e.size)
        .sum()
}
