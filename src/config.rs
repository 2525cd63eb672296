//! `[OUTPUT]` properties → a validated [`Config`].
//!
//! Every option is read here, once, at Init, with the names and meanings of AWS's Go plugin
//! `cloudwatch` (v1.9.4). An empty value means "not set", as in the Go plugin. Every value
//! that plugin runs with starts here too: what it cleans or ignores (names with characters
//! CloudWatch refuses, `log_retention_days 0`, `auto_create_stream off`) is taken as it takes
//! it, with one warning in [`Config::warnings`] saying what will be used. A value no plugin
//! could make sense of (`auto_create_group maybe`, an unclosed `$(`) is an [`OptionError`]
//! that names the option, the value (never a secret's) and what is accepted. No I/O happens
//! here: credentials and AWS calls come after validation.

use std::fmt;
use std::time::Duration;

use crate::template::{self, Needs, Template};

/// Every option this plugin reads, as users write it in `[OUTPUT]`.
pub const OPTION_NAMES: &[&str] = &[
    "region",
    "log_group_name",
    "log_stream_name",
    "log_stream_prefix",
    "log_key",
    "auto_create_group",
    "auto_create_stream",
    "role_arn",
    "external_id",
    "endpoint",
    "sts_endpoint",
    "max_event_size",
    "oversize_event",
    "auto_retry_requests",
    "retry_timeout",
    "throttle_timeout",
    "max_concurrent_requests",
    "default_log_group_name",
    "default_log_stream_name",
    "log_group_template",
    "log_stream_template",
    "confine_names",
    "new_log_group_tags",
    "log_retention_days",
    "log_group_class",
    "log_group_kms_key_id",
    "log_format",
    "credentials_endpoint",
    "profile",
    "role_session_name",
    "role_duration_seconds",
    "extra_user_agent",
    "metric_namespace",
    "metric_dimensions",
    "add_entity",
];

/// Options of Fluent Bit's C plugin this plugin accepts but does not act on (a warning at
/// Init says so).
pub const UNSUPPORTED_OPTIONS: &[&str] = &["metric_namespace", "metric_dimensions"];

/// The retention periods CloudWatch accepts, in days.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// `retry_timeout` default where the flush runs on a worker thread of Fluent Bit's (the
/// plugin asks for one at Init: `abi`): how long a flush keeps a chunk through failures
/// (5xx, resets, throttling) before answering `FLB_RETRY`. With FireLens's defaults a chunk
/// gets two flushes (`Retry_Limit 1`), so this is what rides out an outage: a chunk waits
/// in the flush (Fluent Bit keeps it, and queues the next ones behind it) instead of being
/// dropped after two short tries. A stop signal cuts the wait short (`shutdown`).
pub const DEFAULT_RETRY_TIMEOUT: Duration = MAX_RETRY_TIMEOUT;
/// `retry_timeout` default where the flush runs on Fluent Bit's engine thread (a host
/// whose `workers` the plugin could not set): while a flush waits there, Fluent Bit reads
/// no input and runs no timer, so it waits little and leaves the rest to Fluent Bit's
/// retries.
pub const ENGINE_RETRY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RETRY_TIMEOUT: Duration = Duration::from_secs(300);
/// `throttle_timeout` default on a worker thread: how long a flush keeps a chunk whose calls
/// CloudWatch throttles (a fleet starting at once shares account-wide quotas for a minute or
/// so). Never less than `retry_timeout` (`retry::Budget`). On the engine thread:
/// [`ENGINE_RETRY_TIMEOUT`].
pub const DEFAULT_THROTTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `max_concurrent_requests` default: AWS calls in flight per instance.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;
const MAX_CONCURRENT_REQUESTS: usize = 256;

/// CloudWatch's limit on group and stream names, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

/// `default_log_group_name` and `default_log_stream_name` defaults, as in the Go plugin.
pub const DEFAULT_GROUP: &str = "fluentbit-default";
pub const DEFAULT_STREAM: &str = "/fluentbit-default";

/// `max_event_size` default: AWS documents 1 MB per event; this leaves room below it.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1_000_000;
/// The largest `max_event_size`: a batch's 1,048,576 bytes less one event's 26.
pub const MAX_EVENT_SIZE_LIMIT: usize = crate::batch::MAX_MESSAGE_BYTES;
/// The smallest `max_event_size` accepted.
pub const MIN_EVENT_SIZE: usize = 256;

/// What happens to a message longer than `max_event_size` (`oversize_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Cut at a character boundary, ending with `[Truncated...]`, within the limit.
    Truncate,
    /// Several events with the same time, in order, no byte lost.
    Split,
    /// Not sent; counted and warned.
    Drop,
}

impl Oversize {
    /// The option's value, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Oversize::Truncate => "truncate",
            Oversize::Split => "split",
            Oversize::Drop => "drop",
        }
    }
}

/// How the stream of a record is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamName {
    /// `log_stream_name`: a name, or a `$(...)` template.
    Fixed(Template),
    /// `log_stream_prefix`: the prefix followed by the record's tag.
    Prefix(String),
}

/// `log_group_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupClass {
    Standard,
    InfrequentAccess,
}

/// How the plugin creates log groups (`auto_create_group`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// `new_log_group_tags`, in the order given.
    pub tags: Vec<(String, String)>,
    /// `log_retention_days`: on new groups, and once per process on existing ones.
    pub retention_days: Option<i32>,
    pub class: Option<GroupClass>,
    pub kms_key_id: Option<String>,
}

/// Where credentials come from, besides the default chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialOptions {
    /// `profile`: the shared-config profile of the base credentials.
    pub profile: Option<String>,
    /// `credentials_endpoint`: an HTTP(S) endpoint giving the base credentials.
    pub credentials_endpoint: Option<String>,
    pub role_session_name: Option<String>,
    /// `role_duration_seconds`.
    pub role_duration: Duration,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        CredentialOptions {
            profile: None,
            credentials_endpoint: None,
            role_session_name: None,
            role_duration: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub region: String,
    /// `log_group_name`: a name, or a `$(...)` template.
    pub log_group_name: Template,
    pub log_stream: StreamName,
    /// `log_group_template` / `log_stream_template`: record-accessor templates tried first.
    pub log_group_template: Option<Template>,
    pub log_stream_template: Option<Template>,
    /// `confine_names`: names from record keys keep their template's literal prefix (the
    /// templates carry it; see [`template::confined`]).
    pub confine_names: bool,
    /// Used when a templated name cannot be rendered.
    pub default_log_group_name: String,
    pub default_log_stream_name: String,
    pub group: GroupOptions,
    pub credentials: CredentialOptions,
    /// `log_format`: sent as `x-amzn-logs-format` on PutLogEvents (e.g. `json/emf`).
    pub log_format: Option<String>,
    /// `extra_user_agent`: appended to the User-Agent.
    pub extra_user_agent: Option<String>,
    /// Options set that this plugin accepts but does not act on.
    pub ignored: Vec<&'static str>,
    /// One line per value taken differently from how it was written (a name cleaned as the
    /// Go plugin cleans it, a value the Go plugin ignores): logged as warnings at Init.
    pub warnings: Vec<String>,
    pub log_key: Option<String>,
    pub auto_create_group: bool,
    pub auto_create_stream: bool,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// CloudWatch Logs endpoint URL (scheme added when the user gave a bare host).
    pub endpoint: Option<String>,
    /// STS endpoint URL for `role_arn`.
    pub sts_endpoint: Option<String>,
    /// Longest message sent as one event, in bytes.
    pub max_event_size: usize,
    pub oversize_event: Oversize,
    /// Retry throttling, 5xx and connection failures inside the flush.
    pub auto_retry_requests: bool,
    /// How long a flush keeps retrying before answering `FLB_RETRY`, if set: see
    /// [`Config::patience`] for the default.
    pub retry_timeout: Option<Duration>,
    /// How long a flush keeps retrying throttled calls (at least `retry_timeout`), if set.
    pub throttle_timeout: Option<Duration>,
    /// AWS calls of this instance in flight at once.
    pub max_concurrent_requests: usize,
    /// `add_entity`: PutLogEvents carries the entity that the `aws_entity*` fields of the
    /// kubernetes and aws filters describe, as Fluent Bit's C plugin sends it
    /// ([`crate::entity`]).
    pub add_entity: bool,
}

