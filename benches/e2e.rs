//! End to end: the built library, loaded and driven as Fluent Bit drives it (flb_host:
//! dlopen, Init, FlushCtx on a 24 KiB stack), flushes FireLens chunks to a local HTTPS
//! CloudWatch Logs stand-in on 127.0.0.1. Measures what the output plugin costs: CPU
//! seconds per million events, events per second, peak memory, requests.
//!
//! ```sh
//! cargo build --release --lib          # the library measured (or let cargo bench build it)
//! cargo bench --bench e2e              # 200,000 records; 1, 2, 4 threads; 0 and 50 ms
//! cargo bench --bench e2e -- --records 50000 --threads 2 --latency-ms 0,50 --repeat 3
//! cargo bench --bench e2e -- --records 200000 --threads 1 --latency-ms 0 --idle-seconds 20
//! ```
//!
//! Three processes per run, so that each CPU figure is one program's own:
//! - this one (the driver) makes a self-signed certificate for 127.0.0.1 (`openssl req`),
//!   starts the other two and prints the table;
//! - the endpoint (`e2e --serve`): rustls + HTTP/1.1 keep-alive, a thread per connection;
//!   reads every request body whole and answers `{}` (200) to CreateLogGroup,
//!   CreateLogStream and PutLogEvents, after the optional added latency; counts requests
//!   and events; reports its own CPU, which is not the plugin's;
//! - the plugin's process (`e2e --run`): a task's clean AWS environment (static keys, no
//!   profile files, IMDS off, no proxy, `SSL_CERT_FILE` = the certificate, which the SDK's
//!   rustls client loads as its only root through rustls-native-certs). It builds the
//!   chunks first, then loads the library (`flb_host::host::library_path()`:
//!   `FLB_CLOUDWATCH_LIBRARY`, else the newest `libflb_out_cloudwatch.so` in
//!   `target/release{,/deps}`), runs Init, and flushes the chunks from `--threads` threads
//!   at once (Fluent Bit's `workers`). CPU = getrusage(RUSAGE_SELF) user + sys across the
//!   flushes: every thread of the process is the plugin's or the host's (the host's only
//!   wait, and spawn one small thread per flush). The first chunk is flushed alone and its
//!   CPU also shown apart: it pays what happens once per process (TLS handshake, the
//!   crypto library's random generator, CreateLogStream). Memory = VmRSS after Init and
//!   VmHWM at the end, each minus VmRSS before the library was loaded (the peak is reset
//!   first through `/proc/self/clear_refs`), so the chunks themselves are not counted;
//!   in brackets the anonymous part (`RssAnon`: heap, stacks), without the library's
//!   file-backed pages (its code, shared with every process that maps the same file). The
//!   kernel keeps no peak of that part alone: a thread samples it every 10 ms.
//!   `E2E_LIBRARY_PAGES=1` prints the library's resident pages per mapping.
//!   With `--idle-seconds N`, the plugin first idles as a sidecar of a quiet application
//!   does: a chunk of 10 records every second for N seconds, then VmRSS is taken (the
//!   "RSS idle" column); the load follows, and its first chunk no longer pays the TLS
//!   handshake. The idle phase's CPU is not counted. With `--after-seconds N`, the same
//!   quiet phase follows the load, then VmRSS again ("RSS after"): what the plugin still
//!   holds once a burst is over.
//!
//! The floor: before the runs, the driver times SHA-256 (the `sha2` the bodies are hashed
//! with for SigV4) and AES-256-GCM (ring's, as rustls seals TLS records) over 64 MiB each on
//! one core; "floor s / M" is what those two cost for the bodies of a million events of the
//! run's size: CPU no implementation can avoid (the kernel's send is not in it).
//!
//! `E2E_RUNNER_PREFIX` wraps the plugin's process (e.g. `valgrind --tool=callgrind`), for
//! profiling. Nothing here leaves loopback.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What the driver was asked to run.
struct Options {
    records: usize,
    chunk_bytes: usize,
    threads: Vec<usize>,
    latency_ms: Vec<u64>,
    repeat: usize,
    idle_seconds: u64,
    after_seconds: u64,
}

