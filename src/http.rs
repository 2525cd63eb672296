//! A small HTTP(S) GET for the credential and metadata endpoints: the link-local endpoints
//! of ECS (task metadata, container credentials) and `credentials_endpoint`. Never through
//! a proxy, with a timeout on every step.
//!
//! AWS calls go through the SDK's client (proxies from the environment); these endpoints
//! are on the task's own network and must not be proxied. ECS's are plain HTTP;
//! `credentials_endpoint` may also be `https://`, as the Go plugin takes it: the server's
//! certificate is checked against the roots the SDK's client trusts (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, else the system's, through `rustls-native-certs`).
//!
//! Errors do not repeat the URL: a container-credentials URL's path is a secret, so the
//! caller says which endpoint failed, in a form it may log.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The most a response may hold: metadata documents are a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

/// GETs `url` (`http://` or `https://`, `host[:port]/path`), with `headers`. Returns the
/// status and body.
pub fn get(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, String), String> {
    get_trusting(url, headers, timeout, native_roots)
}

/// [`get`], with the roots an `https://` server's certificate is checked against.
fn get_trusting(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    roots: fn() -> Result<RootCertStore, String>,
) -> Result<(u16, String), String> {
    let (tls, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        _ => return Err("only http:// and https:// URLs are supported".to_owned()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = split_authority(authority, if tls { 443 } else { 80 })?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_owned())?;
    let conn = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let raw = if tls {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots()?)
            .with_no_client_auth();
        let session = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        exchange(StreamOwned::new(session, conn), &request)?
    } else {
        exchange(conn, &request)?
    };
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "incomplete HTTP response".to_owned())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())?;
    Ok((status, body.to_owned()))
}

/// `host[:port]` or `[v6][:port]` → the host (without brackets) and the port.
fn split_authority(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let bad = || "not a host[:port]".to_owned();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Writes `request` and reads the whole response (the server closes the connection).
fn exchange(mut stream: impl Read + Write, request: &str) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match stream.take(MAX_RESPONSE).read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS server that closes without close_notify: what came is checked as any
        // response (a cut one fails as JSON).
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e.to_string()),
    }
}

/// The roots the SDK's HTTPS client trusts: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the
/// system's.
fn native_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(
            "no trusted root certificate (SSL_CERT_FILE, SSL_CERT_DIR or the system's)".to_owned(),
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ServerConfig, ServerConnection};
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// A throwaway self-signed certificate for 127.0.0.1 and localhost (valid until 2126)
    /// and its key, made for these tests with `openssl req -x509` (P-256, CA:FALSE).
    const CERT: &[u8] = include_bytes!("../tests/tls/localhost.pem");
    const KEY: &[u8] = include_bytes!("../tests/tls/localhost.key");

    fn trusting_the_test_certificate() -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(CERT).map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
        Ok(roots)
    }

    fn trusting_nothing() -> Result<RootCertStore, String> {
        Ok(RootCertStore::empty())
    }

    /// An HTTPS server on 127.0.0.1 answering one request per connection with `body`;
    /// returns its port and the request heads it received.
    fn https_server(body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
        let cert = CertificateDer::from_pem_slice(CERT).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let session = ServerConnection::new(config.clone()).unwrap();
                let mut tls = StreamOwned::new(session, conn);
                let mut head = String::new();
                let mut reader = BufReader::new(&mut tls);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 && line != "\r\n" => head.push_str(&line),
                        _ => break,
                    }
                }
                if head.is_empty() {
                    continue; // the handshake failed: nothing was sent
                }
                heads.lock().unwrap().push(head);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (port, seen)
    }

    #[test]
    fn an_https_endpoint_is_read_when_its_certificate_is_trusted() {
        let (port, heads) = https_server(r#"{"AccessKeyId":"AKIA"}"#);
        let url = format!("https://127.0.0.1:{port}/creds?x=1");
        let (status, body) = get_trusting(
            &url,
            &[("Authorization", "token-1")],
            Duration::from_secs(5),
            trusting_the_test_certificate,
        )
        .expect("get");
        assert_eq!((status, body.as_str()), (200, r#"{"AccessKeyId":"AKIA"}"#));
        let heads = heads.lock().unwrap();
        assert!(
            heads[0].starts_with("GET /creds?x=1 HTTP/1.0\r\n"),
            "{heads:?}"
        );
        assert!(heads[0].contains("Authorization: token-1\r\n"), "{heads:?}");
    }

    #[test]
    fn an_untrusted_certificate_fails_before_anything_is_sent() {
        let (port, heads) = https_server("{}");
        let url = format!("https://127.0.0.1:{port}/creds");
        let e = get_trusting(
            &url,
            &[("Authorization", "token-2")],
            Duration::from_secs(5),
            trusting_nothing,
        )
        .unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        // The server answers nothing and records no request: the token never left.
        std::thread::sleep(Duration::from_millis(100));
        assert!(heads.lock().unwrap().is_empty());
    }

    #[test]
    fn other_schemes_are_refused() {
        let e = get("ftp://127.0.0.1/x", &[], Duration::from_secs(1)).unwrap_err();
        assert_eq!(e, "only http:// and https:// URLs are supported");
    }

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("169.254.170.2", 80),
            Ok(("169.254.170.2", 80))
        );
        assert_eq!(
            split_authority("localhost:8443", 443),
            Ok(("localhost", 8443))
        );
        assert_eq!(split_authority("[::1]", 443), Ok(("::1", 443)));
        assert_eq!(split_authority("[::1]:8080", 443), Ok(("::1", 8080)));
        assert!(split_authority("host:http", 80).is_err());
        assert!(split_authority(":80", 80).is_err());
        assert!(split_authority("[::1", 80).is_err());
    }
}