/// A bad option: which one, its value, and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub option: &'static str,
    /// `None` when the option is missing.
    pub value: Option<String>,
    pub accepted: String,
    /// The value is a secret (`external_id`): never shown, only its length.
    pub secret: bool,
}

/// The longest part of a bad value quoted back in an error.
const MAX_QUOTED: usize = 120;

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "missing '{}': {}", self.option, self.accepted),
            Some(v) if self.secret => write!(
                f,
                "invalid '{}' (value not shown, {} bytes): {}",
                self.option,
                v.len(),
                self.accepted
            ),
            Some(v) => {
                let end = v.floor_char_boundary(MAX_QUOTED);
                let more = if end < v.len() {
                    format!("... ({} bytes)", v.len())
                } else {
                    String::new()
                };
                write!(
                    f,
                    "invalid '{}' {:?}{}: {}",
                    self.option,
                    &v[..end],
                    more,
                    self.accepted
                )
            }
        }
    }
}

impl std::error::Error for OptionError {}

fn invalid(option: &'static str, value: &str, accepted: impl Into<String>) -> OptionError {
    OptionError {
        option,
        value: Some(value.to_owned()),
        accepted: accepted.into(),
        secret: false,
    }
}

fn missing(option: &'static str, accepted: impl Into<String>) -> OptionError {
    OptionError {
        option,
        value: None,
        accepted: accepted.into(),
        secret: false,
    }
}

impl Config {
    /// `retry_timeout` and `throttle_timeout` for a flush, whether it runs on Fluent Bit's
    /// engine thread or not: what is set, else on a worker [`DEFAULT_RETRY_TIMEOUT`] and
    /// [`DEFAULT_THROTTLE_TIMEOUT`], on the engine thread [`ENGINE_RETRY_TIMEOUT`] for both.
    /// (`retry::Budget` keeps throttled calls going at least as long as the others.)
    pub fn patience(&self, on_engine_thread: bool) -> (Duration, Duration) {
        let (retry, throttle) = if on_engine_thread {
            (ENGINE_RETRY_TIMEOUT, ENGINE_RETRY_TIMEOUT)
        } else {
            (DEFAULT_RETRY_TIMEOUT, DEFAULT_THROTTLE_TIMEOUT)
        };
        (
            self.retry_timeout.unwrap_or(retry),
            self.throttle_timeout.unwrap_or(throttle),
        )
    }

    /// A configuration with every optional setting at its default.
    pub fn new(region: &str, log_group_name: &str, log_stream: StreamName) -> Config {
        Config {
            region: region.to_owned(),
            log_group_name: log_group_name.into(),
            log_stream,
            log_group_template: None,
            log_stream_template: None,
            confine_names: false,
            default_log_group_name: DEFAULT_GROUP.to_owned(),
            default_log_stream_name: DEFAULT_STREAM.to_owned(),
            group: GroupOptions::default(),
            credentials: CredentialOptions::default(),
            log_format: None,
            extra_user_agent: None,
            ignored: Vec::new(),
            warnings: Vec::new(),
            log_key: None,
            auto_create_group: false,
            auto_create_stream: true,
            role_arn: None,
            external_id: None,
            endpoint: None,
            sts_endpoint: None,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            oversize_event: Oversize::Truncate,
            auto_retry_requests: true,
            retry_timeout: None,
            throttle_timeout: None,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            add_entity: false,
        }
    }

    /// Reads and validates every option. `get` returns a property as the user set it (or
    /// `None`); `env_region` is `AWS_REGION`, used when `region` is not set.
    pub fn from_properties(
        get: impl Fn(&str) -> Option<String>,
        env_region: Option<String>,
    ) -> Result<Config, OptionError> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());

        let region = match get("region") {
            Some(r) => region("region", &r)?,
            None => match env_region.filter(|r| !r.is_empty()) {
                Some(r) => region("region", &r)?,
                None => {
                    return Err(missing(
                        "region",
                        "set 'region' (or AWS_REGION) to the region of the log group, e.g. us-east-1",
                    ));
                }
            },
        };
        let mut warnings = Vec::new();
        let log_group_name = match get("log_group_name") {
            Some(g) => go_name_template("log_group_name", &g, Kind::Group, &mut warnings)?,
            None => return Err(missing("log_group_name", "the log group to write to")),
        };
        let record_accessor = |option: &'static str| -> Result<Option<Template>, OptionError> {
            get(option)
                .map(|v| {
                    Template::parse_record_accessor(&v).map_err(|e| {
                        invalid(
                            option,
                            &v,
                            format!("{e}; expected text with $key, $key['sub'], $TAG or $TAG[n]"),
                        )
                    })
                })
                .transpose()
        };
        let log_stream = match (get("log_stream_name"), get("log_stream_prefix")) {
            (Some(_), Some(_)) => {
                return Err(OptionError {
                    option: "log_stream_prefix",
                    value: get("log_stream_prefix"),
                    accepted: "set only one of 'log_stream_name' and 'log_stream_prefix'".into(),
                    secret: false,
                });
            }
            (Some(name), None) => StreamName::Fixed(go_name_template(
                "log_stream_name",
                &name,
                Kind::Stream,
                &mut warnings,
            )?),
            (None, Some(prefix)) => StreamName::Prefix(stream_prefix(&prefix, &mut warnings)?),
            (None, None) => {
                return Err(missing(
                    "log_stream_name",
                    "set 'log_stream_name', or 'log_stream_prefix' to name streams prefix + tag",
                ));
            }
        };
        let auto_create_group = go_boolean(
            "auto_create_group",
            get("auto_create_group"),
            false,
            &mut warnings,
        )?;
        let auto_create_stream = go_boolean(
            "auto_create_stream",
            get("auto_create_stream"),
            true,
            &mut warnings,
        )?;
        confined(Config {
            region,
            log_group_name,
            log_stream,
            log_group_template: record_accessor("log_group_template")?,
            log_stream_template: record_accessor("log_stream_template")?,
            confine_names: boolean("confine_names", get("confine_names"), false)?,
            default_log_group_name: match get("default_log_group_name") {
                Some(v) => default_name("default_log_group_name", &v, Kind::Group, &mut warnings),
                None => DEFAULT_GROUP.to_owned(),
            },
            default_log_stream_name: match get("default_log_stream_name") {
                Some(v) => default_name("default_log_stream_name", &v, Kind::Stream, &mut warnings),
                None => DEFAULT_STREAM.to_owned(),
            },
            group: GroupOptions {
                tags: match get("new_log_group_tags").map(|v| tags(&v)) {
                    None => Vec::new(),
                    Some(Ok(t)) => t,
                    Some(Err(e)) => only_for_new_groups(e, auto_create_group, &mut warnings)?
                        .unwrap_or_default(),
                },
                retention_days: match get("log_retention_days") {
                    None => None,
                    Some(v) => match retention_days(&v) {
                        Ok(days) => days,
                        // A number CloudWatch refuses; no number at all always fails.
                        Err(e) if v.trim().parse::<i64>().is_ok() => {
                            only_for_new_groups(e, auto_create_group, &mut warnings)?
                        }
                        Err(e) => return Err(e),
                    },
                },
                class: get("log_group_class")
                    .map(|v| group_class(&v))
                    .transpose()?,
                kms_key_id: get("log_group_kms_key_id")
                    .map(|v| kms_key_id(&v))
                    .transpose()?,
            },
            credentials: CredentialOptions {
                profile: get("profile"),
                credentials_endpoint: get("credentials_endpoint")
                    .map(|v| credentials_endpoint(&v))
                    .transpose()?,
                role_session_name: get("role_session_name")
                    .map(|v| role_session_name(&v))
                    .transpose()?,
                role_duration: get("role_duration_seconds")
                    .map(|v| role_duration(&v))
                    .transpose()?
                    .unwrap_or(Duration::from_secs(3600)),
            },
            log_format: get("log_format")
                .map(|v| header_value("log_format", &v))
                .transpose()?,
            extra_user_agent: get("extra_user_agent")
                .map(|v| user_agent(&v))
                .transpose()?,
            ignored: UNSUPPORTED_OPTIONS
                .iter()
                .copied()
                .filter(|o| get(o).is_some())
                .collect(),
            warnings,
            log_key: get("log_key").map(|v| log_key(&v)).transpose()?,
            auto_create_group,
            auto_create_stream,
            role_arn: get("role_arn").map(|v| role_arn(&v)).transpose()?,
            external_id: get("external_id").map(|v| external_id(&v)).transpose()?,
            endpoint: get("endpoint")
                .map(|v| endpoint("endpoint", &v))
                .transpose()?,
            sts_endpoint: get("sts_endpoint")
                .map(|v| endpoint("sts_endpoint", &v))
                .transpose()?,
            max_event_size: get("max_event_size")
                .map(|v| max_event_size(&v))
                .transpose()?
                .unwrap_or(DEFAULT_MAX_EVENT_SIZE),
            oversize_event: get("oversize_event")
                .map(|v| oversize_event(&v))
                .transpose()?
                .unwrap_or(Oversize::Truncate),
            auto_retry_requests: boolean("auto_retry_requests", get("auto_retry_requests"), true)?,
            retry_timeout: get("retry_timeout")
                .map(|v| duration("retry_timeout", &v))
                .transpose()?,
            throttle_timeout: get("throttle_timeout")
                .map(|v| duration("throttle_timeout", &v))
                .transpose()?,
            max_concurrent_requests: get("max_concurrent_requests")
                .map(|v| max_concurrent_requests(&v))
                .transpose()?
                .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS),
            add_entity: boolean("add_entity", get("add_entity"), false)?,
        })
    }
}

