//! Group and stream name templates: parsed once at Init, rendered per chunk or per record.
//!
//! Two syntaxes, as the two reference plugins write them:
//! - AWS's Go plugin (`log_group_name`, `log_stream_name`): `$(tag)`, `$(tag[N])` (N = 0..9,
//!   the tag split on `.`), `$(ecs_task_id)`, `$(ecs_cluster)`, `$(ecs_task_arn)`, `$(uuid)`,
//!   `$(key)` and `$(key['sub']['sub2'])` from the record.
//! - Fluent Bit's record accessor (`log_group_template`, `log_stream_template`): `$key`,
//!   `$key['a']['b']`, `$TAG`, `$TAG[n]`, mixed with literal text.
//!
//! Rendering fails (and the caller falls back) when a key, a tag part or the ECS metadata is
//! missing, or a value is not a string, number or boolean. Rendered names are then made
//! valid for CloudWatch ([`sanitize_group`], [`sanitize_stream`]): a name built from record
//! data is checked before use. Must not fetch anything: values come in a [`Context`].

use std::fmt;

use crate::config::MAX_NAME_BYTES;
use crate::decode::{self, Reader, Token};
use crate::encode;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Tag,
    TagField(usize),
    EcsTaskId,
    EcsCluster,
    EcsTaskArn,
    Uuid,
    /// A record key, then keys of nested maps.
    Key(Vec<String>),
}

/// A parsed name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template needs to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: the same name always.
    Nothing,
    /// The tag (and instance-wide values): the same name for a whole chunk.
    Tag,
    /// The record: may differ per record.
    Record,
}

/// The ECS task's metadata, for `$(ecs_*)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ecs {
    pub task_arn: String,
    pub task_id: String,
    pub cluster: String,
}

/// Values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tag: &'a str,
    /// The record body (a MessagePack map); empty when rendering per chunk.
    pub body: &'a [u8],
    pub ecs: Option<&'a Ecs>,
    pub uuid: &'a str,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    MissingKey(String),
    NotText(String),
    MissingTagField(usize),
    NoEcsMetadata,
    Empty,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MissingKey(k) => write!(f, "the record has no key {k}"),
            Failure::NotText(k) => write!(f, "{k} is not a string, number or boolean"),
            Failure::MissingTagField(n) => write!(f, "the tag has no part {n}"),
            Failure::NoEcsMetadata => f.write_str("no ECS task metadata (not running in ECS)"),
            Failure::Empty => f.write_str("the name is empty"),
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl From<&str> for Template {
    /// A template that is just this text.
    fn from(text: &str) -> Template {
        let mut parts = Vec::new();
        push_literal(&mut parts, text);
        Template {
            source: text.to_owned(),
            parts,
        }
    }
}

impl Template {
    /// Parses the Go plugin's `$(...)` syntax.
    pub fn parse_go(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("$(") {
            push_literal(&mut parts, &rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find(')')
                .ok_or_else(|| format!("'$(' at byte {start} is never closed"))?;
            parts.push(go_variable(after[..end].trim())?);
            rest = &after[end + 1..];
        }
        push_literal(&mut parts, rest);
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// Parses Fluent Bit's record-accessor syntax.
    pub fn parse_record_accessor(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(start) = rest.find('$') {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let starts_name = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .unwrap_or(after.len());
            if !starts_name || name_len == 0 {
                literal.push('$');
                rest = after;
                continue;
            }
            push_literal(&mut parts, &std::mem::take(&mut literal));
            let name = &after[..name_len];
            let (subkeys, used) = subscripts(&after[name_len..])?;
            rest = &after[name_len + used..];
            parts.push(if name == "TAG" {
                match subkeys.as_slice() {
                    [] => Part::Tag,
                    [n] => Part::TagField(
                        n.parse()
                            .map_err(|_| format!("$TAG[{n}]: expected a number"))?,
                    ),
                    _ => return Err("$TAG takes one index".into()),
                }
            } else {
                let mut path = vec![name.to_owned()];
                path.extend(subkeys);
                Part::Key(path)
            });
        }
        literal.push_str(rest);
        push_literal(&mut parts, &literal);
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn needs(&self) -> Needs {
        let mut needs = Needs::Nothing;
        for p in &self.parts {
            match p {
                Part::Key(_) => return Needs::Record,
                Part::Literal(_) => {}
                _ => needs = Needs::Tag,
            }
        }
        needs
    }

    pub fn uses_ecs(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::EcsTaskId | Part::EcsCluster | Part::EcsTaskArn))
    }

    /// Renders into `out` (cleared first). On failure `out` holds garbage.
    pub fn render(&self, cx: &Context<'_>, out: &mut String) -> Result<(), Failure> {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Tag => out.push_str(cx.tag),
                Part::TagField(n) => out.push_str(
                    cx.tag
                        .split('.')
                        .nth(*n)
                        .ok_or(Failure::MissingTagField(*n))?,
                ),
                Part::EcsTaskId => out.push_str(&cx.ecs.ok_or(Failure::NoEcsMetadata)?.task_id),
                Part::EcsCluster => out.push_str(&cx.ecs.ok_or(Failure::NoEcsMetadata)?.cluster),
                Part::EcsTaskArn => out.push_str(&cx.ecs.ok_or(Failure::NoEcsMetadata)?.task_arn),
                Part::Uuid => out.push_str(cx.uuid),
                Part::Key(path) => key_text(cx.body, path, out)?,
            }
        }
        if out.is_empty() {
            return Err(Failure::Empty);
        }
        Ok(())
    }
}

