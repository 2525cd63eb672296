//! The IAM documents a configuration needs (`--print-iam`), from the options as the plugin
//! reads them ([`Config`]): exactly the CloudWatch Logs actions the plugin will call, on
//! the resources its names can take, and, with `role_arn`, the two halves of the
//! cross-account hand-over.
//!
//! What the plugin calls (src/deliver.rs, src/body.rs): `PutLogEvents` always;
//! `CreateLogStream` unless `auto_create_stream` is off; `CreateLogGroup` with
//! `auto_create_group` (with `new_log_group_tags`, the tags go with it, which needs
//! `logs:TagResource` too); `PutRetentionPolicy` with `log_retention_days` (on the groups
//! it creates and, once per process, on those it finds). Nothing else: no `Describe*`.
//!
//! The resource ARNs follow the Service Authorization Reference for CloudWatch Logs:
//! `log-group` is `arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}`,
//! `log-stream` is `…:log-group:${LogGroupName}:log-stream:${LogStreamName}`. The group
//! actions also get the group's ARN with `:*`, the form AWS's own examples grant them on
//! (and the one AWS names in its refusals of `CreateLogGroup`, `…:log-stream:`). A name
//! template becomes a wildcard ([`Template::iam_pattern`]): `/ecs/$(ecs_cluster)` →
//! `/ecs/*`.

use flb_out_cloudwatch::config::{Config, StreamName};
use flb_out_cloudwatch::template::{Needs, Template};

/// The trust policy's `sts:ExternalId` value when it is not shown.
pub const EXTERNAL_ID_PLACEHOLDER: &str = "<external_id: its value is shown with --show-secrets>";
/// The same, when `external_id` is a secret option ECS resolves at run time.
pub const SECRET_OPTION_PLACEHOLDER: &str =
    "<external_id: the value of the secret option ECS resolves at run time>";
/// The source account when nothing names it.
pub const SOURCE_ACCOUNT_PLACEHOLDER: &str = "SOURCE_ACCOUNT_ID";

/// Where `external_id` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalId<'a> {
    None,
    /// An option with this value.
    Value(&'a str),
    /// A `secretOptions` entry: ECS resolves it at run time.
    Secret,
}

/// What the documents are made from besides the options.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The task definition's `taskRoleArn`.
    pub task_role: Option<&'a str>,
    /// The account of the base credentials, when the identity step told it.
    pub source_account: Option<&'a str>,
    /// The tag of the records as a pattern (FireLens: `<container>-firelens-*`), for
    /// `log_stream_prefix`; `None`: any tag.
    pub tag_pattern: Option<&'a str>,
    pub external_id: ExternalId<'a>,
    pub show_secrets: bool,
}

/// One document and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// A short name, also the file name under `examples/iam/` (without `.json`).
    pub name: &'static str,
    /// Whose document it is and the command that sets it.
    pub place: String,
    pub body: Json,
}

/// The documents, and what the reader must know about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Printed {
    pub documents: Vec<Document>,
    pub warnings: Vec<String>,
}

/// JSON whose objects keep their order (serde_json's maps sort their keys, and IAM's
/// documents read best as AWS writes them: `Version` first, `Sid` first).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

fn s(text: impl Into<String>) -> Json {
    Json::Str(text.into())
}

/// One string, or a list of several (as IAM takes either).
fn one_or_list(mut items: Vec<String>) -> Json {
    if items.len() == 1 {
        s(items.remove(0))
    } else {
        Json::Arr(items.into_iter().map(Json::Str).collect())
    }
}

impl Json {
    /// Indented by two spaces, lists of strings on one line.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |n: usize| "  ".repeat(n);
        match self {
            Json::Str(text) => out.push_str(&serde_json::Value::from(text.as_str()).to_string()),
            Json::Arr(items) if items.iter().all(|i| matches!(i, Json::Str(_))) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, depth);
                }
                out.push(']');
            }
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    item.write(out, depth + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    out.push_str(&serde_json::Value::from(*key).to_string());
                    out.push_str(": ");
                    value.write(out, depth + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Str(text) => serde_json::Value::from(text.as_str()),
            Json::Arr(items) => items.iter().map(Json::to_value).collect(),
            Json::Obj(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// The partition and account of an ARN (`arn:aws:iam::222222222222:role/x`).
fn arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    let partition = parts.next()?;
    let account = parts.nth(2)?;
    (!partition.is_empty() && !account.is_empty()).then_some((partition, account))
}

/// The role's name: the ARN's last path segment.
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The partition of a region.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Whether `pattern` (IAM's `*`) matches `name`.
fn covers(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| covers(tail, &rest[i..]))
        }
    }
}