/// `k1=v1,k2=v2`, trimmed; empty keys ignored; the last of a key wins (as in the Go plugin).
/// Each tag is held to CloudWatch's rules (CreateLogGroup, TagResource): at most 50 tags;
/// keys of 1 to 128 characters, values of at most 256, of [`tag_char`]s; keys not starting
/// with `aws:`. A refused tag is named in the error (tags are not secrets).
fn tags(v: &str) -> Result<Vec<(String, String)>, OptionError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in v.split(',') {
        let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, val) = (k.trim(), val.trim());
        if k.is_empty() {
            continue;
        }
        if let Some(why) = refused_tag(k, val) {
            return Err(invalid(
                "new_log_group_tags",
                pair.trim(),
                format!("{why}; {TAGS_ACCEPTED}"),
            ));
        }
        out.retain(|(old, _)| old != k);
        out.push((k.to_owned(), val.to_owned()));
    }
    if out.len() > MAX_TAGS {
        return Err(invalid(
            "new_log_group_tags",
            v,
            format!("{} tags; {TAGS_ACCEPTED}", out.len()),
        ));
    }
    Ok(out)
}

/// What `new_log_group_tags` accepts, as CloudWatch documents it.
const TAGS_ACCEPTED: &str = "expected at most 50 key=value pairs separated by commas, keys of 1 to 128 and values of at most 256 characters, each a letter, digit, space or one of _ . : / = + - @, keys not starting with aws:";
/// CloudWatch's most tags on a log group.
const MAX_TAGS: usize = 50;

/// Why CloudWatch would refuse the tag `key=value` (trimmed, key not empty), if it would.
fn refused_tag(key: &str, value: &str) -> Option<String> {
    if key.starts_with("aws:") {
        return Some("the key starts with aws:, which AWS reserves".into());
    }
    for (what, text, max) in [("key", key, 128), ("value", value, 256)] {
        let length = text.chars().count();
        if length > max {
            return Some(format!(
                "the {what} has {length} characters, more than {max}"
            ));
        }
        if let Some(c) = text.chars().find(|&c| !tag_char(c)) {
            return Some(format!(
                "the {what} holds {c:?}, which CloudWatch refuses in tags"
            ));
        }
    }
    None
}

/// A character of CloudWatch's tag patterns, `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Numbers (`N`)
/// are [`char::is_numeric`], exactly `Nd`, `Nl` and `No`; separators (`Z`) are listed, exactly
/// `Zs`, `Zl` and `Zp` (tabs and line ends are not among them). Letters (`L`) are
/// [`char::is_alphabetic`], Unicode's `Alphabetic`: every letter, and also a few characters
/// CloudWatch refuses (combining vowel signs, circled letters such as `Ⓐ`), which then
/// pass Init and fail at CreateLogGroup; std has no test for `L` alone, and nothing
/// CloudWatch accepts is refused here.
fn tag_char(c: char) -> bool {
    c.is_alphabetic() || c.is_numeric() || separator(c) || "_.:/=+-@".contains(c)
}

/// Unicode's separators: `Zs` (spaces), `Zl` (U+2028) and `Zp` (U+2029).
fn separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// `log_retention_days`: a retention CloudWatch accepts; 0 or less means unset, as in the
/// Go plugin ("if set to a number greater than zero") and the C plugin.
fn retention_days(v: &str) -> Result<Option<i32>, OptionError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n <= 0 => Ok(None),
        Ok(n) if RETENTION_DAYS.iter().any(|&d| i64::from(d) == n) => Ok(i32::try_from(n).ok()),
        _ => Err(invalid(
            "log_retention_days",
            v,
            format!(
                "must be 0 (unset) or one of {}",
                RETENTION_DAYS
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn group_class(v: &str) -> Result<GroupClass, OptionError> {
    match v.trim().to_ascii_uppercase().as_str() {
        "STANDARD" => Ok(GroupClass::Standard),
        "INFREQUENT_ACCESS" => Ok(GroupClass::InfrequentAccess),
        _ => Err(invalid(
            "log_group_class",
            v,
            "expected STANDARD or INFREQUENT_ACCESS",
        )),
    }
}

fn kms_key_id(v: &str) -> Result<String, OptionError> {
    if v.starts_with("arn:")
        && v.contains(":kms:")
        && v.len() <= 256
        && !v.contains(char::is_whitespace)
    {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "log_group_kms_key_id",
            v,
            "expected a KMS key ARN, e.g. arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ))
    }
}

/// An `http://` or `https://` URL. Its path may be a bearer capability (a container's
/// `/v2/credentials/<id>`), so an error shows only the value's scheme and host
/// ([`crate::credentials::redact`]), as every log line does.
fn credentials_endpoint(v: &str) -> Result<String, OptionError> {
    let scheme = v.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let ok = matches!(scheme.as_deref(), Some("http" | "https"))
        && v.len() <= 2048
        && !v.contains(char::is_whitespace);
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "credentials_endpoint",
            &crate::credentials::redact(v),
            "expected an http:// or https:// URL of a credentials endpoint in the ECS container-credentials format (only its scheme and host are shown: the rest may be a credential)",
        ))
    }
}