fn push_literal(parts: &mut Vec<Part>, s: &str) {
    if !s.is_empty() {
        parts.push(Part::Literal(s.to_owned()));
    }
}

fn go_variable(v: &str) -> Result<Part, String> {
    Ok(match v {
        "tag" => Part::Tag,
        "ecs_task_id" => Part::EcsTaskId,
        "ecs_cluster" => Part::EcsCluster,
        "ecs_task_arn" => Part::EcsTaskArn,
        "uuid" => Part::Uuid,
        _ => {
            let name_len = v.find('[').unwrap_or(v.len());
            let (name, rest) = v.split_at(name_len);
            if name.is_empty() {
                return Err(format!("$({v}) names no variable"));
            }
            let (subkeys, used) = subscripts(rest)?;
            if used != rest.len() {
                return Err(format!("$({v}): unexpected {:?}", &rest[used..]));
            }
            if name == "tag" {
                match subkeys.as_slice() {
                    [n] if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() => {
                        Part::TagField(usize::from(n.as_bytes()[0] - b'0'))
                    }
                    _ => return Err(format!("$({v}): expected $(tag[0]) to $(tag[9])")),
                }
            } else {
                let mut path = vec![name.to_owned()];
                path.extend(subkeys);
                Part::Key(path)
            }
        }
    })
}

/// Reads `['a']['b']` or `[0]` subscripts; returns them and the bytes used.
fn subscripts(s: &str) -> Result<(Vec<String>, usize), String> {
    let mut keys = Vec::new();
    let mut used = 0;
    while s[used..].starts_with('[') {
        let inner = &s[used + 1..];
        let end = inner
            .find(']')
            .ok_or_else(|| format!("'[' in {s:?} is never closed"))?;
        let key = inner[..end].trim();
        let key = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            .unwrap_or(key);
        keys.push(key.to_owned());
        used += end + 2;
    }
    Ok((keys, used))
}

/// Appends the text of the value at `path` in the record: strings as text (invalid UTF-8
/// replaced), numbers and booleans as their JSON text.
fn key_text(body: &[u8], path: &[String], out: &mut String) -> Result<(), Failure> {
    let shown = || {
        let mut s = String::from("$");
        s.push_str(&path[0]);
        for k in &path[1..] {
            s.push_str(&format!("['{k}']"));
        }
        s
    };
    let mut value = body;
    for key in path {
        value =
            decode::lookup(value, key.as_bytes()).ok_or_else(|| Failure::MissingKey(shown()))?;
    }
    match Reader::new(value).token() {
        Ok(Token::Str(s) | Token::Bin(s)) => {
            out.push_str(&String::from_utf8_lossy(s));
            Ok(())
        }
        Ok(Token::Uint(_) | Token::Int(_) | Token::F32(_) | Token::F64(_) | Token::Bool(_)) => {
            let mut text = Vec::new();
            encode::json(value, &mut encode::Out::plain(&mut text))
                .map_err(|_| Failure::NotText(shown()))?;
            out.push_str(&String::from_utf8_lossy(&text));
            Ok(())
        }
        _ => Err(Failure::NotText(shown())),
    }
}

/// CloudWatch's group names: every character outside `A-Z a-z 0-9 _ . / # -` becomes `.`,
/// cut to 512 bytes.
pub fn sanitize_group(name: &mut String) {
    if name
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b"_./#-".contains(&b)))
    {
        *name = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_./#-".contains(c) {
                    c
                } else {
                    '.'
                }
            })
            .collect();
    }
    cut(name);
}

/// CloudWatch's stream names: `:` and `*` become `.`, cut to 512 bytes.
pub fn sanitize_stream(name: &mut String) {
    if name.contains([':', '*']) {
        *name = name.replace([':', '*'], ".");
    }
    cut(name);
}

fn cut(name: &mut String) {
    name.truncate(name.floor_char_boundary(MAX_NAME_BYTES));
}

#[cfg(test)]
mod tests {
    use super::*;

