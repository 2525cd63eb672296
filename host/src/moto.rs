//! moto (PyPI `moto[server]`) as the local AWS: STS and CloudWatch Logs on loopback.
//!
//! [`Moto::start`] installs moto into `target/moto-venv` the first time (under a file lock,
//! so parallel test processes install it once), then runs it on a free port of 127.0.0.1.
//! The server stops when the [`Moto`] is dropped, or when this process dies (it exits when
//! its stdin closes).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The moto release the tests are written against.
pub const MOTO_VERSION: &str = "5.2.5";

/// Runs `ThreadedMotoServer` on port 0 and prints the port. With `MOTO_LOGS_NOW_MS`, moto's
/// CloudWatch Logs clock (used only for its 14-day / 2-hour acceptance window) is pinned
/// to that time, so fixtures captured on one day stay acceptable on any later day.
const SERVER_PY: &str = r#"
import datetime, json, os, sys
from moto.server import ThreadedMotoServer
now = os.environ.get("MOTO_LOGS_NOW_MS")
if now:
    import moto.logs.models as logs_models
    fixed = datetime.datetime.fromtimestamp(int(now) / 1000, datetime.timezone.utc).replace(tzinfo=None)
    logs_models.utcnow = lambda: fixed
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
admins = {}
accounts = os.environ.get("MOTO_ENFORCE_IAM_ACCOUNTS")
if accounts is not None:
    # One administrator user per account, made while every call is still free, then
    # moto's IAM enforcement on: from here each request needs a signature by a known key
    # and a policy that allows its action.
    import json, boto3
    import moto.settings
    from moto.logs.responses import LogsResponse

    def logs_resource(self):
        # moto authorizes every CloudWatch Logs call against the resource "*", which no
        # statement naming an ARN matches. Authorize it instead against the ARN AWS names in
        # its access-denied messages: the stream's for calls about a stream (CreateLogStream,
        # PutLogEvents), the group's for calls about a group (CreateLogGroup,
        # PutRetentionPolicy, ...), the ARN given for TagResource.
        try:
            params = json.loads(self.body or "{}")
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            return "*"
        if params.get("resourceArn"):
            return params["resourceArn"]
        group = params.get("logGroupName")
        if group is None:
            return "*"
        arn = f"arn:{self.partition}:logs:{self.region}:{self.current_account}:log-group:{group}"
        stream = params.get("logStreamName")
        return arn if stream is None else f"{arn}:log-stream:{stream}"

    LogsResponse._determine_resource = logs_resource
    policy = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    for account in filter(None, accounts.split(",")):
        iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.meta.events.register("before-sign.*.*",
            lambda request, account=account, **_: request.headers.__setitem__("x-moto-account-id", account))
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=policy)
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admins[account] = [key["AccessKeyId"], key["SecretAccessKey"]]
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    # moto answers an unknown key, a wrong secret or a refused action in EC2's shape (XML
    # with an <Errors> level, HTTP 403) on every protocol. STS and IAM answer <ErrorResponse><Error>, which
    # the AWS SDKs' query-protocol parsers read; a JSON-protocol service such as CloudWatch
    # Logs answers HTTP 400 with the code in JSON: UnrecognizedClientException,
    # InvalidSignatureException.
    from xml.sax.saxutils import escape
    from moto.core import responses, exceptions
    json_codes = {"InvalidClientTokenId": "UnrecognizedClientException",
                  "SignatureDoesNotMatch": "InvalidSignatureException"}
    authorize = responses.BaseResponse._authenticate_and_authorize_normal_action
    def authorize_as_aws(self, resource="*", *args, **kwargs):
        try:
            return authorize(self, resource, *args, **kwargs)
        except exceptions.AccessDeniedError as e:
            # A refusal names the resource, as AWS's do; CloudWatch Logs answers it as
            # AccessDeniedException (HTTP 400, JSON), STS and IAM as AccessDenied (403, XML).
            message = e.message if resource == "*" else f"{e.message} on resource: {resource}"
            if "X-Amz-Target" not in self.headers:
                e.description = (
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                    "<Message>%s</Message></Error><RequestId>moto</RequestId></ErrorResponse>"
                    % escape(message))
                raise
            err = exceptions.JsonRESTError("AccessDeniedException", message)
            err.code = 400
            raise err
        except (exceptions.InvalidClientTokenIdError, exceptions.SignatureDoesNotMatchError) as e:
            if "X-Amz-Target" not in self.headers:
                e.description = (
                    "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                    "<Message>%s</Message></Error><RequestId>moto</RequestId></ErrorResponse>"
                    % (e.error_type, escape(e.message)))
                raise
            err = exceptions.JsonRESTError(json_codes[e.error_type], e.message)
            err.code = 400
            raise err
    responses.BaseResponse._authenticate_and_authorize_normal_action = authorize_as_aws