/// STS: 2–64 characters of `\w+=,.@-`.
fn role_session_name(v: &str) -> Result<String, OptionError> {
    let ok = (2..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "role_session_name",
            v,
            "expected 2 to 64 characters of letters, digits and _+=,.@-",
        ))
    }
}

fn role_duration(v: &str) -> Result<Duration, OptionError> {
    match v.trim().parse::<u64>() {
        Ok(n) if (900..=43_200).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(invalid(
            "role_duration_seconds",
            v,
            "expected seconds from 900 to 43200 (and no more than the role's maximum session duration)",
        )),
    }
}

/// A value that can go into an HTTP header.
fn header_value(option: &'static str, v: &str) -> Result<String, OptionError> {
    if v.len() <= 256 && v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            option,
            v,
            "expected printable ASCII, at most 256 characters, e.g. json/emf",
        ))
    }
}

/// The AWS SDK's app name rules: 1–50 characters of letters, digits and ``!#$%&'*+-.^_`|~``.
fn user_agent(v: &str) -> Result<String, OptionError> {
    let ok = (1..=50).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "extra_user_agent",
            v,
            "expected 1 to 50 characters of letters, digits and !#$%&'*+-.^_`|~",
        ))
    }
}

fn max_event_size(v: &str) -> Result<usize, OptionError> {
    match v.trim().parse::<usize>() {
        Ok(n) if (MIN_EVENT_SIZE..=MAX_EVENT_SIZE_LIMIT).contains(&n) => Ok(n),
        _ => Err(invalid(
            "max_event_size",
            v,
            format!(
                "expected a number of bytes from {MIN_EVENT_SIZE} to {MAX_EVENT_SIZE_LIMIT} (CloudWatch takes at most 1 MB per event; older limits were 262144)"
            ),
        )),
    }
}

/// Seconds (`5`), or with a unit as Fluent Bit writes durations: `500ms`, `5s`, `1m`.
fn duration(option: &'static str, v: &str) -> Result<Duration, OptionError> {
    let t = v.trim().to_ascii_lowercase();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t.as_str(), 1000)
    };
    match number.trim().parse::<u64>() {
        Ok(n) if Duration::from_millis(n.saturating_mul(unit_ms)) <= MAX_RETRY_TIMEOUT => {
            Ok(Duration::from_millis(n * unit_ms))
        }
        _ => Err(invalid(
            option,
            v,
            "expected a duration from 0 to 300 seconds: 5, 5s, 500ms or 1m",
        )),
    }
}

fn max_concurrent_requests(v: &str) -> Result<usize, OptionError> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENT_REQUESTS).contains(&n) => Ok(n),
        _ => Err(invalid(
            "max_concurrent_requests",
            v,
            format!("expected a number from 1 to {MAX_CONCURRENT_REQUESTS}"),
        )),
    }
}

fn oversize_event(v: &str) -> Result<Oversize, OptionError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "truncate" => Ok(Oversize::Truncate),
        "split" => Ok(Oversize::Split),
        "drop" => Ok(Oversize::Drop),
        _ => Err(invalid(
            "oversize_event",
            v,
            "expected truncate, split or drop",
        )),
    }
}

/// true/false, on/off, yes/no in any case.
fn boolean(
    option: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, OptionError> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Ok(true),
        "false" | "off" | "no" => Ok(false),
        _ => Err(invalid(option, &v, "expected true/false, on/off or yes/no")),
    }
}

/// A boolean option of the Go plugin, which reads only `true` and `false` (any case) and
/// takes its default for every other value. `on`/`yes`/`off`/`no` are taken so that the
/// plugin delivers at least what the Go plugin delivered: `auto_create_group on` creates
/// groups (the Go plugin would not, and fail on a missing group), but
/// `auto_create_stream off` keeps creating streams, as the Go plugin did (only `false`
/// turns it off). Either way a warning names what the Go plugin did.
fn go_boolean(
    option: &'static str,
    value: Option<String>,
    go_default: bool,
    warnings: &mut Vec<String>,
) -> Result<bool, OptionError> {
    let Some(v) = value else {
        return Ok(go_default);
    };
    let ours = boolean(option, Some(v.clone()), go_default)?;
    let lower = v.trim().to_ascii_lowercase();
    if lower == "true" || lower == "false" || ours == go_default {
        return Ok(ours);
    }
    let taken = ours || go_default;
    warnings.push(format!(
        "{option} {}: AWS's Go plugin reads only true/false and takes its default ({go_default}) for this value; this plugin takes {taken}{}",
        quoted(&v),
        if taken == go_default {
            " as it did: write 'false' to turn it off"
        } else {
            ""
        }
    ));
    Ok(taken)
}

/// A value quoted in a warning: at most [`MAX_QUOTED`] bytes of it.
fn quoted(v: &str) -> String {
    let end = v.floor_char_boundary(MAX_QUOTED);
    if end < v.len() {
        format!("{:?}... ({} bytes)", &v[..end], v.len())
    } else {
        format!("{v:?}")
    }
}

/// An option that only acts on groups the plugin creates (`new_log_group_tags`,
/// `log_retention_days`): with `auto_create_group` off the Go plugin never uses it, so a
/// value CloudWatch would refuse is ignored with a warning instead of failing Init.
fn only_for_new_groups<T>(
    e: OptionError,
    auto_create_group: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<T>, OptionError> {
    if auto_create_group {
        return Err(e);
    }
    warnings.push(format!(
        "{} {}: ignored, as CloudWatch would refuse it ({}) and it only applies to groups the plugin creates (auto_create_group is off)",
        e.option,
        quoted(e.value.as_deref().unwrap_or_default()),
        e.accepted
    ));
    Ok(None)
}

fn region(option: &'static str, v: &str) -> Result<String, OptionError> {
    // Parts of lowercase letters and digits joined by single hyphens: us-east-1, cn-north-1.
    let ok = (2..=32).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            option,
            v,
            "expected an AWS region code of lowercase letters, digits and '-', e.g. ap-northeast-1",
        ))
    }
}

/// A record key name: long enough for any real key, short enough for a log line.
const MAX_KEY_BYTES: usize = 1024;

fn log_key(v: &str) -> Result<String, OptionError> {
    if v.len() <= MAX_KEY_BYTES {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "log_key",
            v,
            format!("expected a key name of at most {MAX_KEY_BYTES} bytes"),
        ))
    }
}

/// Which kind of name an option gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Group,
    Stream,
}

const TEMPLATE_VARIABLES: &str = "templates are $(tag), $(tag[0]) to $(tag[9]), $(ecs_task_id), $(ecs_cluster), $(ecs_task_arn), $(uuid), $(key) or $(key['sub'])";

