//! The documentation stays true: the reference's options table names exactly the options
//! Init reads.

use std::cell::RefCell;
use std::collections::BTreeSet;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

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
