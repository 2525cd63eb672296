//! `flb-cloudwatch-check` as users run it: the built binary, in a child process with
//! exactly a task's AWS environment (the source account's keys, no profile, no IMDS, no ECS
//! metadata), against moto on loopback. Every endpoint is given, so nothing leaves the
//! machine.

use std::process::{Command, Output};

use flb_host::cloud::{Account, SOURCE_ACCOUNT, SOURCE_SECRET_KEY};
use flb_host::fake::JsonServer;
use flb_host::moto::Moto;

const REGION: &str = "ap-northeast-1";
const DEST_ACCOUNT: &str = "222222222222";
const ROLE_ARN: &str = "arn:aws:iam::222222222222:role/firelens-cross-account";
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";

/// Runs the check with `args`, in a task's environment.
fn check(args: &[&str]) -> Output {
    check_with(args, &[])
}

/// Runs the check with `args`, in a task's environment plus `vars`.
fn check_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flb-cloudwatch-check"));
    flb_host::cloud::task_environment(&mut cmd);
    cmd.env_remove("FLB_CLOUDWATCH_CHECK_SEND")
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("run flb-cloudwatch-check")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `-p` options of the ECS example, against moto.
fn firelens(url: &str, stream: &str) -> Vec<String> {
    [
        format!("region={REGION}"),
        "log_group_name=/ecs/httpd".into(),
        format!("log_stream_name={stream}"),
        "auto_create_group=true".into(),
        format!("role_arn={ROLE_ARN}"),
        format!("endpoint={url}"),
        format!("sts_endpoint={url}"),
    ]
    .into_iter()
    .flat_map(|p| ["-p".to_string(), p])
    .collect()
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The seed scenario, with the example task definition's options: every step passes, the
/// stream is named by `$(ecs_task_id)` from the task metadata endpoint (a stand-in on
/// loopback), and the test event lands in the destination account through the assumed role,
/// not in the source account.
#[test]
fn cross_account_check_passes_and_the_event_lands() {
    let moto = Moto::start().expect("moto");
    let agent = JsonServer::start(vec![(
        "/v4/check/task",
        vec![(
            200,
            format!(
                r#"{{"Cluster":"arn:aws:ecs:{REGION}:{SOURCE_ACCOUNT}:cluster/default","TaskARN":"arn:aws:ecs:{REGION}:{SOURCE_ACCOUNT}:task/default/{TASK_ID}","Family":"httpd"}}"#
            ),
        )],
    )]);
    let metadata = agent.url("/v4/check");
    let out = check_with(
        &refs(&firelens(&moto.url(), "$(ecs_task_id)")),
        &[("ECS_CONTAINER_METADATA_URI_V4", &metadata)],
    );
    let (stdout, stderr) = text(&out);
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{context}");
    for line in [
        "✓ library: ",
        &format!(
            "✓ options: accepted: region ap-northeast-1; the test event goes to group '/ecs/httpd' stream '{TASK_ID}'; auto_create_group true; role {ROLE_ARN}"
        ),
        "✓ credentials: from environment variables",
        &format!("✓ identity: arn:aws:sts::{SOURCE_ACCOUNT}:user/moto (account {SOURCE_ACCOUNT})"),
        &format!(
            "✓ assume role: arn:aws:sts::{DEST_ACCOUNT}:assumed-role/firelens-cross-account/fluent-bit-cloudwatch"
        ),
        &format!(
            "✓ send: 1 test event delivered to group '/ecs/httpd' stream '{TASK_ID}' in account {DEST_ACCOUNT}"
        ),
        "result: all 6 steps passed",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "missing {line:?}\n{context}"
        );
    }
    assert!(!stdout.contains('✗'), "{context}");
    assert!(
        !stdout.contains(SOURCE_SECRET_KEY) && !stderr.contains(SOURCE_SECRET_KEY),
        "a secret was shown"
    );

    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume role");
    assert_eq!(dest.id, DEST_ACCOUNT);
    let events = dest.events("/ecs/httpd", TASK_ID);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].message,
        r#"{"log":"test event from flb-cloudwatch-check","source":"flb-cloudwatch-check"}"#
    );
    assert!(
        Account::source(&moto.url(), REGION).groups().is_empty(),
        "nothing may land in the source account"
    );
}

/// `--dry-run` checks everything up to the role and sends nothing.
#[test]
fn dry_run_stops_before_sending() {
    let moto = Moto::start().expect("moto");
    let mut args = firelens(&moto.url(), "dry");
    args.push("--dry-run".into());
    let out = check(&refs(&args));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("✓ assume role: "), "{stdout}");
    assert!(stdout.contains("- send: skipped (--dry-run)"), "{stdout}");
    assert!(stdout.contains("result: all 5 steps passed"), "{stdout}");
    let (dest, _) = Account::assume(&moto.url(), REGION, ROLE_ARN).expect("assume role");
    assert!(dest.groups().is_empty(), "a dry run created a group");
}

