//! `exec --server`: the session served to the command from a loopback
//! container-credentials endpoint, the way ECS serves a task's role, so that
//! the SDKs in a long `terragrunt run-all apply` fetch fresh credentials
//! whenever theirs near their end. Environment variables cannot be refreshed;
//! this can.
//!
//! - `GET http://127.0.0.1:PORT/PATH` with `Authorization: TOKEN` answers
//!   `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`. PORT, PATH and
//!   the 256-bit TOKEN are random per run; the token is compared in constant
//!   time and lives in a 0600 file removed when the server goes. Anything
//!   without the token gets 403, other methods 405, other paths 404, and none
//!   of them a body.
//! - Connections are accepted and served by a pool of threads that grows as
//!   needed up to a bound (`pool.rs`), one request per connection, each
//!   bounded by a read deadline, so a stuck client holds one thread for two
//!   seconds at most.
//! - One thread refreshes (`refresh.rs`): ahead of time, never on a request's
//!   clock. A request is answered from what is current; it waits (under a
//!   second, below the SDKs' 2 s timeout) only when nothing valid is left and
//!   a refresh is under way, and gets 503 if that does not help.
//!
//! Below `session` in the module graph: where renewed sessions come from is
//! the caller's [`Renew`] (`cmd` implements it over `session::get`).

mod http;
mod pool;
mod refresh;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::creds::{ContainerEndpoint, Creds};
use crate::{paths, state, time};

pub use refresh::Renew;

/// From accept to a complete request head.
const READ_DEADLINE: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a request waits for a refresh when nothing valid is left:
/// botocore gives up on the endpoint after 2 s.
const WAIT_FOR_REFRESH: Duration = Duration::from_millis(900);

/// The running endpoint. Dropping it removes the token file, stops the
/// refresher and the answers; the listening socket closes when the process
/// exits, moments later (the pool's threads wait in `accept` on it).
pub struct Server {
    shared: Arc<Shared>,
    endpoint: ContainerEndpoint,
    _token_file: TokenFile,
    profile: String,
    refresh_before: Duration,
}

impl Server {
    /// Binds 127.0.0.1 on a random port, writes the token file, and serves
    /// `creds` until the refresher (`keep_fresh`) replaces them.
    pub fn start(profile: &str, creds: Creds, refresh_before: Duration) -> anyhow::Result<Server> {
        Self::start_in(&token_dir(), profile, creds, refresh_before)
    }