/// Adds `pattern` unless one already there covers it.
fn add(list: &mut Vec<String>, pattern: String) {
    if !list.iter().any(|p| covers(p, &pattern)) {
        list.retain(|p| !covers(&pattern, p));
        list.push(pattern);
    }
}

/// The group names the plugin may write to, as patterns, and warnings about them.
fn groups(config: &Config, warnings: &mut Vec<String>) -> Vec<String> {
    let mut templates: Vec<(&str, &Template)> = Vec::new();
    if let Some(t) = &config.log_group_template {
        templates.push(("log_group_template", t));
    }
    templates.push(("log_group_name", &config.log_group_name));
    let mut out = Vec::new();
    for (option, t) in &templates {
        let pattern = t.iam_pattern(true);
        if t.needs() == Needs::Record {
            let bound = pattern.split('*').next().unwrap_or_default();
            if bound.bytes().all(|b| b == b'/') {
                warnings.push(format!(
                    "{option} '{}': the group is named by record keys with no fixed prefix, so the resources have '{pattern}': any group of the account (the guide's \"Names from records\" scopes it)",
                    t.source()
                ));
            } else {
                warnings.push(format!(
                    "{option} '{}': record keys name part of the group: '{pattern}' in the resources (with confine_names on, the plugin keeps such names under '{bound}')",
                    t.source()
                ));
            }
        }
        add(&mut out, pattern);
    }
    // The default is the last resort, after `log_group_name`, which fails only when it has
    // variables (a missing key, no ECS metadata).
    if config.log_group_name.needs() != Needs::Nothing {
        add(&mut out, config.default_log_group_name.clone());
    }
    out
}

/// The stream names the plugin may write to, as patterns.
fn streams(config: &Config, tag_pattern: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = &config.log_stream_template {
        add(&mut out, t.iam_pattern(false));
    }
    match &config.log_stream {
        StreamName::Prefix(prefix) => {
            // Prefix + tag, cleaned byte for byte: the tag's pattern is a container's name
            // (no ':' or '*' to clean) and `*`.
            let mut clean = String::new();
            flb_out_cloudwatch::template::clean_stream(prefix.as_bytes(), &mut clean);
            add(&mut out, format!("{clean}{}", tag_pattern.unwrap_or("*")));
        }
        StreamName::Fixed(t) => {
            add(&mut out, t.iam_pattern(false));
            // The last resort, when the name has variables that fail.
            if t.needs() != Needs::Nothing {
                add(&mut out, config.default_log_stream_name.clone());
            }
        }
    }
    out
}

