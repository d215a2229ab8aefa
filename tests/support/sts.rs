//! `StsStub`: a loopback STS speaking the awsQuery protocol the way the real
//! service does, for what moto cannot do: check MFA codes and signatures,
//! count calls, throttle, expire tokens, answer slowly, and fail the way
//! networks and overloaded services do ([`Fault`]).
//!
//! Requests are POST (or GET) `/` with form parameters; identity comes from the
//! SigV4 `Authorization` header (`Credential=KEYID/…`) plus
//! `X-Amz-Security-Token` for session credentials. Signatures are verified
//! against the secret the stub knows for that key id (switch off with
//! `verify_signatures(false)`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use totp_rs::{Algorithm, Secret, TOTP};

use super::http::{Request, read_request, xml_escape};
use super::sigv4::{self, parse_authorization, parse_form};
use super::{random_hex, rfc3339};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const BAD_CODE: &str = "MultiFactorAuthentication failed with invalid MFA one time pass code. ";

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Arrival order, from 0, across the stub's life (`clear_log` included).
    pub seq: u64,
    pub action: String,
    /// From the `Authorization` header's `Credential=`.
    pub access_key_id: Option<String>,
    /// `X-Amz-Security-Token`, for calls made with session credentials.
    pub session_token: Option<String>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
    pub duration_seconds: Option<u64>,
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    /// The TOTP step (unix time / 30) whose code `token_code` is, when it is
    /// a valid code for the device (current step ±1).
    pub totp_step: Option<u64>,
    /// Every form/query parameter, decoded.
    pub params: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// The error code answered (`AccessDenied`, `Throttling`, …); `None` for
    /// success or while still being answered; `(no answer)` for a [`Fault::Stall`].
    pub error: Option<String>,
    pub at: SystemTime,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A way the next request fails, queued with [`StsStub::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `500 InternalFailure` (or 503 `ServiceUnavailable`), answered before the
    /// request is looked at: no code is used.
    ServerError(u16),
    /// The request is acted on (a valid code is used, credentials issued), then
    /// the connection is reset instead of answered.
    ResetAfterRequest,
    /// The request is acted on and the answer starts, but the connection closes
    /// halfway through the body its `Content-Length` announced.
    Truncated,
    /// The request is read and never answered: the connection stays open until
    /// the stub stops (or after `TIMEOUT`).
    Stall,
}

/// What `serve` does with an answer.
enum Delivery {
    Whole,
    Reset,
    Truncated,
    Stall,
}

/// Credentials the stub handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `GetSessionToken` or `AssumeRole`.
    pub action: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
    /// Exactly the `<Expiration>` text sent.
    pub expiration_text: String,
    /// The key id that asked for them.
    pub caller_key_id: String,
    pub role_arn: Option<String>,
    pub serial_number: Option<String>,
}

#[derive(Clone)]
enum Principal {
    User { name: String },
    Role { arn: String, session: String },
}

struct Session {
    secret: String,
    token: String,
    expiration: SystemTime,
    expired: bool,
    principal: Principal,
}

struct Role {
    external_id: Option<String>,
}

struct State {
    users: HashMap<String, (String, String)>,
    mfa: HashMap<String, TOTP>,
    roles: HashMap<String, Role>,
    sessions: HashMap<String, Session>,
    used_codes: HashSet<(String, String)>,
    session_lifetime: Option<Duration>,
    role_session_lifetime: Option<Duration>,
    reject_reused: bool,
    throttle: usize,
    faults: VecDeque<Fault>,
    delay: Duration,
    verify_signatures: bool,
    require_mfa: bool,
    assume_role_requires_session: bool,
    requests: Vec<Recorded>,
    next_seq: u64,
    issued: Vec<Issued>,
}

struct Inner {
    state: Mutex<State>,
    shutdown: AtomicBool,
    connections: AtomicUsize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a
        // PoisonError that hides the first failure.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct StsStub {
    inner: Arc<Inner>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

/// An STS error as the wire carries it.
struct StsError {
    status: u16,
    code: &'static str,
    message: String,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> StsError {
    StsError {
        status,
        code,
        message: message.into(),
    }
}

fn access_denied(message: impl Into<String>) -> StsError {
    err(403, "AccessDenied", message)
}

fn validation(message: impl Into<String>) -> StsError {
    err(400, "ValidationError", message)
}

impl StsStub {
    /// The account every stub principal lives in.
    pub const ACCOUNT: &'static str = "123456789012";

    pub fn start() -> StsStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind STS stub");
        let addr = listener.local_addr().expect("stub address");
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                users: HashMap::new(),
                mfa: HashMap::new(),
                roles: HashMap::new(),
                sessions: HashMap::new(),
                used_codes: HashSet::new(),
                session_lifetime: None,
                role_session_lifetime: None,
                reject_reused: true,
                throttle: 0,
                faults: VecDeque::new(),
                delay: Duration::ZERO,
                verify_signatures: true,
                require_mfa: true,
                assume_role_requires_session: true,
                requests: Vec::new(),
                next_seq: 0,
                issued: Vec::new(),
            }),
            shutdown: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let acc = inner.clone();
        let acceptor = thread::Builder::new()
            .name("sts-stub-accept".into())
            .spawn(move || accept_loop(&acc, &listener))
            .expect("spawn acceptor");
        StsStub {
            inner,
            addr,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A long-lived IAM user key. Unknown key ids get `InvalidClientTokenId`.
    /// The user is named `user-<key id, lowercase>`.
    pub fn add_user(&self, key_id: &str, secret: &str) -> &Self {
        let name = format!("user-{}", key_id.to_ascii_lowercase());
        self.add_user_named(key_id, secret, &name)
    }

    pub fn add_user_named(&self, key_id: &str, secret: &str, user_name: &str) -> &Self {
        self.inner.lock().users.insert(
            key_id.to_string(),
            (secret.to_string(), user_name.to_string()),
        );
        self
    }

    /// Deactivates a long-lived key: later calls with it get
    /// `InvalidClientTokenId`, as real STS answers for a deleted key.
    pub fn remove_user(&self, key_id: &str) -> &Self {
        self.inner.lock().users.remove(key_id);
        self
    }

    /// A virtual MFA device: TOTP, SHA1, 6 digits, 30 s, current ±1 step.
    pub fn add_mfa(&self, serial_arn: &str, base32_seed: &str) -> &Self {
        let totp = make_totp(base32_seed);
        self.inner.lock().mfa.insert(serial_arn.to_string(), totp);
        self
    }

    /// Restricts AssumeRole to registered roles (until the first `add_role`,
    /// any well-formed role ARN is accepted) and, with `external_id`, requires
    /// that ExternalId.
    pub fn add_role(&self, role_arn: &str, external_id: Option<&str>) -> &Self {
        self.inner.lock().roles.insert(
            role_arn.to_string(),
            Role {
                external_id: external_id.map(str::to_string),
            },
        );
        self
    }

    /// Fixed lifetime for every credential issued from now on, whatever
    /// DurationSeconds asked (`None`: honour DurationSeconds, default 43200 s
    /// for GetSessionToken and 3600 s for AssumeRole, as real STS does).
    /// Expired sessions are refused with `ExpiredToken`, as real STS does.
    pub fn session_lifetime(&self, lifetime: Option<Duration>) -> &Self {
        self.inner.lock().session_lifetime = lifetime;
        self
    }

    /// Like `session_lifetime`, for AssumeRole alone (and winning over it
    /// there): role sessions that end in seconds under an MFA session that
    /// lasts, the way STS caps chained roles at an hour under a 12 h session.
    pub fn role_session_lifetime(&self, lifetime: Option<Duration>) -> &Self {
        self.inner.lock().role_session_lifetime = lifetime;
        self
    }

    /// On by default: a code already accepted for the same device is refused,
    /// as real STS refuses it. Off: it is accepted again.
    pub fn reject_reused_codes(&self, on: bool) -> &Self {
        self.inner.lock().reject_reused = on;
        self
    }

    /// The next `n` requests get `400 Throttling: Rate exceeded`. The SDK
    /// retries throttling by itself (3 attempts in standard mode).
    pub fn throttle_next(&self, n: usize) -> &Self {
        self.inner.lock().throttle = n;
        self
    }

    /// The next requests, one fault each, in order (after any `throttle_next`,
    /// which applies inside the answer: a queued fault comes first).
    pub fn fail_next(&self, faults: &[Fault]) -> &Self {
        self.inner.lock().faults.extend(faults.iter().copied());
        self
    }

    /// Sleep this long before answering each request.
    pub fn delay(&self, d: Duration) -> &Self {
        self.inner.lock().delay = d;
        self
    }

    /// On by default.
    pub fn verify_signatures(&self, on: bool) -> &Self {
        self.inner.lock().verify_signatures = on;
        self
    }

    /// On by default: GetSessionToken without SerialNumber/TokenCode is
    /// refused as a bad code. Off: it succeeds, as real STS allows.
    pub fn require_mfa(&self, on: bool) -> &Self {
        self.inner.lock().require_mfa = on;
        self
    }

    /// On by default: AssumeRole must be called with a session the stub
    /// issued. Off: long-lived keys may call it too, with a valid MFA code
    /// when `require_mfa` is on (a role whose trust policy demands MFA).
    pub fn assume_role_requires_session(&self, on: bool) -> &Self {
        self.inner.lock().assume_role_requires_session = on;
        self
    }

    /// Marks one issued session expired (`ExpiredToken` from now on).
    pub fn expire(&self, access_key_id: &str) -> &Self {
        if let Some(s) = self.inner.lock().sessions.get_mut(access_key_id) {
            s.expired = true;
        }
        self
    }

    pub fn expire_all(&self) -> &Self {
        for s in self.inner.lock().sessions.values_mut() {
            s.expired = true;
        }
        self
    }

    /// Requests received for `action`, whatever the answer (throttled and
    /// refused ones included).
    pub fn calls(&self, action: &str) -> usize {
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| r.action == action)
            .count()
    }

    /// Requests for `action` answered with success.
    pub fn successes(&self, action: &str) -> usize {
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| r.action == action && r.error.is_none())
            .count()
    }

    pub fn total_calls(&self) -> usize {
        self.inner.lock().requests.len()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().requests.clone()
    }

    pub fn last_request(&self) -> Option<Recorded> {
        self.inner.lock().requests.last().cloned()
    }

    pub fn issued(&self) -> Vec<Issued> {
        self.inner.lock().issued.clone()
    }

    pub fn last_issued(&self) -> Option<Issued> {
        self.inner.lock().issued.last().cloned()
    }

    /// `out` (of `awsmfa exec P -- printenv AWS_ACCESS_KEY_ID`) succeeded and
    /// printed the key id of the session this stub issued last.
    #[track_caller]
    pub fn assert_printed_last_issued(&self, out: &std::process::Output) {
        use super::process::{OutputExt, assert_ok};
        assert_ok(out);
        let issued = self.last_issued().expect("a session was issued");
        assert_eq!(
            out.stdout_str().trim(),
            issued.access_key_id,
            "{}",
            out.dump()
        );
    }

    /// Every secret the stub issued (secret keys and session tokens), for the
    /// "no secret on disk / in argv / in the shell" scans.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.inner
            .lock()
            .issued
            .iter()
            .flat_map(|i| [i.secret_access_key.clone(), i.session_token.clone()])
            .collect()
    }

    /// Waits until `calls(action) >= n`; false on timeout.
    pub fn wait_for_calls(&self, action: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.calls(action) < n {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Forgets recorded requests and issued credentials (sessions stay valid).
    pub fn clear_log(&self) {
        let mut st = self.inner.lock();
        st.requests.clear();
        st.issued.clear();
    }
}

impl Drop for StsStub {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        // accept() blocks; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        // Connection threads poll the flag every 50 ms; give them a moment so
        // none outlives the test by much. They never block process exit.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.inner.connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn make_totp(base32_seed: &str) -> TOTP {
    let cleaned: String = base32_seed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = Secret::Encoded(cleaned)
        .to_bytes()
        .unwrap_or_else(|e| panic!("MFA seed {base32_seed:?} is not base32: {e:?}"));
    // new_unchecked: real seeds (and oathtool's) may be shorter than the
    // 128 bits totp-rs insists on.
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes)
}

/// The code an authenticator shows now for `base32_seed`.
pub fn totp_now(base32_seed: &str) -> String {
    totp_at(base32_seed, 0)
}

/// The code `steps` 30-second steps from now (−1: the previous one, +1: the
/// next): a second valid code when the current one was used already.
pub fn totp_at(base32_seed: &str, steps: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let t = now.saturating_add_signed(steps * 30);
    make_totp(base32_seed).generate(t)
}

/// Sleeps into the next 30 s TOTP step when less than `room` is left of this
/// one: for a test whose codes must all fall within one step.
pub fn room_in_step(room: Duration) {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        % 30_000;
    let left = Duration::from_millis(30_000 - u64::try_from(into).expect("below 30000"));
    if left < room {
        thread::sleep(left + Duration::from_millis(50));
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn = inner.clone();
        conn.connections.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new()
            .name("sts-stub-conn".into())
            .spawn(move || {
                serve(&conn, stream);
                conn.connections.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            inner.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve(inner: &Inner, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Short read timeouts so an idle keep-alive connection notices shutdown.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let keep_going = || !inner.shutdown.load(Ordering::SeqCst);
    let mut buf = Vec::new();
    while let Ok(Some(req)) = read_request(&mut stream, &mut buf, &keep_going) {
        let (status, body, delivery) = answer(inner, &req);
        match delivery {
            Delivery::Whole | Delivery::Truncated => {}
            Delivery::Reset => return super::http::reset(stream),
            Delivery::Stall => {
                let deadline = Instant::now() + super::TIMEOUT;
                while keep_going() && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(50));
                }
                break;
            }
        }
        let truncated = matches!(delivery, Delivery::Truncated);
        let close = req.wants_close() || !keep_going() || truncated;
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let request_id = xml_text_or(&body, "RequestId");
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nx-amzn-RequestId: {request_id}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nDate: {}\r\n{}\r\n",
            body.len(),
            super::http_date(SystemTime::now()),
            if close { "Connection: close\r\n" } else { "" },
        );
        // Truncated: the head promises the whole body, half of it comes.
        let body = if truncated {
            &body[..body.len() / 2]
        } else {
            &body[..]
        };
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()));
        if sent.is_err() || close {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn xml_text_or(body: &str, tag: &str) -> String {
    super::http::xml_text(body, tag).unwrap_or_default()
}

fn request_id() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Parses, records, and answers one request: (HTTP status, XML body, and how
/// the queued fault, if any, wants it delivered).
fn answer(inner: &Inner, req: &Request) -> (u16, String, Delivery) {
    let query = req.target.split_once('?').map_or("", |(_, q)| q);
    let mut params = parse_form(query);
    let is_form = req
        .header("content-type")
        .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(parse_form(&String::from_utf8_lossy(&req.body)));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let auth = req.header("authorization").and_then(parse_authorization);
    let mut rec = Recorded {
        seq: 0,
        action: get("Action").unwrap_or_default(),
        access_key_id: auth.as_ref().map(|a| a.access_key_id.clone()),
        session_token: req.header("x-amz-security-token").map(str::to_string),
        serial_number: get("SerialNumber"),
        token_code: get("TokenCode"),
        duration_seconds: get("DurationSeconds").and_then(|d| d.parse().ok()),
        role_arn: get("RoleArn"),
        role_session_name: get("RoleSessionName"),
        external_id: get("ExternalId"),
        totp_step: None,
        params: params.clone(),
        headers: req.headers.clone(),
        error: None,
        at: SystemTime::now(),
    };
    let (delay, fault) = {
        let mut st = inner.lock();
        rec.seq = st.next_seq;
        st.next_seq += 1;
        st.requests.push(rec.clone());
        (st.delay, st.faults.pop_front())
    };
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    let rid = request_id();
    let mut st = inner.lock();
    let (result, delivery) = match fault {
        None => (
            handle(&mut st, req, &rec, auth.as_ref(), &rid),
            Delivery::Whole,
        ),
        Some(Fault::ServerError(status)) => {
            let code = if status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalFailure"
            };
            let message = "The request processing has failed because of an unknown error.";
            (Err(err(status, code, message)), Delivery::Whole)
        }
        Some(Fault::Stall) => {
            if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == rec.seq) {
                r.error = Some("(no answer)".into());
            }
            return (0, String::new(), Delivery::Stall);
        }
        Some(Fault::ResetAfterRequest) => (
            handle(&mut st, req, &rec, auth.as_ref(), &rid),
            Delivery::Reset,
        ),
        Some(Fault::Truncated) => (
            handle(&mut st, req, &rec, auth.as_ref(), &rid),
            Delivery::Truncated,
        ),
    };
    match result {
        Ok(body) => (200, body, delivery),
        Err(e) => {
            // By seq, not index: `clear_log` may have run meanwhile.
            if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == rec.seq) {
                r.error = Some(e.code.to_string());
            }
            let body = format!(
                "<ErrorResponse xmlns=\"{NS}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{rid}</RequestId>\n</ErrorResponse>\n",
                e.code,
                xml_escape(&e.message)
            );
            (e.status, body, delivery)
        }
    }
}

fn handle(
    st: &mut State,
    req: &Request,
    rec: &Recorded,
    auth: Option<&sigv4::AuthHeader>,
    rid: &str,
) -> Result<String, StsError> {
    if st.throttle > 0 {
        st.throttle -= 1;
        return Err(err(400, "Throttling", "Rate exceeded"));
    }
    let action = rec.action.as_str();
    if action.is_empty() {
        return Err(err(400, "MissingAction", "Missing Action"));
    }
    let Some(auth) = auth else {
        return Err(err(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let key_id = auth.access_key_id.as_str();
    let invalid_token = || {
        err(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    // Who is calling, and with which secret they must have signed.
    let (principal, secret, is_session) = match &rec.session_token {
        Some(token) => {
            let s = st.sessions.get(key_id).ok_or_else(invalid_token)?;
            if &s.token != token {
                return Err(invalid_token());
            }
            if s.expired || SystemTime::now() >= s.expiration {
                return Err(err(
                    400,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ));
            }
            (s.principal.clone(), s.secret.clone(), true)
        }
        None => {
            let (secret, name) = st.users.get(key_id).ok_or_else(invalid_token)?;
            (
                Principal::User { name: name.clone() },
                secret.clone(),
                false,
            )
        }
    };
    if st.verify_signatures
        && let Err(detail) = sigv4::verify(
            &req.method,
            &req.target,
            &req.headers,
            &req.body,
            auth,
            &secret,
        )
    {
        // Printed so a failing test shows why; captured by the harness.
        eprintln!("STS stub: SignatureDoesNotMatch for {key_id}: {detail}");
        return Err(err(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    let caller_arn = principal_arn(&principal);
    match action {
        "GetSessionToken" => {
            if is_session {
                return Err(access_denied(
                    "Cannot call GetSessionToken with session credentials",
                ));
            }
            let duration = duration_param(rec, 43_200, 900, 129_600)?;
            check_mfa(st, rec, st.require_mfa)?;
            let creds = issue(st, "GetSessionToken", key_id, rec, duration, principal);
            Ok(format!(
                "<GetSessionTokenResponse xmlns=\"{NS}\">\n  <GetSessionTokenResult>\n{creds}  </GetSessionTokenResult>\n  <ResponseMetadata>\n    <RequestId>{rid}</RequestId>\n  </ResponseMetadata>\n</GetSessionTokenResponse>\n"
            ))
        }
        "AssumeRole" => {
            let role_arn = rec.role_arn.clone().ok_or_else(|| {
                validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
            })?;
            let session = rec.role_session_name.clone().ok_or_else(|| {
                validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
            })?;
            let session_ok = (2..=64).contains(&session.len())
                && session
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
            if !session_ok {
                return Err(validation(format!(
                    "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: \
                     Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                )));
            }
            let arn_ok = role_arn
                .strip_prefix("arn:aws:iam::")
                .and_then(|r| r.split_once(":role/"))
                .is_some_and(|(acct, name)| {
                    acct.len() == 12 && acct.chars().all(|c| c.is_ascii_digit()) && !name.is_empty()
                });
            if !arn_ok {
                return Err(validation(format!("{role_arn} is invalid")));
            }
            if let Some(ext) = &rec.external_id {
                let ok = (2..=1224).contains(&ext.len())
                    && ext
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
                if !ok {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{ext}' at 'externalId' failed to satisfy constraint: \
                         Member must satisfy regular expression pattern: [\\w+=,.@:/-]*"
                    )));
                }
            }
            let not_authorized = || {
                access_denied(format!(
                    "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                ))
            };
            if !st.roles.is_empty() {
                let role = st.roles.get(&role_arn).ok_or_else(not_authorized)?;
                if role.external_id.is_some() && role.external_id != rec.external_id {
                    return Err(not_authorized());
                }
            }
            if is_session {
                if rec.serial_number.is_some() || rec.token_code.is_some() {
                    check_mfa(st, rec, false)?;
                }
            } else if st.assume_role_requires_session {
                return Err(not_authorized());
            } else {
                check_mfa(st, rec, st.require_mfa)?;
            }
            let duration = duration_param(rec, 3600, 900, 43_200)?;
            if duration > 3600 {
                return Err(validation(if is_session {
                    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
                } else {
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                }));
            }
            let principal = Principal::Role {
                arn: role_arn.clone(),
                session: session.clone(),
            };
            let assumed_arn = principal_arn(&principal);
            let role_id = format!("{}:{session}", role_unique_id(&role_arn));
            let creds = issue(st, "AssumeRole", key_id, rec, duration, principal);
            Ok(format!(
                "<AssumeRoleResponse xmlns=\"{NS}\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n{creds}  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>{rid}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
                xml_escape(&role_id),
                xml_escape(&assumed_arn),
            ))
        }
        "GetCallerIdentity" => {
            let user_id = match &principal {
                Principal::User { name } => unique_id("AIDA", name),
                Principal::Role { arn, session } => format!("{}:{session}", role_unique_id(arn)),
            };
            Ok(format!(
                "<GetCallerIdentityResponse xmlns=\"{NS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{rid}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
                xml_escape(&caller_arn),
                xml_escape(&user_id),
                StsStub::ACCOUNT,
            ))
        }
        other => Err(err(
            400,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

fn principal_arn(p: &Principal) -> String {
    match p {
        Principal::User { name } => format!("arn:aws:iam::{}:user/{name}", StsStub::ACCOUNT),
        Principal::Role { arn, session } => {
            let (acct, name) = arn
                .strip_prefix("arn:aws:iam::")
                .and_then(|r| r.split_once(":role/"))
                .unwrap_or((StsStub::ACCOUNT, arn));
            let name = name.rsplit('/').next().unwrap_or(name);
            format!("arn:aws:sts::{acct}:assumed-role/{name}/{session}")
        }
    }
}

/// Stable AIDA…/AROA… ids, 21 characters like the real ones.
fn unique_id(prefix: &str, seed: &str) -> String {
    let h = sigv4::sha256_hex(seed.as_bytes()).to_ascii_uppercase();
    format!("{prefix}{}", &h[..17])
}

fn role_unique_id(role_arn: &str) -> String {
    unique_id("AROA", role_arn)
}

fn duration_param(rec: &Recorded, default: u64, min: u64, max: u64) -> Result<u64, StsError> {
    let Some(raw) = rec.params.iter().find(|(k, _)| k == "DurationSeconds") else {
        return Ok(default);
    };
    let d: u64 = raw.1.parse().map_err(|_| {
        validation(format!(
            "1 validation error detected: Value '{}' at 'durationSeconds' failed to satisfy constraint: Member must be a number",
            raw.1
        ))
    })?;
    if d < min {
        return Err(validation(format!(
            "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if d > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(d)
}

fn check_mfa(st: &mut State, rec: &Recorded, required: bool) -> Result<(), StsError> {
    let (serial, code) = match (&rec.serial_number, &rec.token_code) {
        (None, None) if !required => return Ok(()),
        (Some(s), Some(c)) => (s.clone(), c.clone()),
        _ => return Err(access_denied(BAD_CODE)),
    };
    if !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(validation(format!(
            "1 validation error detected: Value '{code}' at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]*"
        )));
    }
    if code.len() != 6 {
        let bound = if code.len() < 6 { "greater" } else { "less" };
        return Err(validation(format!(
            "1 validation error detected: Value '{code}' at 'tokenCode' failed to satisfy constraint: Member must have length {bound} than or equal to 6"
        )));
    }
    let Some(totp) = st.mfa.get(&serial) else {
        return Err(access_denied(
            "MultiFactorAuthentication failed, unable to validate MFA code. \
             Please verify your MFA serial number is valid and associated with this user.",
        ));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The window `totp.check` allows: the current step and one either side.
    let current = now / 30;
    let step = (current.saturating_sub(1)..=current + 1).find(|s| totp.generate(s * 30) == code);
    let Some(step) = step else {
        return Err(access_denied(BAD_CODE));
    };
    // By seq, not index: `clear_log` may have run meanwhile.
    if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == rec.seq) {
        r.totp_step = Some(step);
    }
    let key = (serial, code);
    if st.reject_reused && st.used_codes.contains(&key) {
        return Err(access_denied(BAD_CODE));
    }
    st.used_codes.insert(key);
    Ok(())
}

/// Mints, remembers, and renders a `<Credentials>` element.
fn issue(
    st: &mut State,
    action: &str,
    caller_key_id: &str,
    rec: &Recorded,
    duration: u64,
    principal: Principal,
) -> String {
    let access_key_id = format!("ASIASTUB{}", random_hex(6).to_ascii_uppercase());
    let secret = format!("stubsecret{}", random_hex(15));
    let token = format!("stubtoken{}", random_hex(96));
    let fixed = match action {
        "AssumeRole" => st.role_session_lifetime.or(st.session_lifetime),
        _ => st.session_lifetime,
    };
    let lifetime = fixed.unwrap_or(Duration::from_secs(duration));
    // Whole seconds, as STS sends them, so `expiration` equals what was sent.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expiration = UNIX_EPOCH + Duration::from_secs(now) + lifetime;
    let expiration_text = rfc3339(expiration);
    st.sessions.insert(
        access_key_id.clone(),
        Session {
            secret: secret.clone(),
            token: token.clone(),
            expiration,
            expired: false,
            principal: principal.clone(),
        },
    );
    st.issued.push(Issued {
        action: action.to_string(),
        access_key_id: access_key_id.clone(),
        secret_access_key: secret.clone(),
        session_token: token.clone(),
        expiration,
        expiration_text: expiration_text.clone(),
        caller_key_id: caller_key_id.to_string(),
        role_arn: match principal {
            Principal::Role { arn, .. } => Some(arn),
            Principal::User { .. } => None,
        },
        serial_number: rec.serial_number.clone(),
    });
    format!(
        "    <Credentials>\n      <AccessKeyId>{access_key_id}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{token}</SessionToken>\n      <Expiration>{expiration_text}</Expiration>\n    </Credentials>\n"
    )
}
