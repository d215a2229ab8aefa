//! The session hand-over along the secrets-manager chain:
//!
//!     MANAGER run … -- awsmfa exec PROFILE --chained FD:NONCE -- CMD
//!
//! Doppler and Infisical set their secrets over the inherited environment, so
//! whatever the inner awsmfa finds there (an AWS config, an STS endpoint, an
//! awsmfa config naming an `mfa_process`, HOME, PATH) is the manager's config's
//! to choose. The inner awsmfa therefore never resolves, looks up or mints a
//! session: the outer one writes the session it holds into a pipe that the
//! manager inherits and passes on, and the inner one takes it from there. The
//! nonce, also in the inner command line, ties the payload to this invocation.
//! Under `exec --server` the payload is the outer awsmfa's endpoint (URL,
//! token file, token) instead of credentials: one server, in the outer awsmfa.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::creds::{ContainerEndpoint, Creds};
use crate::time;

/// 2: the session became one of two kinds, credentials or (`exec --server`)
/// the endpoint that serves them.
const VERSION: u32 = 2;

/// Several times what a payload takes (STS session tokens stay well under
/// 2 KiB), and no more than the smallest pipe buffer it must fit in without a
/// reader (16 KiB on macOS; 64 KiB on Linux).
const MAX_LEN: usize = 16 * 1024;

/// Every refusal ends with this: a retry gets a fresh hand-over, and a manager
/// that drops or replaces descriptors needs reporting, with `--no-secrets` as
/// the way to keep working meanwhile.
const ADVICE: &str = "Run the command again; if this persists, run with --no-secrets and report the manager's version";

// SecretString deliberately has no Serialize; this borrows the exposed values
// only long enough to encode the payload.
#[derive(Serialize)]
struct PayloadRef<'a> {
    v: u32,
    nonce: &'a str,
    profile: &'a str,
    region: Option<&'a str>,
    session: SessionRef<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum SessionRef<'a> {
    Creds {
        access_key_id: &'a str,
        secret_access_key: &'a str,
        session_token: &'a str,
        expiration: u64,
    },
    Endpoint {
        url: &'a str,
        token_file: &'a std::path::Path,
        token: &'a str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u32,
    nonce: String,
    profile: String,
    region: Option<String>,
    session: Session,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Session {
    Creds {
        access_key_id: String,
        secret_access_key: SecretString,
        session_token: SecretString,
        expiration: u64,
    },
    Endpoint {
        url: String,
        token_file: PathBuf,
        token: SecretString,
    },
}

/// What is left to read of a payload that is not this version's: enough to
/// report it as another build's rather than as malformed.
#[derive(Deserialize)]
struct Version {
    v: u32,
}

/// The outer side: the read end of a filled pipe, inheritable, to be kept open
/// until the manager is exec'd. `arg` is the inner awsmfa's `--chained` value.
pub struct Sent {
    _read: OwnedFd,
    pub arg: String,
}

pub fn send(profile: &str, region: Option<&str>, creds: &Creds) -> anyhow::Result<Sent> {
    let session = SessionRef::Creds {
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose_secret(),
        session_token: creds.session_token.expose_secret(),
        expiration: creds.expiration,
    };
    send_session(profile, region, session)
}

/// The same for `exec --server`: the inner awsmfa passes the endpoint on to
/// the command, and never starts a server of its own.
pub fn send_endpoint(
    profile: &str,
    region: Option<&str>,
    endpoint: &ContainerEndpoint,
) -> anyhow::Result<Sent> {
    let session = SessionRef::Endpoint {
        url: &endpoint.url,
        token_file: &endpoint.token_file,
        token: endpoint.token.expose_secret(),
    };
    send_session(profile, region, session)
}

fn send_session(
    profile: &str,
    region: Option<&str>,
    session: SessionRef<'_>,
) -> anyhow::Result<Sent> {
    let nonce = nonce()?;
    // Room for the whole payload up front: serde never reallocates, so no
    // partial copy of a secret is left behind in freed memory.
    let mut payload = Zeroizing::new(Vec::with_capacity(MAX_LEN));
    serde_json::to_writer(
        &mut *payload,
        &PayloadRef {
            v: VERSION,
            nonce: &nonce,
            profile,
            region,
            session,
        },
    )
    .context("cannot encode the session for the secrets manager's command")?;
    if payload.len() > MAX_LEN {
        bail!(
            "the session for {profile} takes {} bytes, more than the {MAX_LEN} the hand-over to the \
             secrets manager's command carries; run with --no-secrets",
            payload.len()
        );
    }
    // On Linux this is pipe2(O_CLOEXEC): nothing started meanwhile inherits
    // either end, and only the read end is made inheritable below.
    let (read, mut write) =
        std::io::pipe().context("cannot create the pipe that hands the session over")?;
    // Nobody reads before the manager starts: a pipe too small for the payload
    // must be an error, not a hang.
    set_nonblocking(write.as_raw_fd())
        .context("cannot prepare the pipe that hands the session over")?;
    let written = loop {
        match write.write(&payload) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => break other,
        }
    }
    .context("cannot write the session into the hand-over pipe")?;
    if written != payload.len() {
        bail!(
            "the hand-over pipe took {written} of the session's {} bytes; run with --no-secrets",
            payload.len()
        );
    }
    // Closed before the manager starts: the inner awsmfa reads to end-of-file,
    // and a write end still open anywhere means someone else could add to it.
    drop(write);
    let read = OwnedFd::from(read);
    // Doppler and Infisical are Go programs, and Go (its runtime and os/exec)
    // does not close inherited descriptors that lack close-on-exec: without
    // the flag this one reaches the manager's child, the inner awsmfa, as is.
    clear_cloexec(read.as_raw_fd())
        .context("cannot pass the session hand-over on to the secrets manager")?;
    let arg = format!("{}:{nonce}", read.as_raw_fd());
    Ok(Sent { _read: read, arg })
}