    /// `start`, with the token file in `dir`.
    fn start_in(
        dir: &Path,
        profile: &str,
        creds: Creds,
        refresh_before: Duration,
    ) -> anyhow::Result<Server> {
        let token = random_hex(32)?;
        let path = format!("/{}", *random_hex(16)?);
        let token_file = TokenFile::create(dir, &token)?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .context("cannot listen on 127.0.0.1 for the credentials endpoint")?;
        let port = listener
            .local_addr()
            .context("cannot read the credentials endpoint's port")?
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: Served::render(&creds)?,
                refreshing: false,
                stop: false,
            }),
            changed: Condvar::new(),
            token: Zeroizing::new(token.as_bytes().to_vec()),
            path: path.clone(),
        });
        drop(creds);
        let serving = shared.clone();
        pool::start(listener, move |stream| serve(&serving, stream))
            .context("cannot start the credentials endpoint")?;
        crate::debug!("serving {profile}'s session on 127.0.0.1:{port}");
        Ok(Server {
            endpoint: ContainerEndpoint {
                url: format!("http://127.0.0.1:{port}{path}"),
                token_file: token_file.path.clone(),
                token: SecretString::from(token.as_str()),
            },
            shared,
            _token_file: token_file,
            profile: profile.to_string(),
            refresh_before,
        })
    }

    /// What the command needs to reach the endpoint.
    pub fn endpoint(&self) -> &ContainerEndpoint {
        &self.endpoint
    }

    /// Starts renewing the session ahead of its end from `source`. Separate
    /// from `start` so that the caller can start the command first: a renewal
    /// may run helper programs, which must not inherit what the caller passes
    /// to the command alone (the chain's hand-over pipe).
    pub fn keep_fresh(&self, mut source: Box<dyn Renew>) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let policy = refresh::Policy {
            profile: self.profile.clone(),
            refresh_before: self.refresh_before.as_secs(),
        };
        thread::Builder::new()
            .name("awsmfa-refresh".into())
            .spawn(move || refresh::run(&shared, source.as_mut(), &policy))
            .context("cannot start renewing the session")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when `current` is replaced or a refresh ends, and on stop.
    changed: Condvar,
    token: Zeroizing<Vec<u8>>,
    path: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing holds the lock across a panic-prone call; a poisoned one
        // still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session to answer with: the current one while it is valid. When
    /// it is not and a refresh is under way, waits for that a little.
    fn current(&self) -> Option<Arc<Served>> {
        let deadline = Instant::now() + WAIT_FOR_REFRESH;
        let mut st = self.lock();
        loop {
            // The command has ended: whatever is left of its process tree gets
            // nothing more, in the moments before awsmfa exits.
            if st.stop {
                return None;
            }
            if st.current.expiration > time::now() {
                return Some(st.current.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !st.refreshing || left.is_zero() {
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

struct State {
    current: Arc<Served>,
    refreshing: bool,
    stop: bool,
}

/// A session ready to send: the whole 200 response, rendered once per session
/// and zeroed when the last connection writing it lets go.
struct Served {
    response: Zeroizing<Vec<u8>>,
    access_key_id: String,
    expiration: u64,
    /// When it became current, for the refresh policy.
    since: u64,
}

// SecretString deliberately has no Serialize; this borrows the exposed values
// only long enough to render the response.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    /// `Token`, not `SessionToken`: the container-credentials format.
    token: &'a str,
    expiration: String,
}

impl Served {
    fn render(creds: &Creds) -> anyhow::Result<Arc<Served>> {
        let body = Body {
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.secret_access_key.expose_secret(),
            token: creds.session_token.expose_secret(),
            expiration: time::rfc3339(creds.expiration),
        };
        // Room for everything up front: no reallocation leaves a partial copy
        // of a secret behind in freed memory.
        let room = 256
            + body.access_key_id.len()
            + body.secret_access_key.len()
            + body.token.len()
            + body.expiration.len();
        let mut json = Zeroizing::new(Vec::with_capacity(room));
        serde_json::to_writer(&mut *json, &body).context("cannot encode the session")?;
        let head = http::ok_head(json.len());
        let mut response = Zeroizing::new(Vec::with_capacity(head.len() + json.len()));
        response.extend_from_slice(head.as_bytes());
        response.extend_from_slice(&json);
        Ok(Arc::new(Served {
            response,
            access_key_id: creds.access_key_id.clone(),
            expiration: creds.expiration,
            since: time::now(),
        }))
    }
}

/// One request, one answer, then the connection is closed.
fn serve(shared: &Shared, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf = Zeroizing::new(vec![0u8; http::MAX_HEAD]);
    let deadline = Instant::now() + READ_DEADLINE;
    let len = match http::read_head(&mut stream, &mut buf, deadline) {
        http::Head::Complete(len) => len,
        http::Head::TooLarge => return finish(stream, http::bare(431)),
        http::Head::Malformed => return finish(stream, http::bare(400)),
        http::Head::Gone => return,
    };
    let Some(req) = http::parse(&buf[..len]) else {
        return finish(stream, http::bare(400));
    };
    // The token first: without it, nothing about the endpoint is told, not
    // even which paths or methods it has.
    let authorized = req
        .authorization
        .is_some_and(|t| http::same_secret(t, &shared.token));
    if !authorized {
        crate::debug!("credentials endpoint: refused a request without the token");
        return finish(stream, http::bare(403));
    }
    if req.method != b"GET" {
        return finish(stream, http::bare(405));
    }
    if req.target != shared.path.as_bytes() {
        return finish(stream, http::bare(404));
    }
    match shared.current() {
        Some(served) => finish(stream, &served.response),
        None => finish(stream, http::bare(503)),
    }
}

fn finish(mut stream: TcpStream, response: &[u8]) {
    if stream.write_all(response).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
        // Whatever else the client sent is left unread on purpose; a short
        // drain keeps the kernel from answering our close with a reset that
        // could overtake the response.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        let mut sink = [0u8; 512];
        let _ = stream.read(&mut sink);
    }
}

/// The token's file, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: 0600 in a 0700
/// directory of the user's, removed on drop.
struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    fn create(dir: &Path, token: &str) -> anyhow::Result<TokenFile> {
        state::create_private_dir(dir)?;
        check_private(dir)?;
        let path = dir.join(format!(
            "server-{}-{}.token",
            std::process::id(),
            *random_hex(6)?
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("cannot create {}", paths::display(&path)))?;
        let file_guard = TokenFile { path };
        file.write_all(token.as_bytes())
            .with_context(|| format!("cannot write {}", paths::display(&file_guard.path)))?;
        Ok(file_guard)
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `$XDG_RUNTIME_DIR/awsmfa` (memory-backed, the user's alone, emptied at
/// logout); without one, `run/` in awsmfa's state directory. A token left
/// behind by a killed awsmfa is worthless: only its server knew it.
fn token_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir).join("awsmfa"),
        _ => paths::state_dir().join("run"),
    }
}

/// A directory others could enter or swap would expose the token.
fn check_private(dir: &Path) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect {}", paths::display(dir)))?;
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} must be a directory of yours that nobody else can open (mode 0700) to hold the \
             credentials endpoint's token; fix it with `chmod 700 {}` or remove it",
            paths::display(dir),
            paths::display(dir)
        );
    }
    Ok(())
}