/// The documents `config` needs.
pub fn documents(config: &Config, inputs: &Inputs<'_>) -> Printed {
    let mut warnings = Vec::new();
    let role = config.role_arn.as_deref();
    let partition = role.or(inputs.task_role).and_then(arn_parts).map_or_else(
        || partition_of(&config.region).to_owned(),
        |(p, _)| p.to_owned(),
    );
    let source_account = inputs
        .task_role
        .and_then(arn_parts)
        .map(|(_, a)| a)
        .or(inputs.source_account);
    let destination = role.and_then(arn_parts).map(|(_, a)| a).or(source_account);
    let destination = destination.unwrap_or_else(|| {
        warnings.push(
            "the account of the log group is not known (no role_arn, no taskRoleArn, no identity step): the resources have '*' for it"
                .to_owned(),
        );
        "*"
    });

    let mut group_actions = Vec::new();
    if config.auto_create_group {
        group_actions.push("logs:CreateLogGroup".to_owned());
        if !config.group.tags.is_empty() {
            group_actions.push("logs:TagResource".to_owned());
        }
    }
    if config.group.retention_days.is_some() {
        group_actions.push("logs:PutRetentionPolicy".to_owned());
    }
    if config.auto_create_group && config.group.kms_key_id.is_some() {
        warnings.push(format!(
            "log_group_kms_key_id: the key's own policy must also let the CloudWatch Logs service (logs.{}.amazonaws.com) use it; that is a key policy, not one of these documents",
            config.region
        ));
    }
    let mut stream_actions = Vec::new();
    if config.auto_create_stream {
        stream_actions.push("logs:CreateLogStream".to_owned());
    }
    stream_actions.push("logs:PutLogEvents".to_owned());

    let group_arn = |g: &str| {
        format!(
            "arn:{partition}:logs:{}:{destination}:log-group:{g}",
            config.region
        )
    };
    let groups = groups(config, &mut warnings);
    let streams = streams(config, inputs.tag_pattern);
    let mut statements = Vec::new();
    if !group_actions.is_empty() {
        let mut resources = Vec::new();
        for g in &groups {
            resources.push(group_arn(g));
            if !g.ends_with('*') {
                resources.push(format!("{}:*", group_arn(g)));
            }
        }
        statements.push(Json::Obj(vec![
            ("Sid", s("TheLogGroup")),
            ("Effect", s("Allow")),
            ("Action", one_or_list(group_actions)),
            ("Resource", one_or_list(resources)),
        ]));
    }
    let mut resources = Vec::new();
    for g in &groups {
        for st in &streams {
            resources.push(format!("{}:log-stream:{st}", group_arn(g)));
        }
    }
    statements.push(Json::Obj(vec![
        ("Sid", s("TheLogStreams")),
        ("Effect", s("Allow")),
        ("Action", one_or_list(stream_actions)),
        ("Resource", one_or_list(resources)),
    ]));
    let permissions = policy(statements);

    let mut documents = Vec::new();
    match role {
        Some(role) => {
            let name = role_name(role);
            documents.push(Document {
                name: "destination-role-permissions",
                place: format!(
                    "the permission policy of role_arn {role}, in account {destination}: aws iam put-role-policy --role-name {name} --policy-name flb-cloudwatch --policy-document file://destination-role-permissions.json"
                ),
                body: permissions,
            });
            let principal = match (inputs.task_role, source_account) {
                (Some(task_role), _) => task_role.to_owned(),
                (None, Some(account)) => format!("arn:{partition}:iam::{account}:root"),
                (None, None) => {
                    warnings.push(format!(
                        "the source account is not known (no taskRoleArn, no identity step): the trust policy names {SOURCE_ACCOUNT_PLACEHOLDER}; put the account whose credentials assume the role there"
                    ));
                    format!("arn:{partition}:iam::{SOURCE_ACCOUNT_PLACEHOLDER}:root")
                }
            };
            let mut statement = vec![
                (
                    "Sid",
                    s(if inputs.task_role.is_some() {
                        "TheSourceTaskRole"
                    } else {
                        "TheSourceAccount"
                    }),
                ),
                ("Effect", s("Allow")),
                ("Principal", Json::Obj(vec![("AWS", s(principal))])),
                ("Action", s("sts:AssumeRole")),
            ];
            let external_id = match inputs.external_id {
                ExternalId::None => None,
                ExternalId::Value(v) if inputs.show_secrets => Some(v),
                ExternalId::Value(_) => Some(EXTERNAL_ID_PLACEHOLDER),
                ExternalId::Secret => Some(SECRET_OPTION_PLACEHOLDER),
            };
            if let Some(value) = external_id {
                statement.push((
                    "Condition",
                    Json::Obj(vec![(
                        "StringEquals",
                        Json::Obj(vec![("sts:ExternalId", s(value))]),
                    )]),
                ));
            }
            documents.push(Document {
                name: "destination-role-trust-policy",
                place: format!(
                    "the trust policy of role_arn {role}, in account {destination}: aws iam create-role --role-name {name} --assume-role-policy-document file://destination-role-trust-policy.json (an existing role: aws iam update-assume-role-policy --role-name {name} --policy-document …)"
                ),
                body: policy(vec![Json::Obj(statement)]),
            });
            let whose = match inputs.task_role {
                Some(task_role) => format!(
                    "the permission policy of the task role {task_role}: aws iam put-role-policy --role-name {} --policy-name assume-{name} --policy-document file://source-task-role-policy.json",
                    role_name(task_role)
                ),
                None => "a statement of the source credentials' policy (the task role's)".to_owned(),
            };
            documents.push(Document {
                name: "source-task-role-policy",
                place: whose,
                body: policy(vec![Json::Obj(vec![
                    ("Sid", s("AssumeTheDestinationRole")),
                    ("Effect", s("Allow")),
                    ("Action", s("sts:AssumeRole")),
                    ("Resource", s(role)),
                ])]),
            });
        }
        None => documents.push(Document {
            name: "task-role-permissions",
            place: match inputs.task_role {
                Some(task_role) => format!(
                    "the permission policy of the task role {task_role} (no role_arn: it writes): aws iam put-role-policy --role-name {} --policy-name flb-cloudwatch --policy-document file://task-role-permissions.json",
                    role_name(task_role)
                ),
                None => "the permission policy of the credentials the plugin writes with (no role_arn)".to_owned(),
            },
            body: permissions,
        }),
    }
    if let (Some(task_role), Some(account)) = (inputs.task_role, source_account) {
        documents.push(Document {
            name: "source-task-role-trust-policy",
            place: format!(
                "the trust policy of the task role {task_role}: aws iam create-role --role-name {} --assume-role-policy-document file://source-task-role-trust-policy.json",
                role_name(task_role)
            ),
            body: policy(vec![Json::Obj(vec![
                ("Sid", s("EcsTasksOfThisAccount")),
                ("Effect", s("Allow")),
                ("Principal", Json::Obj(vec![("Service", s("ecs-tasks.amazonaws.com"))])),
                ("Action", s("sts:AssumeRole")),
                (
                    "Condition",
                    Json::Obj(vec![
                        ("StringEquals", Json::Obj(vec![("aws:SourceAccount", s(account))])),
                        (
                            "ArnLike",
                            Json::Obj(vec![(
                                "aws:SourceArn",
                                s(format!("arn:{partition}:ecs:*:{account}:*")),
                            )]),
                        ),
                    ]),
                ),
            ])]),
        });
    }
    Printed {
        documents,
        warnings,
    }
}