print("PORT", port, json.dumps(admins) if admins else "{}", flush=True)
sys.stdin.read()
server.stop()
"#;

pub struct Moto {
    child: Child,
    pub port: u16,
    /// With [`Moto::start_enforcing_iam`]: each account's administrator key (id, secret).
    admins: Vec<(String, Keys)>,
}

/// An access key id and its secret.
#[derive(Clone, Debug)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

impl Moto {
    /// Starts moto with its real clock.
    pub fn start() -> Result<Moto, String> {
        Self::start_at(None)
    }

    /// Starts moto; with `logs_now_ms`, its CloudWatch Logs clock is pinned to that time.
    pub fn start_at(logs_now_ms: Option<i64>) -> Result<Moto, String> {
        Self::launch(logs_now_ms, None)
    }

    /// Starts moto with its IAM enforcement on (moto's `INITIAL_NO_AUTH_ACTION_COUNT`
    /// reached): every request must be signed by a key moto issued and be allowed by the
    /// caller's policies. moto authorizes CloudWatch Logs calls against the resource `*`;
    /// here they are authorized against the ARN AWS names in its access-denied messages
    /// (`…:log-group:G:log-stream:S` for CreateLogStream and PutLogEvents, `…:log-group:G`
    /// for calls about a group), so a policy's resource ARNs are evaluated too. An unknown
    /// key or a wrong secret is answered as AWS answers it: STS and IAM
    /// `InvalidClientTokenId`/`SignatureDoesNotMatch` (HTTP 403, XML in their shape),
    /// CloudWatch Logs `UnrecognizedClientException`/`InvalidSignatureException` (HTTP 400,
    /// JSON), and so is a refused action: `AccessDenied` (STS, IAM) and `AccessDeniedException`
    /// (CloudWatch Logs), naming the resource. (moto alone gives EC2's XML shape to every
    /// service.) Before enforcement
    /// starts, each of `accounts` gets a user `admin`
    /// allowed everything; [`Moto::admin`] gives its key, [`Moto::python`] runs set-up
    /// scripts with them.
    pub fn start_enforcing_iam(accounts: &[&str]) -> Result<Moto, String> {
        Self::launch(None, Some(accounts.join(",")))
    }

