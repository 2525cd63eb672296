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
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
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
    get_trusting(url, headers, timeout, None, native_roots)
}

/// The addresses a request may be sent to, and the rule they follow (said in errors).
#[derive(Debug, Clone, Copy)]
pub struct Only {
    pub allowed: fn(IpAddr) -> bool,
    pub rule: &'static str,
}

/// [`get`], only when the host resolves, and only to addresses `only` allows (the
/// connection then goes to one of exactly those addresses: the host is resolved once).
pub fn get_if(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    only: Option<Only>,
) -> Result<(u16, String), String> {
    get_trusting(url, headers, timeout, only, native_roots)
}

/// [`get_if`], with the roots an `https://` server's certificate is checked against.
fn get_trusting(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    only: Option<Only>,
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
    let addrs: Vec<SocketAddr> = match ((host, port).to_socket_addrs(), only) {
        (Ok(addrs), _) => addrs.collect(),
        (Err(e), None) => return Err(e.to_string()),
        (Err(e), Some(only)) => {
            return Err(format!(
                "cannot resolve {host} ({e}), and {}; nothing was sent",
                only.rule
            ));
        }
    };
    if let Some(only) = only
        && let Some(addr) = addrs.iter().find(|a| !(only.allowed)(a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, but {}; nothing was sent",
            addr.ip(),
            only.rule
        ));
    }
    let addr = addrs.first().ok_or_else(|| "no address".to_owned())?;
    let conn = TcpStream::connect_timeout(addr, timeout).map_err(|e| e.to_string())?;
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
    use flb_host::fake::{JsonServer, TLS_CERT};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn trusting_the_test_certificate() -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(TLS_CERT).map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
        Ok(roots)
    }

    fn trusting_nothing() -> Result<RootCertStore, String> {
        Ok(RootCertStore::empty())
    }

    fn creds_server() -> JsonServer {
        JsonServer::start_https(vec![(
            "/creds?x=1",
            vec![(200, r#"{"AccessKeyId":"AKIA"}"#.to_owned())],
        )])
    }

    #[test]
    fn an_https_endpoint_is_read_when_its_certificate_is_trusted() {
        let server = creds_server();
        let (status, body) = get_trusting(
            &server.url("/creds?x=1"),
            &[("Authorization", "token-1")],
            Duration::from_secs(5),
            None,
            trusting_the_test_certificate,
        )
        .expect("get");
        assert_eq!((status, body.as_str()), (200, r#"{"AccessKeyId":"AKIA"}"#));
        assert_eq!(server.hits("/creds?x=1"), 1);
        let headers = server.last_headers();
        assert!(
            headers.contains(&("Authorization".to_owned(), "token-1".to_owned())),
            "{headers:?}"
        );
    }

    #[test]
    fn an_untrusted_certificate_fails_before_anything_is_sent() {
        let server = creds_server();
        let e = get_trusting(
            &server.url("/creds?x=1"),
            &[("Authorization", "token-2")],
            Duration::from_secs(5),
            None,
            trusting_nothing,
        )
        .unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        // The server read no request: the token never left.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.hits("/creds?x=1"), 0);
        assert!(server.last_headers().is_empty());
    }

    /// The host is resolved once, every address checked, and a refused one gets nothing:
    /// the authorization token never leaves.
    #[test]
    fn a_refused_address_gets_no_request() {
        let server = JsonServer::start(vec![("/creds", vec![(200, "{}".to_owned())])]);
        let only = Only {
            allowed: |ip| !ip.is_loopback(),
            rule: "the test allows no loopback address",
        };
        for host in ["127.0.0.1", "localhost"] {
            let url = server.url("/creds").replace("127.0.0.1", host);
            let e = get_if(
                &url,
                &[("Authorization", "t")],
                Duration::from_secs(5),
                Some(only),
            )
            .unwrap_err();
            assert!(
                e.starts_with(&format!("{host} resolves to "))
                    && e.ends_with(", but the test allows no loopback address; nothing was sent"),
                "{e}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.hits("/creds"), 0);
        let all = Only {
            allowed: |_| true,
            rule: "",
        };
        let (status, _) = get_if(
            &server.url("/creds"),
            &[],
            Duration::from_secs(5),
            Some(all),
        )
        .expect("allowed");
        assert_eq!((status, server.hits("/creds")), (200, 1));
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