/// `log_group_name` / `log_stream_name`: a `$(...)` template, or a name. Like the Go
/// plugin, only an unclosed `$(` is refused; the text is cleaned when rendered, by the Go
/// plugin's rules, and a warning says what a name (or a template's text) becomes.
fn go_name_template(
    option: &'static str,
    v: &str,
    kind: Kind,
    warnings: &mut Vec<String>,
) -> Result<Template, OptionError> {
    let t = Template::parse_go(v)
        .map_err(|e| invalid(option, v, format!("{e}; {TEMPLATE_VARIABLES}")))?;
    for note in t.notes() {
        warnings.push(format!("{option} {}: {note}", quoted(v)));
    }
    let text = t.literal_text();
    let mut cleaned = String::new();
    match kind {
        Kind::Group => template::clean_group(text.as_bytes(), false, &mut cleaned),
        Kind::Stream => template::clean_stream(text.as_bytes(), &mut cleaned),
    }
    let rule = match kind {
        Kind::Group => {
            "every character outside A-Z a-z 0-9 _ - . / becomes '.' (per byte), as AWS's Go plugin does"
        }
        Kind::Stream => "':' and '*' become '.', as AWS's Go plugin does",
    };
    if t.needs() == Needs::Nothing {
        if cleaned != text {
            let cut = if text.len() > MAX_NAME_BYTES {
                ", cut to 512 bytes"
            } else {
                ""
            };
            warnings.push(format!(
                "{option} {}: the {} is {} ({rule}{cut})",
                quoted(v),
                kind_name(kind),
                quoted(&cleaned)
            ));
        }
    } else if cleaned.len() == text.len() && cleaned != text {
        warnings.push(format!(
            "{option} {}: in the text around its variables {rule}",
            quoted(v)
        ));
    }
    Ok(t)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Group => "group",
        Kind::Stream => "stream",
    }
}

/// `confine_names`: every name template with record keys gets its literal prefix to keep
/// ([`template::confined`]); one without a prefix to keep (empty, or only `/`) fails Init,
/// naming its option, because confining it would send every record to the default name.
fn confined(mut c: Config) -> Result<Config, OptionError> {
    if !c.confine_names {
        return Ok(c);
    }
    let stream_name = match &mut c.log_stream {
        StreamName::Fixed(t) => Some(t),
        StreamName::Prefix(_) => None,
    };
    let templates = [
        ("log_group_name", Kind::Group, Some(&mut c.log_group_name)),
        ("log_stream_name", Kind::Stream, stream_name),
        (
            "log_group_template",
            Kind::Group,
            c.log_group_template.as_mut(),
        ),
        (
            "log_stream_template",
            Kind::Stream,
            c.log_stream_template.as_mut(),
        ),
    ];
    for (option, kind, t) in templates {
        let Some(t) = t else { continue };
        let kept = match kind {
            Kind::Group => t.confine_group(),
            Kind::Stream => t.confine_stream(),
        };
        if let Err(prefix) = kept {
            let example = match t.syntax() {
                template::Syntax::Go => "/ecs/app-$(app)",
                template::Syntax::RecordAccessor => "/ecs/app-$app",
            };
            return Err(invalid(
                option,
                t.source(),
                format!(
                    "confine_names is on, and a name from record keys needs fixed text other than '/' before its first variable (here {prefix:?}), e.g. '{example}': the prefix its names must keep; or set confine_names off"
                ),
            ));
        }
    }
    Ok(c)
}

/// `default_log_group_name` / `default_log_stream_name`: used as they are (the Go plugin
/// does not clean them), except what CloudWatch would refuse, which is cleaned (with `#`
/// kept in groups) with a warning: the Go plugin could never deliver to such a name.
fn default_name(option: &'static str, v: &str, kind: Kind, warnings: &mut Vec<String>) -> String {
    let mut cleaned = String::new();
    match kind {
        Kind::Group => template::clean_group(v.as_bytes(), true, &mut cleaned),
        Kind::Stream => template::clean_stream(v.as_bytes(), &mut cleaned),
    }
    if cleaned != v {
        warnings.push(format!(
            "{option} {}: CloudWatch refuses this {} name; using {} ({}; cut to 512 bytes)",
            quoted(v),
            kind_name(kind),
            quoted(&cleaned),
            match kind {
                Kind::Group => "characters outside A-Z a-z 0-9 _ - . / # become '.'",
                Kind::Stream => "':' and '*' become '.'",
            }
        ));
    }
    cleaned
}