/// What the outer awsmfa handed over.
pub struct Received {
    pub region: Option<String>,
    pub session: Handed,
}

pub enum Handed {
    /// For the command's environment.
    Creds(Creds),
    /// The outer awsmfa's `--server` endpoint, for the command to fetch from.
    Endpoint(ContainerEndpoint),
}

/// The inner side: `arg` is `--chained`'s value, `profile` the command line's.
/// Reads the descriptor to its end and closes it, whatever the outcome.
pub fn receive(arg: &str, profile: &str) -> anyhow::Result<Received> {
    let (fd, nonce) = parse_arg(arg)?;
    let pipe = take_pipe(fd)?;
    let data = read_to_end(pipe, fd)?;
    let payload = decode(&data, fd)?;
    if payload.nonce != nonce {
        bail!(
            "the session hand-over on fd {fd} was written for another command line (its nonce \
             is not this one's), so it is not this awsmfa's to use. {ADVICE}"
        );
    }
    if payload.profile != profile {
        bail!(
            "the session hand-over on fd {fd} is for profile {:?}, not {profile}: refusing it. {ADVICE}",
            payload.profile
        );
    }
    let session = match payload.session {
        Session::Creds {
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
        } => {
            if expiration <= time::now() {
                bail!(
                    "the session for {profile} handed over on fd {fd} expired at {}. Run the command \
                     again, which finds or mints a current one",
                    time::rfc3339(expiration)
                );
            }
            Handed::Creds(Creds {
                access_key_id,
                secret_access_key,
                session_token,
                expiration,
            })
        }
        Session::Endpoint {
            url,
            token_file,
            token,
        } => {
            // What the outer awsmfa serves, and nothing an SDK would send a
            // token anywhere else for.
            let loopback = url
                .strip_prefix("http://127.0.0.1:")
                .is_some_and(|rest| rest.contains('/'));
            let clean = |t: &str| !t.is_empty() && !t.chars().any(char::is_control);
            if !loopback || !token_file.is_absolute() || !clean(token.expose_secret()) {
                bail!(
                    "the endpoint handed over on fd {fd} is not one the outer awsmfa serves (a \
                     loopback URL, an absolute token file, a token): refusing it. {ADVICE}"
                );
            }
            Handed::Endpoint(ContainerEndpoint {
                url,
                token_file,
                token,
            })
        }
    };
    Ok(Received {
        region: payload.region,
        session,
    })
}

