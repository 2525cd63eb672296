//! Small HTTP peers on loopback for the options that talk to something other than AWS:
//! [`JsonServer`] plays the ECS task metadata endpoint and a container-credentials endpoint
//! (over HTTP or HTTPS);
//! [`Proxy`] is a forward HTTP proxy that records what went through it.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// One HTTP/1.x request as read off a connection: request line, headers, body.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Answers GETs by path with scripted JSON answers: each path has a queue of (status, body);
/// the last one repeats. Counts the hits per path. Plain HTTP, or HTTPS with [`TLS_CERT`]
/// ([`JsonServer::start_https`]).
pub struct JsonServer {
    pub port: u16,
    tls: bool,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    headers: Arc<Mutex<Vec<(String, String)>>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

/// A throwaway self-signed certificate for 127.0.0.1 and localhost, and its key (see
/// `host/tls/README.md`): what [`JsonServer::start_https`] serves; trust it through
/// `SSL_CERT_FILE` = [`tls_file`]`("localhost.pem")`.
pub const TLS_CERT: &[u8] = include_bytes!("../tls/localhost.pem");
const TLS_KEY: &[u8] = include_bytes!("../tls/localhost.key");

/// The path of a file of `host/tls`.
pub fn tls_file(name: &str) -> String {
    format!("{}/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Scripted answers per path.
type Routes = BTreeMap<String, VecDeque<(u16, String)>>;

/// What a [`JsonServer`] knows and records, shared with its connections.
#[derive(Clone)]
struct State {
    routes: Arc<Mutex<Routes>>,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    headers: Arc<Mutex<Vec<(String, String)>>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl JsonServer {
    pub fn start(routes: Vec<(&str, Vec<(u16, String)>)>) -> JsonServer {
        Self::serve(routes, None)
    }

    /// The same over TLS, with [`TLS_CERT`]. A client that does not trust it fails the
    /// handshake: no request is read, so none is counted.
    pub fn start_https(routes: Vec<(&str, Vec<(u16, String)>)>) -> JsonServer {
        let cert = CertificateDer::from_pem_slice(TLS_CERT).expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(TLS_KEY).expect("key");
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        Self::serve(routes, Some(Arc::new(config)))
    }

    fn serve(
        routes: Vec<(&str, Vec<(u16, String)>)>,
        tls: Option<Arc<ServerConfig>>,
    ) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = State {
            routes: Arc::new(Mutex::new(
                routes
                    .into_iter()
                    .map(|(p, a)| (p.to_owned(), a.into()))
                    .collect(),
            )),
            hits: Arc::new(Mutex::new(BTreeMap::new())),
            headers: Arc::new(Mutex::new(Vec::new())),
            bodies: Arc::new(Mutex::new(Vec::new())),
        };
        let server = JsonServer {
            port,
            tls: tls.is_some(),
            hits: state.hits.clone(),
            headers: state.headers.clone(),
            bodies: state.bodies.clone(),
        };
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (state, tls) = (state.clone(), tls.clone());
                thread::spawn(move || match tls {
                    None => answer(conn, &state),
                    Some(config) => {
                        let Ok(session) = ServerConnection::new(config) else {
                            return;
                        };
                        let mut stream = StreamOwned::new(session, conn);
                        answer(&mut stream, &state);
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                    }
                });
            }
        });
        server
    }
    /// The bodies of every request, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// The headers of the last request.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.headers.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Reads one request off `stream` (`connection: close`), records it and answers it.
fn answer(mut stream: impl Read + Write, state: &State) {
    let mut reader = BufReader::new(&mut stream);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    *state
        .hits
        .lock()
        .unwrap()
        .entry(req.target.clone())
        .or_default() += 1;
    *state.headers.lock().unwrap() = req.headers.clone();
    state
        .bodies
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&req.body).into_owned());
    let (status, body) = {
        let mut routes = state.routes.lock().unwrap();
        match routes.get_mut(&req.target) {
            Some(q) if q.len() > 1 => q.pop_front().unwrap_or_default(),
            Some(q) => q.front().cloned().unwrap_or_default(),
            None => (404, "{}".to_owned()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()));
}

/// A forward HTTP proxy (absolute-form requests, no CONNECT) that relays to the origin and
/// records each request's method and URL.
pub struct Proxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let seen = s.clone();
                thread::spawn(move || relay(conn, &seen));
            }
        });
        Proxy { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `METHOD URL` of every request relayed.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn relay(conn: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut client = conn;
    while let Some(req) = read_request(&mut reader) {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.target));
        let Some(rest) = req.target.strip_prefix("http://") else {
            return;
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let Ok(mut origin) = TcpStream::connect(authority) else {
            return;
        };
        let mut out = format!("{} {path} HTTP/1.1\r\n", req.method);
        for (k, v) in &req.headers {
            if !k.eq_ignore_ascii_case("proxy-connection") && !k.eq_ignore_ascii_case("connection")
            {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("connection: close\r\n\r\n");
        if origin
            .write_all(out.as_bytes())
            .and_then(|_| origin.write_all(&req.body))
            .is_err()
        {
            return;
        }
        // The origin closes after one answer: relay it whole, with keep-alive to the client.
        let mut answer = Vec::new();
        if origin.read_to_end(&mut answer).is_err() {
            return;
        }
        let text = String::from_utf8_lossy(&answer);
        let Some(split) = text.find("\r\n\r\n") else {
            return;
        };
        let (head, body) = (&answer[..split], &answer[split + 4..]);
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let mut fixed = format!("{}\r\n", lines.next().unwrap_or("HTTP/1.1 502 Bad Gateway"));
        for l in lines {
            let lower = l.to_ascii_lowercase();
            if !lower.starts_with("connection:")
                && !lower.starts_with("content-length:")
                && !lower.starts_with("transfer-encoding:")
            {
                fixed.push_str(l);
                fixed.push_str("\r\n");
            }
        }
        fixed.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        if client
            .write_all(fixed.as_bytes())
            .and_then(|_| client.write_all(body))
            .is_err()
        {
            return;
        }
    }
}
