//! The OS keyring, through the keyring-core ecosystem. Long-lived keys go to the
//! persistent store (Keychain, Credential Manager, Secret Service, or keyutils on
//! a headless Linux). Sessions go to the Linux kernel keyring when it works: it is
//! memory-only, gone at reboot like the sessions themselves, and a look-up costs
//! microseconds where a Secret Service round trip costs ~17 ms on every
//! `credential-process` call.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use keyring_core::api::CredentialStore;
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Keyutils,
    SecretService,
    Keychain,
    Windows,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Keyutils => "keyutils",
            Backend::SecretService => "secret-service",
            Backend::Keychain => "keychain",
            Backend::Windows => "windows",
        }
    }

    fn parse(name: &str, var: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "keyutils" => Backend::Keyutils,
            "secret-service" => Backend::SecretService,
            "keychain" => Backend::Keychain,
            "windows" => Backend::Windows,
            _ => {
                return Err(UnknownStore(format!(
                    "{var}={name} is not a keyring store; use one of: keyutils, secret-service, keychain, windows"
                ))
                .into());
            }
        })
    }
}

/// A misspelt store name: a mistake to fix, not a store that is down.
#[derive(Debug)]
pub struct UnknownStore(String);

impl std::fmt::Display for UnknownStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownStore {}

pub struct Store {
    backend: Backend,
    inner: Arc<CredentialStore>,
    service: String,
}

impl Store {
    /// Where long-lived keys live: `AWSMFA_KEYRING`, else the platform's persistent store.
    pub fn for_keys() -> anyhow::Result<Self> {
        match std::env::var("AWSMFA_KEYRING") {
            Ok(name) if !name.is_empty() => Self::open(Backend::parse(&name, "AWSMFA_KEYRING")?),
            _ => Self::open_default(),
        }
    }

    /// Where sessions live: `AWSMFA_SESSION_KEYRING`, else keyutils on Linux, else
    /// the keys' store.
    pub fn for_sessions() -> anyhow::Result<Self> {
        match std::env::var("AWSMFA_SESSION_KEYRING") {
            Ok(name) if !name.is_empty() => {
                Self::open(Backend::parse(&name, "AWSMFA_SESSION_KEYRING")?)
            }
            _ if cfg!(target_os = "linux") => Self::open(Backend::Keyutils),
            _ => Self::for_keys(),
        }
    }

    fn open_default() -> anyhow::Result<Self> {
        if cfg!(target_os = "macos") {
            return Self::open(Backend::Keychain);
        }
        if cfg!(windows) {
            return Self::open(Backend::Windows);
        }
        // A desktop session has a bus with a Secret Service; a server or CI box has
        // neither, and keyutils is what the kernel always offers.
        let has_bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
        if has_bus && let Ok(store) = Self::open(Backend::SecretService) {
            return Ok(store);
        }
        Self::open(Backend::Keyutils).map_err(|e| {
            anyhow!(
                "no keyring store available: {e:#}\n  install and unlock a Secret Service (gnome-keyring, KeePassXC) in a desktop session, \
                 allow the keyctl system calls (Docker's default seccomp profile blocks them), \
                 or keep keys in 1Password or OpenBao (keys = \"op:…\" / \"openbao:…\" in config.toml)"
            )
        })
    }