fn nonce() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the session hand-over's nonce")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn parse_arg(arg: &str) -> anyhow::Result<(RawFd, &str)> {
    let bad = || {
        anyhow!(
            "--chained takes the FD:NONCE that the outer awsmfa puts there, not {arg:?}; it is \
             internal to the secrets-manager chain: run `awsmfa exec PROFILE -- CMD` instead"
        )
    };
    let (fd, nonce) = arg.split_once(':').ok_or_else(bad)?;
    if fd.is_empty() || !fd.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let fd: RawFd = fd.parse().map_err(|_| bad())?;
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if nonce.len() != 32 || !nonce.bytes().all(hex) {
        return Err(bad());
    }
    Ok((fd, nonce))
}

/// `fd` as a pipe this process now owns; anything else is refused untouched.
fn take_pipe(fd: RawFd) -> anyhow::Result<OwnedFd> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `stat` into the buffer, which is large enough,
    // and reads nothing; an fd that is not open is reported as EBADF.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EBADF) {
            bail!(
                "the session hand-over from the outer awsmfa is missing (fd {fd} is not open): \
                 the secrets manager did not pass it on. {ADVICE}"
            );
        }
        bail!("cannot inspect the session hand-over on fd {fd} ({err}). {ADVICE}");
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        bail!(
            "the session hand-over on fd {fd} is not a pipe but {}: it is not what the outer \
             awsmfa passes. {ADVICE}",
            file_kind(st.st_mode)
        );
    }
    if fd <= 2 {
        bail!(
            "fd {fd} is a standard stream, not the session hand-over, which the outer awsmfa \
             never puts there. {ADVICE}"
        );
    }
    // SAFETY: the fd is open (fstat succeeded) and not a standard stream;
    // nothing else in this process knows of it, so closing it on drop is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn file_kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        _ => "something else",
    }
}

/// The whole payload, which must already be complete: the outer awsmfa wrote
/// it and closed its end before the manager started.
fn read_to_end(pipe: OwnedFd, fd: RawFd) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    set_nonblocking(pipe.as_raw_fd())
        .with_context(|| format!("cannot read the session hand-over on fd {fd}. {ADVICE}"))?;
    let mut file = File::from(pipe);
    let mut buf = Zeroizing::new(vec![0u8; MAX_LEN + 1]);
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => bail!(
                "the session hand-over on fd {fd} is still open for writing somewhere else, so \
                 anyone could have added to it: refusing it. {ADVICE}"
            ),
            Err(e) => bail!("cannot read the session hand-over on fd {fd} ({e}). {ADVICE}"),
        }
    }
    // Closed here, whatever it held: the command must not inherit it.
    drop(file);
    if len > MAX_LEN {
        bail!(
            "the session hand-over on fd {fd} holds more than {MAX_LEN} bytes, more than the outer \
             awsmfa ever writes: refusing it. {ADVICE}"
        );
    }
    if len == 0 {
        bail!(
            "the session hand-over on fd {fd} is empty: something read it first, or it is not the \
             outer awsmfa's. {ADVICE}"
        );
    }
    buf.truncate(len);
    Ok(buf)
}

