//! Rotated credentials are used without a restart (issue 25, item 4): when CloudWatch refuses
//! the key in use, the plugin reads its source again — a shared credentials file, a profile,
//! `credential_process` — and the flush delivers with the new key. Against moto with its IAM
//! enforcement on: the first key is deleted, a second written where the first was. A source
//! that became unreadable or malformed keeps the last good credentials, with one line naming
//! the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use flb_host::stub::{Fault, Rules, Stub};

/// moto's default account, where keys of users made without an account header live.
const ACCOUNT: &str = "123456789012";
const GROUP: &str = "/rotate";

/// A scratch directory of this test run, under `target/`.
fn scratch(name: &str) -> PathBuf {
    let dir = flb_host::target_dir()
        .join("rotate-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `text` to `path` as rotation tools do: a new file renamed over the old one.
fn replace(path: &Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).expect("write");
    std::fs::rename(&new, path).expect("rename");
}

/// An IAM user allowed CloudWatch Logs, and its first access key.
const MAKE_USER: &str = r#"
import json, os, boto3
key, secret = json.loads(os.environ["MOTO_ADMINS"])["123456789012"]
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
user = os.environ["USER_NAME"]
iam.create_user(UserName=user)
iam.put_user_policy(UserName=user, PolicyName="logs", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName=user)["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// The rotation: a second key for the user, and the first one deleted.
const ROTATE: &str = r#"
import json, os, boto3
key, secret = json.loads(os.environ["MOTO_ADMINS"])["123456789012"]
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
user = os.environ["USER_NAME"]
k = iam.create_access_key(UserName=user)["AccessKey"]
iam.delete_access_key(UserName=user, AccessKeyId=os.environ["OLD_KEY"])
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// The messages of `stream` in [`GROUP`], read with the administrator's key.
const READ_BACK: &str = r#"
import json, os, boto3
key, secret = json.loads(os.environ["MOTO_ADMINS"])["123456789012"]
logs = boto3.client("logs", endpoint_url=os.environ["MOTO_URL"], region_name="ap-northeast-1",
                    aws_access_key_id=key, aws_secret_access_key=secret)
events = logs.get_log_events(logGroupName="/rotate", logStreamName=os.environ["STREAM"],
                             startFromHead=True)["events"]
print(json.dumps([e["message"] for e in events]))
"#;

/// Runs a boto3 script in moto's virtualenv from a child, with the administrators the parent
/// passed (`MOTO`, `MOTO_ADMINS`). Its first line of output, split at spaces.
fn admin_script(script: &str, env: &[(&str, &str)]) -> Vec<String> {
    let python = flb_host::moto::ensure_installed().expect("moto installed");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("MOTO_URL", var("MOTO"))
        .env("MOTO_ADMINS", var("MOTO_ADMINS"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Where the key comes from, as the child writes it in `dir`.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// `[default]` of the shared credentials file.
    File,
    /// `[rotating]` of the shared credentials file, with `profile rotating`.
    Profile,
    /// `credential_process` of the config file's `[default]`, printing a JSON file.
    Process,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Profile => "profile",
            Source::Process => "process",
        }
    }

    fn parse(name: &str) -> Source {
        match name {
            "file" => Source::File,
            "profile" => Source::Profile,
            _ => Source::Process,
        }
    }

    /// The variables that point the SDK at `dir`'s files.
    fn environment(self, dir: &Path) -> Vec<(&'static str, String)> {
        let file = |name: &str| dir.join(name).display().to_string();
        match self {
            Source::File | Source::Profile => vec![
                ("AWS_SHARED_CREDENTIALS_FILE", file("credentials")),
                ("AWS_CONFIG_FILE", file("config-none")),
            ],
            Source::Process => vec![
                ("AWS_SHARED_CREDENTIALS_FILE", file("credentials-none")),
                ("AWS_CONFIG_FILE", file("config")),
            ],
        }
    }

    /// Puts the key where this source reads it.
    fn write(self, dir: &Path, id: &str, secret: &str) {
        let profile = |name: &str| {
            format!("[{name}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n")
        };
        match self {
            Source::File => replace(&dir.join("credentials"), &profile("default")),
            Source::Profile => replace(&dir.join("credentials"), &profile("rotating")),
            Source::Process => {
                let json = dir.join("key.json");
                replace(
                    &json,
                    &format!(
                        r#"{{"Version": 1, "AccessKeyId": "{id}", "SecretAccessKey": "{secret}"}}"#
                    ),
                );
                replace(
                    &dir.join("config"),
                    &format!("[default]\ncredential_process = cat {}\n", json.display()),
                );
            }
        }
    }
}

/// The child: a key from `SOURCE`, a flush; the key rotated (a second one written, the
/// first deleted); two more flushes, each delivered.
fn rotation_child() {
    let source = Source::parse(&var("SOURCE"));
    let dir = PathBuf::from(var("DIR"));
    let user = var("USER_NAME");
    let first = var("FIRST_KEY");
    let url = var("MOTO");
    let stream = source.name();
    let mut options = vec![
        ("region", REGION),
        ("log_group_name", GROUP),
        ("log_stream_name", stream),
        ("log_key", "log"),
        ("auto_create_group", "true"),
        ("endpoint", url.as_str()),
    ];
    if let Source::Profile = source {
        options.push(("profile", "rotating"));
    }
    let out = plugin().init(&options).expect("init");
    assert_eq!(out.flush("app", &chunk(3, "before")), FLB_OK);
    let second = admin_script(ROTATE, &[("USER_NAME", &user), ("OLD_KEY", &first)]);
    source.write(&dir, &second[0], &second[1]);
    println!("SECRET {}", second[1]);
    // The first key is refused: the source is read again in this flush.
    assert_eq!(out.flush("app", &chunk(3, "rotated")), FLB_OK);
    assert_eq!(out.flush("app", &chunk(3, "after")), FLB_OK);
    assert_eq!(out.exit(), FLB_OK);
}

#[test]
fn a_rotated_key_is_read_again_from_its_source_and_used() {
    if is_child() {
        return rotation_child();
    }
    let moto = Moto::start_enforcing_iam(&[ACCOUNT]).expect("moto");
    let admin = moto.admin(ACCOUNT).expect("admin");
    let admins = format!(r#"{{"{ACCOUNT}": ["{}", "{}"]}}"#, admin.id, admin.secret);
    for source in [Source::File, Source::Profile, Source::Process] {
        let dir = scratch(source.name());
        let user = format!("writer-{}", source.name());
        let made = moto
            .python(MAKE_USER, &[("USER_NAME", &user)])
            .expect("user");
        let first: Vec<&str> = made.split_whitespace().collect();
        source.write(&dir, first[0], first[1]);
        let mut vars = vec![
            ("SOURCE", source.name().to_owned()),
            ("DIR", dir.display().to_string()),
            ("USER_NAME", user.clone()),
            ("FIRST_KEY", first[0].to_owned()),
            ("MOTO", moto.url()),
            ("MOTO_ADMINS", admins.clone()),
            // Only the source under test: no keys in the environment.
            ("AWS_ACCESS_KEY_ID", String::new()),
            ("AWS_SECRET_ACCESS_KEY", String::new()),
        ];
        vars.extend(source.environment(&dir));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let child = run_child(
            "rotate_::a_rotated_key_is_read_again_from_its_source_and_used",
            &vars,
        );
        let log = stderr(&child);
        let name = source.name();
        let stored = moto
            .python(READ_BACK, &[("STREAM", name)])
            .expect("read back");
        let mut stored: Vec<String> = serde_json::from_str(stored.trim()).expect("messages");
        let mut want: Vec<String> = ["before", "rotated", "after"]
            .iter()
            .flat_map(|l| labels(3, l))
            .collect();
        // (The chunks' records share their times: CloudWatch orders them by time only.)
        stored.sort();
        want.sort();
        assert_eq!(stored, want, "{name}: each record once:\n{log}");
        assert!(
            log.contains("1 credential refreshes"),
            "{name}: one re-read:\n{log}"
        );
        assert!(!log.contains("[error]"), "{name}: no flush failed:\n{log}");
        let stdout = String::from_utf8_lossy(&child.stdout);
        for secret in stdout
            .lines()
            .filter_map(|l| l.strip_prefix("SECRET "))
            .chain([first[1]])
        {
            assert!(!log.contains(secret), "{name}: a secret in the log:\n{log}");
        }
    }
}

/// How the child breaks the file after the first flush.
fn break_file(how: &str, file: &Path) {
    match how {
        // A line without `=`, holding what would be a secret.
        "malformed" => replace(
            file,
            "[default]\naws_access_key_id = AKIAROTATESECOND0002\nrotate-broken-secret-line\n",
        ),
        // Something that exists but cannot be read as a file (whoever runs the test).
        _ => {
            std::fs::remove_file(file).expect("remove");
            std::fs::create_dir(file).expect("a directory in its place");
        }
    }
}

/// The child: a key from the file, a flush; the file broken; CloudWatch refuses the key
/// once (the stub's expired token), the re-read fails: the flush is retried later with the
/// last good key.
fn broken_child() {
    let file = PathBuf::from(var("AWS_SHARED_CREDENTIALS_FILE"));
    replace(
        &file,
        "[default]\naws_access_key_id = AKIAROTATEFIRST00001\naws_secret_access_key = rotate-first-secret\n",
    );
    let out = plugin()
        .init(&[
            ("region", REGION),
            ("log_group_name", GROUP),
            ("log_stream_name", "s"),
            ("log_key", "log"),
            ("auto_create_group", "true"),
            ("endpoint", &var("STUB")),
        ])
        .expect("init");
    assert_eq!(out.flush("app", &chunk(3, "before")), FLB_OK);
    break_file(&var("HOW"), &file);
    let refused = chunk(3, "refused");
    assert_eq!(out.flush("app", &refused), FLB_RETRY);
    assert_eq!(out.flush("app", &refused), FLB_OK);
    assert_eq!(out.exit(), FLB_OK);
}

#[test]
fn an_unreadable_or_malformed_file_keeps_the_last_good_key() {
    if is_child() {
        return broken_child();
    }
    for how in ["malformed", "unreadable"] {
        let stub = Stub::start(Rules {
            faults: vec![Fault::None, Fault::ExpiredToken],
            ..Rules::default()
        });
        let dir = scratch(how);
        let file = dir.join("credentials");
        let path = file.display().to_string();
        let log = stderr(&run_child(
            "rotate_::an_unreadable_or_malformed_file_keeps_the_last_good_key",
            &[
                ("HOW", how),
                ("STUB", &stub.url()),
                ("AWS_SHARED_CREDENTIALS_FILE", &path),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
            ],
        ));
        assert_exactly_once(
            stub.all_events(),
            labels(3, "before").into_iter().chain(labels(3, "refused")),
        );
        // Every request was signed with the first key, the last good one.
        let requests = stub.state.lock().expect("stub").requests.clone();
        assert!(!requests.is_empty());
        for (operation, _, headers) in &requests {
            let auth = headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            assert!(
                auth.contains("Credential=AKIAROTATEFIRST00001/"),
                "{how}: {operation} signed with {auth}"
            );
        }
        let kept: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("the last good credentials are kept"))
            .collect();
        assert_eq!(kept.len(), 1, "{how}: one line:\n{log}");
        assert!(kept[0].contains("[ warn]"), "{how}: {}", kept[0]);
        assert!(
            kept[0].contains(&path),
            "{how}: names the file: {}",
            kept[0]
        );
        let cause = match how {
            "malformed" => "is malformed",
            _ => "cannot be read",
        };
        assert!(kept[0].contains(cause), "{how}: {}", kept[0]);
        for content in [
            "rotate-broken-secret-line",
            "rotate-first-secret",
            "AKIAROTATESECOND0002",
        ] {
            assert!(!log.contains(content), "{how}: the file's contents:\n{log}");
        }
    }
}

/// The role the base key assumes (with `role_arn`): trusting the user, allowed logs.
const MAKE_ROLE: &str = r#"
import json, os, boto3
key, secret = json.loads(os.environ["MOTO_ADMINS"])["123456789012"]
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
user = os.environ["USER_NAME"]
iam.create_role(RoleName="rotate-role", AssumeRolePolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::123456789012:user/{user}"},
                    "Action": "sts:AssumeRole"}]}))
