//! The plugin's counters in Fluent Bit's own metrics, where the host offers them.
//!
//! Fluent Bit (>= 2.0) gives each output instance a cmetrics context; Fluent Bit's own
//! counters for a Go-ABI output only count whole chunks by return code. These say what the
//! chunks became. Each series is registered on the instance's context at Init (on Fluent
//! Bit's thread, with the label `name` = the instance's name as Fluent Bit's own output
//! metrics have it, and `reason` where a counter has kinds) and only added to afterwards, from
//! the plugin's threads. Where the host offers no metrics, [`Metrics`] does nothing and the
//! summary log line remains the only account.
//!
//! Safe Rust: the host's functions are called by the [`HostCounters`] that `abi` implements.

use std::sync::Arc;

/// One counter series: `fluentbit_cloudwatch_<name>{name="<instance>"[,reason="<reason>"]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// The metric's name after `fluentbit_cloudwatch_`.
    pub name: &'static str,
    pub help: &'static str,
    /// The value of the `reason` label, for counters that have kinds.
    pub reason: Option<&'static str>,
}

/// What is counted. The discriminant is the index in [`SERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    EventsDelivered,
    BytesDelivered,
    Requests,
    RejectedTooOld,
    RejectedTooNew,
    RejectedInvalid,
    SkippedBadTimestamp,
    SkippedNotAnEvent,
    SkippedBodyNotMap,
    SkippedMissingKey,
    SkippedOversize,
    Retries,
    Throttled,
    CredentialRefreshes,
    FlushRetries,
    NotResent,
    StreamsHeldGroupFailed,
    StreamsHeldNewStreamCap,
    EntitiesRejected,
}

const REJECTED: &str = "Events CloudWatch did not store: too_old (older than 14 days or the group's retention), too_new (more than 2 hours ahead), invalid (in a request CloudWatch refused even after halving it).";
const SKIPPED: &str = "Records that did not become events, by reason.";
const HELD: &str = "Streams of a chunk a flush left for the chunk's retry without calling CloudWatch Logs: group_failed (their group was found missing or denied in the flush), new_stream_cap (the flush had created as many new streams as one flush may).";

/// Every series, in [`Metric`] order.
pub const SERIES: &[Series] = &[
    Series {
        name: "events_delivered_total",
        help: "Events CloudWatch Logs stored.",
        reason: None,
    },
    Series {
        name: "bytes_delivered_total",
        help: "Bytes of the messages of the events CloudWatch Logs stored.",
        reason: None,
    },
    Series {
        name: "requests_total",
        help: "PutLogEvents requests CloudWatch Logs accepted.",
        reason: None,
    },
    Series {
        name: "events_rejected_total",
        help: REJECTED,
        reason: Some("too_old"),
    },
    Series {
        name: "events_rejected_total",
        help: REJECTED,
        reason: Some("too_new"),
    },
    Series {
        name: "events_rejected_total",
        help: REJECTED,
        reason: Some("invalid"),
    },
    Series {
        name: "records_skipped_total",
        help: SKIPPED,
        reason: Some("bad_timestamp"),
    },
    Series {
        name: "records_skipped_total",
        help: SKIPPED,
        reason: Some("not_an_event"),
    },
    Series {
        name: "records_skipped_total",
        help: SKIPPED,
        reason: Some("body_not_a_map"),
    },
    Series {
        name: "records_skipped_total",
        help: SKIPPED,
        reason: Some("missing_log_key"),
    },
    Series {
        name: "records_skipped_total",
        help: SKIPPED,
        reason: Some("oversize_dropped"),
    },
    Series {
        name: "retries_total",
        help: "AWS calls retried inside a flush (throttling, 5xx, connection failures, a credential refresh).",
        reason: None,
    },
    Series {
        name: "throttled_total",
        help: "AWS calls CloudWatch Logs answered with throttling.",
        reason: None,
    },
    Series {
        name: "credential_refreshes_total",
        help: "Times the credentials were fetched afresh after CloudWatch refused them.",
        reason: None,
    },
    Series {
        name: "flush_retries_total",
        help: "Flushes answered FLB_RETRY (the chunk goes back to Fluent Bit's scheduler).",
        reason: None,
    },
    Series {
        name: "requests_not_resent_total",
        help: "Requests of a retried chunk not sent again because CloudWatch Logs had them.",
        reason: None,
    },
    Series {
        name: "streams_held_total",
        help: HELD,
        reason: Some("group_failed"),
    },
    Series {
        name: "streams_held_total",
        help: HELD,
        reason: Some("new_stream_cap"),
    },
    Series {
        name: "entities_rejected_total",
        help: "PutLogEvents requests whose entity (add_entity) CloudWatch Logs rejected (rejectedEntityInfo): their events were stored without it.",
        reason: None,
    },
];

/// The host's counters, as `abi` reaches them: `add` adds `n` to series `index` of
/// [`SERIES`]. Implementations must be callable from any thread.
pub trait HostCounters: Send + Sync {
    fn add(&self, index: usize, n: u64);
    /// The host's instance is going away: later adds do nothing.
    fn close(&self);
}

/// Where an instance's counters go: the host's metrics, or nowhere.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<dyn HostCounters>>);

impl Metrics {
    pub fn new(host: Option<Arc<dyn HostCounters>>) -> Self {
        Metrics(host)
    }

    pub fn add(&self, metric: Metric, n: u64) {
        if n > 0
            && let Some(host) = &self.0
        {
            host.add(metric as usize, n);
        }
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// At exit: the host's context may be freed after this returns.
    pub fn close(&self) {
        if let Some(host) = &self.0 {
            host.close();
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Metrics(host)"
        } else {
            "Metrics(off)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_metric_has_its_series() {
        assert_eq!(SERIES.len(), Metric::EntitiesRejected as usize + 1);
        assert_eq!(
            SERIES[Metric::RejectedTooNew as usize].reason,
            Some("too_new")
        );
        assert_eq!(
            SERIES[Metric::FlushRetries as usize].name,
            "flush_retries_total"
        );
        for s in SERIES {
            assert!(s.name.ends_with("_total") && s.name.is_ascii());
        }
    }

    #[test]
    fn adds_reach_the_host_and_nothing_without_one() {
        struct Record(Mutex<Vec<(usize, u64)>>);
        impl HostCounters for Record {
            fn add(&self, index: usize, n: u64) {
                self.0.lock().unwrap().push((index, n));
            }
            fn close(&self) {}
        }
        let host = Arc::new(Record(Mutex::new(Vec::new())));
        let m = Metrics::new(Some(host.clone()));
        m.add(Metric::Requests, 2);
        m.add(Metric::Throttled, 0);
        assert_eq!(
            *host.0.lock().unwrap(),
            vec![(Metric::Requests as usize, 2)]
        );
        Metrics::default().add(Metric::Requests, 1);
    }
}
