//! The HTTP client a `ferry serve` instance uses to read a *source*
//! instance during live sync. It owns the connection policy that makes the
//! checks of [`super::ssrf`] stick: every connection is pinned to the
//! vetted addresses of a [`CheckedSource`] (DNS is not consulted again, so a
//! rebinding attack cannot swap the address), redirects are never followed,
//! requests have a deadline, response bodies are capped, and the forwarded
//! source credential never appears in errors or debug output.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ssrf::CheckedSource;
use super::sync_config::SyncConfig;

/// The most characters of a source's error body kept in [`SourceError::Status`].
const EXCERPT_CHARS: usize = 300;

/// The most bytes read from a non-2xx response to build its excerpt.
const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// A client for one checked source instance.
pub struct SourceClient {
    checked: CheckedSource,
    origin: String,
    agent: ureq::Agent,
    cap: u64,
    authorization: Option<String>,
}

impl fmt::Debug for SourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceClient")
            .field("url", &self.checked.url.as_str())
            .field("addrs", &self.checked.addrs)
            .field("allow_listed", &self.checked.allow_listed)
            .field("cap", &self.cap)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// Why a request to a source failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The request path cannot be joined to the source URL.
    #[error("cannot request `{path}` from source {origin}: {reason}")]
    Path {
        /// The source's origin.
        origin: String,
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No connection, TLS failure, timeout, or other transport failure.
    #[error("cannot reach source {origin}: {reason}")]
    Connect {
        /// The source's origin.
        origin: String,
        /// The transport error.
        reason: String,
    },
    /// The source answered with a redirect, which is never followed.
    #[error("source {origin} answered HTTP {status} redirecting to {}; redirects are not followed, give the final URL as the source", location.as_deref().unwrap_or("(no location)"))]
    Redirect {
        /// The source's origin.
        origin: String,
        /// The 3xx status.
        status: u16,
        /// The `Location` header, if any.
        location: Option<String>,
    },
    /// The response body exceeds `max_response_bytes`.
    #[error("source {origin} sent more than {limit} bytes; raise `max_response_bytes` in the [sync] table of the server config")]
    TooLarge {
        /// The source's origin.
        origin: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The source answered with a non-2xx status.
    #[error("source {origin} answered HTTP {status}{}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(), body_excerpt.as_ref().map(|b| format!(": {b}")).unwrap_or_default())]
    Status {
        /// The source's origin.
        origin: String,
        /// The HTTP status.
        status: u16,
        /// The `error.code` of a ferry error body, if the body was one.
        code: Option<String>,
        /// The `error.message` of a ferry error body, or the start of a
        /// textual body (at most 300 characters).
        body_excerpt: Option<String>,
    },
    /// The body could not be read to the end.
    #[error("cannot read the response of source {origin}: {reason}")]
    Read {
        /// The source's origin.
        origin: String,
        /// The I/O error.
        reason: String,
    },
    /// The body is not the JSON expected.
    #[error("source {origin} sent an unexpected response to `{path}`: {reason}")]
    Decode {
        /// The source's origin.
        origin: String,
        /// The requested path.
        path: String,
        /// The JSON error.
        reason: String,
    },
}

impl SourceError {
    /// A stable machine-readable code for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Path { .. } => "source_path_invalid",
            SourceError::Connect { .. } => "source_unreachable",
            SourceError::Redirect { .. } => "source_redirected",
            SourceError::TooLarge { .. } => "source_response_too_large",
            SourceError::Status { .. } => "source_error_status",
            SourceError::Read { .. } => "source_read_failed",
            SourceError::Decode { .. } => "source_response_invalid",
        }
    }

    /// The `[sync]` setting that governs the failure, if any.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            SourceError::TooLarge { .. } => Some("max_response_bytes"),
            _ => None,
        }
    }
}

impl SourceClient {
    /// A client for `checked`, pinned to its vetted addresses.
    ///
    /// `authorization` is a full `Authorization` header value (for example
    /// `"Bearer xyz"`) sent with every request.
    pub fn new(
        checked: CheckedSource,
        cfg: &SyncConfig,
        authorization: Option<String>,
    ) -> SourceClient {
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let pinned = PinnedResolver {
            host: checked.host.clone(),
            port: checked.port,
            addrs: checked.addrs.clone(),
        };
        let agent = ureq::AgentBuilder::new()
            .resolver(move |netloc: &str| pinned.resolve(netloc))
            .try_proxy_from_env(false)
            .redirects(0)
            .timeout_connect(timeout)
            .timeout(timeout)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build();
        SourceClient {
            origin: checked.origin(),
            checked,
            agent,
            cap: cfg.max_response_bytes,
            authorization,
        }
    }

