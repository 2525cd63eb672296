//! An ECS task definition as users have it, read the way FireLens reads it: the JSON they
//! register (`containerDefinitions` at the top) or the output of
//! `aws ecs describe-task-definition` (the same under `taskDefinition`).
//!
//! For a container whose `logConfiguration.logDriver` is `awsfirelens`, FireLens makes one
//! `[OUTPUT]`: `Name` from the options' `Name`, `Match <container>-firelens*` (the tag of the
//! container's records is `<container>-firelens-<task id>`), and every other option as a
//! property, except FireLens's own `log-driver-buffer-limit`. `secretOptions` are added by
//! ECS at run time from Secrets Manager or SSM: only their names are known here, and only
//! their names are ever shown. Nothing here does AWS calls; errors are one line naming the
//! file and what was expected.

use std::path::Path;

use serde_json::{Map, Value};

/// The plugin names FireLens options select this check for: `cloudwatch` (this plugin in
/// the image, where AWS's Go plugin was) and `cloudwatch_logs` (Fluent Bit's C plugin,
/// whose options this plugin also reads).
pub const NAMES: &[&str] = &["cloudwatch", "cloudwatch_logs"];

/// Options FireLens takes for itself: not properties of the `[OUTPUT]`.
pub const FIRELENS_KEYS: &[&str] = &["log-driver-buffer-limit"];

/// What the check needs of a task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The file, as named on the command line.
    pub file: String,
    /// `describe-task-definition` output (under `taskDefinition`) rather than the
    /// registered form.
    pub described: bool,
    pub task_role: Option<String>,
    /// `runtimePlatform`: `operatingSystemFamily/cpuArchitecture`, as far as given.
    pub runtime_platform: Option<String>,
    /// Containers with `firelensConfiguration`: the log routers.
    pub routers: Vec<Router>,
    /// Containers logging through FireLens to `cloudwatch` or `cloudwatch_logs`.
    pub outputs: Vec<Output>,
    /// Containers logging through FireLens to another plugin: (container, `Name`).
    pub others: Vec<(String, String)>,
}

/// A log router container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub container: String,
    /// `firelensConfiguration.type`: `fluentbit` or `fluentd`.
    pub kind: String,
    /// `firelensConfiguration.options` (e.g. `enable-ecs-log-metadata`), as given.
    pub options: Vec<(String, String)>,
}

/// The `[OUTPUT]` FireLens makes of one container's `logConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub container: String,
    /// The options' `Name`.
    pub name: String,
    /// The other options (by name): the `[OUTPUT]`'s properties.
    pub properties: Vec<(String, String)>,
    /// FireLens's own options found among them (not properties).
    pub firelens_options: Vec<(String, String)>,
    /// `secretOptions` names: properties ECS adds at run time.
    pub secret_options: Vec<String>,
}

impl Output {
    /// The `Match` FireLens generates.
    pub fn match_pattern(&self) -> String {
        format!("{}-firelens*", self.container)
    }

    /// The tag of this container's records, with `task` for the task id.
    pub fn tag(&self, task: &str) -> String {
        format!("{}-firelens-{task}", self.container)
    }
}

/// Reads and interprets `path`. `Err` is one line naming the file and what was expected.
pub fn read(path: &Path) -> Result<Task, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    parse(&file, &text)
}

