//! `flb-cloudwatch-check`: checks a `cloudwatch` `[OUTPUT]` before it is deployed, step by
//! step, where the plugin will run.
//!
//! 1. **library**: loads the plugin library as Fluent Bit does (`dlopen`, Register) and
//!    checks that it registers as `cloudwatch`.
//! 2. **options**: starts an instance with the options (the plugin's own Init); a refusal
//!    shows the plugin's error line and the check's reading of it.
//! 3. **credentials**: resolves the base credentials through the SDK's default chain, as
//!    the plugin builds it, and says which provider gave them (never the secret).
//! 4. **identity**: STS GetCallerIdentity with them: the account and principal.
//! 5. **assume role**: with `role_arn`, AssumeRole exactly as the plugin does it
//!    (`external_id`, `sts_endpoint`, region, session name), then the assumed role's ARN.
//! 6. **send**: one test event through the plugin's flush (`--dry-run` stops before).
//!
//! With `--task-definition` ([`task`]) the options are those FireLens gives the container's
//! `[OUTPUT]`, and the check first says what it read of the task. With `--print-iam`
//! ([`iam`]) it then prints the IAM documents the options need. With either, `--dry-run`
//! makes no AWS call at all.
//!
//! The steps use the plugin's own crate ([`flb_out_cloudwatch::config`],
//! [`flb_out_cloudwatch::credentials`]) and, for everything the plugin does itself, the
//! built library through its C ABI ([`flb_host::host`]).

mod aws;
mod cli;
mod hint;
mod iam;
mod report;
mod send;
mod task;

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use flb_host::host::{Plugin, library_path};
use flb_out_cloudwatch::abi::PLUGIN_NAME;
use flb_out_cloudwatch::config::Config;
use flb_out_cloudwatch::credentials;
use flb_out_cloudwatch::deliver::Destination;
use flb_out_cloudwatch::ecs;
use flb_out_cloudwatch::prepare::prepare_with;

use crate::cli::{Args, Command, IamFormat};
use crate::report::Report;