    /// The checked source this client reads.
    pub fn source(&self) -> &CheckedSource {
        &self.checked
    }

    /// `GET` `path_and_query` (joined under the source URL) and return the
    /// body.
    pub fn get(&self, path_and_query: &str) -> Result<Vec<u8>, SourceError> {
        self.send("GET", path_and_query, None, None)
    }

    /// `POST` `body` to `path_and_query` (joined under the source URL) and
    /// return the response body.
    pub fn post(
        &self,
        path_and_query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, SourceError> {
        self.send("POST", path_and_query, content_type, Some(body))
    }

    /// `GET` `p` and decode the body as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, p: &str) -> Result<T, SourceError> {
        let body = self.get(p)?;
        serde_json::from_slice(&body).map_err(|e| SourceError::Decode {
            origin: self.origin.clone(),
            path: p.to_string(),
            reason: e.to_string(),
        })
    }

    /// The URL of `path_and_query` under the source URL's path prefix:
    /// `https://host/eddi` + `/backup/x?y=1` is `https://host/eddi/backup/x?y=1`.
    pub fn url_for(&self, path_and_query: &str) -> Result<url::Url, SourceError> {
        let bad = |reason: &str| SourceError::Path {
            origin: self.origin.clone(),
            path: path_and_query.to_string(),
            reason: reason.to_string(),
        };
        if path_and_query.contains("://") && !path_and_query.starts_with('/') {
            return Err(bad("give a path, not a URL"));
        }
        if path_and_query.contains('#') {
            return Err(bad("a request path has no fragment"));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let prefix = self.checked.url.path().trim_end_matches('/');
        let joined = if path.starts_with('/') {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}/{path}")
        };
        let mut url = self.checked.url.clone();
        url.set_path(&joined);
        url.set_query(query);
        if url.origin() != self.checked.url.origin() {
            return Err(bad("it leaves the source's origin"));
        }
        Ok(url)
    }

    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, SourceError> {
        let url = self.url_for(path_and_query)?;
        let mut request = self
            .agent
            .request_url(method, &url)
            .set("Accept", "application/json, */*;q=0.5");
        if let Some(auth) = &self.authorization {
            request = request.set("Authorization", auth);
        }
        let result = match body {
            Some(bytes) => {
                if let Some(ct) = content_type {
                    request = request.set("Content-Type", ct);
                }
                request.send_bytes(bytes)
            }
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(t)) => {
                return Err(SourceError::Connect {
                    origin: self.origin.clone(),
                    reason: self.redact(&t.to_string()),
                })
            }
        };
        let status = response.status();
        if (300..400).contains(&status) {
            return Err(SourceError::Redirect {
                origin: self.origin.clone(),
                status,
                location: response.header("location").map(str::to_string),
            });
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error(status, response));
        }
        if let Some(len) = response
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > self.cap {
                return Err(self.too_large());
            }
        }
        let mut buf = Vec::new();
        response
            .into_reader()
            .take(self.cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| SourceError::Read {
                origin: self.origin.clone(),
                reason: e.to_string(),
            })?;
        if buf.len() as u64 > self.cap {
            return Err(self.too_large());
        }
        Ok(buf)
    }

    fn too_large(&self) -> SourceError {
        SourceError::TooLarge {
            origin: self.origin.clone(),
            limit: self.cap,
        }
    }

    fn status_error(&self, status: u16, response: ureq::Response) -> SourceError {
        let content_type = response.content_type().to_ascii_lowercase();
        let mut buf = Vec::new();
        // The body only decorates the error; a failed read leaves it out.
        let _ = response
            .into_reader()
            .take(ERROR_BODY_BYTES)
            .read_to_end(&mut buf);
        let (code, body_excerpt) = match ferry_error(&buf) {
            Some((code, message)) => (code, message.map(|m| excerpt(&m))),
            None => {
                let textual = content_type.contains("json")
                    || content_type.starts_with("text/")
                    || content_type.is_empty();
                let text = if textual {
                    std::str::from_utf8(&buf).ok()
                } else {
                    None
                };
                (
                    None,
                    text.filter(|t| {
                        !t.trim().is_empty()
                            && !t.chars().any(|c| c.is_control() && !c.is_whitespace())
                    })
                    .map(excerpt),
                )
            }
        };
        SourceError::Status {
            origin: self.origin.clone(),
            status,
            code: code.map(|c| self.redact(&c)),
            body_excerpt: body_excerpt.map(|b| self.redact(&b)),
        }
    }

    /// `text` with the forwarded credential (and its token part) removed,
    /// in case a source echoes it back.
    fn redact(&self, text: &str) -> String {
        let Some(auth) = &self.authorization else {
            return text.to_string();
        };
        let mut out = text.replace(auth.as_str(), "[redacted]");
        if let Some((_, token)) = auth.split_once(' ') {
            let token = token.trim();
            if token.len() >= 4 {
                out = out.replace(token, "[redacted]");
            }
        }
        out
    }
}