    pub fn open(backend: Backend) -> anyhow::Result<Self> {
        let inner = platform_store(backend)?;
        let service = std::env::var("AWSMFA_KEYRING_SERVICE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "awsmfa".to_string());
        Ok(Self {
            backend,
            inner,
            service,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn entry(&self, user: &str) -> anyhow::Result<keyring_core::Entry> {
        self.inner
            .build(&self.service, user, None::<&HashMap<&str, &str>>)
            .map_err(|e| self.unavailable(e))
    }

    fn unavailable(&self, e: keyring_core::Error) -> anyhow::Error {
        if quota_exceeded(&e) {
            return anyhow!("{} keyring: {}", self.backend.name(), QuotaFull);
        }
        let hint = match (self.backend, &e) {
            (Backend::SecretService, keyring_core::Error::NoStorageAccess(_)) => {
                "\n  the Secret Service keyring is locked or absent: unlock it (log in to the desktop, or `gnome-keyring-daemon --unlock`), \
                 or set AWSMFA_KEYRING=keyutils"
            }
            (Backend::Keyutils, _) => {
                "\n  the kernel keyring refused access: run inside a login session or under `keyctl session -`; \
                 in Docker, allow the keyctl system calls"
            }
            _ => "",
        };
        anyhow!("{} keyring: {e}{hint}", self.backend.name())
    }

    pub fn get(&self, user: &str) -> anyhow::Result<Option<SecretString>> {
        match self.entry(user)?.get_password() {
            Ok(secret) => Ok(Some(SecretString::from(secret))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            // Something not UTF-8 where we store JSON: treat as foreign, the caller replaces it.
            Err(keyring_core::Error::BadEncoding(_)) => Ok(None),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// Stores and reads back: keyutils without a session keyring "succeeds" at
    /// `add_key` yet keeps nothing, and a cache that silently stores nothing
    /// would ask for MFA on every call.
    pub fn set(&self, user: &str, secret: &SecretString) -> anyhow::Result<()> {
        self.store(&self.entry(user)?, secret)
    }

    /// [`Store::set`] for something that is worthless after `expiry` (Unix
    /// seconds), a session: in the kernel keyring the entry gets a timeout
    /// there (plus [`EXPIRY_MARGIN`]), so that the kernel drops it rather than
    /// keep it until reboot against the user's key quota (200 keys and 20 000
    /// bytes by default), which, once full, would make every call ask for MFA.
    /// The other stores keep entries until replaced or deleted.
    pub fn set_with_expiry(
        &self,
        user: &str,
        secret: &SecretString,
        expiry: u64,
    ) -> anyhow::Result<()> {
        let entry = self.entry(user)?;
        self.store(&entry, secret)?;
        #[cfg(target_os = "linux")]
        if let Err(e) = set_timeout(&entry, expiry) {
            // An entry that never expires is the leak this prevents: none at all
            // costs one MFA code.
            let _ = entry.delete_credential();
            return Err(self.unavailable(e))
                .context("cannot set a timeout on the session's keyring entry");
        }
        Ok(())
    }

    fn store(&self, entry: &keyring_core::Entry, secret: &SecretString) -> anyhow::Result<()> {
        entry
            .set_password(secret.expose_secret())
            .map_err(|e| self.unavailable(e))?;
        match entry.get_password() {
            Ok(back) if back == secret.expose_secret() => Ok(()),
            Ok(_) | Err(keyring_core::Error::NoEntry) => Err(self.unavailable(
                keyring_core::Error::NoStorageAccess("the entry did not persist".into()),
            )),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// True when something was deleted.
    pub fn delete(&self, user: &str) -> anyhow::Result<bool> {
        match self.entry(user)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(self.unavailable(e)).context("cannot delete keyring entry"),
        }
    }
}

/// How long a session's kernel keyring entry outlives the session: a look-up
/// at the last second still finds the entry, and sees by its recorded expiry
/// that it is over.
pub const EXPIRY_MARGIN: u64 = 60;

/// `KEYCTL_SET_TIMEOUT` on a keyutils entry (a no-op for the other stores).
#[cfg(target_os = "linux")]
fn set_timeout(entry: &keyring_core::Entry, expiry: u64) -> Result<(), keyring_core::Error> {
    let Some(cred) = entry
        .as_any()
        .downcast_ref::<linux_keyutils_keyring_store::Cred>()
    else {
        return Ok(());
    };
    // The kernel takes an unsigned int of seconds; 0 would mean "never".
    let secs = expiry
        .saturating_sub(crate::time::now())
        .saturating_add(EXPIRY_MARGIN)
        .min(u64::from(u32::MAX));
    let secs = usize::try_from(secs).unwrap_or(usize::MAX);
    cred.session
        .search(&cred.description)
        .and_then(|key| key.set_timeout(secs))
        .map_err(|e| keyring_core::Error::PlatformFailure(Box::new(e)))
}

/// EDQUOT from the kernel keyring: the user's key quota is full.
fn quota_exceeded(e: &keyring_core::Error) -> bool {
    #[cfg(target_os = "linux")]
    if let keyring_core::Error::PlatformFailure(inner) = e {
        return matches!(
            inner.downcast_ref::<linux_keyutils::KeyError>(),
            Some(linux_keyutils::KeyError::QuotaExceeded)
        );
    }
    let _ = e;
    false
}

/// The message for [`quota_exceeded`]: what is full and the ways out.
struct QuotaFull;

impl std::fmt::Display for QuotaFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let prefix = if unsafe { libc::geteuid() } == 0 {
            "root_"
        } else {
            ""
        };
        write!(
            f,
            "the kernel's key quota for your user is full (Disk quota exceeded)\n  \
             see what holds it with `keyctl show @u` and `keyctl show @s` (totals in /proc/key-users), \
             drop awsmfa's cached sessions with `awsmfa clear`, \
             or raise the quota (as root: /proc/sys/kernel/keys/{prefix}maxkeys and {prefix}maxbytes)"
        )
    }
}

#[cfg(target_os = "linux")]
fn platform_store(backend: Backend) -> anyhow::Result<Arc<CredentialStore>> {
    match backend {
        Backend::Keyutils => {
            own_session_keyring();
            Ok(linux_keyutils_keyring_store::Store::new()
                .map_err(|e| anyhow!("keyutils keyring: {e}"))?)
        }
        Backend::SecretService => {
            if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
                bail!(
                    "secret-service keyring: DBUS_SESSION_BUS_ADDRESS is not set, so there is no session bus to reach it; \
                     run inside a desktop session (or `dbus-run-session`), or set AWSMFA_KEYRING=keyutils"
                );
            }
            Ok(dbus_secret_service_keyring_store::Store::new()
                .map_err(|e| anyhow!("secret-service keyring: {e}"))?)
        }
        other => bail!(
            "the {} keyring exists only on its own platform",
            other.name()
        ),
    }
}

/// Outside a login session (cron, CI runners, containers, `su`) the kernel hands
/// a process the shared per-user session keyring, which it does not possess:
/// the store can add a key there but not link it into the persistent keyring
/// that other processes search, so nothing would be found again. Such a process
/// gets a session keyring of its own, as `keyctl session -` would give it.
#[cfg(target_os = "linux")]
fn own_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_DESCRIBE: libc::c_long = 6;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    let mut buf = [0u8; 256];
    // SAFETY: KEYCTL_DESCRIBE writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            KEY_SPEC_SESSION_KEYRING,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let Ok(len) = usize::try_from(n) else { return };
    let description = String::from_utf8_lossy(&buf[..len.min(buf.len())]);
    // "keyring;UID;GID;PERM;NAME"
    let name = description
        .trim_end_matches('\0')
        .rsplit(';')
        .next()
        .unwrap_or("");
    if name.starts_with("_uid_ses.") {
        // SAFETY: a NULL name asks for a new anonymous keyring; no memory is passed.
        unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            )
        };
    }
}

#[cfg(target_os = "macos")]
fn platform_store(backend: Backend) -> anyhow::Result<Arc<CredentialStore>> {
    match backend {
        Backend::Keychain => Ok(apple_native_keyring_store::keychain::Store::new()
            .map_err(|e| anyhow!("keychain: {e}"))?),
        other => bail!("the {} keyring is not available on macOS", other.name()),
    }
}

#[cfg(windows)]
fn platform_store(backend: Backend) -> anyhow::Result<Arc<CredentialStore>> {
    match backend {
        Backend::Windows => Ok(windows_native_keyring_store::Store::new()
            .map_err(|e| anyhow!("windows credential manager: {e}"))?),
        other => bail!("the {} keyring is not available on Windows", other.name()),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_full_quota_is_named_with_the_ways_out() {
        let full =
            keyring_core::Error::PlatformFailure(Box::new(linux_keyutils::KeyError::QuotaExceeded));
        assert!(quota_exceeded(&full));
        let other =
            keyring_core::Error::PlatformFailure(Box::new(linux_keyutils::KeyError::OutOfMemory));
        assert!(!quota_exceeded(&other));
        assert!(!quota_exceeded(&keyring_core::Error::NoEntry));
        let text = QuotaFull.to_string();
        for part in [
            "quota",
            "keyctl show @u",
            "awsmfa clear",
            "maxkeys",
            "maxbytes",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}
