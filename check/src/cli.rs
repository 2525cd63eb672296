//! The command line: the `[OUTPUT]` options as Fluent Bit's own command line takes them
//! (`-p key=value`), the library (`-e path`), and the check's own flags. Nothing here does
//! I/O.

use std::path::PathBuf;

pub const USAGE: &str = "\
Checks a `cloudwatch` [OUTPUT] before it is deployed: loads the plugin library as Fluent Bit
does, validates the options (its Init), resolves the AWS credentials and shows whose they
are, assumes role_arn when set, and sends one test event through the plugin. Prints the IAM
documents the configuration needs.

Usage: flb-cloudwatch-check [-e LIBRARY] -p KEY=VALUE... [--tag TAG] [--dry-run] [--print-iam]
       flb-cloudwatch-check --task-definition FILE [--container NAME] [-p KEY=VALUE...]
                            [--dry-run] [--print-iam[=json]] [--show-secrets]

  -p, --property KEY=VALUE  an option of the [OUTPUT] section, as `fluent-bit -p` takes it;
                            with --task-definition, added to the container's options
                            (replacing one of the same name)
      --task-definition FILE
                            an ECS task definition (the JSON you register, or the output of
                            `aws ecs describe-task-definition`): the [OUTPUT] FireLens makes
                            of the container logging through it to cloudwatch
      --container NAME      that container, when several log through FireLens to cloudwatch
  -e, --library PATH        the plugin library (default: $FLB_CLOUDWATCH_LIBRARY, else
                            libflb_out_cloudwatch.so in the cargo target directory)
      --tag TAG             the tag of the test event (default: flb-cloudwatch-check; with
                            --task-definition, the tag FireLens gives: NAME-firelens-check)
      --dry-run             stop before sending the test event; with --task-definition or
                            --print-iam, make no AWS call at all (no credentials needed)
      --print-iam[=json]    print the IAM documents the options need: the writer's
                            permission policy and, with role_arn, the destination role's
                            trust policy and the task role's sts:AssumeRole statement
                            (=json: one JSON document holding them all)
      --show-secrets        print the external_id in the trust policy (else a placeholder)
  -h, --help                this text

Run it where the plugin runs (the same credentials, network and environment: in an ECS
task, with ECS Exec in the log router container). Each step prints `✓ step` or
`✗ step: cause` with a hint; the plugin's own log lines go to stderr. Exit status: 0 when
every step passed, 1 otherwise, 2 for a bad command line or task definition.

Examples:
  flb-cloudwatch-check -p region=ap-northeast-1 -p log_group_name=/ecs/httpd \\
    -p log_stream_name=httpd-task -p auto_create_group=true \\
    -p role_arn=arn:aws:iam::222222222222:role/firelens-cross-account
  flb-cloudwatch-check --task-definition task-definition.json --print-iam --dry-run";

/// The default tag of the test event (with `log_stream_prefix`, the stream is prefix + tag).
pub const DEFAULT_TAG: &str = "flb-cloudwatch-check";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-e`; `None` means the default library.
    pub library: Option<PathBuf>,
    /// `-p` pairs in the order given; keys as typed.
    pub properties: Vec<(String, String)>,
    pub tag: String,
    /// Whether `--tag` was given (else the default, or FireLens's tag).
    pub tag_given: bool,
    pub dry_run: bool,
    /// `--task-definition`.
    pub task_definition: Option<PathBuf>,
    /// `--container`.
    pub container: Option<String>,
    pub print_iam: Option<IamFormat>,
    pub show_secrets: bool,
}

/// How `--print-iam` prints the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamFormat {
    /// Each document with a comment line saying where it goes.
    Text,
    /// One JSON document holding them all.
    Json,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Check(Args),
    Help,
}

/// Parses the arguments (without the program name). The error says what is wrong.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut out = Args {
        library: None,
        properties: Vec::new(),
        tag: DEFAULT_TAG.to_owned(),
        tag_given: false,
        dry_run: false,
        task_definition: None,
        container: None,
        print_iam: None,
        show_secrets: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--dry-run" => out.dry_run = true,
            "-e" | "--library" => out.library = Some(PathBuf::from(value(&arg)?)),
            "--tag" => {
                let tag = value(&arg)?;
                if tag.is_empty() {
                    return Err("--tag needs a non-empty tag".into());
                }
                out.tag = tag;
                out.tag_given = true;
            }
            "--task-definition" => out.task_definition = Some(PathBuf::from(value(&arg)?)),
            "--container" => out.container = Some(value(&arg)?),
            "--print-iam" | "--print-iam=text" => out.print_iam = Some(IamFormat::Text),
            "--print-iam=json" => out.print_iam = Some(IamFormat::Json),
            "--show-secrets" => out.show_secrets = true,
            other if other.starts_with("--print-iam=") => {
                return Err(format!("{other}: expected --print-iam or --print-iam=json"));
            }
            "-p" | "--property" => out.properties.push(property(&value(&arg)?)?),
            other => {
                return Err(format!(
                    "unexpected argument {other:?}: options are given as -p key=value"
                ));
            }
        }
    }
    if out.properties.is_empty() && out.task_definition.is_none() {
        return Err(
            "no options: give the [OUTPUT] section's options as -p key=value, or --task-definition FILE"
                .into(),
        );
    }
    if out.container.is_some() && out.task_definition.is_none() {
        return Err("--container names a container of --task-definition FILE".into());
    }
    Ok(Command::Check(out))
}

/// `key=value`, split at the first `=` (a value may contain more).
fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("-p {text:?}: expected key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_flags_and_defaults() {
        let Ok(Command::Check(a)) = args(&[
            "-p",
            "region=eu-west-1",
            "--property",
            "log_key=a=b",
            "-e",
            "/x/lib.so",
            "--dry-run",
        ]) else {
            panic!("parse failed")
        };
        assert_eq!(
            a.properties,
            vec![
                ("region".to_string(), "eu-west-1".to_string()),
                ("log_key".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(a.library, Some(PathBuf::from("/x/lib.so")));
        assert!(a.dry_run);
        assert_eq!(a.tag, DEFAULT_TAG);
        assert_eq!(args(&["--help"]), Ok(Command::Help));
        assert!(!a.tag_given);
        assert_eq!(a.print_iam, None);

        let Ok(Command::Check(t)) = args(&[
            "--task-definition",
            "task.json",
            "--container",
            "app",
            "--print-iam=json",
            "--show-secrets",
            "--tag",
            "t",
        ]) else {
            panic!("parse failed")
        };
        assert_eq!(t.task_definition, Some(PathBuf::from("task.json")));
        assert_eq!(t.container.as_deref(), Some("app"));
        assert_eq!(t.print_iam, Some(IamFormat::Json));
        assert!(t.show_secrets && t.tag_given && t.properties.is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        assert!(args(&[]).unwrap_err().contains("no options"));
        assert!(args(&["-p"]).unwrap_err().contains("-p needs a value"));
        assert!(args(&["-p", "region"]).unwrap_err().contains("key=value"));
        assert!(args(&["-p", "=x"]).unwrap_err().contains("key=value"));
        assert!(
            args(&["region=x"])
                .unwrap_err()
                .contains("unexpected argument")
        );
        assert!(
            args(&["-p", "a=b", "--tag", ""])
                .unwrap_err()
                .contains("--tag")
        );
        assert!(
            args(&["-p", "a=b", "--container", "x"])
                .unwrap_err()
                .contains("--task-definition")
        );
        assert!(
            args(&["-p", "a=b", "--print-iam=yaml"])
                .unwrap_err()
                .contains("--print-iam=json")
        );
    }
}