/// An invalid option: the plugin's own error line on stderr, the ✗ line with a hint, no
/// AWS call, exit status 1.
#[test]
fn an_invalid_option_fails_with_the_plugins_reason() {
    let out = check(&[
        "-p",
        "region=ap-northeast-1",
        "-p",
        "log_group_name=/ecs/httpd",
        "-p",
        "log_stream_name=s",
        "-p",
        "auto_create_group=maybe",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "✗ options: invalid 'auto_create_group' \"maybe\": expected true/false, on/off or yes/no\n  hint: "
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("[error] [output:cloudwatch:cloudwatch.0] invalid 'auto_create_group'"),
        "{stderr}"
    );
    for step in ["credentials", "identity", "assume role", "send"] {
        assert!(
            stdout.contains(&format!("- {step}: skipped (the options are invalid)")),
            "{stdout}"
        );
    }
}

/// STS unreachable (nothing listens on port 9): AssumeRole fails with the cause and the
/// hint, nothing is sent, exit status 1.
#[test]
fn an_unreachable_sts_endpoint_fails_the_role_step() {
    let moto = Moto::start().expect("moto");
    let url = moto.url();
    let mut args = firelens(&url, "s");
    let sts = args
        .iter()
        .position(|a| a.starts_with("sts_endpoint="))
        .expect("sts_endpoint");
    args[sts] = "sts_endpoint=http://127.0.0.1:9".into();
    let out = check(&refs(&args));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let failure = stdout
        .lines()
        .find(|l| l.starts_with("✗ assume role: "))
        .unwrap_or_else(|| panic!("no ✗ assume role line:\n{stdout}"));
    assert!(failure.contains("Connection refused"), "{failure}");
    assert!(stdout.contains("  hint: STS did not answer"), "{stdout}");
    assert!(stdout.contains("- send: skipped"), "{stdout}");
    let (dest, _) = Account::assume(&url, REGION, ROLE_ARN).expect("assume role");
    assert!(dest.groups().is_empty());
}

/// A missing group with auto_create_group off: the plugin's refusal, read back from its
/// error line, with the hint to create the group.
#[test]
fn a_missing_group_fails_the_send_step() {
    let moto = Moto::start().expect("moto");
    let url = moto.url();
    let out = check(&[
        "-p",
        "region=ap-northeast-1",
        "-p",
        "log_group_name=/missing",
        "-p",
        "log_stream_name=s",
        "-p",
        &format!("endpoint={url}"),
        "-p",
        &format!("sts_endpoint={url}"),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("- assume role: skipped (no role_arn"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "✗ send: CreateLogStream to group '/missing' stream 's' failed: ResourceNotFoundException"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("auto_create_group true"), "{stdout}");
}

/// Regression (issue 27, item 1): the check shows `credentials_endpoint` by its scheme and
/// host only, on every line (its path may be a bearer capability, and ECS Exec sessions,
/// where the guide runs the check, are often logged); an invalid one too.
#[test]
fn the_credentials_endpoint_s_path_is_never_shown() {
    let moto = Moto::start().expect("moto");
    let path = "/v2/credentials/check-path-secret";
    let creds = JsonServer::start(vec![(
        path,
        vec![(
            200,
            r#"{"AccessKeyId":"AKIAENDPOINTCREDS000","SecretAccessKey":"endpoint-secret","Token":"endpoint-token","Expiration":"2099-01-01T00:00:00Z"}"#.into(),
        )],
    )]);
    let url = creds.url(path);
    let mut args = firelens(&moto.url(), "s");
    args.extend(["-p".into(), format!("credentials_endpoint={url}")]);
    let out = check(&refs(&args));
    let (stdout, stderr) = text(&out);
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{context}");
    let base = url.strip_suffix(path).expect("base");
    assert!(
        stdout.contains(&format!(
            "✓ credentials: from credentials_endpoint {base}/…\n"
        )),
        "{context}"
    );
    assert!(creds.hits(path) >= 1);
    for secret in ["check-path-secret", "endpoint-secret", "endpoint-token"] {
        assert!(!context.contains(secret), "{secret} shown:\n{context}");
    }

    let mut args = firelens(&moto.url(), "s");
    args.extend([
        "-p".into(),
        "credentials_endpoint=htps://169.254.170.2/v2/credentials/check-path-secret".into(),
    ]);
    let out = check(&refs(&args));
    let (stdout, stderr) = text(&out);
    let context = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{context}");
    assert!(
        stdout.contains("✗ options: invalid 'credentials_endpoint' \"htps://169.254.170.2/…\""),
        "{context}"
    );
    assert!(!context.contains("check-path-secret"), "{context}");
}

/// A bad command line is status 2 with the usage; `--help` is status 0.
#[test]
fn usage_errors_and_help() {
    let out = check(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("Usage: flb-cloudwatch-check"));
    let out = check(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("-p, --property KEY=VALUE"));
}