fn options(args: &[String]) -> Options {
    let env = |k: &str| std::env::var(k).ok();
    let mut o = Options {
        records: env("E2E_RECORDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000),
        chunk_bytes: common::CHUNK_BYTES,
        threads: list(&env("E2E_THREADS").unwrap_or_else(|| "1,2,4".into())),
        latency_ms: list(&env("E2E_LATENCY_MS").unwrap_or_else(|| "0,50".into())),
        repeat: env("E2E_REPEAT").and_then(|v| v.parse().ok()).unwrap_or(1),
        idle_seconds: env("E2E_IDLE_SECONDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        after_seconds: env("E2E_AFTER_SECONDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--records" => o.records = value().parse().expect("--records N"),
            "--chunk-bytes" => o.chunk_bytes = value().parse().expect("--chunk-bytes N"),
            "--threads" => o.threads = list(&value()),
            "--latency-ms" => o.latency_ms = list(&value()),
            "--repeat" => o.repeat = value().parse().expect("--repeat N"),
            "--idle-seconds" => o.idle_seconds = value().parse().expect("--idle-seconds N"),
            "--after-seconds" => o.after_seconds = value().parse().expect("--after-seconds N"),
            _ => {} // `cargo bench` adds `--bench`; filters do not apply here
        }
    }
    o
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--serve") => serve(&args),
        Some("--run") => run(&args),
        _ => drive(&options(&args)),
    }
}

// ---------------------------------------------------------------------------------------
// The driver.

/// One run's figures, from the plugin's process and the endpoint.
#[derive(Debug, Default, Clone)]
struct Row {
    threads: usize,
    latency_ms: u64,
    run: BTreeMap<String, f64>,
    endpoint: BTreeMap<String, f64>,
}