fn policy(statements: Vec<Json>) -> Json {
    Json::Obj(vec![
        ("Version", s("2012-10-17")),
        ("Statement", Json::Arr(statements)),
    ])
}

impl Printed {
    /// Each document after a `#` line saying where it goes; warnings as `! ` lines first.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&format!("! iam: {w}\n"));
        }
        for d in &self.documents {
            out.push_str(&format!(
                "# {}.json: {}\n{}\n",
                d.name,
                d.place,
                d.body.pretty()
            ));
        }
        out
    }

    /// One JSON document: `{"documents": [{"name", "where", "document"}], "warnings": […]}`.
    pub fn json(&self) -> String {
        let documents: Vec<serde_json::Value> = self
            .documents
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name,
                    "where": d.place,
                    "document": d.body.to_value(),
                })
            })
            .collect();
        serde_json::json!({ "documents": documents, "warnings": self.warnings }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_properties(
            |name| {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            },
            None,
        )
        .expect("valid options")
    }

    const EXAMPLE: &[(&str, &str)] = &[
        ("region", "ap-northeast-1"),
        ("log_group_name", "/ecs/httpd"),
        ("log_stream_name", "$(ecs_task_id)"),
        ("auto_create_group", "true"),
        (
            "role_arn",
            "arn:aws:iam::222222222222:role/firelens-cross-account",
        ),
    ];

    fn inputs<'a>() -> Inputs<'a> {
        Inputs {
            task_role: Some("arn:aws:iam::111111111111:role/httpd-task"),
            source_account: None,
            tag_pattern: Some("httpd-firelens-*"),
            external_id: ExternalId::None,
            show_secrets: false,
        }
    }

    fn statement<'d>(p: &'d Printed, name: &str, sid: &str) -> &'d [(&'static str, Json)] {
        let d = p.documents.iter().find(|d| d.name == name).expect(name);
        let Json::Obj(fields) = &d.body else { panic!() };
        let Json::Arr(list) = &fields[1].1 else {
            panic!()
        };
        list.iter()
            .find_map(|st| match st {
                Json::Obj(f) if f[0].1 == s(sid) => Some(f.as_slice()),
                _ => None,
            })
            .expect(sid)
    }

    fn field<'d>(st: &'d [(&'static str, Json)], key: &str) -> &'d Json {
        &st.iter().find(|(k, _)| *k == key).expect(key).1
    }

    #[test]
    fn the_example_needs_exactly_three_actions_on_its_group() {
        let p = documents(&config(EXAMPLE), &inputs());
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let names: Vec<&str> = p.documents.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "destination-role-permissions",
                "destination-role-trust-policy",
                "source-task-role-policy",
                "source-task-role-trust-policy"
            ]
        );
        let group = statement(&p, "destination-role-permissions", "TheLogGroup");
        assert_eq!(field(group, "Action"), &s("logs:CreateLogGroup"));
        assert_eq!(
            field(group, "Resource").to_value(),
            serde_json::json!([
                "arn:aws:logs:ap-northeast-1:222222222222:log-group:/ecs/httpd",
                "arn:aws:logs:ap-northeast-1:222222222222:log-group:/ecs/httpd:*"
            ])
        );
        let streams = statement(&p, "destination-role-permissions", "TheLogStreams");
        assert_eq!(
            field(streams, "Action").to_value(),
            serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"])
        );
        assert_eq!(
            field(streams, "Resource"),
            &s("arn:aws:logs:ap-northeast-1:222222222222:log-group:/ecs/httpd:log-stream:*")
        );
        let trust = statement(&p, "destination-role-trust-policy", "TheSourceTaskRole");
        assert_eq!(
            field(trust, "Principal").to_value(),
            serde_json::json!({"AWS": "arn:aws:iam::111111111111:role/httpd-task"})
        );
        assert!(!trust.iter().any(|(k, _)| *k == "Condition"));
    }

    #[test]
    fn options_add_exactly_their_actions() {
        let mut opts = EXAMPLE.to_vec();
        opts.extend([
            ("auto_create_stream", "false"),
            ("log_retention_days", "7"),
            ("new_log_group_tags", "team=web"),
        ]);
        let p = documents(&config(&opts), &inputs());
        let group = statement(&p, "destination-role-permissions", "TheLogGroup");
        assert_eq!(
            field(group, "Action").to_value(),
            serde_json::json!([
                "logs:CreateLogGroup",
                "logs:TagResource",
                "logs:PutRetentionPolicy"
            ])
        );
        let streams = statement(&p, "destination-role-permissions", "TheLogStreams");
        assert_eq!(field(streams, "Action"), &s("logs:PutLogEvents"));

        let plain = [
            ("region", "eu-west-1"),
            ("log_group_name", "/g"),
            ("log_stream_name", "s"),
        ];
        let p = documents(
            &config(&plain),
            &Inputs {
                task_role: None,
                source_account: Some("333333333333"),
                ..inputs()
            },
        );
        assert_eq!(p.documents.len(), 1);
        assert_eq!(p.documents[0].name, "task-role-permissions");
        assert!(!p.documents[0].body.pretty().contains("TheLogGroup"));
        assert!(
            p.documents[0]
                .body
                .pretty()
                .contains("arn:aws:logs:eu-west-1:333333333333:log-group:/g:log-stream:s")
        );
    }

    #[test]
    fn templates_widen_and_unbounded_ones_warn() {
        let mut opts = EXAMPLE.to_vec();
        opts.push(("log_group_name", "/ecs/$(ecs_cluster)"));
        let p = documents(&config(&opts), &inputs());
        let group = statement(&p, "destination-role-permissions", "TheLogGroup");
        assert_eq!(
            field(group, "Resource").to_value(),
            serde_json::json!([
                "arn:aws:logs:ap-northeast-1:222222222222:log-group:/ecs/*",
                "arn:aws:logs:ap-northeast-1:222222222222:log-group:fluentbit-default",
                "arn:aws:logs:ap-northeast-1:222222222222:log-group:fluentbit-default:*"
            ])
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        opts.push(("log_group_name", "$(app)"));
        let p = documents(&config(&opts), &inputs());
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("'*'"), "{}", p.warnings[0]);

        let prefix = [
            ("region", "eu-west-1"),
            ("log_group_name", "/g"),
            ("log_stream_prefix", "web-"),
            ("role_arn", "arn:aws:iam::222222222222:role/r"),
        ];
        let p = documents(&config(&prefix), &inputs());
        assert!(
            p.text()
                .contains("log-group:/g:log-stream:web-httpd-firelens-*\"")
        );
    }

    #[test]
    fn the_external_id_is_a_placeholder_unless_asked_for() {
        let mut opts = EXAMPLE.to_vec();
        opts.push(("external_id", "very-secret-id"));
        let with = |external_id, show_secrets| {
            documents(
                &config(&opts),
                &Inputs {
                    external_id,
                    show_secrets,
                    ..inputs()
                },
            )
        };
        let hidden = with(ExternalId::Value("very-secret-id"), false);
        assert!(!hidden.text().contains("very-secret-id"));
        assert!(!hidden.json().contains("very-secret-id"));
        assert!(hidden.text().contains(EXTERNAL_ID_PLACEHOLDER));
        assert!(
            with(ExternalId::Value("very-secret-id"), true)
                .text()
                .contains("\"sts:ExternalId\": \"very-secret-id\"")
        );
        assert!(
            with(ExternalId::Secret, true)
                .text()
                .contains(SECRET_OPTION_PLACEHOLDER)
        );
    }

    #[test]
    fn patterns_cover_what_they_should() {
        assert!(covers("/ecs/*", "/ecs/a"));
        assert!(covers("*", "fluentbit-default"));
        assert!(covers("a*b*c", "aXbYc"));
        assert!(!covers("/ecs/*", "/other"));
        assert!(!covers("/g", "/g2"));
        let mut list = vec!["/a".to_string()];
        add(&mut list, "/*".into());
        assert_eq!(list, ["/*"]);
        assert_eq!(arn_parts("arn:aws-cn:iam::1:role/x"), Some(("aws-cn", "1")));
        assert_eq!(arn_parts("nonsense"), None);
        assert_eq!(role_name("arn:aws:iam::1:role/path/x"), "x");
    }
}