iam.put_role_policy(RoleName="rotate-role", PolicyName="logs", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
iam.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
"#;

/// The child: the shared file read at Init; the key rotated before the first flush. STS
/// refuses the deleted key the role is assumed with: the file is read again, the role
/// assumed with the second key, and the flush delivers.
fn role_child() {
    let dir = PathBuf::from(var("DIR"));
    let url = var("MOTO");
    let out = plugin()
        .init(&[
            ("region", REGION),
            ("log_group_name", GROUP),
            ("log_stream_name", "role"),
            ("log_key", "log"),
            ("auto_create_group", "true"),
            ("endpoint", &url),
            ("sts_endpoint", &url),
            ("role_arn", "arn:aws:iam::123456789012:role/rotate-role"),
        ])
        .expect("init");
    let second = admin_script(
        ROTATE,
        &[
            ("USER_NAME", &var("USER_NAME")),
            ("OLD_KEY", &var("FIRST_KEY")),
        ],
    );
    Source::File.write(&dir, &second[0], &second[1]);
    assert_eq!(out.flush("app", &chunk(3, "rotated")), FLB_OK);
    assert_eq!(out.flush("app", &chunk(3, "after")), FLB_OK);
    assert_eq!(out.exit(), FLB_OK);
}

#[test]
fn sts_refusing_a_rotated_base_key_reads_it_again() {
    if is_child() {
        return role_child();
    }
    let moto = Moto::start_enforcing_iam(&[ACCOUNT]).expect("moto");
    let admin = moto.admin(ACCOUNT).expect("admin");
    let admins = format!(r#"{{"{ACCOUNT}": ["{}", "{}"]}}"#, admin.id, admin.secret);
    let dir = scratch("role");
    let user = "writer-role";
    let made = moto
        .python(MAKE_USER, &[("USER_NAME", user)])
        .expect("user");
    moto.python(MAKE_ROLE, &[("USER_NAME", user)])
        .expect("role");
    let first: Vec<&str> = made.split_whitespace().collect();
    Source::File.write(&dir, first[0], first[1]);
    let mut vars = vec![
        ("DIR", dir.display().to_string()),
        ("USER_NAME", user.to_owned()),
        ("FIRST_KEY", first[0].to_owned()),
        ("MOTO", moto.url()),
        ("MOTO_ADMINS", admins),
        ("AWS_ACCESS_KEY_ID", String::new()),
        ("AWS_SECRET_ACCESS_KEY", String::new()),
    ];
    vars.extend(Source::File.environment(&dir));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let log = stderr(&run_child(
        "rotate_::sts_refusing_a_rotated_base_key_reads_it_again",
        &vars,
    ));
    let stored = moto
        .python(READ_BACK, &[("STREAM", "role")])
        .expect("read back");
    let mut stored: Vec<String> = serde_json::from_str(stored.trim()).expect("messages");
    stored.sort();
    let mut want: Vec<String> = labels(3, "rotated")
        .into_iter()
        .chain(labels(3, "after"))
        .collect();
    want.sort();
    assert_eq!(stored, want, "each record once:\n{log}");
    assert!(log.contains("1 credential refreshes"), "{log}");
    assert!(!log.contains("[error]"), "{log}");
}
