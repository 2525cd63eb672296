//! A CloudWatch Logs stand-in for what moto cannot do: throttling, 5xx, connections reset
//! mid-request, slow answers, streams deleted between calls, expired credentials, AWS's
//! per-event size refusal and its exact `rejectedLogEventsInfo` semantics, a refused
//! entity (`rejectedEntityInfo`). HTTP/1.1 on a
//! free loopback port, a thread per connection, keep-alive, JSON 1.1
//! (`X-Amz-Target: Logs_20140328.<Operation>`).
//!
//! It answers CreateLogGroup, CreateLogStream (already-exists like AWS), PutRetentionPolicy
//! and PutLogEvents, keeps every event it accepted (also of streams "deleted" later, so
//! tests can count them exactly), and stops when dropped. [`Rules::faults`] is a script: the
//! n-th PutLogEvents call gets the n-th fault. [`Rules::quotas`] enforces account-wide
//! rates per operation as CloudWatch does (a call over the rate gets `ThrottlingException`
//! and does not count), and [`Rules::denied`] refuses operations with `AccessDenied` ([`Rules::denied_in`]: on one
//! group; [`Rules::denied_for_stream`]: on one stream).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

/// How the stand-in judges events.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Refuse a PutLogEvents whose event (message bytes + 26) exceeds this, as AWS does.
    pub max_event_bytes: Option<usize>,
    /// Events older than this (ms) are rejected as too old (AWS: 14 days before now).
    pub oldest_ms: Option<i64>,
    /// Events newer than this (ms) are rejected as too new (AWS: 2 hours after now).
    pub newest_ms: Option<i64>,
    /// What the PutLogEvents calls get, in order; once used up, every call is answered.
    pub faults: Vec<Fault>,
    /// Calls per second allowed per operation, for all callers together.
    pub quotas: Vec<(&'static str, f64)>,
    /// Operations always answered `AccessDeniedException`.
    pub denied: Vec<&'static str>,
    /// (operation, group): that operation on that group always answered
    /// `AccessDeniedException`, as a policy that allows it on other groups only.
    pub denied_in: Vec<(&'static str, &'static str)>,
    /// (operation, stream): that operation on a stream of that name always answered
    /// `AccessDeniedException`, as a policy that allows a group's other streams.
    pub denied_for_stream: Vec<(&'static str, &'static str)>,
    /// A PutLogEvents with an `entity` is answered with `rejectedEntityInfo` of this
    /// `errorType` (its events are stored, as CloudWatch stores them).
    pub reject_entity: Option<&'static str>,
}

/// One scripted answer to a PutLogEvents call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// 400 `ThrottlingException: Rate exceeded`.
    Throttle,
    /// 503 `ServiceUnavailableException`.
    ServerError,
    /// Close the connection after the request's headers, before reading its body.
    Reset,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// The stream is deleted just before this call: `ResourceNotFoundException`.
    DeleteStream,
    /// 400 `ExpiredTokenException`.
    ExpiredToken,
    /// 400 `InvalidParameterException` for a batch CloudWatch judges malformed.
    InvalidParameter,
    /// 400 `AccessDeniedException`: the credentials lack `logs:PutLogEvents`.
    AccessDenied,
}

/// A request as the stub saw it: operation, JSON body, headers (names lower-cased).
pub type Recorded = (String, Value, Vec<(String, String)>);

#[derive(Debug, Default)]
pub struct State {
    /// Retention in days per group (PutRetentionPolicy).
    pub retention: BTreeMap<String, i32>,
    /// Calls answered `ThrottlingException` by a quota, by operation.
    pub throttled: BTreeMap<String, usize>,
    /// Token buckets of the quotas: tokens and when they were last filled.
    buckets: BTreeMap<String, (f64, std::time::Instant)>,
    /// Stored events per (group, stream): (timestamp, message).
    pub events: BTreeMap<(String, String), Vec<(i64, String)>>,
    pub groups: Vec<String>,
    /// Streams that exist now.
    pub streams: BTreeSet<(String, String)>,
    /// Every call, by operation name, in order.
    pub calls: Vec<String>,
    /// Every answered request: operation, JSON body, headers (names lower-cased).
    pub requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
}

