//! Just enough HTTP/1.1 for a loopback STS and a test client: std only, every
//! read bounded by a timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::find_bytes;
use super::sigv4;

const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/` for the SDK's STS calls).
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the client wants the connection closed after this exchange.
    pub fn wants_close(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        conn.contains("close") || (self.version == "HTTP/1.0" && !conn.contains("keep-alive"))
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads more bytes into `buf`. Read timeouts on `stream` come back here so
/// `keep_going` can end the wait (the server's shutdown flag); `Ok(false)` is
/// EOF or a give-up.
fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    keep_going: &dyn Fn() -> bool,
) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if !keep_going() {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn parse_head(head: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let first = lines.next()?.to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((first, headers))
}

/// Decodes a complete chunked body at the start of `data`; `None` while
/// incomplete. Returns the body and the bytes consumed (trailers included).
pub fn decode_chunked(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = pos + find_bytes(&data[pos..], b"\r\n")?;
        let line = std::str::from_utf8(&data[pos..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = pos + find_bytes(&data[pos..], b"\r\n")?;
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Some((body, pos));
                }
            }
        }
        if data.len() < pos + size + 2 {
            return None;
        }
        body.extend_from_slice(&data[pos..pos + size]);
        pos += size + 2;
    }
}

/// Reads one request; `buf` carries bytes already read past the previous one
/// (keep-alive). `Ok(None)` when the client went away between requests.
pub fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    keep_going: &dyn Fn() -> bool,
) -> io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(pos) = find_bytes(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD || !fill(stream, buf, keep_going)? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    buf.drain(..head_end);
    let Some((first, headers)) = parse_head(&head) else {
        return Ok(None);
    };
    let mut parts = first.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("/").to_string(),
        parts.next().unwrap_or("HTTP/1.1").to_string(),
    );
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        loop {
            if let Some((body, used)) = decode_chunked(buf) {
                buf.drain(..used);
                break body;
            }
            if !fill(stream, buf, keep_going)? {
                return Ok(None);
            }
        }
    } else {
        let len: usize = header(&headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !fill(stream, buf, keep_going)? {
                return Ok(None);
            }
        }
        buf.drain(..len).collect()
    };
    Ok(Some(Request {
        method,
        target,
        version,
        headers,
        body,
    }))
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Text of the first `<tag>…</tag>` in the body, XML entities decoded.
    pub fn xml(&self, tag: &str) -> Option<String> {
        xml_text(&self.body, tag)
    }
}

pub fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find(&format!("</{tag}>"))?;
    Some(xml_unescape(&doc[start..end]))
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `http://host:port[/path]` → (`host:port`, resolved address, path).
pub fn split_url(url: &str) -> io::Result<(String, SocketAddr, String)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an http URL: {url}"),
        )
    };
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let hostport = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = hostport.to_socket_addrs()?.next().ok_or_else(bad)?;
    Ok((host.to_string(), addr, path.to_string()))
}

/// One HTTP exchange on a fresh connection (`Connection: close`), everything
/// bounded by `timeout`. `path` overrides the URL's path when not empty.
pub fn http_request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let deadline = Instant::now() + timeout;
    let (host, addr, url_path) = split_url(url)?;
    let path = if path.is_empty() {
        url_path.as_str()
    } else {
        path
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if header(headers, "host").is_none() {
        req.push_str(&format!("Host: {host}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut buf = Vec::new();
    let in_time = || Instant::now() < deadline;
    // Read until the response is complete (or EOF), not just until EOF: a
    // server may keep the socket open despite `Connection: close`.
    loop {
        if let Some(resp) = parse_response(&buf) {
            return Ok(resp);
        }
        if !fill(&mut stream, &mut buf, &in_time)? {
            break;
        }
    }
    if Instant::now() >= deadline {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete response from {url} within {timeout:?}"),
        ));
    }
    parse_response_eof(&buf).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "malformed response from {url}: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        )
    })
}

/// Status, headers, and where the body starts.
type Head = (u16, Vec<(String, String)>, usize);

fn split_response(buf: &[u8]) -> Option<Head> {
    let head_end = find_bytes(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let (first, headers) = parse_head(&head)?;
    let status = first.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, headers, head_end + 4))
}

/// A response whose length is known from its headers, once fully read.
fn parse_response(buf: &[u8]) -> Option<HttpResponse> {
    let (status, headers, start) = split_response(buf)?;
    let rest = &buf[start..];
    let body = if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        decode_chunked(rest)?.0
    } else {
        let len: usize = header(&headers, "content-length")?.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    };
    Some(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A response delimited by the server closing the connection.
fn parse_response_eof(buf: &[u8]) -> Option<HttpResponse> {
    let (status, headers, start) = split_response(buf)?;
    Some(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&buf[start..]).into_owned(),
    })
}

/// A signed awsQuery call, as an SDK would make it: `params` must include
/// `Action` (and `Version`, which real STS requires). Region `us-east-1`.
pub fn sts_request(
    url: &str,
    key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    params: &[(&str, &str)],
) -> HttpResponse {
    let body = sigv4::encode_form(params);
    let (host, _, _) = split_url(url).expect("STS URL");
    let headers = sigv4::sign_post(
        &host,
        body.as_bytes(),
        key_id,
        secret,
        session_token,
        "us-east-1",
        &sigv4::amz_date_now(),
    );
    http_request(url, "POST", "", &headers, body.as_bytes(), super::TIMEOUT)
        .unwrap_or_else(|e| panic!("STS request to {url} failed: {e}"))
}

/// What a [`TinyServer`] handler answers.
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Close the connection with a TCP reset, without an answer: a server that
    /// died after reading the request.
    Reset,
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// A 307 to `location`, as an OpenBao standby answers.
    pub fn redirect(location: &str) -> Reply {
        Reply::Respond {
            status: 307,
            headers: vec![("Location".into(), location.to_string())],
            body: String::new(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 server for one test: each connection carries one
/// request, answered by the handler (on the accepting thread), and every
/// request is recorded, headers included.
pub struct TinyServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    shutdown: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TinyServer {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a tiny server");
        let addr = listener.local_addr().expect("its address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let (seen, stop) = (requests.clone(), shutdown.clone());
        let handler: Box<Handler> = Box::new(handler);
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    serve_one(stream, &*handler, &seen);
                }
            }
        });
        TinyServer {
            addr,
            requests,
            shutdown,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_one(mut stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + super::TIMEOUT;
    let mut buf = Vec::new();
    let Ok(Some(req)) = read_request(&mut stream, &mut buf, &|| Instant::now() < deadline) else {
        return;
    };
    seen.lock().unwrap().push(req.clone());
    match handler(&req) {
        Reply::Reset => reset(stream),
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
            let _ = stream.flush();
        }
    }
}

/// Closes with RST instead of FIN: SO_LINGER on, with a zero timeout.
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket, and a pointer to a linger of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}
