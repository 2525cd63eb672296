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
import datetime, os, sys
from moto.server import ThreadedMotoServer
now = os.environ.get("MOTO_LOGS_NOW_MS")
if now:
    import moto.logs.models as logs_models
    fixed = datetime.datetime.fromtimestamp(int(now) / 1000, datetime.timezone.utc).replace(tzinfo=None)
    logs_models.utcnow = lambda: fixed
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT", server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto with its real clock.
    pub fn start() -> Result<Moto, String> {
        Self::start_at(None)
    }

    /// Starts moto; with `logs_now_ms`, its CloudWatch Logs clock is pinned to that time.
    pub fn start_at(logs_now_ms: Option<i64>) -> Result<Moto, String> {
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
        let mut child = cmd.spawn().map_err(|e| format!("cannot start moto: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("moto did not start (said {line:?})"))?;
        Ok(Moto { child, port })
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

/// The venv's python, after installing moto into it if needed.
pub fn ensure_installed() -> Result<PathBuf, String> {
    let target = crate::target_dir();
    let venv = target.join("moto-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".moto-{MOTO_VERSION}"));
    if marker.exists() {
        return Ok(python);
    }
    fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let lock = File::create(target.join("moto-venv.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if marker.exists() {
        return Ok(python);
    }
    eprintln!(
        "installing moto[server]=={MOTO_VERSION} into {} (once)",
        venv.display()
    );
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("moto[server]=={MOTO_VERSION}")))?;
    File::create(&marker).map_err(|e| e.to_string())?;
    Ok(python)
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
