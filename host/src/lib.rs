//! A stand-in for Fluent Bit and AWS, for the tests, the demo and the benches.
//!
//! - [`host`]: loads the built library with `dlopen` and calls it exactly as Fluent Bit
//!   does: Register → Init per instance (with the v1.9.10 `flb_api` and a property
//!   callback) → FlushCtx on a thread with a 24 KiB stack → ExitCtx → Unregister; or, at
//!   exit, ExitCtx as upstream v1.9.10 calls it (every call with the last Init's context).
//! - [`moto`]: installs moto into a virtualenv under `target/` (once) and runs it on a free
//!   loopback port; [`cloud`] reads back what landed there, per account.
//! - [`msgpack`]: writes chunks the way Fluent Bit encodes them; [`policy`]: takes IAM
//!   policies apart for the IAM tests.
//! - [`stub`]: a CloudWatch Logs stand-in for faults moto cannot produce; [`fake`]: an ECS
//!   metadata / credentials endpoint and a recording forward proxy.

pub mod cloud;
pub mod fake;
pub mod host;
pub mod moto;
pub mod msgpack;
pub mod policy;
pub mod stub;

/// The workspace's `target` directory.
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The chunks captured from Fluent Bit: the repository's `tests/fixtures/`, or the directory
/// `FLB_FIXTURES` names.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("FLB_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
        })
}