/// Interprets `text`, the content of `file`.
pub fn parse(file: &str, text: &str) -> Result<Task, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let what = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        format!(
            "{file}:{}:{}: not JSON ({what}): expected an ECS task definition",
            e.line(),
            e.column()
        )
    })?;
    let not_a_task = || {
        format!(
            "{file}: not an ECS task definition: expected \"containerDefinitions\" (the JSON you register) or \"taskDefinition\".\"containerDefinitions\" (aws ecs describe-task-definition)"
        )
    };
    let (def, described) = match doc.get("taskDefinition") {
        Some(inner) if inner.get("containerDefinitions").is_some() => (inner, true),
        _ => (&doc, false),
    };
    let containers = def
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .ok_or_else(not_a_task)?;
    let mut task = Task {
        file: file.to_owned(),
        described,
        task_role: string(def, "taskRoleArn"),
        runtime_platform: def.get("runtimePlatform").and_then(platform),
        routers: Vec::new(),
        outputs: Vec::new(),
        others: Vec::new(),
    };
    for (i, c) in containers.iter().enumerate() {
        let name = string(c, "name").ok_or_else(|| {
            format!(
                "{file}: containerDefinitions[{i}] has no \"name\": expected a container definition"
            )
        })?;
        if let Some(fl) = c.get("firelensConfiguration") {
            task.routers.push(Router {
                container: name.clone(),
                kind: string(fl, "type").unwrap_or_default(),
                options: match fl.get("options") {
                    Some(o) => pairs(file, &name, "firelensConfiguration.options", o)?,
                    None => Vec::new(),
                },
            });
        }
        let Some(log) = c.get("logConfiguration") else {
            continue;
        };
        if log.get("logDriver").and_then(Value::as_str) != Some("awsfirelens") {
            continue;
        }
        let options = match log.get("options") {
            Some(o) => pairs(file, &name, "logConfiguration.options", o)?,
            None => Vec::new(),
        };
        let plugin = options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("name"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if !NAMES.contains(&plugin.as_str()) {
            task.others.push((name, plugin));
            continue;
        }
        let (firelens_options, properties) = options
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("name"))
            .partition(|(k, _)| FIRELENS_KEYS.contains(&k.to_ascii_lowercase().as_str()));
        let secret_options = match log.get("secretOptions") {
            Some(Value::Array(list)) => list.iter().filter_map(|s| string(s, "name")).collect(),
            Some(_) => {
                return Err(format!(
                    "{file}: container '{name}': logConfiguration.secretOptions is not a list: expected [{{\"name\": …, \"valueFrom\": …}}]"
                ));
            }
            None => Vec::new(),
        };
        task.outputs.push(Output {
            container: name,
            name: plugin,
            properties,
            firelens_options,
            secret_options,
        });
    }
    Ok(task)
}

