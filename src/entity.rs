//! `add_entity`: the PutLogEvents `entity` a record's `aws_entity*` fields describe, read as
//! Fluent Bit's C plugin `cloudwatch_logs` reads them, and the record without the fields
//! the entity took.
//!
//! The fields, as Fluent Bit's kubernetes filter (`aws_use_pod_association on`) and aws
//! filter (`enable_entity true`) add them, and where they go (the C plugin's
//! `parse_entity`, `entity_add_key_attributes` and `entity_add_attributes`, in
//! `plugins/out_cloudwatch_logs/cloudwatch_api.c`, v5.1.1):
//!
//! | record field | entity |
//! |---|---|
//! | `kubernetes.aws_entity_service_name` | `keyAttributes.Name` |
//! | `kubernetes.aws_entity_environment` | `keyAttributes.Environment` |
//! | `aws_entity_account_id` | `keyAttributes.AwsAccountId` |
//! | `kubernetes.aws_entity_platform` | `attributes.PlatformType`: `eks` → `AWS::EKS`, `k8s` → `K8s`, none → `Generic` |
//! | `kubernetes.aws_entity_cluster` | `attributes.EKS.Cluster` or `K8s.Cluster`, by the platform |
//! | `kubernetes.namespace_name` | `attributes.K8s.Namespace` |
//! | `kubernetes.host` | `attributes.K8s.Node` |
//! | `kubernetes.aws_entity_workload` | `attributes.K8s.Workload` |
//! | `aws_entity_ec2_instance_id` | `attributes.EC2.InstanceId` |
//! | `kubernetes.aws_entity_name_source` | `attributes.AWS.ServiceNameSource` |
//!
//! `keyAttributes.Type` is always `Service`. Without a service name and a name source, the
//! workload is the name and `K8sWorkload` its source; without an environment, it is
//! `<platform>:<cluster>/<namespace>` when the three are there. The entity is sent only
//! with a name and an account ID (CloudWatch refuses one without a name; the C plugin
//! calls one without an account ID insufficient). Only string values count.
//!
//! Where this differs from the C plugin, it is so that no data is lost or mislabelled:
//! - The C plugin keeps one entity per stream, which each record updates field by field and
//!   nothing clears, and sends a batch with the entity as it stands when the batch is sent:
//!   a batch of records with different entities goes under the last one's, and a record
//!   without the fields under the entity of an earlier record of its stream. Here each
//!   record has its own entity (or none): a stream's events are sent in one request per
//!   entity ([`crate::batch::plan`]), and a record without the fields goes without one.
//! - The C plugin removes every `aws_entity*` key (of the record and of its `kubernetes`
//!   map) once its stream has seen one, whether or not the entity is sent. Here a field
//!   leaves the message only when its value is in the entity sent with it: a record whose
//!   entity is not sent, a field of the wrong type or too long for CloudWatch (512
//!   characters; one warning per cause), a cluster without a known platform, or an
//!   `aws_entity*` key the C plugin does not read stay in the message.
//! - The C plugin reads the fields only when a kubernetes filter runs in the same Fluent
//!   Bit; a Go-ABI plugin cannot see the pipeline's filters, so here they are read whenever
//!   `add_entity` is on (records forwarded from a Fluent Bit that ran the filter get their
//!   entity too).
//! - The C plugin writes the values into the body unescaped, and cuts long ones at a fixed
//!   buffer size: a value with a `"`, or a long one, breaks the request. Here values are
//!   escaped and checked against CloudWatch's limits.
//!
//! Pure: no I/O. Must not: log (problems are returned, for the reporter), or batch.

use std::collections::HashMap;
use std::ops::Range;

use crate::decode::{Reader, Token};
use crate::encode;

/// CloudWatch's limit on an entity value, in characters (`keyAttributes` and `attributes`).
pub const MAX_VALUE_CHARS: usize = 512;

/// The fields an entity is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ServiceName,
    Environment,
    Namespace,
    Host,
    Cluster,
    Workload,
    NameSource,
    Platform,
    InstanceId,
    AccountId,
}

