//! A Fluent Bit output plugin that delivers logs to Amazon CloudWatch Logs, in the same AWS
//! account or, through an IAM role it assumes (`role_arn`), in another one.
//!
//! Fluent Bit loads the built `cdylib` as a Go-ABI proxy plugin named `cloudwatch` (the
//! same name and options as AWS's Go plugin). The data path, one module per step:
//!
//! 1. [`abi`]: the exported C symbols. Init reads the `[OUTPUT]` options and makes sure
//!    Fluent Bit gives the output a worker thread (`workers 1` when unset); each flush hands
//!    the chunk from Fluent Bit's small coroutine stack to a thread of ours and waits.
//! 2. [`config`]: the options, validated once into a typed [`config::Config`].
//! 3. [`instance`]: one `[OUTPUT]`: ties the steps below together for each flush.
//! 4. [`prepare`]: a chunk → events per stream, held to `max_event_size`; pure.
//! 5. [`decode`]: MessagePack chunk → records (time + body), without recursion;
//!    [`encode`]: record → message text (whole record as JSON, or the `log_key` value),
//!    with [`scan`] finding what must be escaped; [`entity`]: with `add_entity`, a
//!    record's PutLogEvents entity, and the record without the fields it took.
//! 6. [`batch`]: events → PutLogEvents batches within CloudWatch's limits.
//! 7. [`send`]: the sending policy — each batch a request with a stable key, sent
//!    concurrently; refused requests halved or re-cut; [`ledger`] remembers the settled
//!    requests of retried chunks. [`deliver`]: the AWS calls — CreateLogStream (and
//!    CreateLogGroup) when needed, PutLogEvents, group settings off the data path —
//!    through the retry policy of [`retry`]; [`cache`] forgets idle names; [`gate`]: what a
//!    flush learned that holds for its other calls (a group missing or denied ends its other
//!    streams without calls; a new group is tried by one stream first; new streams per flush
//!    are capped).
//!    [`report`]: counters and log lines.
//! 8. [`credentials`]: the default AWS credential chain, and the assumed role on top;
//!    [`fresh`]: read again from their source when AWS refuses them (a rotated key).
//! 9. [`runtime`] (the shared async runtime and the flush threads), [`shutdown`] (a stop
//!    signal ends the flushes' waits) and [`log`] (Fluent Bit–style log lines).
//!
//! Invariants: `unsafe_code` is denied everywhere but [`abi`] (the C boundary, and in
//! [`abi::allocator`] the library's allocator) and [`scan`] (the escaping
//! scan's vector loads, each inside its slice; AVX2 or NEON only where detected); no panic crosses
//! the C boundary; no record is dropped without a counted, logged reason; nothing deep or
//! big runs on Fluent Bit's stack.

#![deny(unsafe_code)]
#![warn(unreachable_pub, unused_must_use)]

/// Big blocks in mappings of their own, given back once flushes pause ([`abi::allocator`]).
#[global_allocator]
static ALLOCATOR: abi::allocator::Allocator = abi::allocator::Allocator;

#[allow(unsafe_code)] // The C boundary: the one place with raw pointers.
pub mod abi;
pub mod batch;
pub mod body;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod decode;
pub mod deliver;
pub mod ecs;
pub mod encode;
pub mod entity;
pub mod fresh;
pub mod gate;
pub mod http;
pub mod instance;
pub mod ledger;
pub mod log;
pub mod metrics;
pub mod prepare;
pub mod report;
pub mod retry;
pub mod runtime;
#[allow(unsafe_code)] // Vector loads of the escaping scan, behind CPU feature detection.
pub mod scan;
pub mod send;
pub mod shutdown;
pub mod template;