/// `n` bytes from the kernel's CSPRNG, in hex.
fn random_hex(n: usize) -> anyhow::Result<Zeroizing<String>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the credentials endpoint's token")?;
    let mut out = Zeroizing::new(String::with_capacity(n * 2));
    for b in bytes.iter() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn creds(key: &str, expiration: u64) -> Creds {
        Creds {
            access_key_id: key.into(),
            secret_access_key: "unit/secret".into(),
            session_token: "unit-token".into(),
            expiration,
        }
    }

    /// A private directory for one test's token file, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            Dir(std::env::temp_dir().join(format!("awsmfa-server-unit-{}-{n}", std::process::id())))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// One GET with the token; the status and the body.
    fn fetch(server: &Server) -> (u16, String) {
        let e = server.endpoint();
        let rest = e.url.strip_prefix("http://").expect("http");
        let (addr, path) = rest.split_at(rest.find('/').expect("a path"));
        let mut s = TcpStream::connect(addr).expect("connect");
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
            e.token.expose_secret()
        );
        s.write_all(head.as_bytes()).expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        let status = answer[9..12].parse().expect("a status");
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        (status, body.unwrap_or_default())
    }

    struct Slow {
        key: &'static str,
        delay: Duration,
    }

    impl Renew for Slow {
        fn renew(&mut self) -> anyhow::Result<Creds> {
            thread::sleep(self.delay);
            Ok(creds(self.key, time::now() + 3600))
        }
    }

    /// A server for a session `ASIAUNITFIRST` that ends in `secs`.
    fn serving_for(dir: &Dir, secs: u64) -> Server {
        let first = creds("ASIAUNITFIRST", time::now() + secs);
        Server::start_in(&dir.0, "unit", first, Duration::from_secs(900)).expect("start")
    }

    #[test]
    fn nothing_valid_left_is_503_and_the_token_file_goes_with_the_server() {
        let dir = Dir::new();
        let server = serving_for(&dir, 1);
        let (status, body) = fetch(&server);
        assert_eq!(status, 200);
        assert!(body.contains("\"AccessKeyId\":\"ASIAUNITFIRST\""), "{body}");
        let file = server.endpoint().token_file.clone();
        assert!(file.exists());
        thread::sleep(Duration::from_millis(2100));
        // No renewal running: at once, no waiting.
        let started = Instant::now();
        assert_eq!(fetch(&server), (503, String::new()));
        assert!(started.elapsed() < Duration::from_millis(500));
        drop(server);
        assert!(!file.exists());
    }

    #[test]
    fn a_request_waits_briefly_for_a_renewal_under_way() {
        let dir = Dir::new();
        // Two seconds long: due halfway, a second before its end, and renewed
        // in 1.6 s, so it ends while the renewal is under way.
        let server = serving_for(&dir, 2);
        server
            .keep_fresh(Box::new(Slow {
                key: "ASIAUNITSECOND",
                delay: Duration::from_millis(1600),
            }))
            .expect("renew");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body) = fetch(&server);
            assert_eq!(status, 200, "never 503 while a renewal is under way");
            if body.contains("ASIAUNITSECOND") {
                break;
            }
            assert!(Instant::now() < deadline, "not renewed: {body}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}