const FIELDS: [Field; 10] = [
    Field::ServiceName,
    Field::Environment,
    Field::Namespace,
    Field::Host,
    Field::Cluster,
    Field::Workload,
    Field::NameSource,
    Field::Platform,
    Field::InstanceId,
    Field::AccountId,
];

/// The map under which the kubernetes filter puts its fields.
const KUBERNETES: &[u8] = b"kubernetes";

impl Field {
    /// Whether the field is under `kubernetes` (else at the top of the record), and its key.
    fn key(self) -> (bool, &'static str) {
        match self {
            Field::ServiceName => (true, "aws_entity_service_name"),
            Field::Environment => (true, "aws_entity_environment"),
            Field::Namespace => (true, "namespace_name"),
            Field::Host => (true, "host"),
            Field::Cluster => (true, "aws_entity_cluster"),
            Field::Workload => (true, "aws_entity_workload"),
            Field::NameSource => (true, "aws_entity_name_source"),
            Field::Platform => (true, "aws_entity_platform"),
            Field::InstanceId => (false, "aws_entity_ec2_instance_id"),
            Field::AccountId => (false, "aws_entity_account_id"),
        }
    }

    /// The field as a path, for messages: `kubernetes.aws_entity_cluster`.
    fn path(self) -> String {
        match self.key() {
            (true, key) => format!("kubernetes.{key}"),
            (false, key) => key.to_owned(),
        }
    }

    /// Whether the field is one of the filters' own (`aws_entity*`), which the message
    /// leaves out once the entity has its value; `namespace_name` and `host` stay.
    fn is_entity_key(self) -> bool {
        self.key().1.starts_with("aws_entity")
    }

    fn from_key(nested: bool, key: &[u8]) -> Option<Field> {
        FIELDS
            .into_iter()
            .find(|f| f.key() == (nested, std::str::from_utf8(key).unwrap_or_default()))
    }
}

/// The entity of one PutLogEvents call, its attributes in the C plugin's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    pub key_attributes: Vec<(&'static str, String)>,
    pub attributes: Vec<(&'static str, String)>,
}

impl Entity {
    /// The body's member: `"entity":{"keyAttributes":{…},"attributes":{…}}`, escaped.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = b"\"entity\":{\"keyAttributes\":".to_vec();
        object(&mut out, &self.key_attributes);
        out.extend_from_slice(b",\"attributes\":");
        object(&mut out, &self.attributes);
        out.push(b'}');
        out
    }
}

