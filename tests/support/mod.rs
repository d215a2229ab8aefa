//! Shared support for awsmfa's integration tests: an isolated world per test
//! (`Env`), a loopback STS that behaves like the real one (`StsStub`), a real
//! terminal (`Pty`), and the real peers that may or may not be installed
//! (`Moto`, `SecretService`, the AWS CLI v2, boto3, keyutils).
//!
//! Every test binary uses a different subset, hence the blanket allowances.
//!
//! The skip/require rule: a test that needs a real component asks for it through
//! [`require`]. Missing components skip the test with a `SKIP:` line on stderr,
//! unless `AWSMFA_REQUIRE_ALL=1` (set by `scripts/test` after installing
//! everything), where a missing component fails the test instead: a green run
//! under `scripts/test` then means every peer really ran.
#![allow(dead_code, unused_imports)]

pub mod bao;
pub mod env;
pub mod http;
pub mod peers;
pub mod process;
pub mod pty;
pub mod shell;
pub mod sigv4;
pub mod sts;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use bao::{
    BAO_ROLE, BAO_SERIAL, BaoApi, BaoAudit, BaoCluster, BaoProfile, OpenBao, random_seed,
};
pub use env::{CountingMfa, Env};
pub use http::{HttpResponse, http_request, sts_request};
pub use peers::{
    Moto, SecretService, aws_cli_v2, keyutils_available, require, require_all, venv_python,
};
pub use process::{
    Bg, OutputExt, Reaper, assert_code, assert_fail, assert_no_panic, assert_ok, run_with_timeout,
};
pub use pty::{Pty, PtyOpts};
pub use sts::{Fault, Issued, Recorded, StsStub, room_in_step, totp_at, totp_now};

/// The default budget for anything a test waits on: long enough for a loaded
/// 2-core CI box, short enough that a hang is reported as a failure.
pub const TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A string no other test (in this process or a parallel one) will produce.
pub fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

/// For a test about something else that mints on one MFA device again within
/// a 30 s step: as if the step had passed. awsmfa forgets the step it used
/// ([`Env::forget_totp_steps`]) rather than wait for the next, and `stub` (when
/// STS is the stub; moto checks no code) accepts the code sent before again.
pub fn as_if_a_step_passed(env: &Env, stub: &StsStub) {
    stub.reject_reused_codes(false);
    env.forget_totp_steps();
}

/// An MFA device of `profile`'s own. Profiles that share one device cannot be
/// minted within one 30 s step (STS refuses a code twice; awsmfa waits for the
/// next step): a test about something else gives each profile its own.
pub fn mfa_device(profile: &str) -> String {
    format!("arn:aws:iam::123456789012:mfa/{profile}")
}

/// The start of most test worlds: the kernel keyring and oathtool present,
/// a stub that knows the user `key_id`/`secret` and the MFA device `serial`
/// (TOTP seed `base32_seed`), and an Env pointed at it. `None`, after a SKIP
/// line (or a panic under AWSMFA_REQUIRE_ALL=1), when a component is missing.
pub fn stub_and_env(
    key_id: &str,
    secret: &str,
    serial: &str,
    base32_seed: &str,
) -> Option<(StsStub, Env)> {
    if !keyutils_available() {
        return None;
    }
    require("oathtool (Debian package oathtool)", which("oathtool"))?;
    let stub = StsStub::start();
    stub.add_user(key_id, secret).add_mfa(serial, base32_seed);
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url());
    Some((stub, env))
}

/// A long-lived key made up for one test: '/' and '+' like real secrets, and a
/// `LONGLIVED` marker that is easy to scan for.
pub struct Key {
    pub id: String,
    pub secret: String,
}

impl Key {
    pub fn new() -> Key {
        Key {
            id: format!("AKIA{}", random_hex(8).to_ascii_uppercase()),
            secret: format!("LONGLIVED/{}+{}", random_hex(10), random_hex(6)),
        }
    }
}

/// `n` random bytes as lowercase hex. /dev/urandom is always there on the
/// machines these tests run on; the fallback only keeps values unique.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        use sha2::{Digest, Sha256};
        let mut seed = unique_suffix().into_bytes();
        for chunk in bytes.chunks_mut(32) {
            seed = Sha256::digest(&seed).to_vec();
            chunk.copy_from_slice(&seed[..chunk.len()]);
        }
    }
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-22T06:00:00Z`: the shape STS puts in `<Expiration>` and
/// credential_process wants in `Expiration`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Sun, 22 Nov 2026 05:45:21 GMT` for the HTTP `Date` header, which the SDK
/// reads to correct clock skew.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = civil(secs);
    let wd = DAYS[((secs / 86_400) % 7) as usize];
    let mon = MONTHS[(mo - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{mi:02}:{s:02} GMT")
}

/// Parses the `rfc3339` shape back (also accepting fractional seconds), so
/// tests can compare what awsmfa printed with what STS issued.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let rest = rest
        .strip_prefix('.')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    if rest != "Z" && rest != "+00:00" {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

// Howard Hinnant's civil-from-days; std has no calendar and a date crate is not
// worth the compile time for two formatters.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first `name` on PATH that is an executable file.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A loopback port nobody listens on right now. Racy by nature (another process
/// may take it before the server binds), which is acceptable for test peers
/// that cannot be handed an already-bound socket.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

pub fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
