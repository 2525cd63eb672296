//! Group and stream name templates: parsed once at Init, rendered per chunk or per record.
//!
//! Two syntaxes, with the rules of the plugin each comes from:
//! - AWS's Go plugin v1.9.4 (`log_group_name`, `log_stream_name`): `$(tag)`, `$(tag[N])`,
//!   `$(ecs_task_id)`, `$(ecs_cluster)`, `$(ecs_task_arn)`, `$(uuid)`, `$(key)` and
//!   `$(key['sub']['sub2'])`. Parsed and rendered exactly as that plugin does (its
//!   `fasttemplate` with `$(` and `)`, then `parseDataMapTags`), so that a configuration
//!   written for it names the same groups and streams: the text between `$(` and the next
//!   `)` is taken as it is (no trimming); `$(tag[N])` reads one digit (`$(tag[12])` is part 1)
//!   of the tag split with `strings.SplitN(tag, ".", 10)`, so part 9 is the rest of the tag;
//!   a key whose value is a map renders as nothing; text around `['…']` subscripts is kept.
//!   The one deliberate difference: a number or boolean renders as its text where the Go
//!   plugin falls back to the default name.
//! - Fluent Bit's record accessor, as its C plugin uses it (`log_group_template`,
//!   `log_stream_template`): `$key`, `$key['a']['b']`, `$TAG`, `$TAG[n]`, mixed with text.
//!
//! Rendering gives bytes; [`clean_group`] and [`clean_stream`] then make them a name
//! CloudWatch accepts, by the Go plugin's rules. Rendering fails (and the caller falls back)
//! when a key, a Go tag part or the ECS metadata is missing, a value cannot be text, or the
//! result is empty. Must not fetch anything: values come in a [`Context`].
//!
//! With `confine_names` ([`Template::confine_group`], [`Template::confine_stream`]), a name
//! from record keys must also keep its template's literal prefix: see [`confined`] for the
//! rule. A name that does not fails like one that cannot be rendered.

use std::fmt;

use crate::config::MAX_NAME_BYTES;
use crate::decode::{Reader, Token};
use crate::encode;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `$(tag)`, `$TAG`: the whole tag.
    Tag,
    /// `$(tag[N])`: part N of the tag split into at most 10 parts (the last is the rest).
    GoTagIndex(usize),
    /// `$TAG[n]`: part n of the tag split on every `.`; nothing when there is no such part.
    TagIndex(usize),
    EcsTaskId,
    EcsCluster,
    EcsTaskArn,
    Uuid,
    /// `$(name…)`: a record key, then the rest of the variable as the Go plugin reads it
    /// (`['a']['b']` subscripts, and any text around them).
    GoKey {
        name: String,
        rest: String,
    },
    /// `$key['a']`: a record key, then keys of nested maps.
    Key(Vec<String>),
}

/// Which plugin's syntax and rules a template follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// AWS's Go plugin: `$(...)`.
    Go,
    /// Fluent Bit's record accessor (the C plugin's templates): `$key`, `$TAG`.
    RecordAccessor,
}

/// A parsed name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    syntax: Syntax,
    parts: Vec<Part>,
    /// Variables that do not mean what they may seem to (said once at Init).
    notes: Vec<String>,
    /// `confine_names`: the cleaned literal prefix every rendered name must keep ([`confined`]).
    confined: Option<String>,
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
    /// The task metadata has no value for this variable.
    NoEcsValue(&'static str),
    Empty,
    /// `confine_names`: the name does not start with this prefix (the template's literal
    /// prefix, cleaned).
    OutsidePrefix(String),
    /// `confine_names`: the name has a `..` segment from the record after this prefix.
    DotDotSegment(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MissingKey(k) => write!(f, "the record has no key {k}"),
            Failure::NotText(k) => write!(f, "{k} is not a string, number or boolean"),
            Failure::MissingTagField(n) => write!(f, "the tag has no part {n}"),
            Failure::NoEcsMetadata => f.write_str("no ECS task metadata (not running in ECS)"),
            Failure::NoEcsValue(v) => write!(f, "the ECS task metadata has no {v}"),
            Failure::Empty => f.write_str("the name is empty"),
            Failure::OutsidePrefix(p) => write!(
                f,
                "the name would not start with the template's literal prefix '{p}' (confine_names)"
            ),
            Failure::DotDotSegment(p) => write!(
                f,
                "the name would have a '..' segment after the template's literal prefix '{p}' (confine_names)"
            ),
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
            syntax: Syntax::Go,
            parts,
            notes: Vec::new(),
            confined: None,
        }
    }
}

