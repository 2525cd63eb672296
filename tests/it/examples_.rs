//! The example files users copy must parse, and say the same things: the FireLens options
//! and the Fluent Bit configurations are accepted by the plugin's own option parser, and the
//! IAM policies name the accounts and roles the task definition uses.
//!
//! JSON is read with serde_json; YAML with PyYAML from the moto virtualenv (moto depends on
//! it), which hands each file back as JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flb_out_cloudwatch::config::Config;
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every file under `examples/` whose name ends with one of `extensions`, sorted.
fn files(extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![examples_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn json(name: &str) -> Value {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every document of every YAML example, as JSON, by file name relative to `examples/`.
fn yaml_documents() -> HashMap<String, Vec<Value>> {
    const TO_JSON: &str = r#"
import json, sys, yaml
out = {}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        out[path] = list(yaml.safe_load_all(f))
print(json.dumps(out))
"#;
    let python = flb_host::moto::ensure_installed().expect("moto virtualenv (PyYAML)");
    let paths = files(&["yaml", "yml"]);
    assert!(!paths.is_empty(), "no YAML examples found");
    let out = Command::new(python)
        .arg("-c")
        .arg(TO_JSON)
        .args(&paths)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "a YAML example does not parse:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: HashMap<String, Vec<Value>> =
        serde_json::from_slice(&out.stdout).expect("python printed JSON");
    let dir = examples_dir();
    parsed
        .into_iter()
        .map(|(path, docs)| {
            let name = Path::new(&path)
                .strip_prefix(&dir)
                .expect("under examples/")
                .to_string_lossy()
                .into_owned();
            (name, docs)
        })
        .collect()
}

/// Options as the plugin reads them (Fluent Bit's own keys left out).
fn plugin_config(options: &serde_json::Map<String, Value>) -> Config {
    let get = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    Config::from_properties(get, None).unwrap_or_else(|e| panic!("{e} in {options:?}"))
}

/// The account of an ARN.
fn account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

#[test]
fn every_json_example_parses() {
    let paths = files(&["json"]);
    assert!(paths.len() >= 6, "JSON examples missing: {paths:?}");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_yaml_example_parses() {
    let docs = yaml_documents();
    assert!(docs.contains_key("fluent-bit.yaml"), "{:?}", docs.keys());
    assert!(
        docs.contains_key("eks/fluent-bit-daemonset.yaml"),
        "{:?}",
        docs.keys()
    );
    for (name, docs) in &docs {
        assert!(!docs.is_empty(), "{name} is empty");
    }
}

/// The task definition's FireLens options pass the plugin's checks, and the IAM examples
/// fit it: the task role may assume the destination role, whose trust policy names the
/// task role, and whose permissions are the example's three actions on its log group.
/// (That they are exactly what `flb-cloudwatch-check --print-iam` prints is check/tests/iam.rs.)
#[test]
fn the_cross_account_examples_agree() {
    let task = json("ecs-task-definition.json");
    let options = task["containerDefinitions"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .and_then(|c| c["logConfiguration"]["options"].as_object())
        .expect("a container logging through FireLens");
    assert_eq!(options["Name"], "cloudwatch");
    let config = plugin_config(options);
    let role = config.role_arn.clone().expect("role_arn");
    let task_role = task["taskRoleArn"].as_str().expect("taskRoleArn");
    let source = account(task_role);
    let destination = account(&role);
    assert_ne!(source, destination, "the example is cross-account");

    let assume = json("iam/source-task-role-policy.json");
    assert_eq!(assume["Statement"][0]["Action"], "sts:AssumeRole");
    assert_eq!(assume["Statement"][0]["Resource"], role.as_str());

    for trust in [
        "iam/destination-role-trust-policy.json",
        "iam/destination-role-trust-policy-external-id.json",
    ] {
        let statement = &json(trust)["Statement"][0];
        assert_eq!(statement["Action"], "sts:AssumeRole", "{trust}");
        assert_eq!(statement["Principal"]["AWS"], task_role, "{trust}");
    }
    assert!(
        json("iam/destination-role-trust-policy-external-id.json")["Statement"][0]["Condition"]
            ["StringEquals"]["sts:ExternalId"]
            .is_string()
    );

    let permissions = json("iam/destination-role-permissions.json");
    let statements = permissions["Statement"].as_array().expect("statements");
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            v => v
                .as_array()
                .expect("a string or a list")
                .iter()
                .map(|x| x.as_str().expect("a string").to_owned())
                .collect(),
        }
    };
    let group = format!(":log-group:{}", config.log_group_name.source());
    let mut actions = Vec::new();
    for s in statements {
        for r in list(&s["Resource"]) {
            assert_eq!(account(&r), destination, "{r}");
            assert!(r.contains(&group), "{r}");
        }
        actions.extend(list(&s["Action"]));
    }
    actions.sort();
    assert_eq!(
        actions,
        [
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents"
        ]
    );
}

/// The YAML configuration loads the library where the image puts it and its output is
/// the same as fluent-bit.conf's; the EKS ConfigMap's output passes the plugin's checks.
#[test]
fn the_yaml_configurations_are_valid_for_the_plugin() {
    let docs = yaml_documents();
    let main = &docs["fluent-bit.yaml"][0];
    assert_eq!(
        main["plugins"][0],
        "/fluent-bit/plugins/libflb_out_cloudwatch.so"
    );
    let output = main["pipeline"]["outputs"][0]
        .as_object()
        .expect("an output");
    assert_eq!(output["name"], "cloudwatch");
    let config = plugin_config(output);
    assert_eq!(config.log_group_name.source(), "/ecs/httpd");
    assert!(config.auto_create_group);

    let eks = &docs["eks/fluent-bit-daemonset.yaml"];
    let conf = eks
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["fluent-bit.conf"].as_str())
        .expect("the ConfigMap's fluent-bit.conf");
    let section = conf.split("[OUTPUT]").nth(1).expect("an [OUTPUT] section");
    let options: serde_json::Map<String, Value> = section
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(k, v)| (k.to_owned(), Value::String(v.trim().to_owned())))
        .collect();
    assert_eq!(options["Name"], "cloudwatch");
    assert!(plugin_config(&options).role_arn.is_some());
    let account_annotation = eks
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .and_then(|d| d["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str())
        .expect("the IRSA annotation");
    assert!(account_annotation.starts_with("arn:aws:iam::"));
}