fn main() -> ExitCode {
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let parsed = match argv {
        Ok(argv) => cli::parse(argv),
        Err(bad) => Err(format!("argument {bad:?} is not UTF-8")),
    };
    let args = match parsed {
        Ok(Command::Check(args)) => args,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("flb-cloudwatch-check: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let library = args.library.clone().unwrap_or_else(library_path);
    if std::env::var_os(send::CHILD_VAR).is_some() {
        return send::child(&args, &library);
    }
    let from_task = match &args.task_definition {
        Some(path) => match from_task(&args, path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("flb-cloudwatch-check: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    check(&args, from_task.as_ref(), &library)
}

/// What `--task-definition` gives: the task, the output checked, and the arguments the
/// steps run with (the container's options, then `-p`; FireLens's tag).
struct FromTask {
    task: task::Task,
    output: task::Output,
    args: Args,
}

fn from_task(args: &Args, path: &Path) -> Result<FromTask, String> {
    let task = task::read(path)?;
    let output = task::select(&task, args.container.as_deref())?.clone();
    let mut run = args.clone();
    run.properties = output.properties.clone();
    run.properties.extend(args.properties.iter().cloned());
    if !args.tag_given {
        run.tag = output.tag("check");
    }
    Ok(FromTask {
        task,
        output,
        args: run,
    })
}

/// What the check read of the task definition, before the steps.
fn describe(report: &Report, t: &FromTask, args: &Args) {
    let task = &t.task;
    let form = if task.described {
        "aws ecs describe-task-definition output"
    } else {
        "task definition"
    };
    report.info(format!(
        "task definition {} ({form}): taskRoleArn {}; runtimePlatform {}",
        task.file,
        task.task_role.as_deref().unwrap_or("(none)"),
        task.runtime_platform
            .as_deref()
            .unwrap_or("(not set: LINUX/X86_64)")
    ));
    if task.routers.is_empty() {
        report.note(
            "no container has firelensConfiguration: ECS refuses awsfirelens without a log router",
        );
    }
    for r in &task.routers {
        let options: Vec<String> = r.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        report.info(format!(
            "log router '{}': firelensConfiguration type {}{}",
            r.container,
            if r.kind.is_empty() { "(none)" } else { &r.kind },
            if options.is_empty() {
                String::new()
            } else {
                format!(", options {}", options.join(" "))
            }
        ));
    }
    let out = &t.output;
    report.info(format!(
        "container '{}': FireLens's [OUTPUT] Name {}, Match {}, {} options{}",
        out.container,
        out.name,
        out.match_pattern(),
        out.properties.len(),
        if args.properties.is_empty() {
            String::new()
        } else {
            format!(" (and {} from -p)", args.properties.len())
        }
    ));
    if out.name == "cloudwatch_logs" {
        report.note(
            "Name cloudwatch_logs selects Fluent Bit's own C plugin, not this one: the options are checked as this plugin reads them (it takes the C plugin's); Name cloudwatch selects this plugin",
        );
    }
    for (key, _) in &out.firelens_options {
        report.note(format!(
            "'{key}' is FireLens's own option, not a property of the [OUTPUT]: not checked"
        ));
    }
    for name in &out.secret_options {
        report.note(format!(
            "secret option '{name}': ECS resolves it at run time (Secrets Manager or SSM); not resolved or shown here, and not in the options checked"
        ));
    }
}

/// Runs every step it can; a failed step skips those that need it.
fn check(args: &Args, from_task: Option<&FromTask>, library: &Path) -> ExitCode {
    let mut report = if args.print_iam == Some(IamFormat::Json) {
        Report::on_stderr()
    } else {
        Report::default()
    };
    if let Some(t) = from_task {
        describe(&report, t, args);
    }
    let args = from_task.map_or(args, |t| &t.args);
    // --dry-run with a task definition or --print-iam: no AWS call at all.
    let no_aws = args.dry_run && (args.task_definition.is_some() || args.print_iam.is_some());
    let Some(plugin) = load(&mut report, library) else {
        for step in ["options", "credentials", "identity", "assume role", "send"] {
            report.skip(step, "no plugin library");
        }
        return report.finish();
    };
    for (key, _) in &args.properties {
        if let Some(note) = hint::option_note(key) {
            report.note(note);
        }
    }
    let Some(config) = options(&mut report, plugin, args) else {
        for step in ["credentials", "identity", "assume role", "send"] {
            report.skip(step, "the options are invalid");
        }
        if args.print_iam.is_some() {
            report.skip("iam", "the options are invalid");
        }
        return report.finish();
    };
    if no_aws {
        for step in ["credentials", "identity", "assume role", "send"] {
            report.skip(step, "--dry-run: no AWS call");
        }
        print_iam(&report, args, from_task, &config, None);
        return report.finish();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report.fail(
                "credentials",
                format!("cannot start the async runtime: {e}"),
                None,
            );
            return report.finish();
        }
    };
    let accounts = runtime.block_on(credential_steps(&mut report, &config));
    match &accounts.writer {
        Some(account) if !args.dry_run => send_step(&mut report, args, library, &config, account),
        Some(_) => report.skip("send", "--dry-run"),
        None => report.skip("send", "no credentials to write with"),
    }
    print_iam(
        &report,
        args,
        from_task,
        &config,
        accounts.source.as_deref(),
    );
    report.finish()
}

/// `--print-iam`: the documents, as text after the steps, or as one JSON document on
/// stdout (the steps then went to stderr).
fn print_iam(
    report: &Report,
    args: &Args,
    from_task: Option<&FromTask>,
    config: &Config,
    source_account: Option<&str>,
) {
    let Some(format) = args.print_iam else {
        return;
    };
    let secret_external_id = from_task.is_some_and(|t| {
        t.output
            .secret_options
            .iter()
            .any(|n| n.eq_ignore_ascii_case("external_id"))
    });
    let tag_pattern = from_task.map(|t| t.output.tag("*"));
    let printed = iam::documents(
        config,
        &iam::Inputs {
            task_role: from_task.and_then(|t| t.task.task_role.as_deref()),
            source_account: source_account.filter(|a| !a.is_empty()),
            tag_pattern: tag_pattern.as_deref(),
            external_id: match &config.external_id {
                Some(v) => iam::ExternalId::Value(v),
                None if secret_external_id => iam::ExternalId::Secret,
                None => iam::ExternalId::None,
            },
            show_secrets: args.show_secrets,
        },
    );
    match format {
        IamFormat::Text => report.info(printed.text().trim_end()),
        IamFormat::Json => println!("{}", printed.json()),
    }
}

/// The accounts the credential steps learnt.
#[derive(Debug, Default)]
struct Accounts {
    /// The account the plugin will write to (empty when STS could not say); `None` when
    /// there are no credentials to write with.
    writer: Option<String>,
    /// The account of the base credentials, when GetCallerIdentity answered.
    source: Option<String>,
}

/// Step 1: the library loads and registers as `cloudwatch`.
fn load(report: &mut Report, library: &Path) -> Option<&'static Plugin> {
    let plugin = match Plugin::load(library) {
        Ok(p) => p,
        Err(e) => {
            report.fail(
                "library",
                format!("cannot load {}: {e}", library.display()),
                Some(hint::LIBRARY),
            );
            return None;
        }
    };
    let expected = PLUGIN_NAME.to_string_lossy();
    if plugin.name != expected {
        report.fail(
            "library",
            format!(
                "{} registers as '{}', not '{expected}'",
                library.display(),
                plugin.name
            ),
            Some(hint::LIBRARY),
        );
        return None;
    }
    report.pass(
        "library",
        format!("{} registers as '{}'", library.display(), plugin.name),
    );
    // Loaded once for the life of the process, as Fluent Bit does.
    Some(Box::leak(Box::new(plugin)))
}

/// Step 2: the plugin's Init accepts the options. Returns them read as the plugin reads
/// them (the same code, linked in).
fn options(report: &mut Report, plugin: &'static Plugin, args: &Args) -> Option<Config> {
    let get = |name: &str| {
        args.properties
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_properties(get, std::env::var("AWS_REGION").ok());
    match (plugin.init(&send::properties(args)), config) {
        (Ok(output), Ok(config)) => {
            output.exit();
            report.pass("options", summary(&config, &args.tag));
            Some(config)
        }
        (Err(_), Err(e)) => {
            report.fail("options", &e, Some(hint::options(Some(&e))));
            None
        }
        (Err(_), Ok(_)) => {
            report.fail(
                "options",
                "the plugin's Init refused them: see its error line above",
                Some(hint::options(None)),
            );
            None
        }
        (Ok(output), Err(e)) => {
            output.exit();
            report.fail(
                "options",
                format!("the library accepted them, but this check's copy of the plugin does not: {e}"),
                Some("the library and this check come from different versions: build both from one tree"),
            );
            None
        }
    }
}

/// The options that decide where events go, in one line: where the plugin routes the test
/// event (its own routing code), the region and the role.
fn summary(c: &Config, tag: &str) -> String {
    let mut s = format!("accepted: region {}", c.region);
    if let Some(destination) = destination(c, tag) {
        s.push_str(&format!("; the test event goes to {destination}"));
    }
    s.push_str(&format!("; auto_create_group {}", c.auto_create_group));
    if let Some(role) = &c.role_arn {
        s.push_str(&format!("; role {role}"));
    }
    s
}

/// Where the plugin sends the test event: its own routing, with the task's ECS metadata
/// when `$(ecs_*)` templates need it (`$(uuid)` renders empty here: the plugin draws its own).
fn destination(config: &Config, tag: &str) -> Option<Destination> {
    let ecs = ecs::metadata().ok().flatten();
    prepare_with(
        config,
        tag,
        &send::chunk(SystemTime::now()),
        ecs.as_deref(),
        "",
    )
    .streams
    .into_iter()
    .next()
    .map(|(d, _)| d)
}

/// Steps 3 to 5: the accounts they learnt.
async fn credential_steps(report: &mut Report, config: &Config) -> Accounts {
    let base = aws::base_config(config).await;
    match aws::resolve(&base).await {
        Ok(source) => {
            let creds = &config.credentials;
            let detail = match (&creds.credentials_endpoint, &creds.profile) {
                // Scheme and host only: the path may be a bearer capability, and this
                // output often lands in logged sessions (ECS Exec).
                (Some(url), _) => {
                    format!("from credentials_endpoint {}", credentials::redact(url))
                }
                (None, Some(profile)) => format!("from {source}, profile '{profile}'"),
                (None, None) => format!("from {source}"),
            };
            report.pass("credentials", detail);
        }
        Err(f) => {
            report.fail("credentials", &f, Some(hint::credentials(&f)));
            report.skip("identity", "no credentials");
            report.skip("assume role", "no credentials");
            return Accounts::default();
        }
    }
    let mut account = String::new();
    let mut source = None;
    match aws::identity(&base, config).await {
        Ok(id) => {
            report.pass("identity", format!("{} (account {})", id.arn, id.account));
            source = Some(id.account.clone());
            account = id.account;
        }
        Err(f) => report.fail(
            "identity",
            &f,
            Some(hint::identity(&f, config.role_arn.is_some())),
        ),
    }
    let Some(role) = &config.role_arn else {
        report.skip(
            "assume role",
            "no role_arn: the plugin writes with these credentials",
        );
        return Accounts {
            writer: Some(account),
            source,
        };
    };
    let assumed = aws::plugin_config(config).await;
    if let Err(f) = aws::resolve(&assumed).await {
        report.fail(
            "assume role",
            &f,
            Some(hint::assume_role(&f, config.external_id.is_some())),
        );
        return Accounts {
            writer: None,
            source,
        };
    }
    match aws::identity(&assumed, config).await {
        Ok(id) => {
            report.pass(
                "assume role",
                format!("{} (account {})", id.arn, id.account),
            );
            Accounts {
                writer: Some(id.account),
                source,
            }
        }
        Err(f) => {
            report.fail(
                "assume role",
                format!("assumed {role}, but STS does not accept the role's credentials: {f}"),
                None,
            );
            Accounts {
                writer: None,
                source,
            }
        }
    }
}

/// Step 6: the test event, through the plugin.
fn send_step(report: &mut Report, args: &Args, library: &Path, config: &Config, account: &str) {
    let to = destination(config, &args.tag).map_or_else(String::new, |d| format!(" to {d}"));
    match send::run(args, library) {
        Ok(()) if account.is_empty() => report.pass("send", format!("1 test event delivered{to}")),
        Ok(()) => report.pass(
            "send",
            format!("1 test event delivered{to} in account {account}"),
        ),
        Err(cause) => {
            let hint = hint::send(&cause, config.auto_create_group);
            report.fail("send", cause, hint.as_deref());
        }
    }
}