impl Template {
    /// Parses the Go plugin's `$(...)` syntax. Like the Go plugin, refuses only a `$(`
    /// that is never closed; every other text is a template.
    pub fn parse_go(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut notes = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("$(") {
            push_literal(&mut parts, &rest[..start]);
            let offset = source.len() - rest.len() + start;
            let after = &rest[start + 2..];
            let end = after
                .find(')')
                .ok_or_else(|| format!("'$(' at byte {offset} is never closed with ')'"))?;
            parts.push(go_variable(&after[..end], &mut notes));
            rest = &after[end + 1..];
        }
        push_literal(&mut parts, rest);
        Ok(Template {
            source: source.to_owned(),
            syntax: Syntax::Go,
            parts,
            notes,
            confined: None,
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
                    [n] => Part::TagIndex(
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
            syntax: Syntax::RecordAccessor,
            parts,
            notes: Vec::new(),
            confined: None,
        })
    }

    /// The template as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// What the Go plugin's reading of some variables means, for a warning at Init (e.g.
    /// `$(tag[12])` is part 1).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The template's literal text, joined (what a template without variables renders).
    pub fn literal_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Literal(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The template's text before its first variable (of any kind): what the configuration
    /// fixes whatever the record, tag or task. Empty when the template starts with a variable.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }

    /// `confine_names` for a group name: names rendered from record keys must keep the
    /// literal prefix, cleaned as the group is ([`confined`]). A template without record keys
    /// has nothing to confine and is left as it is. `Err` (with the cleaned prefix) when
    /// there is no prefix to keep: it is empty, or only `/`.
    pub fn confine_group(&mut self) -> Result<(), String> {
        let mut prefix = String::new();
        clean_group(
            self.literal_prefix().as_bytes(),
            self.syntax == Syntax::RecordAccessor,
            &mut prefix,
        );
        self.confine_to(prefix)
    }

    /// `confine_names` for a stream name: as [`Template::confine_group`].
    pub fn confine_stream(&mut self) -> Result<(), String> {
        let mut prefix = String::new();
        clean_stream(self.literal_prefix().as_bytes(), &mut prefix);
        self.confine_to(prefix)
    }

    fn confine_to(&mut self, prefix: String) -> Result<(), String> {
        if self.needs() != Needs::Record {
            return Ok(());
        }
        if prefix.bytes().all(|b| b == b'/') {
            return Err(prefix);
        }
        self.confined = Some(prefix);
        Ok(())
    }

    /// The prefix names of this template are confined to (`confine_names`), if any.
    pub fn confined_prefix(&self) -> Option<&str> {
        self.confined.as_deref()
    }

    pub fn needs(&self) -> Needs {
        let mut needs = Needs::Nothing;
        for p in &self.parts {
            match p {
                Part::Key(_) | Part::GoKey { .. } => return Needs::Record,
                Part::Literal(_) => {}
                _ => needs = Needs::Tag,
            }
        }
        needs
    }

    /// The names this template can render, as an IAM wildcard: each literal part cleaned
    /// as a group (`group`) or stream name is, each variable `*` (runs of them one `*`).
    /// Cleaning maps byte for byte, so cleaning the literal parts alone gives the same text
    /// as cleaning a whole rendered name; neither kind of name can hold `*` or `?`, so the
    /// literal text never widens the pattern.
    pub fn iam_pattern(&self, group: bool) -> String {
        let mut pattern = String::new();
        let mut piece = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) if group => {
                    clean_group(
                        s.as_bytes(),
                        self.syntax == Syntax::RecordAccessor,
                        &mut piece,
                    );
                    pattern.push_str(&piece);
                }
                Part::Literal(s) => {
                    clean_stream(s.as_bytes(), &mut piece);
                    pattern.push_str(&piece);
                }
                _ if pattern.ends_with('*') => {}
                _ => pattern.push('*'),
            }
        }
        pattern
    }

    pub fn uses_ecs(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::EcsTaskId | Part::EcsCluster | Part::EcsTaskArn))
    }

    /// Renders the raw bytes of the name into `out` (cleared first); they still need
    /// [`clean_group`] or [`clean_stream`]. On failure `out` holds garbage.
    pub fn render(&self, cx: &Context<'_>, out: &mut Vec<u8>) -> Result<(), Failure> {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Tag => out.extend_from_slice(cx.tag.as_bytes()),
                Part::GoTagIndex(n) => out.extend_from_slice(
                    cx.tag
                        .splitn(GO_TAG_PARTS, '.')
                        .nth(*n)
                        .ok_or(Failure::MissingTagField(*n))?
                        .as_bytes(),
                ),
                Part::TagIndex(n) => {
                    if let Some(p) = cx.tag.split('.').nth(*n) {
                        out.extend_from_slice(p.as_bytes());
                    }
                }
                Part::EcsTaskId => ecs_value(cx, "task id", |e| &e.task_id, out)?,
                Part::EcsCluster => ecs_value(cx, "Cluster", |e| &e.cluster, out)?,
                Part::EcsTaskArn => ecs_value(cx, "TaskARN", |e| &e.task_arn, out)?,
                Part::Uuid => out.extend_from_slice(cx.uuid.as_bytes()),
                Part::GoKey { name, rest } => go_key(cx.body, name, rest, out)?,
                Part::Key(path) => record_accessor_key(cx.body, path, out)?,
            }
        }
        if out.is_empty() {
            return Err(Failure::Empty);
        }
        Ok(())
    }

    /// Renders and cleans a group name into `name`: the Go plugin's rule for `$(...)`
    /// templates, CloudWatch's for record-accessor ones (see [`clean_group`]).
    pub fn render_group(
        &self,
        cx: &Context<'_>,
        raw: &mut Vec<u8>,
        name: &mut String,
    ) -> Result<(), Failure> {
        self.render(cx, raw)?;
        clean_group(raw, self.syntax == Syntax::RecordAccessor, name);
        self.keeps_prefix(name)
    }

    /// Renders and cleans a stream name into `name` (see [`clean_stream`]).
    pub fn render_stream(
        &self,
        cx: &Context<'_>,
        raw: &mut Vec<u8>,
        name: &mut String,
    ) -> Result<(), Failure> {
        self.render(cx, raw)?;
        clean_stream(raw, name);
        self.keeps_prefix(name)
    }

    /// `Ok` unless the template is confined and `name` (cleaned) breaks [`confined`].
    fn keeps_prefix(&self, name: &str) -> Result<(), Failure> {
        match &self.confined {
            None => Ok(()),
            Some(prefix) => confined(prefix, name),
        }
    }
}