/// `log_stream_prefix`: streams are prefix + tag, cleaned and cut to 512 bytes when
/// rendered. A prefix with `:` or `*` (which CloudWatch refuses, and the Go plugin sends as
/// it is) gets a warning; one that leaves no room for a tag is refused.
fn stream_prefix(v: &str, warnings: &mut Vec<String>) -> Result<String, OptionError> {
    let limit = MAX_NAME_BYTES - 1;
    if v.len() > limit {
        return Err(invalid(
            "log_stream_prefix",
            v,
            format!(
                "expected at most {limit} bytes, leaving room for the tag in a stream name of 512"
            ),
        ));
    }
    if v.contains([':', '*']) {
        let mut cleaned = String::new();
        template::clean_stream(v.as_bytes(), &mut cleaned);
        warnings.push(format!(
            "log_stream_prefix {}: CloudWatch refuses ':' and '*' in stream names; streams are named {} + tag",
            quoted(v),
            quoted(&cleaned)
        ));
    }
    Ok(v.to_owned())
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/>name`.
fn role_arn(v: &str) -> Result<String, OptionError> {
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            !partition.is_empty()
                && partition
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("role/")
                    .and_then(|r| r.rsplit('/').next())
                    .is_some_and(|name| {
                        (1..=64).contains(&name.len())
                            && name
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
                    })
                && v.len() <= 2048
        }
        _ => false,
    };
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "role_arn",
            v,
            "is not a role ARN; expected arn:aws:iam::<account>:role/<name>",
        ))
    }
}

/// STS: 2–1224 characters of `\w+=,.@:/-`.
fn external_id(v: &str) -> Result<String, OptionError> {
    let ok = (2..=1224).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(OptionError {
            secret: true,
            ..invalid(
                "external_id",
                v,
                "expected 2 to 1224 characters of letters, digits and _+=,.@:/-",
            )
        })
    }
}

/// `https://host[:port][/path]`, `http://…`, or a bare `host[:port]` (as the C plugin takes
/// it), which means https.
fn endpoint(option: &'static str, v: &str) -> Result<String, OptionError> {
    let accepted = "expected a URL such as https://logs.us-east-1.amazonaws.com or http://127.0.0.1:5000, or a host name";
    let bad = || invalid(option, v, accepted);
    let (scheme, rest, bare) = match v.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            (s.to_ascii_lowercase(), rest, false)
        }
        Some(_) => return Err(bad()),
        None => ("https".to_owned(), v, true),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // A bare value is a host name (as the C plugin takes it), never a path.
    if bare && !path.is_empty() {
        return Err(bad());
    }
    // `[v6]`, `[v6]:port`, `host` or `host:port`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad());
        }
        (inside, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        && (authority.starts_with('[') || !host.contains(':'))
        && !host.starts_with(['-', '.'])
        && !host.ends_with('-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok && !rest.contains(char::is_whitespace) && v.len() <= 2048 {
        Ok(format!("{scheme}://{rest}"))
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, OptionError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_properties(|k| map.get(k).cloned(), None)
    }

    const BASE: &[(&str, &str)] = &[
        ("region", "ap-northeast-1"),
        ("log_group_name", "/ecs/httpd"),
        ("log_stream_name", "task-1"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, OptionError> {
        let mut all = BASE.to_vec();
        all.extend_from_slice(extra);
        config(&all)
    }

    #[test]
    fn the_firelens_example() {
        let c = with(&[
            ("auto_create_group", "true"),
            (
                "role_arn",
                "arn:aws:iam::222222222222:role/firelens-cross-account",
            ),
        ])
        .unwrap();
        assert_eq!(c.region, "ap-northeast-1");
        assert_eq!(c.log_stream, StreamName::Fixed("task-1".into()));
        assert!(c.auto_create_group && c.auto_create_stream);
        assert_eq!(
            c.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/firelens-cross-account")
        );
    }

    #[test]
    fn region_falls_back_to_aws_region() {
        let c = Config::from_properties(
            |k| match k {
                "log_group_name" => Some("g".into()),
                "log_stream_prefix" => Some("p-".into()),
                _ => None,
            },
            Some("eu-west-1".into()),
        )
        .unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.log_stream, StreamName::Prefix("p-".into()));
        let e = Config::from_properties(|_| None, None).unwrap_err();
        assert_eq!(e.option, "region");
        assert!(e.to_string().starts_with("missing 'region'"));
    }

    #[test]
    fn booleans_in_every_spelling() {
        for (v, want) in [
            ("ON", true),
            ("Yes", true),
            ("off", false),
            ("FALSE", false),
        ] {
            assert_eq!(
                with(&[("auto_retry_requests", v)])
                    .unwrap()
                    .auto_retry_requests,
                want
            );
        }
        // `add_entity` (the C plugin's) too, without a warning; not a boolean: Init fails.
        for (v, want) in [("true", true), ("On", true), ("no", false), ("", false)] {
            let c = with(&[("add_entity", v)]).unwrap();
            assert_eq!(
                (c.add_entity, c.ignored.len(), c.warnings.len()),
                (want, 0, 0)
            );
        }
        let e = with(&[("add_entity", "maybe")]).unwrap_err();
        assert_eq!(e.option, "add_entity");
        assert!(e.to_string().contains("expected true/false"), "{e}");
        // The Go plugin's own booleans: it reads only true/false. Where it would have
        // delivered more with its default, so does this plugin; a warning says so.
        for (option, v, want, warned) in [
            ("auto_create_stream", "FALSE", false, false),
            ("auto_create_stream", "True", true, false),
            ("auto_create_stream", "yes", true, false),
            ("auto_create_stream", "off", true, true),
            ("auto_create_stream", "no", true, true),
            ("auto_create_group", "on", true, true),
            ("auto_create_group", "off", false, false),
        ] {
            let c = with(&[(option, v)]).unwrap();
            let got = if option == "auto_create_group" {
                c.auto_create_group
            } else {
                c.auto_create_stream
            };
            assert_eq!(
                (got, c.warnings.len()),
                (want, usize::from(warned)),
                "{option} {v}"
            );
        }
        let c = with(&[("auto_create_stream", "off")]).unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "auto_create_stream \"off\": AWS's Go plugin reads only true/false and takes its default (true) for this value; this plugin takes true as it did: write 'false' to turn it off"
            ]
        );
        let e = with(&[("auto_create_group", "maybe")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid 'auto_create_group' \"maybe\": expected true/false, on/off or yes/no"
        );
    }

    #[test]
    fn exactly_one_stream_option() {
        let e = with(&[("log_stream_prefix", "x")]).unwrap_err();
        assert_eq!(e.option, "log_stream_prefix");
        let e = config(&[("region", "us-east-1"), ("log_group_name", "g")]).unwrap_err();
        assert_eq!(e.option, "log_stream_name");
    }

    /// `confine_names`: off by default; a boolean like the others; on, every template with
    /// record keys gets its prefix to keep, and one without a prefix fails Init naming its
    /// option, its value and what is needed.
    #[test]
    fn confine_names_option() {
        let c = with(&[("log_group_name", "/ecs/$(app)")]).unwrap();
        assert!(!c.confine_names);
        assert_eq!(c.log_group_name.confined_prefix(), None, "off by default");
        let e = with(&[("confine_names", "maybe")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid 'confine_names' \"maybe\": expected true/false, on/off or yes/no"
        );
        for (v, want) in [("on", true), ("TRUE", true), ("yes", true), ("off", false)] {
            let c = with(&[("confine_names", v)]).unwrap();
            assert_eq!(c.confine_names, want, "{v}");
            assert!(c.warnings.is_empty(), "{v}: {:?}", c.warnings);
        }
        let c = config(&[
            ("region", "us-east-1"),
            ("log_group_name", "/ecs/app-$(app)"),
            ("log_stream_name", "$(tag)-$(ecs_task_id)"),
            ("log_group_template", "/k8s/$kubernetes['namespace_name']"),
            ("log_stream_template", "pod:$app"),
            ("confine_names", "true"),
        ])
        .unwrap();
        assert_eq!(c.log_group_name.confined_prefix(), Some("/ecs/app-"));
        let StreamName::Fixed(stream) = &c.log_stream else {
            panic!("a stream name")
        };
        assert_eq!(stream.confined_prefix(), None, "no record key: unaffected");
        fn prefix(t: &Option<Template>) -> Option<&str> {
            t.as_ref().and_then(Template::confined_prefix)
        }
        assert_eq!(prefix(&c.log_group_template), Some("/k8s/"));
        assert_eq!(prefix(&c.log_stream_template), Some("pod."));
        let c = config(&[
            ("region", "us-east-1"),
            ("log_group_name", "/ecs/app"),
            ("log_stream_prefix", "p-"),
            ("confine_names", "on"),
        ])
        .unwrap();
        assert!(c.confine_names && c.log_group_name.confined_prefix().is_none());

        let e = with(&[("log_group_name", "$(app)"), ("confine_names", "on")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid 'log_group_name' \"$(app)\": confine_names is on, and a name from record keys needs fixed text other than '/' before its first variable (here \"\"), e.g. '/ecs/app-$(app)': the prefix its names must keep; or set confine_names off"
        );
        for (option, value, example) in [
            ("log_stream_name", "/$(app)", "$(app)"),
            ("log_stream_name", "$(tag)/$(app)", "$(app)"),
            ("log_group_template", "$app", "$app"),
            ("log_stream_template", "//$TAG/$app", "$app"),
        ] {
            let e = with(&[(option, value), ("confine_names", "yes")]).unwrap_err();
            assert_eq!(e.option, option);
            assert!(
                e.to_string()
                    .contains(&format!("e.g. '/ecs/app-{example}'")),
                "{e}"
            );
            assert!(with(&[(option, value)]).is_ok(), "{option} {value} off");
        }
    }

    fn names(group: &str, stream: &str) -> Result<Config, OptionError> {
        config(&[
            ("region", "us-east-1"),
            ("log_group_name", group),
            ("log_stream_name", stream),
        ])
    }

    /// Names with characters CloudWatch refuses start, as with the Go plugin, which cleans
    /// them; one warning each names the option, the value and the name used.
    #[test]
    fn static_names_are_cleaned_as_the_go_plugin_cleans_them() {
        let c = names("my group@café#1", "a:b*c").unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "log_group_name \"my group@café#1\": the group is \"my.group.caf...1\" (every character outside A-Z a-z 0-9 _ - . / becomes '.' (per byte), as AWS's Go plugin does)",
                "log_stream_name \"a:b*c\": the stream is \"a.b.c\" (':' and '*' become '.', as AWS's Go plugin does)",
            ]
        );
        let c = names("/ecs/httpd", "$(ecs_task_id)").unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let long = "g".repeat(600);
        let c = names(&long, "s").unwrap();
        assert!(
            c.warnings[0].contains("cut to 512 bytes"),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings[0].len() < 600, "the value is quoted short");
        let c = names("/a b/$(tag)", "s").unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "log_group_name \"/a b/$(tag)\": in the text around its variables every character outside A-Z a-z 0-9 _ - . / becomes '.' (per byte), as AWS's Go plugin does"
            ]
        );
        // Default names: what CloudWatch refuses is cleaned ('#' is fine there).
        let c = with(&[
            ("default_log_group_name", "fall back#1"),
            ("default_log_stream_name", "d:s"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.default_log_group_name.as_str(),
                c.default_log_stream_name.as_str()
            ),
            ("fall.back#1", "d.s")
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        let c = config(&[
            ("region", "us-east-1"),
            ("log_group_name", "g"),
            ("log_stream_prefix", "p:"),
        ])
        .unwrap();
        assert_eq!(c.log_stream, StreamName::Prefix("p:".into()));
        assert!(c.warnings[0].contains("\"p.\" + tag"), "{:?}", c.warnings);
    }

    /// Templates: the Go plugin refuses only an unclosed `$(`; `$(tag[12])` is part 1 there,
    /// so it is here too, with a warning.
    #[test]
    fn go_templates_start_as_the_go_plugin_starts_them() {
        let c = names("/ecs/$(ecs_cluster)", "$(ecs_task_id)").unwrap();
        assert!(c.log_group_name.uses_ecs());
        let c = names("g", "$(tag[12])").unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "log_stream_name \"$(tag[12])\": $(tag[12]) is read as $(tag[1]), as AWS's Go plugin reads it (one digit, 0 to 9)"
            ]
        );
        let e = names("g", "$(tag").unwrap_err();
        assert_eq!(e.option, "log_stream_name");
        assert_eq!(
            e.to_string(),
            "invalid 'log_stream_name' \"$(tag\": '$(' at byte 0 is never closed with ')'; templates are $(tag), $(tag[0]) to $(tag[9]), $(ecs_task_id), $(ecs_cluster), $(ecs_task_arn), $(uuid), $(key) or $(key['sub'])"
        );
    }

    /// `log_retention_days 0` (the Go plugin's "not set") starts; so do values CloudWatch
    /// refuses when only created groups would get them and auto_create_group is off.
    #[test]
    fn retention_zero_is_unset() {
        for v in ["0", "-1", " 0 "] {
            let c = with(&[("log_retention_days", v)]).unwrap();
            assert_eq!(c.group.retention_days, None, "{v}");
            assert!(c.warnings.is_empty());
        }
        let c = with(&[
            ("log_retention_days", "45"),
            ("new_log_group_tags", "aws:x=1"),
        ])
        .unwrap();
        assert_eq!(
            (c.group.retention_days, c.group.tags.len(), c.warnings.len()),
            (None, 0, 2)
        );
        assert!(c.warnings[0].starts_with("new_log_group_tags \"aws:x=1\": ignored"));
        for (option, value) in [
            ("log_retention_days", "45"),
            ("new_log_group_tags", "aws:x=1"),
        ] {
            let e = with(&[("auto_create_group", "true"), (option, value)]).unwrap_err();
            assert_eq!(e.option, option);
        }
        assert_eq!(
            with(&[("log_retention_days", "thirty")])
                .unwrap_err()
                .option,
            "log_retention_days"
        );
    }

    /// Regression (issue 27, item 5): tags CloudWatch's patterns refuse fail Init with
    /// auto_create_group on, naming the tag and what is accepted; with it off they are
    /// ignored with a warning. What the patterns accept starts, in any script.
    #[test]
    fn tags_follow_cloudwatch_s_patterns() {
        let tags = |v: &str, auto: &str| {
            let mut all: Vec<(&str, &str)> = BASE.to_vec();
            all.extend([("new_log_group_tags", v), ("auto_create_group", auto)]);
            config(&all)
        };
        for (value, tag, why) in [
            ("team=a&b", "team=a&b", "the value holds '&'"),
            ("env=prod, owner=ops!", "owner=ops!", "the value holds '!'"),
            ("app=(web)", "app=(web)", "the value holds '('"),
            ("k=v;w", "k=v;w", "the value holds ';'"),
            ("a*b=1", "a*b=1", "the key holds '*'"),
            ("k=a\tb", "k=a\tb", "the value holds '\\t'"),
            ("aws:x=1", "aws:x=1", "the key starts with aws:"),
        ] {
            let e = tags(value, "true").unwrap_err();
            assert_eq!(e.option, "new_log_group_tags");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("invalid 'new_log_group_tags' {tag:?}: {why}")),
                "{text}"
            );
            assert!(
                text.contains("each a letter, digit, space or one of _ . : / = + - @"),
                "{text}"
            );
            let c = tags(value, "false").unwrap();
            assert!(c.group.tags.is_empty());
            assert!(
                c.warnings[0].starts_with(&format!("new_log_group_tags {tag:?}: ignored")),
                "{:?}",
                c.warnings
            );
        }
        let long_key = format!("{}=v", "鍵".repeat(128));
        let long_value = format!("k={}", "値".repeat(256));
        for value in [
            "team lead=Ünïcode 東京, path=/a/b:c=d+e-f@g_h.i",
            "k=",
            "nbsp\u{a0}key=v\u{3000}w",
            "roman=Ⅻ, half=½, ar=٣",
            long_key.as_str(),
            long_value.as_str(),
        ] {
            let c = tags(value, "true").unwrap_or_else(|e| panic!("{value}: {e}"));
            assert!(!c.group.tags.is_empty() && c.warnings.is_empty(), "{value}");
        }
        let e = tags(&format!("{}=v", "鍵".repeat(129)), "true").unwrap_err();
        assert!(
            e.to_string()
                .contains("the key has 129 characters, more than 128"),
            "{e}"
        );
        let e = tags(&format!("k={}", "値".repeat(257)), "true").unwrap_err();
        assert!(e.to_string().contains("more than 256"), "{e}");
        let many: Vec<String> = (0..51).map(|i| format!("k{i}=v")).collect();
        let e = tags(&many.join(","), "true").unwrap_err();
        assert!(
            e.to_string().contains(": 51 tags; expected at most 50"),
            "{e}"
        );
        assert!(tags(&many[..50].join(","), "true").is_ok());
    }

    /// Regression (issue 27, item 2): an invalid credentials_endpoint is shown as its
    /// scheme and host only, as every log line shows it: its path may be a credential.
    #[test]
    fn an_invalid_credentials_endpoint_is_shown_without_its_path() {
        for (url, shown) in [
            (
                "htps://169.254.170.2/v2/credentials/endpoint-path-secret",
                "htps://169.254.170.2/…",
            ),
            (
                "http://169.254.170.2/v2/credentials/endpoint-path-secret x",
                "http://169.254.170.2/…",
            ),
            (
                "169.254.170.2/v2/credentials/endpoint-path-secret",
                "169.254.170.2/…",
            ),
            ("ftp://x", "ftp://x"),
        ] {
            let e = with(&[("credentials_endpoint", url)]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "invalid 'credentials_endpoint' {shown:?}: expected an http:// or https:// URL"
                )),
                "{text}"
            );
            assert!(!text.contains("endpoint-path-secret"), "{text}");
        }
    }

    /// An invalid external id is a secret all the same: its error says what is accepted,
    /// never the value.
    #[test]
    fn an_invalid_external_id_is_not_echoed() {
        let e = with(&[("external_id", "s3cret value!")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid 'external_id' (value not shown, 13 bytes): expected 2 to 1224 characters of letters, digits and _+=,.@:/-"
        );
    }

    #[test]
    fn options_of_the_go_and_c_plugins() {
        let c = with(&[
            ("new_log_group_tags", " team = logs , env=prod,empty=, =x"),
            ("log_retention_days", "30"),
            ("log_group_class", "infrequent_access"),
            (
                "log_group_kms_key_id",
                "arn:aws:kms:us-east-1:111122223333:key/abc",
            ),
            ("log_format", "json/emf"),
            ("role_session_name", "my-session"),
            ("role_duration_seconds", "900"),
            ("extra_user_agent", "ecs-firelens"),
            ("credentials_endpoint", "http://169.254.170.2/creds"),
            ("profile", "logs"),
            ("log_group_template", "$kubernetes['namespace_name']"),
            ("metric_namespace", "x"),
            ("default_log_group_name", "fallback"),
        ])
        .unwrap();
        assert_eq!(
            c.group.tags,
            vec![
                ("team".into(), "logs".into()),
                ("env".into(), "prod".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(c.group.retention_days, Some(30));
        assert_eq!(c.group.class, Some(GroupClass::InfrequentAccess));
        assert_eq!(c.credentials.role_duration, Duration::from_secs(900));
        assert_eq!(c.ignored, vec!["metric_namespace"]);
        assert_eq!(c.default_log_group_name, "fallback");
        assert_eq!(c.default_log_stream_name, DEFAULT_STREAM);
        let bad: &[(&str, &str, &str)] = &[
            (
                "log_retention_days",
                "45",
                "must be 0 (unset) or one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
            ),
            (
                "log_group_class",
                "COLD",
                "expected STANDARD or INFREQUENT_ACCESS",
            ),
            ("role_duration_seconds", "60", "from 900 to 43200"),
            ("role_session_name", "a b", "2 to 64 characters"),
            ("log_group_kms_key_id", "alias/x", "KMS key ARN"),
            ("credentials_endpoint", "ftp://x", "http:// or https:// URL"),
            ("extra_user_agent", "has space", "1 to 50 characters"),
            ("new_log_group_tags", "aws:x=1", "not starting with aws:"),
            ("log_stream_template", "$TAG[x]", "expected a number"),
        ];
        for (option, value, want) in bad {
            let e = with(&[("auto_create_group", "true"), (option, value)]).unwrap_err();
            assert_eq!(e.option, *option);
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    /// The Go plugin takes any URL; every http(s) one starts here too.
    #[test]
    fn credentials_endpoints() {
        for url in [
            "http://169.254.170.2/v2/credentials/x",
            "https://creds.example.com:8443/x",
            "HTTPS://creds.example.com",
        ] {
            let c = with(&[("credentials_endpoint", url)]).expect(url);
            assert_eq!(c.credentials.credentials_endpoint.as_deref(), Some(url));
        }
        for url in ["ftp://x", "creds.example.com", "https://a b"] {
            let e = with(&[("credentials_endpoint", url)]).unwrap_err();
            assert_eq!(e.option, "credentials_endpoint");
        }
    }

    #[test]
    fn role_arns() {
        assert!(with(&[("role_arn", "arn:aws-cn:iam::123456789012:role/path/x_y")]).is_ok());
        let e = with(&[("role_arn", "arn:aws:iam::111122223333:user/x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid 'role_arn' \"arn:aws:iam::111122223333:user/x\": is not a role ARN; expected arn:aws:iam::<account>:role/<name>"
        );
        assert!(with(&[("role_arn", "arn:aws:iam::12345:role/x")]).is_err());
    }

    #[test]
    fn endpoints() {
        let c = with(&[
            ("endpoint", "logs.example.com:4443"),
            ("sts_endpoint", "http://127.0.0.1:5000"),
        ])
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("https://logs.example.com:4443"));
        assert_eq!(c.sts_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let c = with(&[("endpoint", "http://[::1]:4566/path")]).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://[::1]:4566/path"));
        for bad in ["ap-northeast-", "us--east-1", "-us"] {
            assert_eq!(
                with(&[("region", bad)]).unwrap_err().option,
                "region",
                "{bad}"
            );
        }
        let long = "k".repeat(2000);
        let mut all: Vec<(&str, &str)> = BASE.to_vec();
        all.push(("log_key", &long));
        assert_eq!(config(&all).unwrap_err().option, "log_key");
        for bad in [
            "ftp://x",
            "http://",
            "http://h:99999",
            "a b",
            "http://[",
            "http://[::1",
            "http//127.0.0.1:9",
            "https://]",
            "http://a:b:c",
        ] {
            assert_eq!(
                with(&[("endpoint", bad)]).unwrap_err().option,
                "endpoint",
                "{bad}"
            );
        }
    }

    #[test]
    fn event_size_options() {
        let c = with(&[]).unwrap();
        assert_eq!(
            (c.max_event_size, c.oversize_event),
            (DEFAULT_MAX_EVENT_SIZE, Oversize::Truncate)
        );
        let c = with(&[("max_event_size", "262144"), ("oversize_event", "Split")]).unwrap();
        assert_eq!(
            (c.max_event_size, c.oversize_event),
            (262_144, Oversize::Split)
        );
        for bad in ["-1", "0", "255", "1048551", "1MB"] {
            let e = with(&[("max_event_size", bad)]).unwrap_err();
            assert!(e.to_string().contains("from 256 to 1048550"), "{e}");
        }
        assert_eq!(
            with(&[("oversize_event", "cut")]).unwrap_err().to_string(),
            "invalid 'oversize_event' \"cut\": expected truncate, split or drop"
        );
    }

    #[test]
    fn retry_options() {
        let c = with(&[]).unwrap();
        assert!(c.auto_retry_requests);
        assert_eq!(c.retry_timeout, None);
        assert_eq!(
            c.patience(false),
            (DEFAULT_RETRY_TIMEOUT, DEFAULT_THROTTLE_TIMEOUT)
        );
        assert_eq!(
            c.patience(true),
            (ENGINE_RETRY_TIMEOUT, ENGINE_RETRY_TIMEOUT)
        );
        // What is set holds wherever the flush runs.
        let c = with(&[("retry_timeout", "30s"), ("throttle_timeout", "1m")]).unwrap();
        let (thirty, minute) = (Duration::from_secs(30), Duration::from_secs(60));
        assert_eq!(c.patience(true), (thirty, minute));
        assert_eq!(c.patience(false), (thirty, minute));
        let c = with(&[("retry_timeout", "0")]).unwrap();
        assert_eq!(
            c.patience(false),
            (Duration::ZERO, DEFAULT_THROTTLE_TIMEOUT)
        );
        assert_eq!(c.max_concurrent_requests, DEFAULT_MAX_CONCURRENT_REQUESTS);
        for (v, ms) in [
            ("7", 7000),
            ("7s", 7000),
            ("250ms", 250),
            ("2m", 120_000),
            ("0", 0),
        ] {
            assert_eq!(
                with(&[("retry_timeout", v)]).unwrap().retry_timeout,
                Some(Duration::from_millis(ms)),
                "{v}"
            );
        }
        for bad in ["-1", "5h", "301", "x"] {
            assert_eq!(
                with(&[("retry_timeout", bad)]).unwrap_err().option,
                "retry_timeout",
                "{bad}"
            );
        }
        let c = with(&[
            ("auto_retry_requests", "off"),
            ("max_concurrent_requests", "2"),
        ])
        .unwrap();
        assert!(!c.auto_retry_requests);
        assert_eq!(c.max_concurrent_requests, 2);
        assert!(with(&[("max_concurrent_requests", "0")]).is_err());
    }

    #[test]
    fn long_values_are_quoted_short() {
        let long = "x".repeat(100_000);
        let map: HashMap<&str, String> = [("region", long)].into_iter().collect();
        let e = Config::from_properties(|k| map.get(k).cloned(), None).unwrap_err();
        assert!(e.to_string().len() < 400);
        assert!(e.to_string().contains("(100000 bytes)"));
    }
}