pub struct Stub {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    inflight: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Stub {
    pub fn start(rules: Rules) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            faults: rules.faults.iter().copied().collect(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let inflight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (st, sp, inf) = (state.clone(), stop.clone(), inflight.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, rules, inf) = (st.clone(), rules.clone(), inf.clone());
                thread::spawn(move || serve(conn, &st, &rules, &inf));
            }
        });
        Stub {
            port,
            state,
            stop,
            inflight,
        }
    }

    /// The most requests that were being answered at once.
    pub fn max_inflight(&self) -> usize {
        self.inflight.1.load(Ordering::SeqCst)
    }

    /// Every stored event of every stream.
    pub fn all_events(&self) -> Vec<(i64, String)> {
        let state = self.state.lock().expect("state");
        state.events.values().flatten().cloned().collect()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn events(&self, group: &str, stream: &str) -> Vec<(i64, String)> {
        let state = self.state.lock().expect("state");
        state
            .events
            .get(&(group.to_owned(), stream.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("state").calls.clone()
    }

    /// How many calls of `operation` were made (answered or faulted). A slow answer or a
    /// deleted stream is listed twice in [`Stub::calls`] (the fault, then the answer): it
    /// counts once.
    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.split(' ').next() == Some(operation))
            .filter(|c| !c.contains("(Slow(") && !c.contains("(DeleteStream)"))
            .count()
    }

    /// Calls of `operation` answered `ThrottlingException` by a quota.
    pub fn throttled(&self, operation: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.throttled.get(operation).copied().unwrap_or(0)
    }

    pub fn retention(&self, group: &str) -> Option<i32> {
        let state = self.state.lock().expect("state");
        state.retention.get(group).copied()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

fn serve(
    conn: TcpStream,
    state: &Mutex<State>,
    rules: &Rules,
    inflight: &(AtomicUsize, AtomicUsize),
) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    loop {
        let mut target = String::new();
        let mut length = 0usize;
        let mut headers = Vec::new();
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "x-amz-target" => target = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let over_quota = rules
            .quotas
            .iter()
            .find(|(op, _)| *op == operation)
            .is_some_and(|(_, rate)| {
                !take_token(&mut state.lock().expect("state"), &operation, *rate)
            });
        let mut fault = if over_quota {
            Fault::Throttle
        } else if rules.denied.contains(&operation.as_str()) {
            Fault::AccessDenied
        } else if operation == "PutLogEvents" {
            state
                .lock()
                .expect("state")
                .faults
                .pop_front()
                .unwrap_or(Fault::None)
        } else {
            Fault::None
        };
        if fault == Fault::Reset {
            state
                .lock()
                .expect("state")
                .calls
                .push(format!("{operation} (reset)"));
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now = inflight.0.fetch_add(1, Ordering::SeqCst) + 1;
        inflight.1.fetch_max(now, Ordering::SeqCst);
        if let Fault::Slow(d) = fault {
            thread::sleep(d);
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let names = |key: &str, name: &str| request[key].as_str() == Some(name);
        if !over_quota
            && (rules
                .denied_in
                .iter()
                .any(|(op, group)| *op == operation && names("logGroupName", group))
                || rules
                    .denied_for_stream
                    .iter()
                    .any(|(op, stream)| *op == operation && names("logStreamName", stream)))
        {
            fault = Fault::AccessDenied;
        }
        state
            .lock()
            .expect("state")
            .requests
            .push((operation.clone(), request.clone(), headers));
        let (status, answer) = match fault {
            Fault::Throttle => error("ThrottlingException", "Rate exceeded"),
            Fault::ServerError => (
                "503 Service Unavailable",
                json!({"__type": "ServiceUnavailableException", "message": "The service is unavailable"}),
            ),
            Fault::AccessDenied => error(
                "AccessDeniedException",
                &format!(
                    "User: arn:aws:sts::123456789012:assumed-role/task/x is not authorized to perform: logs:{operation}"
                ),
            ),
            Fault::InvalidParameter => error(
                "InvalidParameterException",
                "Log events in a single PutLogEvents request must be in chronological order.",
            ),
            Fault::ExpiredToken => error(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            _ => {
                if fault == Fault::DeleteStream {
                    let key = (
                        request["logGroupName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        request["logStreamName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    state.lock().expect("state").streams.remove(&key);
                }
                handle(&operation, &request, state, rules)
            }
        };
        if fault != Fault::None {
            let mut state = state.lock().expect("state");
            state.calls.push(format!("{operation} ({fault:?})"));
            if over_quota {
                *state.throttled.entry(operation.clone()).or_default() += 1;
            }
        }
        inflight.0.fetch_sub(1, Ordering::SeqCst);
        let text = answer.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nx-amzn-requestid: stub\r\n\r\n",
            text.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// Takes a token of `operation`'s bucket (`rate` a second, a second's worth at most).
fn take_token(state: &mut State, operation: &str, rate: f64) -> bool {
    let now = std::time::Instant::now();
    let (tokens, at) = state
        .buckets
        .entry(operation.to_owned())
        .or_insert((rate.max(1.0), now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate.max(1.0));
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

fn error(kind: &str, message: &str) -> (&'static str, Value) {
    (
        "400 Bad Request",
        json!({"__type": kind, "message": message}),
    )
}

fn handle(
    operation: &str,
    request: &Value,
    state: &Mutex<State>,
    rules: &Rules,
) -> (&'static str, Value) {
    let mut state = state.lock().expect("state");
    state.calls.push(operation.to_owned());
    let group = request["logGroupName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let stream = request["logStreamName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match operation {
        "CreateLogGroup" => {
            if state.groups.contains(&group) {
                return error(
                    "ResourceAlreadyExistsException",
                    "The specified log group already exists",
                );
            }
            state.groups.push(group);
            ("200 OK", json!({}))
        }
        "CreateLogStream" => {
            if !state.groups.contains(&group) {
                return error(
                    "ResourceNotFoundException",
                    "The specified log group does not exist.",
                );
            }
            let key = (group, stream);
            if !state.streams.insert(key) {
                return error(
                    "ResourceAlreadyExistsException",
                    "The specified log stream already exists",
                );
            }
            ("200 OK", json!({}))
        }
        "PutRetentionPolicy" => {
            if !state.groups.contains(&group) {
                return error(
                    "ResourceNotFoundException",
                    "The specified log group does not exist.",
                );
            }
            let days = request["retentionInDays"].as_i64().unwrap_or(0) as i32;
            state.retention.insert(group, days);
            ("200 OK", json!({}))
        }
        "PutLogEvents" => {
            let key = (group, stream);
            if !state.streams.contains(&key) {
                return error(
                    "ResourceNotFoundException",
                    "The specified log stream does not exist.",
                );
            }
            let events: Vec<(i64, String)> = request["logEvents"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            (
                                e["timestamp"].as_i64().unwrap_or(0),
                                e["message"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(max) = rules.max_event_bytes
                && let Some((_, m)) = events.iter().find(|(_, m)| m.len() + 26 > max)
            {
                return error(
                    "InvalidParameterException",
                    &format!(
                        "Log event too large: {} bytes exceeds limit of {max}",
                        m.len() + 26
                    ),
                );
            }
            // AWS: too old = [0, tooOldLogEventEndIndex), too new = [tooNewLogEventStartIndex, len).
            let old_end = events
                .iter()
                .take_while(|(t, _)| rules.oldest_ms.is_some_and(|o| *t < o))
                .count();
            let new_start = events
                .iter()
                .position(|(t, _)| rules.newest_ms.is_some_and(|n| *t > n))
                .unwrap_or(events.len())
                .max(old_end);
            let mut info = serde_json::Map::new();
            if old_end > 0 {
                info.insert("tooOldLogEventEndIndex".into(), json!(old_end));
            }
            if new_start < events.len() {
                info.insert("tooNewLogEventStartIndex".into(), json!(new_start));
            }
            state
                .events
                .entry(key)
                .or_default()
                .extend(events[old_end..new_start].iter().cloned());
            let mut answer = json!({"nextSequenceToken": "1"});
            if !info.is_empty() {
                answer["rejectedLogEventsInfo"] = Value::Object(info);
            }
            if let Some(error) = rules.reject_entity
                && request.get("entity").is_some()
            {
                answer["rejectedEntityInfo"] = json!({ "errorType": error });
            }
            ("200 OK", answer)
        }
        other => error(
            "UnknownOperationException",
            &format!("stub does not know {other}"),
        ),
    }
}
