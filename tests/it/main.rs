//! The integration tests: one binary, modules by area. Everything goes through the C ABI,
//! loaded by `flb-host` as Fluent Bit loads it; AWS is moto on loopback.

mod support;

/// Registration, Init and its option errors, panics, the flush stack.
mod abi_;
/// `confine_names`: names from record keys keep their template's prefix.
mod confine_;
/// Cross-account delivery, several instances, concurrent flushes, delivery failures.
mod deliver_;
/// The documentation stays true: links and anchors resolve, the options table is complete.
mod docs_;
/// A drop-in for AWS's Go plugin: what it runs starts, its names land in the same place,
/// upstream v1.9.10's exit sequence.
mod dropin_;
/// The delivery engine: credentials, splits, the hand-over, group settings, slow answers,
/// error kinds, and a fleet against account-wide quotas.
mod engine_;
/// `add_entity`: the entity of the C plugin from the kubernetes filter's fields, per request;
/// rejected entities counted; wrong fields left out with a warning.
mod entity_;
/// CloudWatch's rules for events: sizes, oversize policies, rejections, rate-limited warnings.
mod events_;
/// The example files parse and agree with each other and with the option parser.
mod examples_;
/// Faults moto cannot make (throttling, 5xx, resets, deleted streams, expired tokens),
/// chunk retries without duplicates, concurrency, clean exit.
mod faults_;
/// Every chunk captured from Fluent Bit, decoded and delivered message for message.
mod fixtures_;
/// Hostile chunks, records, tags and options: nothing crashes, every valid record is kept.
mod hostile_;
/// The example's IAM documents against moto's enforced IAM: they deliver cross-account,
/// each action is needed; what moto evaluates and what it does not.
mod iam_;
/// Fluent Bit's logger and metrics where the host offers them (v5), as before elsewhere.
mod native_;
/// Every option of the Go and C plugins against a real peer (moto, stub, fake ECS, proxy).
mod options_;
/// Rotated keys read again from their source (file, profile, credential_process) without a
/// restart; a broken source keeps the last good key.
mod rotate_;
/// Which of Fluent Bit's threads flushes, and a stop signal that ends a flush's waits.
mod threads_;
/// The guide's cross-account steps, run with the AWS CLI against moto's enforced IAM.
mod walkthrough_;
