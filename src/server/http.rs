//! Just enough HTTP/1.1 for the credentials endpoint, and strict about it: one
//! request per connection, a bounded head read against a deadline, and
//! anything that is not a plain request line with well-formed header lines
//! refused. No body is ever read, so a request announcing one is refused too.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

/// Far more than an SDK's request head (~300 bytes), far less than a thread's
/// worth of memory per connection.
pub(super) const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_TARGET: usize = 2048;

/// The parts of a request the endpoint looks at.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub authorization: Option<&'a [u8]>,
}

pub(super) enum Head {
    /// The head's length in the buffer, its final CRLF CRLF included.
    Complete(usize),
    /// No end of head within `MAX_HEAD` bytes.
    TooLarge,
    /// A bare line feed: no CRLF CRLF would ever end this head.
    Malformed,
    /// The client closed, stalled past the deadline, or the socket failed:
    /// there is nobody to answer.
    Gone,
}

/// Reads until the blank line that ends a request head, or until `deadline`.
pub(super) fn read_head(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Head {
    let mut len: usize = 0;
    loop {
        // The end may straddle two reads: look back three bytes.
        let from = len.saturating_sub(3);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Head::Gone;
        };
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Head::Gone;
        }
        if len == buf.len() {
            return Head::TooLarge;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Gone,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Head::Gone,
        }
        if let Some(end) = find_end(&buf[from..len]) {
            return Head::Complete(from + end);
        }
        if has_bare_lf(&buf[from..len], from > 0 && buf[from - 1] == b'\r') {
            return Head::Malformed;
        }
    }
}

/// Whether `data` holds a LF without its CR; `after_cr`: the byte before
/// `data` was a CR.
fn has_bare_lf(data: &[u8], after_cr: bool) -> bool {
    let mut prev_cr = after_cr;
    for &b in data {
        if b == b'\n' && !prev_cr {
            return true;
        }
        prev_cr = b == b'\r';
    }
    false
}

fn find_end(data: &[u8]) -> Option<usize> {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The request in `head` (as `read_head` delimited it), or None when it is
/// not well-formed HTTP/1.x as this endpoint accepts it.
pub(super) fn parse(head: &[u8]) -> Option<Request<'_>> {
    let head = head.strip_suffix(b"\r\n\r\n")?;
    // Lines end in CRLF only: a bare CR or LF is how requests get smuggled
    // past one parser and read differently by another.
    let mut lines = Lines {
        rest: head,
        failed: false,
    };
    let first = lines.next()?;
    let mut parts = first.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || method.len() > 16
        || !method.iter().all(|&b| is_tchar(b))
        || !target.starts_with(b"/")
        || target.len() > MAX_TARGET
        || !target.iter().all(|&b| (0x21..=0x7e).contains(&b))
        || !(version == b"HTTP/1.1" || version == b"HTTP/1.0")
    {
        return None;
    }
    let mut authorization = None;
    let mut count = 0;
    for line in lines.by_ref() {
        count += 1;
        if count > MAX_HEADERS {
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // No whitespace before the colon, and no obsolete line folding.
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let value = trim_ows(value);
        if !value
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        if name.eq_ignore_ascii_case(b"authorization") {
            // Two tokens: which one counts is a matter of opinion; refuse both.
            if authorization.replace(value).is_some() {
                return None;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || (name.eq_ignore_ascii_case(b"content-length") && value != b"0")
        {
            return None;
        }
    }
    if lines.failed {
        return None;
    }
    Some(Request {
        method,
        target,
        authorization,
    })
}

/// CRLF-separated lines; `failed` once a bare CR or LF turns up.
struct Lines<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let after = &self.rest[end..];
        if after.is_empty() {
            self.rest = after;
        } else if let Some(next) = after.strip_prefix(b"\r\n") {
            // A blank line inside the head would end it early elsewhere.
            if next.is_empty() {
                self.failed = true;
                return None;
            }
            self.rest = next;
        } else {
            self.failed = true;
            return None;
        }
        Some(line)
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Equal contents, in time that depends on the lengths only: how much of a
/// guessed token matched must not show in how long the answer takes.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A response without a body, for everything but the credentials.
pub(super) fn bare(status: u16) -> &'static [u8] {
    match status {
        400 => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        403 => b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        405 => {
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        431 => {
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        _ => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    }
}

/// The head of a 200 response carrying `len` bytes of JSON.
pub(super) fn ok_head(len: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Option<Request<'_>> {
        parse(text.as_bytes())
    }

    #[test]
    fn a_plain_sdk_request_is_read() {
        let r = req(
            "GET /abc HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization:  tok \r\nAccept: */*\r\n\r\n",
        )
        .expect("well-formed");
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, b"/abc");
        assert_eq!(r.authorization, Some(&b"tok"[..]));
        let r = req("GET / HTTP/1.0\r\n\r\n").expect("no headers at all");
        assert_eq!(r.authorization, None);
        let r = req("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").expect("an empty body");
        assert_eq!(r.method, b"POST");
    }

    #[test]
    fn anything_loose_is_refused() {
        for bad in [
            "GET /abc HTTP/1.1\r\n",                           // no blank line
            "GET /abc HTTP/1.1\n\n",                           // bare LF
            "GET /abc HTTP/1.1\r\nA: b\nC: d\r\n\r\n",         // bare LF inside
            "GET /abc HTTP/1.1\r\nA: b\rC: d\r\n\r\n",         // bare CR
            "GET  /abc HTTP/1.1\r\n\r\n",                      // two spaces
            "GET /abc HTTP/1.1 \r\n\r\n",                      // trailing space
            "GET abc HTTP/1.1\r\n\r\n",                        // not origin-form
            "GET http://x/abc HTTP/1.1\r\n\r\n",               // absolute-form
            "GET /abc HTTP/2\r\n\r\n",                         // other version
            "G@T /abc HTTP/1.1\r\n\r\n",                       // method not a token
            "GET /abc HTTP/1.1\r\nHost : x\r\n\r\n",           // space before colon
            "GET /abc HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", // obs-fold
            "GET /abc HTTP/1.1\r\nNoColon\r\n\r\n",            // not a header
            "GET /abc HTTP/1.1\r\nAuthorization: a\r\nAuthorization: a\r\n\r\n",
            "GET /abc HTTP/1.1\r\nContent-Length: 5\r\n\r\n", // a body
            "GET /abc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", // a body
            "GET /abc HTTP/1.1\r\nA: \u{1}\r\n\r\n",          // control in a value
            "GET /abc HTTP/1.1\r\n\r\nA: b\r\n\r\n",          // blank line inside
        ] {
            assert_eq!(req(bad), None, "{bad:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(req(&format!("GET / HTTP/1.1\r\n{many}\r\n")), None);
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abcd", b"abcd"));
        assert!(!same_secret(b"abcd", b"abce"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn a_bare_line_feed_is_seen_at_once() {
        assert!(has_bare_lf(b"GET / HTTP/1.1\n", false));
        assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nA: b\r\n", false));
        assert!(!has_bare_lf(b"\nA: b", true));
        assert!(has_bare_lf(b"\nA: b", false));
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r"), None);
    }
}