/// The output to check: the one named by `container`, else the only one.
pub fn select<'t>(task: &'t Task, container: Option<&str>) -> Result<&'t Output, String> {
    let file = &task.file;
    let names = || {
        task.outputs
            .iter()
            .map(|o| o.container.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match container {
        Some(wanted) => task
            .outputs
            .iter()
            .find(|o| o.container == wanted)
            .ok_or_else(|| {
                let those = if task.outputs.is_empty() {
                    "none does".to_owned()
                } else {
                    format!("those that do: {}", names())
                };
                format!(
                    "{file}: no container '{wanted}' logs through FireLens to cloudwatch or cloudwatch_logs ({those}): expected --container to name one"
                )
            }),
        None => match task.outputs.as_slice() {
            [one] => Ok(one),
            [] => {
                let others = if task.others.is_empty() {
                    String::new()
                } else {
                    let list: Vec<String> = task
                        .others
                        .iter()
                        .map(|(c, n)| format!("'{c}' to '{n}'"))
                        .collect();
                    format!(" (FireLens sends {})", list.join(", "))
                };
                Err(format!(
                    "{file}: no container logs through FireLens to cloudwatch{others}: expected a logConfiguration with \"logDriver\": \"awsfirelens\" and \"Name\": \"cloudwatch\""
                ))
            }
            _ => Err(format!(
                "{file}: several containers log through FireLens to cloudwatch ({}): expected --container NAME to choose one",
                names()
            )),
        },
    }
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `runtimePlatform` as `LINUX/ARM64`.
fn platform(v: &Value) -> Option<String> {
    let parts: Vec<String> = ["operatingSystemFamily", "cpuArchitecture"]
        .iter()
        .filter_map(|k| string(v, k))
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An options object as (key, value) pairs. ECS takes strings; a number or boolean is
/// taken as its text (as the console writes it), anything else is an error.
fn pairs(
    file: &str,
    container: &str,
    what: &str,
    v: &Value,
) -> Result<Vec<(String, String)>, String> {
    let Some(map): Option<&Map<String, Value>> = v.as_object() else {
        return Err(format!(
            "{file}: container '{container}': {what} is not an object: expected {{\"key\": \"value\", …}}"
        ));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(format!(
                "{file}: container '{container}': {what}.{k} is not a string: expected \"{k}\": \"value\""
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = r#"{
      "taskRoleArn": "arn:aws:iam::111111111111:role/app",
      "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
      "containerDefinitions": [
        {"name": "log_router", "firelensConfiguration": {"type": "fluentbit",
          "options": {"enable-ecs-log-metadata": "false"}}},
        {"name": "app", "logConfiguration": {"logDriver": "awsfirelens",
          "options": {"Name": "cloudwatch", "region": "eu-west-1", "log_group_name": "/a",
                      "log-driver-buffer-limit": "2097152", "retry_limit": 2},
          "secretOptions": [{"name": "external_id", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/x"}]}},
        {"name": "side", "logConfiguration": {"logDriver": "awsfirelens",
          "options": {"Name": "firehose"}}},
        {"name": "plain", "logConfiguration": {"logDriver": "awslogs"}}
      ]}"#;

    #[test]
    fn a_registered_task_definition_is_read_as_firelens_reads_it() {
        let task = parse("t.json", TASK).unwrap();
        assert!(!task.described);
        assert_eq!(
            task.task_role.as_deref(),
            Some("arn:aws:iam::111111111111:role/app")
        );
        assert_eq!(task.runtime_platform.as_deref(), Some("LINUX/ARM64"));
        assert_eq!(task.routers.len(), 1);
        assert_eq!(task.routers[0].kind, "fluentbit");
        assert_eq!(
            task.others,
            vec![("side".to_string(), "firehose".to_string())]
        );
        let out = select(&task, None).unwrap();
        assert_eq!(out.container, "app");
        assert_eq!(out.match_pattern(), "app-firelens*");
        assert_eq!(
            out.properties,
            vec![
                ("log_group_name".to_string(), "/a".to_string()),
                ("region".to_string(), "eu-west-1".to_string()),
                ("retry_limit".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(out.firelens_options[0].0, "log-driver-buffer-limit");
        assert_eq!(out.secret_options, vec!["external_id".to_string()]);
    }

    #[test]
    fn the_described_form_is_read_too() {
        let described = format!(r#"{{"taskDefinition": {TASK}, "tags": []}}"#);
        let task = parse("d.json", &described).unwrap();
        assert!(task.described);
        assert_eq!(select(&task, Some("app")).unwrap().name, "cloudwatch");
    }

    #[test]
    fn bad_input_is_one_line_naming_the_file() {
        let e = parse("t.json", "{\n  \"a\": ,\n}").unwrap_err();
        assert!(e.starts_with("t.json:2:8: not JSON ("), "{e}");
        let e = parse("t.json", r#"{"family": "x"}"#).unwrap_err();
        assert!(e.contains("not an ECS task definition"), "{e}");
        let task = parse("t.json", r#"{"containerDefinitions": []}"#).unwrap();
        assert!(
            select(&task, None)
                .unwrap_err()
                .contains("no container logs through FireLens")
        );
        let two = TASK.replace("\"firehose\"", "\"cloudwatch_logs\"");
        let task = parse("t.json", &two).unwrap();
        let e = select(&task, None).unwrap_err();
        assert!(
            e.contains("several containers") && e.contains("app, side"),
            "{e}"
        );
        let e = select(&task, Some("nope")).unwrap_err();
        assert!(
            e.contains("no container 'nope'") && e.contains("app, side"),
            "{e}"
        );
        let bad = TASK.replace("\"retry_limit\": 2", "\"retry_limit\": [2]");
        assert!(
            parse("t.json", &bad)
                .unwrap_err()
                .contains("retry_limit is not a string")
        );
        for e in [
            parse("t.json", "{\n  \"a\": ,\n}").unwrap_err(),
            parse("t.json", r#"{"family": "x"}"#).unwrap_err(),
        ] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