fn object(out: &mut Vec<u8>, pairs: &[(&'static str, String)]) {
    out.push(b'{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        encode::escape_into(out, key);
        out.extend_from_slice(b"\":\"");
        encode::escape_into(out, value);
        out.push(b'"');
    }
    out.push(b'}');
}

/// The distinct entities of a chunk, numbered from 1 (0: no entity), for its events.
#[derive(Debug, Default)]
pub struct Entities {
    list: Vec<Entity>,
    ids: HashMap<Entity, u32>,
}

impl Entities {
    /// The number of `entity`, given it if new (copied only then: most records of a chunk
    /// repeat an entity already numbered).
    pub fn id(&mut self, entity: &Entity) -> u32 {
        if let Some(id) = self.ids.get(entity) {
            return *id;
        }
        self.list.push(entity.clone());
        // A chunk has fewer records than u32::MAX; saturate rather than wrap.
        let id = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.ids.insert(entity.clone(), id);
        id
    }

    /// The entity numbered `id`; `None` for 0 (no entity).
    pub fn get(&self, id: u32) -> Option<&Entity> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.list.get(i)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What a record's fields make: the entity (if it is sent), the entries it took from the
/// record, and why fields were left out of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub entity: Option<Entity>,
    /// Byte ranges of the body's entries (of the record, or of its `kubernetes` map) that
    /// the message leaves out, in order.
    taken: Vec<Range<usize>>,
    /// One line per field left out of the entity for its type or length.
    pub problems: Vec<String>,
}

/// A field as the record has it: where its entry lies, and its value if usable.
#[derive(Debug, Clone)]
struct Read<'a> {
    entry: Range<usize>,
    value: Option<&'a str>,
}

/// Reads the entity fields of `body` (a MessagePack map). A record without any
/// `aws_entity*` field has no entity and no problems.
pub fn read(body: &[u8]) -> Found {
    let mut fields: [Option<Read<'_>>; 10] = Default::default();
    let mut problems = Vec::new();
    let mut any = false;
    let mut kubernetes_seen = false;
    let _ = for_each_entry(body, 0, |key, value, entry| {
        if key == KUBERNETES {
            // The first `kubernetes` key is the one read, as a record accessor reads it.
            if !kubernetes_seen {
                kubernetes_seen = true;
                let _ = for_each_entry(value, entry.end - value.len(), |key, value, entry| {
                    take(
                        true,
                        key,
                        value,
                        entry,
                        &mut fields,
                        &mut problems,
                        &mut any,
                    );
                });
            }
            return;
        }
        take(
            false,
            key,
            value,
            entry,
            &mut fields,
            &mut problems,
            &mut any,
        );
    });
    if !any {
        return Found::default();
    }
    let value = |f: Field| fields[f as usize].as_ref().and_then(|r| r.value);
    let mut used: Vec<Field> = Vec::new();
    let mut use_of = |f: Field| {
        let v = value(f);
        if v.is_some() {
            used.push(f);
        }
        v
    };
    let platform_value = value(Field::Platform);
    let platform = match platform_value {
        Some("eks") => Some(("AWS::EKS", "EKS.Cluster")),
        Some("k8s") => Some(("K8s", "K8s.Cluster")),
        Some(_) => {
            problems.push(format!(
                "{} is neither 'eks' nor 'k8s'",
                Field::Platform.path()
            ));
            None
        }
        None => None,
    };
    if platform.is_some() {
        use_of(Field::Platform);
    }
    let account = use_of(Field::AccountId);
    let mut name = use_of(Field::ServiceName).map(str::to_owned);
    let mut name_source = use_of(Field::NameSource).map(str::to_owned);
    let workload = use_of(Field::Workload);
    if name.is_none() && name_source.is_none() && workload.is_some() {
        name = workload.map(str::to_owned);
        name_source = Some("K8sWorkload".to_owned());
    }
    let cluster = platform.and_then(|_| use_of(Field::Cluster));
    let namespace = value(Field::Namespace);
    let environment = match use_of(Field::Environment) {
        Some(e) => Some(e.to_owned()),
        None => match (
            platform_value.filter(|_| platform.is_some()),
            cluster,
            namespace,
        ) {
            (Some(p), Some(c), Some(n)) => {
                let e = format!("{p}:{c}/{n}");
                if e.chars().count() > MAX_VALUE_CHARS {
                    problems.push(format!(
                        "the environment made of {}, {} and {} is longer than {MAX_VALUE_CHARS} characters (CloudWatch's limit)",
                        Field::Platform.path(),
                        Field::Cluster.path(),
                        Field::Namespace.path()
                    ));
                    None
                } else {
                    Some(e)
                }
            }
            _ => None,
        },
    };
    let (Some(name), Some(account)) = (name, account) else {
        return Found {
            entity: None,
            taken: Vec::new(),
            problems,
        };
    };
    let mut key_attributes = vec![("Type", "Service".to_owned()), ("Name", name)];
    if let Some(e) = environment {
        key_attributes.push(("Environment", e));
    }
    key_attributes.push(("AwsAccountId", account.to_owned()));
    let mut attributes = vec![(
        "PlatformType",
        platform.map_or("Generic", |(p, _)| p).to_owned(),
    )];
    let mut attribute = |key: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            attributes.push((key, v.to_owned()));
        }
    };
    attribute(platform.map_or("", |(_, c)| c), cluster);
    attribute("K8s.Namespace", namespace);
    attribute("K8s.Node", value(Field::Host));
    attribute("K8s.Workload", workload);
    attribute("EC2.InstanceId", use_of(Field::InstanceId));
    attribute("AWS.ServiceNameSource", name_source.as_deref());
    let mut taken: Vec<Range<usize>> = used
        .iter()
        .filter(|f| f.is_entity_key())
        .filter_map(|f| fields[*f as usize].as_ref().map(|r| r.entry.clone()))
        .collect();
    taken.sort_by_key(|r| r.start);
    Found {
        entity: Some(Entity {
            key_attributes,
            attributes,
        }),
        taken,
        problems,
    }
}