/// The `confine_names` rule. A name rendered from record keys, once cleaned as CloudWatch
/// will get it, stays within its template's literal prefix `prefix` (cleaned the same way)
/// when both hold:
/// 1. it starts with `prefix` (a string prefix, as an IAM resource `…:log-group:prefix*`
///    reads it); and
/// 2. no `/`-separated segment from the one `prefix` ends in onwards is `..`, whether the
///    record wrote it or the cleaning made it (`é` → `..`): a name such as
///    `/ecs/app/../../x` starts with `/ecs/app/` but reads, to people and to tools that treat
///    names as paths, as outside it.
///
/// A prefix comparison and one scan of the rest of the name: cheap enough per record.
pub fn confined(prefix: &str, name: &str) -> Result<(), Failure> {
    if !name.starts_with(prefix) {
        return Err(Failure::OutsidePrefix(prefix.to_owned()));
    }
    let from = prefix.rfind('/').map_or(0, |i| i + 1);
    let rest = name.as_bytes().get(from..).unwrap_or_default();
    if rest.split(|&b| b == b'/').any(|segment| segment == b"..") {
        return Err(Failure::DotDotSegment(prefix.to_owned()));
    }
    Ok(())
}

/// `strings.SplitN(tag, ".", 10)`: the Go plugin's tag parts.
const GO_TAG_PARTS: usize = 10;

fn push_literal(parts: &mut Vec<Part>, s: &str) {
    if !s.is_empty() {
        parts.push(Part::Literal(s.to_owned()));
    }
}