fn drive(o: &Options) {
    let dir = std::env::temp_dir().join(format!("flb-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = certificate(&dir);
    let library = flb_host::host::library_path();
    let built = std::fs::metadata(&library)
        .and_then(|m| m.modified())
        .map(|t| format!("{:?} ago", t.elapsed().unwrap_or_default()))
        .unwrap_or_else(|_| "MISSING: cargo build --release --lib".into());
    println!("library: {} (built {built})", library.display());
    println!(
        "workload: {} FireLens records of {} bytes of JSON, chunks of about {} bytes, tag {}",
        o.records,
        common::MESSAGE_BYTES,
        o.chunk_bytes,
        common::TAG
    );
    let floor = Floor::measure();
    println!(
        "floor on this machine, one core: SHA-256 (sha2, as SigV4 signs) {:.2} GB/s, AES-256-GCM (ring, as rustls seals) {:.2} GB/s",
        1.0 / floor.sha_s_per_byte / 1e9,
        1.0 / floor.aes_s_per_byte / 1e9
    );
    let mut rows = Vec::new();
    for &latency_ms in &o.latency_ms {
        for &threads in &o.threads {
            for _ in 0..o.repeat.max(1) {
                let row = one_run(o, threads, latency_ms, &library, &cert, &key);
                print_row(&row, &floor, rows.is_empty());
                rows.push(row);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key and a self-signed certificate for 127.0.0.1 (and localhost), usable as a server's
/// end-entity certificate and as the client's only root.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the e2e bench needs the openssl command (Debian: apt-get install openssl)");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

fn one_run(
    o: &Options,
    threads: usize,
    latency_ms: u64,
    library: &Path,
    cert: &Path,
    key: &Path,
) -> Row {
    let exe = std::env::current_exe().expect("bench binary");
    let mut endpoint = Command::new(&exe)
        .arg("--serve")
        .args(["--latency-ms", &latency_ms.to_string()])
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the endpoint");
    let mut lines = BufReader::new(endpoint.stdout.take().expect("endpoint stdout")).lines();
    let port = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("port ").map(str::to_owned))
        .expect("the endpoint's port");

    let mut prefix = std::env::var("E2E_RUNNER_PREFIX")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let mut cmd = if prefix.is_empty() {
        Command::new(&exe)
    } else {
        let mut c = Command::new(prefix.remove(0));
        c.args(prefix).arg(&exe);
        c
    };
    cmd.arg("--run")
        .args(["--port", &port])
        .args(["--records", &o.records.to_string()])
        .args(["--chunk-bytes", &o.chunk_bytes.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--idle-seconds", &o.idle_seconds.to_string()])
        .args(["--after-seconds", &o.after_seconds.to_string()]);
    clean_aws_environment(&mut cmd, cert, library);
    let out = cmd.output().expect("run the plugin");
    std::io::stderr().write_all(&out.stderr).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    let run = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(fields)
        .unwrap_or_else(|| panic!("the plugin's run failed ({}):\n{text}", out.status));

    let endpoint_stats = finish(&mut endpoint, &mut lines);
    Row {
        threads,
        latency_ms,
        run,
        endpoint: endpoint_stats,
    }
}

/// Exactly a task's AWS environment: static keys, no profile files, no IMDS; no proxy; the
/// bench's certificate as the only trusted root; the library to load.
fn clean_aws_environment(cmd: &mut Command, cert: &Path, library: &Path) {
    flb_host::cloud::task_environment(cmd);
    for (k, _) in std::env::vars_os() {
        let upper = k.to_string_lossy().to_ascii_uppercase();
        if upper.ends_with("_PROXY") || upper.starts_with("SSL_CERT") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("SSL_CERT_FILE", cert)
        .env("FLB_CLOUDWATCH_LIBRARY", library)
        .env("FLB_LOG_LEVEL", "warn");
}

/// Stops the endpoint (end of its stdin) and reads its figures.
fn finish(endpoint: &mut Child, lines: &mut std::io::Lines<impl BufRead>) -> BTreeMap<String, f64> {
    drop(endpoint.stdin.take());
    let stats = lines
        .find_map(|l| l.ok()?.strip_prefix("STATS ").map(fields))
        .unwrap_or_default();
    let _ = endpoint.wait();
    stats
}

fn fields(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The CPU no implementation can avoid per body byte: SigV4's SHA-256 of the body and the
/// TLS record encryption, with the very implementations the plugin uses, on this machine
/// (the kernel's send, which the plugin also pays, is not in it). Times one core over
/// 64 MiB each.
struct Floor {
    sha_s_per_byte: f64,
    aes_s_per_byte: f64,
}

impl Floor {
    fn measure() -> Floor {
        use sha2::Digest;
        const BYTES: usize = 64 << 20;
        const RECORD: usize = 16 << 10; // a full TLS record
        let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let at = Instant::now();
        let mut sha = sha2::Sha256::new();
        for _ in 0..BYTES / data.len() {
            sha.update(&data);
        }
        std::hint::black_box(sha.finalize());
        let sha_s = at.elapsed().as_secs_f64();

        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7; 32]).expect("key");
        let key = ring::aead::LessSafeKey::new(key);
        let mut record = data[..RECORD].to_vec();
        let at = Instant::now();
        for n in 0..(BYTES / RECORD) as u64 {
            let mut nonce = [0; 12];
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            let tag = key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    &mut record,
                )
                .expect("seal");
            let _ = std::hint::black_box(tag);
        }
        let aes_s = at.elapsed().as_secs_f64();
        Floor {
            sha_s_per_byte: sha_s / BYTES as f64,
            aes_s_per_byte: aes_s / BYTES as f64,
        }
    }

    /// The floor's CPU seconds per million events, for bodies of `bytes_per_event`.
    fn per_million(&self, bytes_per_event: f64) -> f64 {
        bytes_per_event * (self.sha_s_per_byte + self.aes_s_per_byte) * 1e6
    }
}

fn print_row(row: &Row, floor: &Floor, header: bool) {
    if header {
        println!(
            "\n| threads | latency | events | wall s | events/s | CPU s | CPU s / M events | first chunk CPU s | CPU s / M after it | init CPU s | RSS after Init MiB (anon) | RSS idle MiB (anon) | peak RSS MiB (anon) | RSS after MiB (anon) | requests (puts) | body bytes / event | floor s / M | endpoint CPU s | check |"
        );
        println!(
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
    }
    let r = |k: &str| row.run.get(k).copied().unwrap_or(f64::NAN);
    let e = |k: &str| row.endpoint.get(k).copied().unwrap_or(f64::NAN);
    // Resident memory above the host's own: all of it, and (in brackets) the anonymous
    // part, the plugin's heap and stacks without the library's file-backed pages.
    let mem = |at: &str| {
        let kb = |what: &str, base: &str| (r(&format!("{at}_{what}_kb")) - r(base)) / 1024.0;
        format!(
            "{:.1} ({:.1})",
            kb("rss", "base_rss_kb"),
            kb("anon", "base_anon_kb")
        )
    };
    let events = r("events");
    let cpu = r("flush_cpu_s");
    let check =
        if e("events") == events + r("idle_events") + r("after_events") && r("not_ok") == 0.0 {
            "all stored"
        } else {
            "MISMATCH"
        };
    println!(
        "| {} | {} ms | {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} ({}) | {:.0} | {:.3} | {:.2} | {check} |",
        row.threads,
        row.latency_ms,
        events,
        r("wall_s"),
        events / r("wall_s"),
        cpu,
        cpu / events * 1e6,
        r("first_cpu_s"),
        (cpu - r("first_cpu_s")) / (events - r("first_events")) * 1e6,
        r("init_cpu_s"),
        mem("init"),
        if r("idle_rss_kb").is_nan() {
            "-".to_owned()
        } else {
            mem("idle")
        },
        mem("peak"),
        if r("after_rss_kb").is_nan() {
            "-".to_owned()
        } else {
            mem("after")
        },
        e("requests"),
        e("puts"),
        e("body_bytes") / e("events"),
        floor.per_million(e("body_bytes") / e("events")),
        e("cpu_s"),
    );
}

// ---------------------------------------------------------------------------------------
// The plugin's process.

fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// A `Vm…` line of /proc/self/status, in kB.
fn vm_kb(name: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// With `E2E_LIBRARY_PAGES` set: the library's resident kB per mapping (from
/// /proc/self/smaps), on stderr, to see how much of the resident memory is its code.
fn library_pages(when: &str) {
    if std::env::var_os("E2E_LIBRARY_PAGES").is_none() {
        return;
    }
    let library = flb_host::host::library_path().display().to_string();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut mapping = String::new();
    let mut pages = Vec::new();
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Rss:") {
            if mapping.ends_with(&library) {
                pages.push(format!(
                    "{} {}",
                    mapping.split_whitespace().nth(1).unwrap_or(""),
                    kb.trim()
                ));
            }
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            mapping = line.to_owned();
        }
    }
    eprintln!("library pages {when}: {}", pages.join(", "));
}

/// Records per chunk of the idle phase (`--idle-seconds`), one chunk a second.
const IDLE_RECORDS: usize = 10;

fn run(args: &[String]) {
    let port = arg(args, "--port");
    let records: usize = arg(args, "--records").parse().expect("records");
    let chunk_bytes: usize = arg(args, "--chunk-bytes").parse().expect("chunk bytes");
    let threads: usize = arg(args, "--threads").parse().expect("threads");
    let idle_seconds: usize = arg(args, "--idle-seconds").parse().expect("idle seconds");
    let after_seconds: usize = arg(args, "--after-seconds").parse().expect("after seconds");

    let chunks = common::firelens_chunks(records, chunk_bytes);
    let events: usize = chunks.iter().map(|(_, n)| n).sum();
    // The quiet phases' chunks: 10 records each (MessagePack chunks concatenate).
    let quiet_chunks = |seconds: usize| -> Vec<Vec<u8>> {
        common::firelens_chunks(IDLE_RECORDS * seconds, 1)
            .chunks(IDLE_RECORDS)
            .map(|records| {
                records
                    .iter()
                    .flat_map(|(c, _)| c.iter().copied())
                    .collect()
            })
            .collect()
    };
    let idle_chunks = quiet_chunks(idle_seconds);
    let after_chunks = quiet_chunks(after_seconds);

    // The baseline: the chunks are built; nothing of the plugin is loaded yet.
    let _ = std::fs::write("/proc/self/clear_refs", "5"); // VmHWM := VmRSS
    let base_rss = vm_kb("VmRSS");
    let base_anon = vm_kb("RssAnon");
    let (u0, s0) = cpu_seconds();
    let plugin = flb_host::host::plugin();
    let endpoint = format!("https://127.0.0.1:{port}");
    let output = plugin
        .init(&[
            ("region", "ap-northeast-1"),
            ("log_group_name", "/ecs/httpd"),
            ("log_stream_name", "httpd-task"),
            ("endpoint", &endpoint),
        ])
        .expect("Init");
    let (u_init, s_init) = cpu_seconds();
    let init_rss = vm_kb("VmRSS");
    let init_anon = vm_kb("RssAnon");
    library_pages("after Init");

    // Idle, as a sidecar with a quiet application: a chunk of 10 records a second (Fluent
    // Bit's default flush interval), then the resident memory. Not counted as flush CPU.
    let quiet = |chunks: &[Vec<u8>]| -> (u64, f64, f64) {
        let mut not_ok = 0;
        for chunk in chunks {
            let at = Instant::now();
            if output.flush(common::TAG, chunk) != flb_host::host::FLB_OK {
                not_ok += 1;
            }
            std::thread::sleep(Duration::from_secs(1).saturating_sub(at.elapsed()));
        }
        if chunks.is_empty() {
            (0, f64::NAN, f64::NAN)
        } else {
            (not_ok, vm_kb("VmRSS"), vm_kb("RssAnon"))
        }
    };
    let (idle_not_ok, idle_rss, idle_anon) = quiet(&idle_chunks);
    let idle_events = IDLE_RECORDS * idle_chunks.len();
    let (u1, s1) = cpu_seconds();

    // The first chunk alone: it pays for what happens once per process (the TLS
    // connection, the random generator's seeding, the stream's creation), reported apart.
    let not_ok = AtomicU64::new(idle_not_ok);
    // The kernel keeps no peak of anonymous memory alone: a thread samples it every 10 ms
    // (about 20 µs of CPU each, 0.2 % of one core, counted with the flushes).
    let sampling = AtomicBool::new(true);
    let peak_anon = AtomicU64::new(0);
    let start = Instant::now();
    if let Some((chunk, _)) = chunks.first()
        && output.flush(common::TAG, chunk) != flb_host::host::FLB_OK
    {
        not_ok.fetch_add(1, Relaxed);
    }
    let (u_first, s_first) = cpu_seconds();
    let first_events = chunks.first().map_or(0, |(_, n)| *n);
    let rest = chunks.get(1..).unwrap_or_default();
    std::thread::scope(|s| {
        let (sampling, peak_anon) = (&sampling, &peak_anon);
        s.spawn(move || {
            while sampling.load(Relaxed) {
                peak_anon.fetch_max(vm_kb("RssAnon") as u64, Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let flushing: Vec<_> = (0..threads)
            .map(|t| {
                let (output, chunks, not_ok) = (&output, rest, &not_ok);
                s.spawn(move || {
                    for (chunk, _) in chunks.iter().skip(t).step_by(threads) {
                        if output.flush(common::TAG, chunk) != flb_host::host::FLB_OK {
                            not_ok.fetch_add(1, Relaxed);
                        }
                    }
                })
            })
            .collect();
        for f in flushing {
            let _ = f.join();
        }
        peak_anon.fetch_max(vm_kb("RssAnon") as u64, Relaxed);
        sampling.store(false, Relaxed);
    });
    let wall = start.elapsed().as_secs_f64();
    let (u2, s2) = cpu_seconds();
    let peak_rss = vm_kb("VmHWM");
    library_pages("after the load");
    // The application goes quiet again: what the plugin still holds after the burst.
    let (after_not_ok, after_rss, after_anon) = quiet(&after_chunks);
    not_ok.fetch_add(after_not_ok, Relaxed);
    let after_events = IDLE_RECORDS * after_chunks.len();
    output.exit();
    plugin.unregister();
    println!(
        "RESULT events={events} chunks={} wall_s={wall:.4} init_cpu_s={:.4} flush_cpu_s={:.4} flush_user_s={:.4} flush_sys_s={:.4} first_events={first_events} first_cpu_s={:.4} base_rss_kb={base_rss} init_rss_kb={init_rss} idle_events={idle_events} idle_rss_kb={idle_rss} peak_rss_kb={peak_rss} base_anon_kb={base_anon} init_anon_kb={init_anon} idle_anon_kb={idle_anon} peak_anon_kb={} after_events={after_events} after_rss_kb={after_rss} after_anon_kb={after_anon} not_ok={}",
        chunks.len(),
        (u_init - u0) + (s_init - s0),
        (u2 - u1) + (s2 - s1),
        u2 - u1,
        s2 - s1,
        (u_first - u1) + (s_first - s1),
        peak_anon.load(Relaxed),
        not_ok.load(Relaxed)
    );
}

// ---------------------------------------------------------------------------------------
// The endpoint.

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    puts: AtomicU64,
    events: AtomicU64,
    body_bytes: AtomicU64,
    unsigned: AtomicU64,
}

fn serve(args: &[String]) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let latency = Duration::from_millis(arg(args, "--latency-ms").parse().expect("latency"));
    let certs = CertificateDer::pem_file_iter(arg(args, "--cert"))
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_file(arg(args, "--key")).expect("key");
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    println!("port {}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().ok();
    let stats = Arc::new(Stats::default());
    {
        let stats = stats.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (config, stats) = (config.clone(), stats.clone());
                std::thread::spawn(move || connection(conn, config, latency, &stats));
            }
        });
    }
    // Until the driver closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let (u, s) = cpu_seconds();
    let n = |a: &AtomicU64| a.load(Relaxed);
    println!(
        "STATS connections={} requests={} puts={} events={} body_bytes={} unsigned={} cpu_s={:.4}",
        n(&stats.connections),
        n(&stats.requests),
        n(&stats.puts),
        n(&stats.events),
        n(&stats.body_bytes),
        n(&stats.unsigned),
        u + s
    );
    std::io::stdout().flush().ok();
    std::process::exit(0);
}

/// One keep-alive connection: requests in, `{}` out, until the client closes it.
fn connection(tcp: TcpStream, config: Arc<rustls::ServerConfig>, latency: Duration, stats: &Stats) {
    let _ = tcp.set_nodelay(true);
    let Ok(tls) = rustls::ServerConnection::new(config) else {
        return;
    };
    stats.connections.fetch_add(1, Relaxed);
    let mut stream = BufReader::with_capacity(64 * 1024, rustls::StreamOwned::new(tls, tcp));
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            return; // closed
        }
        let (mut length, mut target, mut signed) = (0usize, String::new(), false);
        loop {
            line.clear();
            if stream.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "x-amz-target" => target = v.trim().to_owned(),
                    "authorization" => signed = v.trim().starts_with("AWS4-HMAC-SHA256 "),
                    _ => {}
                }
            }
        }
        body.resize(length, 0);
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        stats.requests.fetch_add(1, Relaxed);
        stats.body_bytes.fetch_add(length as u64, Relaxed);
        if !signed {
            stats.unsigned.fetch_add(1, Relaxed);
        }
        if target.ends_with(".PutLogEvents") {
            stats.puts.fetch_add(1, Relaxed);
            stats.events.fetch_add(count_events(&body), Relaxed);
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\nx-amzn-requestid: e2e-bench\r\n\r\n{}";
        let w = stream.get_mut();
        if w.write_all(answer).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

/// Events in a PutLogEvents body: `{"timestamp":` occurs once per event (inside messages a
/// `"` is escaped, so it cannot occur there).
fn count_events(body: &[u8]) -> u64 {
    const KEY: &[u8] = b"{\"timestamp\":";
    let mut n = 0;
    let mut i = 0;
    while let Some(at) = body[i..].iter().position(|&b| b == b'{') {
        i += at;
        if body[i..].starts_with(KEY) {
            n += 1;
            i += KEY.len();
        } else {
            i += 1;
        }
    }
    n
}