/// Notes the entry `key`: `value` if it is a field of the entity (the first of its key).
fn take<'a>(
    nested: bool,
    key: &[u8],
    value: &'a [u8],
    entry: Range<usize>,
    fields: &mut [Option<Read<'a>>; 10],
    problems: &mut Vec<String>,
    any: &mut bool,
) {
    let Some(field) = Field::from_key(nested, key) else {
        return;
    };
    let slot = &mut fields[field as usize];
    if slot.is_some() {
        return;
    }
    *any |= field.is_entity_key();
    let why = match Reader::new(value).token() {
        Ok(Token::Str(s)) => match std::str::from_utf8(s) {
            Ok(s) if s.chars().count() > MAX_VALUE_CHARS => Err(format!(
                "is longer than {MAX_VALUE_CHARS} characters (CloudWatch's limit)"
            )),
            Ok("") => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(_) => Err("is not valid UTF-8".to_owned()),
        },
        Ok(t) => Err(format!("is {}, not a string", kind(t))),
        Err(_) => Ok(None),
    };
    let value = match why {
        Ok(v) => v,
        Err(why) => {
            problems.push(format!("{} {why}", field.path()));
            None
        }
    };
    *slot = Some(Read { entry, value });
}

fn kind(t: Token<'_>) -> &'static str {
    match t {
        Token::Nil => "nil",
        Token::Bool(_) => "a boolean",
        Token::Uint(_) | Token::Int(_) | Token::F32(_) | Token::F64(_) => "a number",
        Token::Str(_) => "a string",
        Token::Bin(_) => "binary",
        Token::Ext(..) => "an extension value",
        Token::Array(_) => "an array",
        Token::Map(_) => "a map",
    }
}

/// Calls `f(key, value, entry)` for each entry of the map `map` starts with, where `entry`
/// is the entry's byte range, offset by `base`. Non-string keys are given as empty. Stops
/// at the first malformed byte (the decoder has checked the record: never, in practice).
fn for_each_entry<'a>(
    map: &'a [u8],
    base: usize,
    mut f: impl FnMut(&[u8], &'a [u8], Range<usize>),
) -> Option<()> {
    let mut r = Reader::new(map);
    let Ok(Token::Map(n)) = r.token() else {
        return None;
    };
    for _ in 0..n {
        let start = r.position();
        let key = r.skip_value().ok()?;
        let value = r.skip_value().ok()?;
        let key = match Reader::new(key).token() {
            Ok(Token::Str(k)) => k,
            _ => &[],
        };
        f(key, value, base + start..base + r.position());
    }
    Some(())
}

impl Found {
    /// Appends `body` without the entries the entity took to `out`: the same map, with
    /// fewer entries (and its `kubernetes` map with fewer), in MessagePack.
    pub fn strip(&self, body: &[u8], out: &mut Vec<u8>) {
        out.clear();
        if self.taken.is_empty() {
            out.extend_from_slice(body);
            return;
        }
        let taken = |entry: &Range<usize>| self.taken.contains(entry);
        let inside = |entry: &Range<usize>| {
            self.taken
                .iter()
                .filter(|t| entry.start <= t.start && t.end <= entry.end)
                .count()
        };
        let mut kept = 0u32;
        let mut root = Vec::with_capacity(body.len());
        let mut kubernetes_seen = false;
        let _ = for_each_entry(body, 0, |key, value, entry| {
            if taken(&entry) {
                return;
            }
            kept += 1;
            let nested = inside(&entry);
            if key == KUBERNETES && !kubernetes_seen && nested > 0 {
                kubernetes_seen = true;
                let value_at = entry.end - value.len();
                root.extend_from_slice(body.get(entry.start..value_at).unwrap_or_default());
                let mut inner = Vec::with_capacity(value.len());
                let mut inner_kept = 0u32;
                let _ = for_each_entry(value, value_at, |_, _, e| {
                    if !taken(&e) {
                        inner_kept += 1;
                        inner.extend_from_slice(body.get(e).unwrap_or_default());
                    }
                });
                map_header(&mut root, inner_kept);
                root.extend_from_slice(&inner);
                return;
            }
            if key == KUBERNETES {
                kubernetes_seen = true;
            }
            root.extend_from_slice(body.get(entry).unwrap_or_default());
        });
        map_header(out, kept);
        out.extend_from_slice(&root);
    }
}

/// A MessagePack map header for `n` entries.
fn map_header(out: &mut Vec<u8>, n: u32) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xde);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Out, json};

    /// A MessagePack map of string keys; values are strings, maps, or other raw values.
    enum V<'a> {
        S(&'a str),
        M(Vec<(&'a str, V<'a>)>),
        Raw(&'a [u8]),
    }

    fn pack(v: &V<'_>, out: &mut Vec<u8>) {
        match v {
            V::S(s) => {
                let n = s.len();
                if n < 32 {
                    out.push(0xa0 | n as u8);
                } else {
                    out.push(0xdb);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
                out.extend_from_slice(s.as_bytes());
            }
            V::M(entries) => {
                map_header(out, entries.len() as u32);
                for (k, v) in entries {
                    pack(&V::S(k), out);
                    pack(v, out);
                }
            }
            V::Raw(b) => out.extend_from_slice(b),
        }
    }

    fn body(entries: Vec<(&str, V<'_>)>) -> Vec<u8> {
        let mut out = Vec::new();
        pack(&V::M(entries), &mut out);
        out
    }

    fn as_json(body: &[u8]) -> String {
        let mut s = Vec::new();
        json(body, &mut Out::plain(&mut s)).unwrap();
        String::from_utf8(s).unwrap()
    }

    /// A record as the kubernetes filter (pod association on) and the aws filter
    /// (`enable_entity`) leave it on EKS.
    fn eks_record() -> Vec<u8> {
        use V::*;
        body(vec![
            ("log", S("hello")),
            (
                "kubernetes",
                M(vec![
                    ("pod_name", S("web-1")),
                    ("namespace_name", S("shop")),
                    ("aws_entity_service_name", S("checkout")),
                    ("aws_entity_environment", S("eks:prod/shop")),
                    ("aws_entity_name_source", S("Instrumentation")),
                    ("aws_entity_platform", S("eks")),
                    ("aws_entity_cluster", S("prod")),
                    ("aws_entity_workload", S("web")),
                    ("host", S("ip-10-0-0-1.ec2.internal")),
                ]),
            ),
            ("aws_entity_ec2_instance_id", S("i-0123456789abcdef0")),
            ("aws_entity_account_id", S("111122223333")),
        ])
    }

    fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn entity_from_the_filters_fields_as_the_c_plugin_makes_it() {
        let b = eks_record();
        let found = read(&b);
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        let e = found.entity.clone().unwrap();
        assert_eq!(
            pairs(&e.key_attributes),
            vec![
                ("Type", "Service"),
                ("Name", "checkout"),
                ("Environment", "eks:prod/shop"),
                ("AwsAccountId", "111122223333"),
            ]
        );
        assert_eq!(
            pairs(&e.attributes),
            vec![
                ("PlatformType", "AWS::EKS"),
                ("EKS.Cluster", "prod"),
                ("K8s.Namespace", "shop"),
                ("K8s.Node", "ip-10-0-0-1.ec2.internal"),
                ("K8s.Workload", "web"),
                ("EC2.InstanceId", "i-0123456789abcdef0"),
                ("AWS.ServiceNameSource", "Instrumentation"),
            ]
        );
        assert_eq!(
            String::from_utf8(e.wire()).unwrap(),
            r#""entity":{"keyAttributes":{"Type":"Service","Name":"checkout","Environment":"eks:prod/shop","AwsAccountId":"111122223333"},"attributes":{"PlatformType":"AWS::EKS","EKS.Cluster":"prod","K8s.Namespace":"shop","K8s.Node":"ip-10-0-0-1.ec2.internal","K8s.Workload":"web","EC2.InstanceId":"i-0123456789abcdef0","AWS.ServiceNameSource":"Instrumentation"}}"#
        );
        // The message keeps everything but the aws_entity* fields.
        let mut stripped = Vec::new();
        found.strip(&b, &mut stripped);
        assert_eq!(
            as_json(&stripped),
            r#"{"log":"hello","kubernetes":{"pod_name":"web-1","namespace_name":"shop","host":"ip-10-0-0-1.ec2.internal"}}"#
        );
    }

    #[test]
    fn fallbacks_workload_as_name_and_platform_cluster_namespace_as_environment() {
        use V::*;
        let b = body(vec![
            (
                "kubernetes",
                M(vec![
                    ("namespace_name", S("default")),
                    ("aws_entity_platform", S("k8s")),
                    ("aws_entity_cluster", S("lab")),
                    ("aws_entity_workload", S("api")),
                ]),
            ),
            ("aws_entity_account_id", S("111122223333")),
        ]);
        let e = read(&b).entity.unwrap();
        assert_eq!(
            pairs(&e.key_attributes),
            vec![
                ("Type", "Service"),
                ("Name", "api"),
                ("Environment", "k8s:lab/default"),
                ("AwsAccountId", "111122223333"),
            ]
        );
        assert_eq!(
            pairs(&e.attributes),
            vec![
                ("PlatformType", "K8s"),
                ("K8s.Cluster", "lab"),
                ("K8s.Namespace", "default"),
                ("K8s.Workload", "api"),
                ("AWS.ServiceNameSource", "K8sWorkload"),
            ]
        );
    }

    #[test]
    fn without_a_name_or_an_account_there_is_no_entity_and_the_record_is_untouched() {
        use V::*;
        let no_account = body(vec![(
            "kubernetes",
            M(vec![("aws_entity_service_name", S("checkout"))]),
        )]);
        let no_name = body(vec![("aws_entity_account_id", S("111122223333"))]);
        let plain = body(vec![
            ("log", S("x")),
            ("kubernetes", M(vec![("host", S("h"))])),
        ]);
        for b in [no_account, no_name, plain] {
            let found = read(&b);
            assert_eq!(found, Found::default());
            let mut stripped = Vec::new();
            found.strip(&b, &mut stripped);
            assert_eq!(stripped, b);
        }
    }

    #[test]
    fn wrong_types_and_long_values_are_left_out_and_kept_in_the_message() {
        use V::*;
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        let b = body(vec![
            (
                "kubernetes",
                M(vec![
                    ("aws_entity_service_name", S("checkout")),
                    ("aws_entity_workload", Raw(&[0x2a])), // 42
                    ("aws_entity_cluster", S(&long)),
                    ("aws_entity_platform", S("eks")),
                    ("aws_entity_foo", S("kept")),
                ]),
            ),
            ("aws_entity_account_id", S("111122223333")),
            ("aws_entity_ec2_instance_id", M(vec![])),
        ]);
        let found = read(&b);
        assert_eq!(
            found.problems,
            vec![
                "kubernetes.aws_entity_workload is a number, not a string",
                "kubernetes.aws_entity_cluster is longer than 512 characters (CloudWatch's limit)",
                "aws_entity_ec2_instance_id is a map, not a string",
            ]
        );
        let e = found.entity.clone().unwrap();
        assert_eq!(
            pairs(&e.key_attributes),
            vec![
                ("Type", "Service"),
                ("Name", "checkout"),
                ("AwsAccountId", "111122223333")
            ]
        );
        assert_eq!(pairs(&e.attributes), vec![("PlatformType", "AWS::EKS")]);
        let mut stripped = Vec::new();
        found.strip(&b, &mut stripped);
        assert_eq!(
            as_json(&stripped),
            format!(
                r#"{{"kubernetes":{{"aws_entity_workload":42,"aws_entity_cluster":"{long}","aws_entity_foo":"kept"}},"aws_entity_ec2_instance_id":{{}}}}"#
            )
        );
    }

    #[test]
    fn an_unknown_platform_is_left_out_with_its_cluster() {
        use V::*;
        let b = body(vec![
            (
                "kubernetes",
                M(vec![
                    ("aws_entity_service_name", S("s")),
                    ("aws_entity_platform", S("gke")),
                    ("aws_entity_cluster", S("c")),
                    ("namespace_name", S("n")),
                ]),
            ),
            ("aws_entity_account_id", S("1")),
        ]);
        let found = read(&b);
        assert_eq!(
            found.problems,
            vec!["kubernetes.aws_entity_platform is neither 'eks' nor 'k8s'"]
        );
        let e = found.entity.clone().unwrap();
        assert_eq!(
            pairs(&e.key_attributes),
            vec![("Type", "Service"), ("Name", "s"), ("AwsAccountId", "1")]
        );
        assert_eq!(
            pairs(&e.attributes),
            vec![("PlatformType", "Generic"), ("K8s.Namespace", "n")]
        );
        let mut stripped = Vec::new();
        found.strip(&b, &mut stripped);
        assert_eq!(
            as_json(&stripped),
            r#"{"kubernetes":{"aws_entity_platform":"gke","aws_entity_cluster":"c","namespace_name":"n"}}"#
        );
    }

    #[test]
    fn values_are_escaped_and_entities_numbered_once() {
        use V::*;
        let b = body(vec![
            (
                "kubernetes",
                M(vec![("aws_entity_service_name", S("a\"b\\c\n"))]),
            ),
            ("aws_entity_account_id", S("1")),
        ]);
        let e = read(&b).entity.unwrap();
        let wire = String::from_utf8(e.wire()).unwrap();
        assert!(wire.contains(r#""Name":"a\"b\\c\n""#), "{wire}");
        let v: serde_json::Value = serde_json::from_str(&format!("{{{wire}}}")).unwrap();
        assert_eq!(v["entity"]["keyAttributes"]["Name"], "a\"b\\c\n");
        let mut entities = Entities::default();
        assert_eq!(entities.get(0), None);
        assert_eq!(entities.id(&e), 1);
        assert_eq!(entities.id(&e), 1);
        assert_eq!(entities.get(1), Some(&e));
        assert_eq!(entities.len(), 1);
    }

    #[test]
    fn big_maps_keep_their_header_kind() {
        // 20 entries at the top and in `kubernetes`: map16 headers, one fewer each.
        let names: Vec<String> = (0..18).map(|i| format!("k{i}")).collect();
        let mut top: Vec<(&str, V<'_>)> = names.iter().map(|n| (n.as_str(), V::S("v"))).collect();
        let mut kube: Vec<(&str, V<'_>)> = names.iter().map(|n| (n.as_str(), V::S("v"))).collect();
        kube.push(("aws_entity_service_name", V::S("s")));
        kube.push(("aws_entity_foo", V::S("f")));
        top.push(("kubernetes", V::M(kube)));
        top.push(("aws_entity_account_id", V::S("1")));
        let b = body(top);
        let found = read(&b);
        assert!(found.entity.is_some());
        let mut stripped = Vec::new();
        found.strip(&b, &mut stripped);
        let json = as_json(&stripped);
        assert!(json.starts_with(r#"{"k0":"v""#), "{json}");
        assert!(
            json.ends_with(r#""k17":"v","aws_entity_foo":"f"}}"#),
            "{json}"
        );
        assert!(
            !json.contains("aws_entity_service_name") && !json.contains("aws_entity_account_id")
        );
        let mut r = Reader::new(&stripped);
        assert_eq!(r.token(), Ok(Token::Map(19)));
    }
}