/// The Go plugin's reading of the text between `$(` and `)` (`parseDataMapTags`).
fn go_variable(v: &str, notes: &mut Vec<String>) -> Part {
    match v {
        "ecs_task_id" => return Part::EcsTaskId,
        "ecs_cluster" => return Part::EcsCluster,
        "ecs_task_arn" => return Part::EcsTaskArn,
        "uuid" => return Part::Uuid,
        _ => {}
    }
    let name_len = v.find('[').unwrap_or(v.len());
    let (name, rest) = v.split_at(name_len);
    if name == "tag" {
        // "tag" and "tag[" are the whole tag; otherwise the byte after '[' is the index,
        // and anything but a digit reads as 0 (Go's strconv.Atoi error is ignored).
        let Some(&index) = v.as_bytes().get(4) else {
            return Part::Tag;
        };
        let n = if index.is_ascii_digit() {
            usize::from(index - b'0')
        } else {
            0
        };
        if !(index.is_ascii_digit() && rest.len() == 3 && rest.ends_with(']')) {
            notes.push(format!(
                "$({v}) is read as $(tag[{n}]), as AWS's Go plugin reads it (one digit, 0 to 9)"
            ));
        }
        return Part::GoTagIndex(n);
    }
    if v.trim() != v || v.is_empty() {
        notes.push(format!(
            "$({v}) names the record key {name:?} (the text between '$(' and ')' is taken as it is, as AWS's Go plugin takes it)"
        ));
    }
    Part::GoKey {
        name: name.to_owned(),
        rest: rest.to_owned(),
    }
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

fn ecs_value(
    cx: &Context<'_>,
    what: &'static str,
    get: impl Fn(&Ecs) -> &String,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let value = get(cx.ecs.ok_or(Failure::NoEcsMetadata)?);
    if value.is_empty() {
        return Err(Failure::NoEcsValue(what));
    }
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

/// The value of `key` in the map `map`; the last one when the key repeats, as a Go map
/// decoded from the record keeps it.
fn lookup_last<'a>(map: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut r = Reader::new(map);
    let Ok(Token::Map(n)) = r.token() else {
        return None;
    };
    let mut found = None;
    for _ in 0..n {
        let k = r.skip_value().ok()?;
        let value = r.skip_value().ok()?;
        if let Ok(Token::Str(k) | Token::Bin(k)) = Reader::new(k).token()
            && k == key
        {
            found = Some(value);
        }
    }
    found
}

/// Appends a string, number or boolean as text; `false` for anything else. Strings (and
/// `bin`) as their bytes; numbers and booleans as their JSON text.
fn scalar_text(value: &[u8], out: &mut Vec<u8>) -> bool {
    match Reader::new(value).token() {
        Ok(Token::Str(s) | Token::Bin(s)) => {
            out.extend_from_slice(s);
            true
        }
        Ok(Token::Uint(_) | Token::Int(_) | Token::F32(_) | Token::F64(_) | Token::Bool(_)) => {
            encode::json(value, &mut encode::Out::plain(out)).is_ok()
        }
        _ => false,
    }
}

fn is_map(value: &[u8]) -> bool {
    matches!(Reader::new(value).token(), Ok(Token::Map(_)))
}

/// `$(name…)` as the Go plugin renders it: a string as it is; a map goes through the
/// subscripts in `rest`; anything else (missing, null, array) fails.
fn go_key(body: &[u8], name: &str, rest: &str, out: &mut Vec<u8>) -> Result<(), Failure> {
    let shown = || format!("$({name}{rest})");
    let value = lookup_last(body, name.as_bytes()).ok_or_else(|| Failure::MissingKey(shown()))?;
    if is_map(value) {
        go_subscripts(value, rest, out).map_err(|missing| {
            if missing {
                Failure::MissingKey(shown())
            } else {
                Failure::NotText(shown())
            }
        })
    } else if scalar_text(value, out) {
        // A string ignores any subscripts, as in the Go plugin.
        Ok(())
    } else {
        Err(Failure::NotText(shown()))
    }
}

/// The Go plugin's `parseKeysTemplate`: `fasttemplate` over `rest` with `['` and `']`. Text
/// outside the subscripts is written; a subscript naming a map descends into it (writing
/// nothing), one naming a string writes it and stays at the same map; an unclosed `['` is
/// written as text. `Err(true)` for a missing key, `Err(false)` for a value that is no text.
fn go_subscripts(mut map: &[u8], rest: &str, out: &mut Vec<u8>) -> Result<(), bool> {
    let mut s = rest;
    while let Some(open) = s.find("['") {
        out.extend_from_slice(&s.as_bytes()[..open]);
        s = &s[open + 2..];
        let Some(close) = s.find("']") else {
            out.extend_from_slice(b"['");
            break;
        };
        let value = lookup_last(map, &s.as_bytes()[..close]).ok_or(true)?;
        if is_map(value) {
            map = value;
        } else if !scalar_text(value, out) {
            return Err(false);
        }
        s = &s[close + 2..];
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// `$key['a']['b']` as Fluent Bit's record accessor renders it: strings as they are,
/// integers and booleans as text, floats as C's `%f`, null as `null`; maps and arrays fail.
fn record_accessor_key(body: &[u8], path: &[String], out: &mut Vec<u8>) -> Result<(), Failure> {
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
        value = lookup_last(value, key.as_bytes()).ok_or_else(|| Failure::MissingKey(shown()))?;
    }
    match Reader::new(value).token() {
        Ok(Token::F32(f)) => out.extend_from_slice(format!("{:.6}", f64::from(f)).as_bytes()),
        Ok(Token::F64(f)) => out.extend_from_slice(format!("{f:.6}").as_bytes()),
        Ok(Token::Nil) => out.extend_from_slice(b"null"),
        _ => {
            if !scalar_text(value, out) {
                return Err(Failure::NotText(shown()));
            }
        }
    }
    Ok(())
}

/// Whether CloudWatch's group names allow this byte (`A-Z a-z 0-9 _ - . / #`), and the Go
/// plugin's group cleaner keeps it (the same without `#`).
fn group_byte(b: u8, keep_hash: bool) -> bool {
    b.is_ascii_alphanumeric() || b"_-./".contains(&b) || (keep_hash && b == b'#')
}

/// A group name from rendered bytes: every byte outside `A-Z a-z 0-9 _ - . /` becomes `.`
/// (per byte, so `é` gives `..`), and `#` too unless `keep_hash`; cut to 512 bytes. The Go
/// plugin's rule (`sanitizeGroup`) for its templates and names; with `keep_hash`, only
/// what CloudWatch refuses is replaced (record-accessor templates, default names).
pub fn clean_group(raw: &[u8], keep_hash: bool, name: &mut String) {
    name.clear();
    name.extend(raw.iter().take(MAX_NAME_BYTES).map(|&b| {
        if group_byte(b, keep_hash) {
            char::from(b)
        } else {
            '.'
        }
    }));
}

/// A stream name from rendered bytes: `:` and `*` become `.` (the Go plugin's
/// `sanitizeStream`; CloudWatch refuses both), invalid UTF-8 is replaced by U+FFFD, and the
/// name is cut to 512 bytes at a character boundary.
pub fn clean_stream(raw: &[u8], name: &mut String) {
    name.clear();
    name.push_str(&String::from_utf8_lossy(raw));
    if name.contains([':', '*']) {
        *name = name.replace([':', '*'], ".");
    }
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

    #[test]
    fn iam_patterns_widen_each_variable_to_a_star() {
        let go = |s: &str| Template::parse_go(s).unwrap();
        assert_eq!(go("/ecs/httpd").iam_pattern(true), "/ecs/httpd");
        assert_eq!(go("/ecs/$(ecs_cluster)").iam_pattern(true), "/ecs/*");
        assert_eq!(
            go("/ecs/$(ecs_cluster)-$(app)/x").iam_pattern(true),
            "/ecs/*-*/x"
        );
        assert_eq!(go("$(app)$(tag)").iam_pattern(true), "*");
        assert_eq!(go("a b:c").iam_pattern(true), "a.b.c");
        assert_eq!(go("a b:c").iam_pattern(false), "a b.c");
        let ra = Template::parse_record_accessor("#team-$app").unwrap();
        assert_eq!(ra.iam_pattern(true), "#team-*");
    }

    fn ecs() -> Ecs {
        Ecs {
            task_arn: "arn:aws:ecs:us-east-1:1:task/c/abc".into(),
            task_id: "abc".into(),
            cluster: "arn:aws:ecs:us-east-1:1:cluster/c".into(),
        }
    }

    fn render_with(
        t: &Template,
        tag: &str,
        body: &[u8],
        with_ecs: bool,
    ) -> Result<String, Failure> {
        let e = ecs();
        let cx = Context {
            tag,
            body,
            ecs: with_ecs.then_some(&e),
            uuid: "u-1",
        };
        let mut out = Vec::new();
        t.render(&cx, &mut out)
            .map(|()| String::from_utf8(out).unwrap())
    }

    fn render(t: &Template, with_ecs: bool) -> Result<String, Failure> {
        render_with(t, "kube.var.log", BODY, with_ecs)
    }

    fn go(s: &str) -> Result<String, Failure> {
        render(&Template::parse_go(s).unwrap(), true)
    }

    /// A group name as the Go plugin's `setGroupStreamNames` makes it (rendered, then
    /// cleaned), or the failure that sends it to the default.
    fn go_group(s: &str, tag: &str, body: &[u8]) -> Result<String, Failure> {
        let t = Template::parse_go(s).unwrap();
        let e = ecs();
        let cx = Context {
            tag,
            body,
            ecs: Some(&e),
            uuid: "123",
        };
        let (mut raw, mut name) = (Vec::new(), String::new());
        t.render_group(&cx, &mut raw, &mut name).map(|()| name)
    }

    fn go_stream(s: &str, tag: &str, body: &[u8]) -> Result<String, Failure> {
        let t = Template::parse_go(s).unwrap();
        let cx = Context {
            tag,
            body,
            ecs: None,
            uuid: "",
        };
        let (mut raw, mut name) = (Vec::new(), String::new());
        t.render_stream(&cx, &mut raw, &mut name).map(|()| name)
    }

    #[test]
    fn go_variables() {
        assert_eq!(
            go("/ecs/$(ecs_cluster)/$(ecs_task_id)").unwrap(),
            "/ecs/arn:aws:ecs:us-east-1:1:cluster/c/abc",
            "the Cluster value as it is"
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
            "numbers and booleans as text (the Go plugin falls back)"
        );
        assert_eq!(go("plain").unwrap(), "plain");
    }

    // {"pam": {"item": "soup", "item2": {"subitem": bin "SubIt3m", "subitem2": {"more": "final"}}}}:
    // the record of the Go plugin's TestParseDataMapTags (cloudwatch/helpers_test.go, v1.9.4).
    fn pam() -> Vec<u8> {
        let mut v = vec![0x81, 0xa3, b'p', b'a', b'm', 0x82, 0xa4];
        v.extend_from_slice(b"item");
        v.push(0xa4);
        v.extend_from_slice(b"soup");
        v.push(0xa5);
        v.extend_from_slice(b"item2");
        v.extend_from_slice(&[0x82, 0xa7]);
        v.extend_from_slice(b"subitem");
        v.extend_from_slice(&[0xc4, 7]);
        v.extend_from_slice(b"SubIt3m");
        v.push(0xa8);
        v.extend_from_slice(b"subitem2");
        v.extend_from_slice(&[0x81, 0xa4]);
        v.extend_from_slice(b"more");
        v.push(0xa5);
        v.extend_from_slice(b"final");
        v
    }

    /// helpers_test.go TestParseDataMapTags, v1.9.4: the same template, record, tag,
    /// metadata and uuid give the same name; a map value renders as nothing.
    #[test]
    fn go_test_parse_data_map_tags() {
        let t = "$(ecs_task_id).$(ecs_cluster).$(ecs_task_arn).$(uuid).$(tag).$(pam['item2']['subitem2']['more']).$(pam['item']).$(pam['item2']).\
                 $(pam['item2']['subitem'])-$(pam['item2']['subitem2']['more'])-$(tag[1])";
        let e = Ecs {
            cluster: "cluster".into(),
            task_arn: "taskARN".into(),
            task_id: "taskID".into(),
        };
        let template = Template::parse_go(t).unwrap();
        let cx = Context {
            tag: "syslog.0",
            body: &pam(),
            ecs: Some(&e),
            uuid: "123",
        };
        let (mut raw, mut name) = (Vec::new(), String::new());
        template.render_group(&cx, &mut raw, &mut name).unwrap();
        assert_eq!(
            name,
            "taskID.cluster.taskARN.123.syslog.0.final.soup..SubIt3m-final-0"
        );
        // The same test's failures: a missing key, a missing sub-key, a missing tag part.
        for (t, failure) in [
            (
                "$(missing-variable).stuff",
                Failure::MissingKey("$(missing-variable)".into()),
            ),
            (
                "$(pam['item6']).stuff",
                Failure::MissingKey("$(pam['item6'])".into()),
            ),
            ("$(tag[9]).stuff", Failure::MissingTagField(9)),
        ] {
            assert_eq!(go_group(t, "syslog.0", &pam()), Err(failure), "{t}");
        }
    }

    // {"ident": "cron", "msg": "my cool log message", "details": {"region": "us-west-2", "az": "a"}}
    fn details() -> Vec<u8> {
        let mut v = vec![0x83, 0xa5];
        v.extend_from_slice(b"ident");
        v.push(0xa4);
        v.extend_from_slice(b"cron");
        v.push(0xa3);
        v.extend_from_slice(b"msg");
        v.push(0xb3);
        v.extend_from_slice(b"my cool log message");
        v.push(0xa7);
        v.extend_from_slice(b"details");
        v.extend_from_slice(&[0x82, 0xa6]);
        v.extend_from_slice(b"region");
        v.push(0xa9);
        v.extend_from_slice(b"us-west-2");
        v.extend_from_slice(&[0xa2, b'a', b'z', 0xa1, b'a']);
        v
    }

    /// cloudwatch_test.go TestSetGroupStreamNames, v1.9.4: names, tag parts, nested keys,
    /// the unclosed `['` kept as text, missing keys, and the 512-byte cut.
    #[test]
    fn go_test_set_group_stream_names() {
        let body = details();
        assert_eq!(
            go_stream("/aws/ecs/test-stream-name", "syslog.0", &body).unwrap(),
            "/aws/ecs/test-stream-name"
        );
        assert_eq!(
            go_stream(
                "/aws/ecs/$(tag[0])/$(tag[1])/$(details['region'])/$(details['az'])/$(ident)",
                "syslog.0",
                &body
            )
            .unwrap(),
            "/aws/ecs/syslog/0/us-west-2/a/cron"
        );
        assert_eq!(
            go_stream("/aws/ecs/$(details['region')", "syslog.0", &body).unwrap(),
            "/aws/ecs/['region'"
        );
        assert!(go_stream("/aws/ecs/$(details['activity'])", "syslog.0", &body).is_err());
        assert!(go_group("$(details['activity'])", "syslog.0", &body).is_err());
        // The cut: "/aws/ecs/" and 1024 underscores give the first 512 bytes.
        let mut long = vec![0x81, 0xa5];
        long.extend_from_slice(b"ident");
        long.extend_from_slice(&[0xda, 0x04, 0x00]);
        long.extend_from_slice(&[b'_'; 1024]);
        let want = format!("/aws/ecs/{}", "_".repeat(512 - 9));
        assert_eq!(go_stream("/aws/ecs/$(ident)", "t", &long).unwrap(), want);
        assert_eq!(go_group("/aws/ecs/$(ident)", "t", &long).unwrap(), want);
    }

    /// helpers_test.go TestSanitizeGroup and TestSanitizeStream, v1.9.4.
    #[test]
    fn go_test_sanitizers() {
        let mut name = String::new();
        for (send, want) in [
            ("this.is.a.log.group.name", "this.is.a.log.group.name"),
            (
                "1234567890abcdefghijklmnopqrstuvwxyz",
                "1234567890abcdefghijklmnopqrstuvwxyz",
            ),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            (
                r#"!@#$%^&*()_+}{][=-';":/.?>,<~"']}"#,
                ".........._......-..../..........",
            ),
            ("", ""),
        ] {
            clean_group(send.as_bytes(), false, &mut name);
            assert_eq!(name, want, "group {send}");
        }
        for (send, want) in [
            ("this.is.a.log.group.name", "this.is.a.log.group.name"),
            (
                r#"!@#$%^&*()_+}{][=-';":/.?>,<~"']}"#,
                r#"!@#$%^&.()_+}{][=-';"./.?>,<~"']}"#,
            ),
        ] {
            clean_stream(send.as_bytes(), &mut name);
            assert_eq!(name, want, "stream {send}");
        }
    }

    /// The issue's cases: per byte (`café` → `caf..`), `#` too, over the literal text.
    #[test]
    fn go_group_names_are_cleaned_per_byte_over_literal_text() {
        assert_eq!(go_group("café", "t", BODY).unwrap(), "caf..");
        assert_eq!(
            go_group("/a#b c@$(app)!", "t", BODY).unwrap(),
            "/a.b.c.web."
        );
        let mut name = String::new();
        clean_group("/a#b é".as_bytes(), true, &mut name);
        assert_eq!(name, "/a#b...", "CloudWatch's rule keeps '#'");
        assert_eq!(
            go_stream("a:b*c d/é$(tag)", "x:y", BODY).unwrap(),
            "a.b.c d/éx.y"
        );
        let mut long = String::new();
        clean_stream("é".repeat(400).as_bytes(), &mut long);
        assert_eq!(long.len(), 512);
        clean_stream(b"bad\xffutf8", &mut long);
        assert_eq!(long, "bad\u{fffd}utf8");
    }

    /// `strings.SplitN(tag, ".", 10)`: part 9 is the rest of the tag; one digit is read.
    #[test]
    fn go_tag_parts() {
        let tag = "a.b.c.d.e.f.g.h.i.j.k";
        let t = |s: &str| render_with(&Template::parse_go(s).unwrap(), tag, BODY, false);
        assert_eq!(t("$(tag[9])").unwrap(), "j.k");
        assert_eq!(t("$(tag[8])").unwrap(), "i");
        assert_eq!(t("$(tag[12])").unwrap(), "b", "one digit: part 1");
        assert_eq!(t("$(tag[x])").unwrap(), "a", "not a digit: part 0");
        assert_eq!(t("$(tag[)").unwrap(), tag, "'tag[' is the whole tag");
        assert_eq!(t("$(tag[3]x)").unwrap(), "d");
        assert_eq!(
            render_with(
                &Template::parse_go("$(tag[1])").unwrap(),
                "one",
                BODY,
                false
            ),
            Err(Failure::MissingTagField(1))
        );
        assert!(Template::parse_go("$(tag[12])").unwrap().notes()[0].contains("$(tag[1])"));
        assert!(Template::parse_go("$(tag[1])").unwrap().notes().is_empty());
        assert!(Template::parse_go("$(tag)").unwrap().notes().is_empty());
    }

    /// A key whose value is a map renders as nothing (`/app.$(k).end` → `/app..end`); text
    /// around subscripts is kept; a string ignores the subscripts after it.
    #[test]
    fn go_nested_keys() {
        assert_eq!(go("/app.$(k8s).end").unwrap(), "/app..end");
        assert_eq!(go("/app.$(k8s['m']).end").unwrap(), "/app..end");
        assert_eq!(go("$(k8s['ns']x)").unwrap(), "prodx");
        assert_eq!(
            go("$(k8s[\"ns\"])").unwrap(),
            "[\"ns\"]",
            "only ['…'] is a subscript"
        );
        assert_eq!(
            go("$(app['x'])").unwrap(),
            "web",
            "a string ignores subscripts"
        );
        assert_eq!(
            go("$(k8s['m']['ns'])"),
            Err(Failure::MissingKey("$(k8s['m']['ns'])".into())),
            "into m, then ns is looked up there"
        );
    }

    #[test]
    fn go_failures() {
        assert_eq!(
            go("$(missing)"),
            Err(Failure::MissingKey("$(missing)".into()))
        );
        assert_eq!(
            go("$(k8s['nope'])"),
            Err(Failure::MissingKey("$(k8s['nope'])".into()))
        );
        assert_eq!(go("$(bad)"), Err(Failure::NotText("$(bad)".into())));
        assert_eq!(
            go("$( app )"),
            Err(Failure::MissingKey("$( app )".into())),
            "no trimming, as in the Go plugin"
        );
        assert_eq!(go("$()"), Err(Failure::MissingKey("$()".into())));
        let t = Template::parse_go("$(ecs_task_id)").unwrap();
        assert_eq!(render(&t, false), Err(Failure::NoEcsMetadata));
        let empty = Ecs::default();
        let cx = Context {
            tag: "t",
            body: BODY,
            ecs: Some(&empty),
            uuid: "",
        };
        let mut out = Vec::new();
        assert_eq!(
            Template::parse_go("$(ecs_cluster)")
                .unwrap()
                .render(&cx, &mut out),
            Err(Failure::NoEcsValue("Cluster"))
        );
        assert!(Template::parse_go("$(unclosed").is_err());
        assert!(Template::parse_go("a$(b)$(c").is_err());
        assert_eq!(
            Template::parse_go("$(a$(b)c)").unwrap().needs(),
            Needs::Record,
            "the first ')' closes"
        );
    }

    #[test]
    fn record_accessor() {
        let ra = |s: &str| render(&Template::parse_record_accessor(s).unwrap(), false);
        assert_eq!(ra("app-$app/$k8s['ns']").unwrap(), "app-web/prod");
        assert_eq!(ra("$TAG").unwrap(), "kube.var.log");
        assert_eq!(ra("x-$TAG[1]-y").unwrap(), "x-var-y");
        assert_eq!(ra("x-$TAG[7]-y").unwrap(), "x--y", "no such part: nothing");
        assert_eq!(ra("cost $5 and $").unwrap(), "cost $5 and $");
        assert_eq!(ra("$n/$ok/$bad").unwrap(), "7/true/null");
        assert_eq!(ra("$nope"), Err(Failure::MissingKey("$nope".into())));
        assert_eq!(ra("$k8s"), Err(Failure::NotText("$k8s".into())));
        // [{"f": 1.5}]
        let body = [0x81, 0xa1, b'f', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
        let t = Template::parse_record_accessor("$f").unwrap();
        assert_eq!(render_with(&t, "t", &body, false).unwrap(), "1.500000");
        let go = Template::parse_go("$(f)").unwrap();
        assert_eq!(render_with(&go, "t", &body, false).unwrap(), "1.5");
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
        assert_eq!(Template::parse_go("a$(tag)b").unwrap().literal_text(), "ab");
    }

    /// `{"app": <app>}` (fewer than 32 bytes).
    fn app(value: &str) -> Vec<u8> {
        let mut v = vec![0x81, 0xa3, b'a', b'p', b'p', 0xa0 | value.len() as u8];
        v.extend_from_slice(value.as_bytes());
        v
    }

    fn confined_group(t: &str, value: &str) -> Result<String, Failure> {
        let mut t = Template::parse_go(t).unwrap();
        t.confine_group().unwrap();
        go_group_of(&t, value)
    }

    fn go_group_of(t: &Template, value: &str) -> Result<String, Failure> {
        let cx = Context {
            tag: "t",
            body: &app(value),
            ecs: None,
            uuid: "",
        };
        let (mut raw, mut name) = (Vec::new(), String::new());
        t.render_group(&cx, &mut raw, &mut name).map(|()| name)
    }

    #[test]
    fn literal_prefixes() {
        for (t, want) in [
            ("/ecs/app-$(app)", "/ecs/app-"),
            ("/ecs/$(tag)/$(app)", "/ecs/"),
            ("$(app)/x", ""),
            ("plain", "plain"),
        ] {
            assert_eq!(Template::parse_go(t).unwrap().literal_prefix(), want, "{t}");
        }
        let ra = |s: &str| Template::parse_record_accessor(s).unwrap();
        assert_eq!(ra("cost $5 $app").literal_prefix(), "cost $5 ");
        assert_eq!(ra("$TAG/$app").literal_prefix(), "");
    }

    /// The prefix to keep is the literal prefix cleaned as the name is; only templates with
    /// record keys are confined; an empty or `/`-only prefix cannot be.
    #[test]
    fn what_confinement_keeps() {
        let mut t = Template::parse_go("/my app#1/$(app)").unwrap();
        t.confine_group().unwrap();
        assert_eq!(t.confined_prefix(), Some("/my.app.1/"));
        let mut t = Template::parse_record_accessor("/a#b/$app").unwrap();
        t.confine_group().unwrap();
        assert_eq!(t.confined_prefix(), Some("/a#b/"), "'#' is kept there");
        let mut t = Template::parse_go("pod:1/$(app)").unwrap();
        t.confine_stream().unwrap();
        assert_eq!(t.confined_prefix(), Some("pod.1/"));
        for nothing in ["/static", "$(tag)", "$(ecs_task_id)-$(uuid)"] {
            let mut t = Template::parse_go(nothing).unwrap();
            assert_eq!(t.confine_group(), Ok(()), "{nothing}");
            assert_eq!(t.confined_prefix(), None, "{nothing}: nothing to confine");
        }
        for (unbounded, prefix) in [("$(app)", ""), ("/$(app)", "/"), ("//$(app)", "//")] {
            let mut t = Template::parse_go(unbounded).unwrap();
            assert_eq!(t.confine_group(), Err(prefix.to_owned()), "{unbounded}");
            assert_eq!(t.confine_stream(), Err(prefix.to_owned()), "{unbounded}");
        }
        let mut t = Template::parse_go("$(tag)/$(app)").unwrap();
        assert!(t.confine_group().is_err(), "a tag is not fixed text");
    }

    /// The rule: the name starts with the prefix and has no `..` segment from the prefix's
    /// last segment on, whether the record wrote it or the Go plugin's cleaning made it.
    #[test]
    fn confined_names_keep_their_prefix() {
        let t = "/ecs/app/$(app)";
        assert_eq!(confined_group(t, "web").unwrap(), "/ecs/app/web");
        assert_eq!(confined_group(t, "..x").unwrap(), "/ecs/app/..x");
        assert_eq!(confined_group(t, "x../y").unwrap(), "/ecs/app/x../y");
        assert_eq!(confined_group(t, "./x").unwrap(), "/ecs/app/./x");
        let dotdot = Err(Failure::DotDotSegment("/ecs/app/".into()));
        for escape in ["..", "../x", "x/../y", "../../other", "é/é/x", "x/é"] {
            assert_eq!(confined_group(t, escape), dotdot, "{escape:?}");
        }
        // The segment the prefix ends in counts; the ones inside the prefix are its own.
        let t = "/ecs/app-$(app)";
        assert_eq!(confined_group(t, "..").unwrap(), "/ecs/app-..");
        assert!(confined_group(t, "/../x").is_err());
        assert!(confined_group("/ecs/app/.$(app)", ".").is_err());
        assert_eq!(
            confined_group("/a/../b/$(app)", "x").unwrap(),
            "/a/../b/x",
            "the operator's own text"
        );
        // Unconfined, as the Go plugin names it.
        let t = Template::parse_go("/ecs/app/$(app)").unwrap();
        assert_eq!(go_group_of(&t, "é/é/x").unwrap(), "/ecs/app/../../x");
        // Streams: the same rule over the stream's cleaning.
        let mut t = Template::parse_go("pod-$(app)").unwrap();
        t.confine_stream().unwrap();
        let stream = |v: &str| {
            let cx = Context {
                tag: "t",
                body: &app(v),
                ecs: None,
                uuid: "",
            };
            let (mut raw, mut name) = (Vec::new(), String::new());
            t.render_stream(&cx, &mut raw, &mut name).map(|()| name)
        };
        assert_eq!(stream("a:b/c").unwrap(), "pod-a.b/c");
        assert_eq!(stream("/../x"), Err(Failure::DotDotSegment("pod-".into())));
        // Record-accessor templates too.
        let mut t = Template::parse_record_accessor("ra/$app").unwrap();
        t.confine_group().unwrap();
        assert_eq!(go_group_of(&t, "web").unwrap(), "ra/web");
        assert_eq!(
            go_group_of(&t, "../x"),
            Err(Failure::DotDotSegment("ra/".into()))
        );
        // Rendering never drops the prefix; the check holds anyway.
        assert_eq!(
            confined("/ecs/", "/other/x"),
            Err(Failure::OutsidePrefix("/ecs/".into()))
        );
        assert!(
            Failure::DotDotSegment("/ecs/".into())
                .to_string()
                .contains("confine_names")
        );
    }

    #[test]
    fn duplicate_keys_use_the_last_value_as_a_go_map_does() {
        // {"a": "first", "a": "second"}
        let body = [
            0x82, 0xa1, b'a', 0xa5, b'f', b'i', b'r', b's', b't', 0xa1, b'a', 0xa6, b's', b'e',
            b'c', b'o', b'n', b'd',
        ];
        let t = Template::parse_go("$(a)").unwrap();
        assert_eq!(render_with(&t, "t", &body, false).unwrap(), "second");
    }
}
