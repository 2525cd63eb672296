//! The main job, end to end on one machine: an ECS task's FireLens records, delivered by the
//! built library (loaded as Fluent Bit loads it) into CloudWatch Logs of *another* account
//! through `role_arn`, against moto playing STS and CloudWatch Logs on loopback.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! The source account is the task role's (static keys, moto's default account
//! 123456789012); the destination account is 222222222222, reached by assuming
//! `arn:aws:iam::222222222222:role/firelens-cross-account`, exactly as the task definition in
//! `examples/ecs-task-definition.json` says. `$(ecs_task_id)` is read from a stand-in for the
//! ECS agent's task metadata endpoint on loopback, as a FireLens sidecar reads the real one.

use std::time::{SystemTime, UNIX_EPOCH};

use flb_host::cloud::{Account, SOURCE_ACCESS_KEY, SOURCE_SECRET_KEY};
use flb_host::fake::JsonServer;
use flb_host::host::{FLB_OK, plugin};
use flb_host::moto::Moto;
use flb_host::msgpack::{Format, Writer, firelens_record};

const REGION: &str = "ap-northeast-1";
const ROLE_ARN: &str = "arn:aws:iam::222222222222:role/firelens-cross-account";
const GROUP: &str = "/ecs/httpd";
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";
const RECORDS: u32 = 300;

fn main() -> Result<(), String> {
    // The ECS agent's task metadata endpoint, for $(ecs_task_id).
    let agent = JsonServer::start(vec![(
        "/v4/demo/task",
        vec![(
            200,
            format!(
                r#"{{"Cluster":"arn:aws:ecs:{REGION}:123456789012:cluster/default","TaskARN":"arn:aws:ecs:{REGION}:123456789012:task/default/{TASK_ID}","Family":"httpd"}}"#
            ),
        )],
    )]);
    let metadata_uri = agent.url("/v4/demo");
    // The task's environment, as the ECS agent would give the FireLens container: the
    // source account's credentials and the metadata endpoint. Set before the plugin starts
    // any thread (the stand-in's listener thread reads no environment).
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", SOURCE_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SOURCE_SECRET_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("ECS_CONTAINER_METADATA_URI_V4", metadata_uri.as_str()),
    ] {
        // SAFETY: the only other thread (the stand-in's listener) never reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    for k in [
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        // SAFETY: as above.
        unsafe { std::env::remove_var(k) };
    }

    println!("1. starting moto (STS + CloudWatch Logs) on loopback");
    let moto = Moto::start()?;
    let url = moto.url();
    println!("   {url}");

    println!(
        "2. loading {} as Fluent Bit does",
        flb_host::host::library_path().display()
    );
    let plugin = plugin();
    println!(
        "   registered output '{}': {}",
        plugin.name, plugin.description
    );

    let options = [
        ("Name", "cloudwatch"),
        ("region", REGION),
        ("log_group_name", GROUP),
        ("log_stream_name", "$(ecs_task_id)"),
        ("auto_create_group", "true"),
        ("role_arn", ROLE_ARN),
        ("endpoint", url.as_str()),
        ("sts_endpoint", url.as_str()),
    ];
    println!("3. [OUTPUT] with the task definition's options:");
    for (k, v) in &options {
        println!("     {k:<18} {v}");
    }
    let output = plugin
        .init(&options)
        .map_err(|code| format!("FLBPluginInit failed ({code})"))?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let mut chunk = Writer::new();
    for i in 0..RECORDS {
        let log = format!(
            "10.0.0.{} - - \"GET /index.html?q={i} HTTP/1.1\" 200 45",
            i % 256
        );
        let source = if i % 7 == 0 { "stderr" } else { "stdout" };
        firelens_record(
            &mut chunk,
            Format::V2,
            now.as_secs() as u32,
            i * 1000,
            source,
            &log,
        );
    }
    println!(
        "4. flushing one chunk of {RECORDS} FireLens records ({} bytes) on a 24 KiB stack",
        chunk.buf.len()
    );
    let code = output.flush("httpd-firelens-0123456789abcdef", &chunk.buf);
    println!(
        "   FLBPluginFlushCtx returned {code} ({})",
        if code == FLB_OK {
            "FLB_OK"
        } else {
            "not FLB_OK"
        }
    );
    output.exit();
    plugin.unregister();

    println!("5. what landed where:");
    let source = Account::source(&url, REGION);
    let (dest, assumed) = Account::assume(&url, REGION, ROLE_ARN)?;
    let source_groups = source.groups();
    println!(
        "   source account {}: {} log group(s)",
        source.id,
        source_groups.len()
    );
    println!(
        "   destination account {} (read back as {assumed}):",
        dest.id
    );
    let mut delivered = 0;
    for group in dest.groups() {
        for stream in dest.streams(&group) {
            let events = dest.events(&group, &stream);
            delivered += events.len();
            println!("     {group} / {stream}: {} event(s)", events.len());
            if let Some(first) = events.first() {
                println!("       first: {} {}", first.timestamp, first.message);
            }
        }
    }
    let in_task_stream = dest.events(GROUP, TASK_ID).len();
    if code != FLB_OK
        || delivered != RECORDS as usize
        || in_task_stream != RECORDS as usize
        || !source_groups.is_empty()
    {
        return Err(format!(
            "expected {RECORDS} events in account 222222222222 and none in the source account; got {delivered}"
        ));
    }
    println!(
        "OK: {delivered} of {RECORDS} records delivered cross-account, none in the source account"
    );
    Ok(())
}