/// Resolves only the checked host and port, to the vetted addresses.
struct PinnedResolver {
    host: String,
    port: u16,
    addrs: Vec<SocketAddr>,
}

impl PinnedResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let refuse = || {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("`{netloc}` is not the checked source address"),
            )
        };
        let (host, port) = netloc.rsplit_once(':').ok_or_else(refuse)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| refuse())?;
        if port != self.port || !host.eq_ignore_ascii_case(&self.host) {
            return Err(refuse());
        }
        Ok(self.addrs.clone())
    }
}

/// The `(code, message)` of a ferry error body `{"error":{"code","message"}}`.
fn ferry_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?.as_object()?;
    let code = error
        .get("code")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let message = error
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    if code.is_none() && message.is_none() {
        return None;
    }
    Some((code, message))
}

/// At most [`EXCERPT_CHARS`] characters of `text`, whitespace collapsed.
fn excerpt(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = collapsed.chars();
    let mut out: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ssrf::check_source_with;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// A one-shot HTTP server on 127.0.0.1: answers one request with
    /// `response` and sends the request head (and body) back over `rx`.
    fn serve_once(response: Vec<u8>) -> (u16, mpsc::Receiver<String>, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut content_length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap();
                }
                let end = line == "\r\n";
                head.push_str(&line);
                if end {
                    break;
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            head.push_str(&String::from_utf8_lossy(&body));
            tx.send(head).unwrap();
            let mut stream = stream;
            // The client may hang up early (e.g. on too-large bodies).
            let _ = stream.write_all(&response);
            let _ = stream.flush();
        });
        (port, rx, handle)
    }

    fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn loopback_cfg(port: u16) -> SyncConfig {
        SyncConfig {
            allowed_sources: vec![format!("http://127.0.0.1:{port}")],
            ..SyncConfig::default()
        }
    }

    fn no_dns(host: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
        panic!("no DNS expected for {host}")
    }

    fn client(port: u16, prefix: &str, auth: Option<&str>) -> SourceClient {
        let cfg = loopback_cfg(port);
        let checked =
            check_source_with(&format!("http://127.0.0.1:{port}{prefix}"), &cfg, &no_dns).unwrap();
        SourceClient::new(checked, &cfg, auth.map(str::to_string))
    }

    #[test]
    fn ok_body_is_returned_and_authorization_forwarded() {
        let (port, rx, handle) = serve_once(http(
            "200 OK",
            "Content-Type: application/json\r\n",
            br#"{"ok":true}"#,
        ));
        let client = client(port, "/eddi", Some("Bearer s3cr3t-token"));
        let value: serde_json::Value = client.get_json("/backup/export/x?y=1").unwrap();
        assert_eq!(value["ok"], true);
        let request = rx.recv().unwrap();
        handle.join().unwrap();
        assert!(
            request.starts_with("GET /eddi/backup/export/x?y=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\nAuthorization: Bearer s3cr3t-token\r\n"),
            "{request}"
        );
    }

    #[test]
    fn post_sends_body_and_content_type() {
        let (port, rx, handle) = serve_once(http("201 Created", "", b"done"));
        let client = client(port, "", None);
        let body = client
            .post("backup/import", Some("application/zip"), b"PK-bytes")
            .unwrap();
        assert_eq!(body, b"done");
        let request = rx.recv().unwrap();
        handle.join().unwrap();
        assert!(
            request.starts_with("POST /backup/import HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Content-Type: application/zip\r\n"),
            "{request}"
        );
        assert!(request.ends_with("PK-bytes"), "{request}");
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "{request}"
        );
    }

    #[test]
    fn redirect_is_not_followed() {
        let (port, rx, handle) = serve_once(http(
            "302 Found",
            "Location: http://169.254.169.254/latest/meta-data/\r\n",
            b"",
        ));
        let client = client(port, "", Some("Bearer tok"));
        let err = client.get("/x").unwrap_err();
        rx.recv().unwrap();
        handle.join().unwrap();
        match &err {
            SourceError::Redirect {
                status, location, ..
            } => {
                assert_eq!(*status, 302);
                assert_eq!(
                    location.as_deref(),
                    Some("http://169.254.169.254/latest/meta-data/")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.code(), "source_redirected");
    }

    #[test]
    fn body_over_the_cap_is_too_large() {
        // Declared length over the cap.
        let (port, _rx, handle) = serve_once(http("200 OK", "", &[b'a'; 100]));
        let cfg = SyncConfig {
            max_response_bytes: 64,
            ..loopback_cfg(port)
        };
        let checked =
            check_source_with(&format!("http://127.0.0.1:{port}"), &cfg, &no_dns).unwrap();
        let client = SourceClient::new(checked.clone(), &cfg, None);
        let err = client.get("/big").unwrap_err();
        handle.join().unwrap();
        assert_eq!(
            err,
            SourceError::TooLarge {
                origin: format!("http://127.0.0.1:{port}"),
                limit: 64
            }
        );
        assert!(err.to_string().contains("max_response_bytes"));
        assert_eq!(err.setting(), Some("max_response_bytes"));
    }

    #[test]
    fn undeclared_body_over_the_cap_is_too_large() {
        // No Content-Length: the body runs to the end of the connection.
        let mut response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        response.extend_from_slice(&[b'b'; 100]);
        let (port, _rx, handle) = serve_once(response);
        let cfg = SyncConfig {
            max_response_bytes: 64,
            ..loopback_cfg(port)
        };
        let checked =
            check_source_with(&format!("http://127.0.0.1:{port}"), &cfg, &no_dns).unwrap();
        let err = SourceClient::new(checked, &cfg, None)
            .get("/big")
            .unwrap_err();
        handle.join().unwrap();
        assert!(
            matches!(err, SourceError::TooLarge { limit: 64, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn body_at_the_cap_is_returned() {
        let (port, _rx, handle) = serve_once(http("200 OK", "", &[b'c'; 64]));
        let cfg = SyncConfig {
            max_response_bytes: 64,
            ..loopback_cfg(port)
        };
        let checked =
            check_source_with(&format!("http://127.0.0.1:{port}"), &cfg, &no_dns).unwrap();
        let body = SourceClient::new(checked, &cfg, None).get("/").unwrap();
        handle.join().unwrap();
        assert_eq!(body.len(), 64);
    }

    #[test]
    fn ferry_error_body_keeps_its_message() {
        let (port, _rx, handle) = serve_once(http(
            "403 Forbidden",
            "Content-Type: application/json\r\n",
            br#"{"error":{"code":"forbidden","message":"token Bearer s3cr3t lacks scope export"}}"#,
        ));
        let client = client(port, "", Some("Bearer s3cr3t"));
        let err = client.get("/backup/export/t").unwrap_err();
        handle.join().unwrap();
        match &err {
            SourceError::Status {
                status,
                code,
                body_excerpt,
                ..
            } => {
                assert_eq!(*status, 403);
                assert_eq!(code.as_deref(), Some("forbidden"));
                assert_eq!(
                    body_excerpt.as_deref(),
                    Some("token [redacted] lacks scope export")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
    }

    #[test]
    fn text_error_body_is_excerpted_and_binary_is_dropped() {
        let long = "x".repeat(1000);
        let (port, _rx, handle) = serve_once(http(
            "500 Internal Server Error",
            "Content-Type: text/plain\r\n",
            long.as_bytes(),
        ));
        let err = client(port, "", None).get("/").unwrap_err();
        handle.join().unwrap();
        match err {
            SourceError::Status {
                status: 500,
                code: None,
                body_excerpt: Some(b),
                ..
            } => assert_eq!(b.chars().count(), EXCERPT_CHARS + 1),
            other => panic!("unexpected {other:?}"),
        }

        let (port, _rx, handle) = serve_once(http(
            "502 Bad Gateway",
            "Content-Type: application/octet-stream\r\n",
            &[0, 1, 2, 3],
        ));
        let err = client(port, "", None).get("/").unwrap_err();
        handle.join().unwrap();
        assert!(matches!(
            err,
            SourceError::Status {
                status: 502,
                body_excerpt: None,
                ..
            }
        ));
    }

    #[test]
    fn resolver_is_pinned_to_the_checked_address() {
        let (port, rx, handle) = serve_once(http("200 OK", "", b"pinned"));
        let cfg = SyncConfig {
            allowed_sources: vec![format!("http://source.test:{port}")],
            ..SyncConfig::default()
        };
        let calls = std::cell::Cell::new(0);
        let fake = |host: &str, p: u16| {
            calls.set(calls.get() + 1);
            assert_eq!((host, p), ("source.test", port));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        };
        let checked =
            check_source_with(&format!("http://source.test:{port}/"), &cfg, &fake).unwrap();
        assert_eq!(calls.get(), 1);
        let client = SourceClient::new(checked, &cfg, None);
        // `source.test` does not exist in DNS: only the pinned resolver
        // makes this connection possible.
        assert_eq!(client.get("/ping").unwrap(), b"pinned");
        let request = rx.recv().unwrap();
        handle.join().unwrap();
        assert!(request.starts_with("GET /ping HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("\r\nhost: source.test:{port}\r\n")),
            "{request}"
        );
        assert_eq!(calls.get(), 1, "DNS must not be consulted again");
    }

    #[test]
    fn pinned_resolver_refuses_other_hosts() {
        let pinned = PinnedResolver {
            host: "source.test".to_string(),
            port: 443,
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 443))],
        };
        assert_eq!(pinned.resolve("SOURCE.test:443").unwrap().len(), 1);
        assert!(pinned.resolve("source.test:80").is_err());
        assert!(pinned.resolve("evil.test:443").is_err());
        assert!(pinned.resolve("source.test").is_err());
        let v6 = PinnedResolver {
            host: "::1".to_string(),
            port: 443,
            addrs: vec!["[::1]:443".parse().unwrap()],
        };
        assert_eq!(v6.resolve("[::1]:443").unwrap().len(), 1);
    }

    #[test]
    fn connect_failure_is_reported_without_the_credential() {
        // Bind then drop a listener to get a loopback port with nothing on it.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = client(port, "", Some("Bearer topsecret"));
        let err = client.get("/").unwrap_err();
        assert_eq!(err.code(), "source_unreachable");
        assert!(!format!("{err} {err:?} {client:?}").contains("topsecret"));
        assert!(format!("{client:?}").contains("[redacted]"));
    }

    #[test]
    fn paths_join_under_the_prefix() {
        let cfg = SyncConfig {
            allow_private_sources: true,
            ..SyncConfig::default()
        };
        let checked = check_source_with("https://10.0.0.1/eddi/", &cfg, &no_dns).unwrap();
        let client = SourceClient::new(checked, &cfg, None);
        assert_eq!(
            client.url_for("/backup/export/x").unwrap().as_str(),
            "https://10.0.0.1/eddi/backup/export/x"
        );
        assert_eq!(
            client.url_for("backup?a=1&b=2").unwrap().as_str(),
            "https://10.0.0.1/eddi/backup?a=1&b=2"
        );
        assert_eq!(
            client.url_for("//evil.example/x").unwrap().host_str(),
            Some("10.0.0.1")
        );
        assert!(client.url_for("http://evil.example/x").is_err());
        assert!(client.url_for("/x#frag").is_err());
    }

    #[test]
    fn excerpt_is_bounded_and_collapsed() {
        assert_eq!(excerpt("a\n  b"), "a b");
        assert_eq!(excerpt(&"é".repeat(400)).chars().count(), EXCERPT_CHARS + 1);
    }
}
