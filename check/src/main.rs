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
//! The steps use the plugin's own crate ([`flb_out_cloudwatch::config`],
//! [`flb_out_cloudwatch::credentials`]) and, for everything the plugin does itself, the
//! built library through its C ABI ([`flb_host::host`]).

mod aws;
mod cli;
mod hint;
mod report;
mod send;

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

use crate::cli::{Args, Command};
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
    check(&args, &library)
}

/// Runs every step it can; a failed step skips those that need it.
fn check(args: &Args, library: &Path) -> ExitCode {
    let mut report = Report::default();
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
        return report.finish();
    };
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
    let account = runtime.block_on(credential_steps(&mut report, &config));
    match account {
        Some(account) if !args.dry_run => send_step(&mut report, args, library, &config, &account),
        Some(_) => report.skip("send", "--dry-run"),
        None => report.skip("send", "no credentials to write with"),
    }
    report.finish()
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

/// Steps 3 to 5. Returns the account the plugin will write to (empty when STS could not
/// say), or `None` when there are no credentials to write with.
async fn credential_steps(report: &mut Report, config: &Config) -> Option<String> {
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
            return None;
        }
    }
    let mut account = String::new();
    match aws::identity(&base, config).await {
        Ok(id) => {
            report.pass("identity", format!("{} (account {})", id.arn, id.account));
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
        return Some(account);
    };
    let assumed = aws::plugin_config(config).await;
    if let Err(f) = aws::resolve(&assumed).await {
        report.fail(
            "assume role",
            &f,
            Some(hint::assume_role(&f, config.external_id.is_some())),
        );
        return None;
    }
    match aws::identity(&assumed, config).await {
        Ok(id) => {
            report.pass(
                "assume role",
                format!("{} (account {})", id.arn, id.account),
            );
            Some(id.account)
        }
        Err(f) => {
            report.fail(
                "assume role",
                format!("assumed {role}, but STS does not accept the role's credentials: {f}"),
                None,
            );
            None
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
            report.fail("send", cause, hint);
        }
    }
}