    /// The key of `account`'s administrator (only with [`Moto::start_enforcing_iam`]).
    pub fn admin(&self, account: &str) -> Option<&Keys> {
        self.admins
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, keys)| keys)
    }

    /// Runs a Python script in moto's virtualenv (which has boto3), with `MOTO_URL` set to
    /// this server and `MOTO_ADMINS` to a JSON object `{account: [key id, secret]}`; `env`
    /// adds variables. Returns its standard output, or its standard error when it fails.
    pub fn python(&self, script: &str, env: &[(&str, &str)]) -> Result<String, String> {
        let admins: serde_json::Map<String, serde_json::Value> = self
            .admins
            .iter()
            .map(|(a, k)| (a.clone(), serde_json::json!([k.id, k.secret])))
            .collect();
        let mut cmd = Command::new(ensure_installed()?);
        cmd.arg("-c")
            .arg(script)
            .env("MOTO_URL", self.url())
            .env("MOTO_ADMINS", serde_json::Value::Object(admins).to_string())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run python: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Makes moto's next `count` requests free of its IAM enforcement (moto's
    /// `/moto-api/reset-auth`), after which enforcement resumes: for what AWS itself does
    /// with powers no principal has, e.g. ECS handing a task its task role's credentials.
    pub fn free_actions(&self, count: u32) -> Result<(), String> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connect moto: {e}"))?;
        let body = count.to_string();
        let request = format!(
            "POST /moto-api/reset-auth HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes())
            .map_err(|e| format!("write to moto: {e}"))?;
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("moto refused reset-auth: {answer}"))
        }
    }

    fn launch(logs_now_ms: Option<i64>, enforce: Option<String>) -> Result<Moto, String> {
        let python = ensure_installed()?;
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(SERVER_PY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(now) = logs_now_ms {
            cmd.env("MOTO_LOGS_NOW_MS", now.to_string());
        }
        if let Some(accounts) = enforce {
            cmd.env("MOTO_ENFORCE_IAM_ACCOUNTS", accounts);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start moto: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let mut said = line
            .strip_prefix("PORT ")
            .unwrap_or_default()
            .splitn(2, ' ');
        let port = said
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("moto did not start (said {line:?})"))?;
        let admins = said
            .next()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .and_then(|a| a.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(account, key)| {
                let id = key[0].as_str()?.to_owned();
                let secret = key[1].as_str()?.to_owned();
                Some((account, Keys { id, secret }))
            })
            .collect();
        Ok(Moto {
            child,
            port,
            admins,
        })
    }

    /// `http://127.0.0.1:<port>`, for `endpoint` and `sts_endpoint`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The roles assumed through this moto, from its `/moto-api/data.json`: each with
    /// `arn` (which ends with the session name), `external_id`, `duration`.
    pub fn assumed_roles(&self) -> Vec<serde_json::Value> {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect moto");
        let _ = conn.write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut raw = String::new();
        let _ = conn.read_to_string(&mut raw);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let data: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        data["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS CLI release (PyPI `awscli`, version 1) the guide's walkthrough is run with.
pub const AWS_CLI_VERSION: &str = "1.46.3";

/// The `aws` command of `target/awscli-venv`, after installing the AWS CLI into it if needed
/// (a venv of its own: the CLI pins a botocore that moto's boto3 does not take).
pub fn ensure_aws_cli() -> Result<PathBuf, String> {
    let venv = ensure_venv("awscli-venv", &format!("awscli=={AWS_CLI_VERSION}"))?;
    Ok(venv.join("bin/aws"))
}

/// The venv's python, after installing moto into it if needed.
pub fn ensure_installed() -> Result<PathBuf, String> {
    let venv = ensure_venv("moto-venv", &format!("moto[server]=={MOTO_VERSION}"))?;
    Ok(venv.join("bin/python"))
}

/// `target/<name>`, a virtualenv with `requirement` (`package==version`) installed, made the
/// first time under a file lock (so parallel test processes install it once) and marked done
/// only once pip succeeded.
fn ensure_venv(name: &str, requirement: &str) -> Result<PathBuf, String> {
    let target = crate::target_dir();
    let venv = target.join(name);
    let marker = venv.join(format!(".{}", requirement.replace("==", "-")));
    if marker.exists() {
        return Ok(venv);
    }
    fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let lock = File::create(target.join(format!("{name}.lock"))).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if marker.exists() {
        return Ok(venv);
    }
    eprintln!("installing {requirement} into {} (once)", venv.display());
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(requirement))?;
    File::create(&marker).map_err(|e| e.to_string())?;
    Ok(venv)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
