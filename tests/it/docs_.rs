//! The documentation stays true: every relative link and `#anchor` in the repository's
//! Markdown resolves (anchors by GitHub's rules), and the reference's options table names
//! exactly the options Init reads. No network: links with a scheme are not followed.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown files of the repository: the README, `docs/`, and the READMEs and notes
/// elsewhere (not build output, not dot directories).
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let skipped = ["target", "dist", "corpus", "artifacts", "node_modules"];
                if !name.starts_with('.') && !skipped.contains(&name.as_str()) {
                    walk(&path, out);
                }
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(ROOT), &mut files);
    files
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// `line` without its inline code spans (a link inside backticks is no link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The destinations of the inline links and images of `line` (`[text](dest)`, `![alt](dest
/// "title")`).
fn link_destinations(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => return true,
                    ')' => depth -= 1,
                    _ => {}
                }
                false
            })
            .map(|(j, _)| j);
        let Some(end) = end else { break };
        let dest = after[..end].split_whitespace().next().unwrap_or_default();
        out.push(dest.trim_matches(|c| c == '<' || c == '>').to_owned());
        rest = &after[end..];
    }
    out
}

/// A heading's anchor as GitHub makes it: the text as rendered (code spans without their
/// backticks, links as their text, no emphasis markers), lowercased, every character but
/// letters, digits, spaces, `-` and `_` removed, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // Links render as their text.
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").and_then(|m| {
            let close = rest[open + m..].find(')')?;
            Some((open + m, open + m + close))
        }) {
            Some((mid, close)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..mid]);
                rest = &rest[close + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.chars()
        .filter(|&c| c != '`' && c != '*')
        .flat_map(char::to_lowercase)
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text: one per ATX heading outside code blocks, a repeated
/// one numbered `-1`, `-2`… as GitHub does.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let title = line[hashes..].trim().trim_end_matches('#').trim_end();
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

#[test]
fn slugs_follow_github_s_rules() {
    assert_eq!(
        slug("Migrating from AWS's Go plugin `cloudwatch`"),
        "migrating-from-awss-go-plugin-cloudwatch"
    );
    assert_eq!(
        slug("Migrating from Fluent Bit's C plugin `cloudwatch_logs`"),
        "migrating-from-fluent-bits-c-plugin-cloudwatch_logs"
    );
    assert_eq!(
        slug("Install: the image and the release"),
        "install-the-image-and-the-release"
    );
    assert_eq!(
        slug("In the destination account (222222222222)"),
        "in-the-destination-account-222222222222"
    );
    assert_eq!(slug("**Bold** and [a link](x.md)"), "bold-and-a-link");
    assert_eq!(slug("1. The image"), "1-the-image");
    let text = "# A\n## Options\n```sh\n# not a heading\n```\n### Options\n## Options #\n";
    let got: Vec<String> = anchors(text).into_iter().collect();
    assert_eq!(got, ["a", "options", "options-1", "options-2"]);
    assert_eq!(
        link_destinations("see [x](a.md#b) and `[y](no.md)`, ![i](img.png \"t\")"),
        ["a.md#b", "img.png"]
    );
}

/// Every relative link in the Markdown files names a file or directory that exists, and
/// every `#anchor` a heading of the file it points into.
#[test]
fn every_relative_link_and_anchor_resolves() {
    let files = markdown_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
        .collect();
    for want in ["README.md", "docs/guide.md", "docs/reference.md"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not among {names:?}"
        );
    }
    let mut anchor_cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("markdown");
        let here = file.strip_prefix(ROOT).unwrap().display().to_string();
        for (number, line) in prose_lines(&text) {
            for dest in link_destinations(line) {
                if dest.contains("://") || dest.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = dest.split_once('#').unwrap_or((&dest, ""));
                let target = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                if !target.exists() {
                    broken.push(format!("{here}:{number}: {dest}: no such file"));
                    continue;
                }
                if anchor.is_empty() {
                    continue;
                }
                let target = target.canonicalize().expect("canonical");
                let known = anchor_cache.entry(target.clone()).or_insert_with(|| {
                    anchors(&std::fs::read_to_string(&target).unwrap_or_default())
                });
                if !known.contains(anchor) {
                    broken.push(format!("{here}:{number}: {dest}: no such anchor"));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The options of the first table under `## Options` in `docs/reference.md` (a row may
/// name several, separated by commas).
fn reference_options() -> Vec<String> {
    let reference =
        std::fs::read_to_string(format!("{ROOT}/docs/reference.md")).expect("docs/reference.md");
    let rows: Vec<&str> = reference
        .lines()
        .skip_while(|l| *l != "## Options")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its separator
        .collect();
    assert!(!rows.is_empty(), "no options table under '## Options'");
    rows.iter()
        .flat_map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            cell.split(',')
                .map(|o| o.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The options Init reads: the names `Config::from_properties` (which Init calls with the
/// host's property getter) asks for, on a minimal valid configuration.
fn options_init_reads() -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let config = flb_out_cloudwatch::config::Config::from_properties(
        |name| {
            asked.borrow_mut().insert(name.to_owned());
            match name {
                "region" => Some("ap-northeast-1".to_owned()),
                "log_group_name" => Some("/ecs/httpd".to_owned()),
                "log_stream_name" => Some("s".to_owned()),
                _ => None,
            }
        },
        None,
    );
    assert!(config.is_ok(), "the minimal configuration failed");
    asked.into_inner()
}

/// The reference's options table lists exactly the options Init reads: a row missing or
/// extra fails. (`OPTION_NAMES`, which the check command names options from, agrees.)
#[test]
fn the_reference_lists_exactly_the_options_init_reads() {
    let documented = reference_options();
    let mut seen = BTreeSet::new();
    for o in &documented {
        assert!(seen.insert(o.clone()), "{o} has two rows");
    }
    let read = options_init_reads();
    let missing: Vec<&String> = read.difference(&seen).collect();
    let extra: Vec<&String> = seen.difference(&read).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/reference.md's options table: missing {missing:?}, not read by Init {extra:?}"
    );
    let names: BTreeSet<String> = flb_out_cloudwatch::config::OPTION_NAMES
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(names, read, "config::OPTION_NAMES against what Init reads");
}