    // {"app": "web", "n": 7, "ok": true, "k8s": {"ns": "prod", "m": {}}, "bad": nil}
    const BODY: &[u8] = &[
        0x85, 0xa3, b'a', b'p', b'p', 0xa3, b'w', b'e', b'b', 0xa1, b'n', 0x07, 0xa2, b'o', b'k',
        0xc3, 0xa3, b'k', b'8', b's', 0x82, 0xa2, b'n', b's', 0xa4, b'p', b'r', b'o', b'd', 0xa1,
        b'm', 0x80, 0xa3, b'b', b'a', b'd', 0xc0,
    ];

    fn ecs() -> Ecs {
        Ecs {
            task_arn: "arn:aws:ecs:us-east-1:1:task/c/abc".into(),
            task_id: "abc".into(),
            cluster: "c".into(),
        }
    }

    fn render(t: &Template, with_ecs: bool) -> Result<String, Failure> {
        let e = ecs();
        let cx = Context {
            tag: "kube.var.log",
            body: BODY,
            ecs: with_ecs.then_some(&e),
            uuid: "u-1",
        };
        let mut out = String::new();
        t.render(&cx, &mut out).map(|()| out)
    }

    fn go(s: &str) -> Result<String, Failure> {
        render(&Template::parse_go(s).unwrap(), true)
    }

    #[test]
    fn go_variables() {
        assert_eq!(
            go("/ecs/$(ecs_cluster)/$(ecs_task_id)").unwrap(),
            "/ecs/c/abc"
        );
        assert_eq!(
            go("$(ecs_task_arn)").unwrap(),
            "arn:aws:ecs:us-east-1:1:task/c/abc"
        );
        assert_eq!(
            go("$(tag)-$(tag[0])-$(tag[2])").unwrap(),
            "kube.var.log-kube-log"
        );
        assert_eq!(go("id-$(uuid)").unwrap(), "id-u-1");
        assert_eq!(go("$(app)/$(k8s['ns'])").unwrap(), "web/prod");
        assert_eq!(
            go("$(n)-$(ok)").unwrap(),
            "7-true",
            "numbers and booleans as text"
        );
        assert_eq!(go("plain").unwrap(), "plain");
    }

    #[test]
    fn go_failures() {
        assert_eq!(
            go("$(missing)"),
            Err(Failure::MissingKey("$missing".into()))
        );
        assert_eq!(
            go("$(k8s['nope'])"),
            Err(Failure::MissingKey("$k8s['nope']".into()))
        );
        assert_eq!(go("$(k8s['m'])"), Err(Failure::NotText("$k8s['m']".into())));
        assert_eq!(go("$(bad)"), Err(Failure::NotText("$bad".into())));
        assert_eq!(go("$(tag[5])"), Err(Failure::MissingTagField(5)));
        let t = Template::parse_go("$(ecs_task_id)").unwrap();
        assert_eq!(render(&t, false), Err(Failure::NoEcsMetadata));
        assert!(Template::parse_go("$(tag[10])").is_err());
        assert!(Template::parse_go("$(unclosed").is_err());
        assert!(Template::parse_go("$()").is_err());
    }

    #[test]
    fn record_accessor() {
        let ra = |s: &str| render(&Template::parse_record_accessor(s).unwrap(), false);
        assert_eq!(ra("app-$app/$k8s['ns']").unwrap(), "app-web/prod");
        assert_eq!(ra("$TAG").unwrap(), "kube.var.log");
        assert_eq!(ra("x-$TAG[1]-y").unwrap(), "x-var-y");
        assert_eq!(ra("cost $5 and $").unwrap(), "cost $5 and $");
        assert_eq!(ra("$nope"), Err(Failure::MissingKey("$nope".into())));
    }

    #[test]
    fn what_templates_need() {
        assert_eq!(Template::parse_go("a").unwrap().needs(), Needs::Nothing);
        assert_eq!(Template::parse_go("$(tag)").unwrap().needs(), Needs::Tag);
        assert_eq!(
            Template::parse_go("$(ecs_task_id)").unwrap().needs(),
            Needs::Tag
        );
        assert_eq!(Template::parse_go("$(a)").unwrap().needs(), Needs::Record);
        assert!(Template::parse_go("$(ecs_cluster)").unwrap().uses_ecs());
    }

    #[test]
    fn sanitizing() {
        let mut g = String::from("my group:*é/ok#");
        sanitize_group(&mut g);
        assert_eq!(g, "my.group.../ok#");
        let mut s = String::from("a:b*c d/é");
        sanitize_stream(&mut s);
        assert_eq!(s, "a.b.c d/é");
        let mut long = "é".repeat(400);
        sanitize_stream(&mut long);
        assert!(long.len() <= 512 && long.is_char_boundary(long.len()));
    }
}