fn decode(data: &[u8], fd: RawFd) -> anyhow::Result<Payload> {
    // The position only: serde's own message may quote a value.
    let malformed = |e: serde_json::Error| {
        anyhow!(
            "the session hand-over on fd {fd} is not what the outer awsmfa writes (unreadable at \
             line {}, column {}): refusing it. {ADVICE}",
            e.line(),
            e.column()
        )
    };
    let other_version = |v: u32| {
        anyhow!(
            "the session hand-over on fd {fd} is version {v}, and this awsmfa reads version \
             {VERSION}: the outer awsmfa is another build. Run the command again from a new shell \
             once awsmfa is upgraded everywhere"
        )
    };
    match serde_json::from_slice::<Payload>(data) {
        Ok(payload) if payload.v == VERSION => Ok(payload),
        Ok(payload) => Err(other_version(payload.v)),
        Err(e) => match serde_json::from_slice::<Version>(data) {
            Ok(Version { v }) if v != VERSION => Err(other_version(v)),
            _ => Err(malformed(e)),
        },
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor this process owns; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn clear_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor this process owns; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_is_fd_colon_32_hex() {
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_arg(&format!("7:{nonce}")).ok(), Some((7, nonce)));
        for bad in [
            "",
            "7",
            &format!(":{nonce}"),
            &format!("+7:{nonce}"),
            &format!("-1:{nonce}"),
            &format!("7:{}", nonce.to_uppercase()),
            "7:abcd",
            &format!("7:{nonce}0"),
            &format!("99999999999:{nonce}"),
        ] {
            assert!(parse_arg(bad).is_err(), "{bad:?}");
        }
    }

    fn creds() -> Creds {
        Creds {
            access_key_id: "ASIAHANDOVERTEST0000".into(),
            secret_access_key: "handover/secret".into(),
            session_token: "handover-token".into(),
            expiration: time::now() + 3600,
        }
    }

    /// Sends for `profile` and gives up the outer side's ownership of the read
    /// end, as exec does; returns `--chained`'s value.
    fn sent(profile: &str) -> String {
        let Sent { _read, arg } = send(profile, Some("eu-west-1"), &creds()).expect("send");
        let _ = std::os::fd::IntoRawFd::into_raw_fd(_read);
        arg
    }

    #[test]
    fn what_is_sent_is_received() {
        let arg = sent("tf-a");
        let got = receive(&arg, "tf-a").expect("receive");
        assert_eq!(got.region.as_deref(), Some("eu-west-1"));
        let Handed::Creds(creds) = got.session else {
            panic!("credentials were sent")
        };
        assert_eq!(creds.access_key_id, "ASIAHANDOVERTEST0000");
        assert_eq!(creds.secret_access_key.expose_secret(), "handover/secret");
        assert_eq!(creds.session_token.expose_secret(), "handover-token");
    }

    #[test]
    fn an_endpoint_is_sent_and_received() {
        let endpoint = ContainerEndpoint {
            url: "http://127.0.0.1:4321/abc".into(),
            token_file: "/run/user/1000/awsmfa/t".into(),
            token: "tok".into(),
        };
        let Sent { _read, arg } =
            send_endpoint("tf-a", None, &endpoint).expect("send the endpoint");
        let _ = std::os::fd::IntoRawFd::into_raw_fd(_read);
        let got = receive(&arg, "tf-a").expect("receive");
        assert_eq!(got.region, None);
        let Handed::Endpoint(e) = got.session else {
            panic!("an endpoint was sent")
        };
        assert_eq!(e.url, endpoint.url);
        assert_eq!(e.token_file, endpoint.token_file);
        assert_eq!(e.token.expose_secret(), "tok");
    }

    #[test]
    fn another_profile_or_nonce_is_refused() {
        let arg = sent("tf-a");
        let err = receive(&arg, "tf-b").err().expect("another profile");
        assert!(format!("{err:#}").contains("is for profile \"tf-a\", not tf-b"));
        let arg = sent("tf-a");
        let (fd, _) = arg.split_once(':').expect("FD:NONCE");
        let other = format!("{fd}:{}", "0".repeat(32));
        let err = receive(&other, "tf-a").err().expect("another nonce");
        assert!(format!("{err:#}").contains("nonce"), "{err:#}");
    }
}
