//! Which OpenBao nodes a request may go to, and how it finds the one that serves
//! it. Every request carries a token (or a single-use wrapping token, or a
//! SecretID), so it goes only to the addresses the user configured, each of
//! which passed [`crate::remote::check`]; a redirect is followed only to one of
//! them. In a cluster, a standby forwards requests to the active node, or answers
//! 307 with the active node's `api_addr`; a sealed node answers 503; while the
//! nodes elect a new active node, standbys answer 500 or redirect to the node
//! that died. So a request tries the nodes in turn and, while some node says a
//! leader is missing, waits and tries again, for `failover_wait` at most.
//!
//! Unwrapping a SecretID and the AppRole login are served once only. They are
//! sent with `X-Vault-No-Request-Forwarding`, so a standby never passes them on
//! (it redirects, and a redirect proves the request was not served), and they are
//! sent again only when the connection failed before the request went out: a
//! reset or a timeout after it went out may mean a node served it.

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::config::settings::OpenBaoSettings;
use crate::remote;

/// What OpenBao requests carry, for [`remote::check`]'s messages.
const CARRYING: &str = "OpenBao requests (its token, and the keys or codes it returns)";
/// A standby redirects to the active node, which answers; more hops than this
/// are a loop between misconfigured `api_addr`s.
const MAX_REDIRECTS: usize = 3;
/// A raft election with `performance_multiplier = 1` takes a few seconds, and
/// about five times as long with OpenBao's default timing (5): room for both.
const DEFAULT_FAILOVER_WAIT: Duration = Duration::from_secs(30);
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Errors a standby gives while it knows no active node to send a request to.
const NO_LEADER: [&str; 3] = [
    "active cluster node not found",
    "no active vault instance found",
    "vault is in standby mode",
];

/// The addresses as written, and where they were written, for messages.
struct Configured {
    addresses: Vec<String>,
    from: String,
    instead: String,
}

/// `[openbao] address` (one URL or a list), else `BAO_ADDR`, else `VAULT_ADDR`
/// (each one URL or a comma-separated list).
fn configured(settings: Option<&OpenBaoSettings>) -> Option<Configured> {
    if let Some(address) = settings.and_then(|s| s.address.as_ref()) {
        return Some(Configured {
            addresses: address.items().into_iter().map(str::to_string).collect(),
            from: "[openbao] address in config.toml".into(),
            instead: "change `address` under [openbao] in config.toml".into(),
        });
    }
    ["BAO_ADDR", "VAULT_ADDR"].iter().find_map(|var| {
        let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
        Some(Configured {
            addresses: value
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            from: var.to_string(),
            instead: format!("unset {var}"),
        })
    })
}

/// Which OpenBao the secrets come from, for a session's fingerprint: one
/// address as written, or a cluster's addresses in any order.
pub fn identity(settings: Option<&OpenBaoSettings>) -> String {
    let Some(Configured { mut addresses, .. }) = configured(settings) else {
        return String::new();
    };
    addresses.sort();
    addresses.dedup();
    addresses.join(",")
}

/// A node's scheme, host and port: what a redirect target must match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(target: &remote::Target) -> Origin {
        Origin {
            https: target.https,
            host: target.host.to_ascii_lowercase(),
            port: target.port,
        }
    }
}

#[derive(Debug)]
struct Node {
    /// As configured, without a trailing `/`.
    url: String,
    origin: Origin,
}

/// The configured nodes once every one passed the rule of [`remote::check`]
/// (none when nothing is configured): checked before any request, so a list
/// with one cleartext address sends nothing even to the good ones.
fn checked(settings: Option<&OpenBaoSettings>) -> anyhow::Result<Option<(Vec<Node>, String)>> {
    let Some(Configured {
        addresses,
        from,
        instead,
    }) = configured(settings)
    else {
        return Ok(None);
    };
    if addresses.is_empty() {
        bail!("{from} holds no OpenBao address; {instead}");
    }
    let mut nodes: Vec<Node> = Vec::new();
    for address in addresses {
        let target = remote::check(
            &address,
            &remote::Use {
                carrying: CARRYING,
                from: from.clone(),
                instead: instead.clone(),
            },
        )?;
        let url = address.trim_end_matches('/').to_string();
        if !nodes.iter().any(|n| n.url == url) {
            nodes.push(Node {
                url,
                origin: Origin::of(&target),
            });
        }
    }
    Ok(Some((nodes, from)))
}

/// For the minting path: the rule of [`remote::check`] for every configured
/// address, before any other source runs.
pub(super) fn check_addresses(settings: Option<&OpenBaoSettings>) -> anyhow::Result<()> {
    checked(settings).map(drop)
}

/// A request OpenBao serves once only: what it is, and what may be lost when
/// it reached a node but its answer did not come back.
pub(super) struct Once {
    pub what: &'static str,
    pub lost: String,
}

pub(super) struct Request<'a> {
    pub method: &'a str,
    /// Without `/v1/`.
    pub path: &'a str,
    pub token: Option<&'a SecretString>,
    /// JSON.
    pub body: Option<&'a str>,
    pub once: Option<Once>,
}

/// What one HTTP exchange with one URL came to.
enum Exchange {
    Answer(u16, Json),
    Redirect(String),
    Sealed,
    /// A standby with no active node to serve the request.
    NoLeader(String),
    /// The connection failed before the request went out.
    NotSent(String),
    /// The connection failed after the request went out, or while its answer came.
    Lost(String),
}

/// Why a node (and the nodes it redirected to) did not answer.
enum Trouble {
    Down(String),
    Sealed,
    NoLeader(String),
    /// It redirected to a node that does not answer: the active node it knows
    /// of is gone, and no other is elected yet.
    Gone {
        to: String,
        why: String,
    },
    /// The connection failed after a repeatable request went out.
    Lost(String),
}

impl Trouble {
    /// Whether waiting may help: a leader is being elected, or a node is restarting.
    fn passing(&self) -> bool {
        matches!(
            self,
            Trouble::NoLeader(_) | Trouble::Gone { .. } | Trouble::Lost(_)
        )
    }

    fn describe(&self, url: &str) -> String {
        match self {
            Trouble::Down(why) => format!("cannot reach OpenBao at {url}: {why}"),
            Trouble::Sealed => format!("OpenBao at {url} is sealed"),
            Trouble::NoLeader(why) => format!("OpenBao at {url} knows no active node ({why})"),
            Trouble::Gone { to, why } => {
                format!("OpenBao at {url} redirected to {to}, which does not answer ({why})")
            }
            Trouble::Lost(why) => format!("OpenBao at {url} did not answer ({why})"),
        }
    }
}

enum Reached {
    Answer {
        node: usize,
        status: u16,
        body: Json,
    },
    Trouble(Trouble),
}

pub(super) struct Nodes {
    nodes: Vec<Node>,
    /// Where the addresses were configured, for messages.
    from: String,
    agent: ureq::Agent,
    /// The node that answered last: the next request starts there, so once a
    /// request found the active node, the rest of the mint talks to it.
    current: Cell<usize>,
    wait: Duration,
}

impl Nodes {
    pub(super) fn new(settings: Option<&OpenBaoSettings>) -> anyhow::Result<Nodes> {
        // Checked before the client exists, so no request can precede it.
        let (nodes, from) = checked(settings)?.context(
            "no OpenBao address: set `address` under [openbao] in config.toml, or BAO_ADDR",
        )?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            // Shorter than the global timeout, so that a connection that never
            // came up is told from a request that got no answer.
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            // ureq would send X-Vault-Token to wherever a Location points.
            .max_redirects(0)
            // A fresh connection per request: then a failed connect means the
            // request never went out, which is what allows sending it again.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .new_agent();
        Ok(Nodes {
            nodes,
            from,
            agent,
            current: Cell::new(0),
            wait: settings
                .and_then(|s| s.failover_wait)
                .unwrap_or(DEFAULT_FAILOVER_WAIT),
        })
    }

    /// The node that answered last (the first configured before any answer).
    pub(super) fn current_url(&self) -> &str {
        &self.nodes[self.current.get()].url
    }

    pub(super) fn count(&self) -> usize {
        self.nodes.len()
    }

    /// What each node says of itself at `sys/health`, asked of it alone (no
    /// redirect followed, no token sent): `Ok(role)` for one that serves,
    /// `Err(why)` for one that cannot. For `doctor`, which shows a cluster's
    /// sealed or unreachable node before a failover needs it.
    pub(super) fn survey(&self) -> Vec<(String, Result<&'static str, String>)> {
        let req = Request {
            method: "GET",
            path: "sys/health",
            token: None,
            body: None,
            once: None,
        };
        self.nodes
            .iter()
            .map(|node| {
                let state = match self.exchange(&format!("{}/v1/sys/health", node.url), &req) {
                    Exchange::Answer(200, _) => Ok("active"),
                    Exchange::Answer(429, _) => Ok("standby"),
                    Exchange::Answer(473, _) => Ok("performance standby"),
                    Exchange::Answer(501, _) => Err("not initialized".into()),
                    Exchange::Answer(status, body) => Err(error_text(&body, status)),
                    Exchange::Sealed => Err("sealed".into()),
                    Exchange::NoLeader(why) => Err(format!("no active node ({why})")),
                    Exchange::Redirect(to) => {
                        Err(format!("redirected sys/health to {}", to.escape_debug()))
                    }
                    Exchange::NotSent(why) | Exchange::Lost(why) => {
                        Err(format!("unreachable ({why})"))
                    }
                };
                (node.url.clone(), state)
            })
            .collect()
    }

    /// The first answer from any node, in order from the one that answered
    /// last; a sealed or unreachable node is skipped with a message. While a
    /// cluster has no active node, tries again with backoff for `failover_wait`.
    pub(super) fn call(&self, req: &Request<'_>) -> anyhow::Result<(u16, Json)> {
        let deadline = Instant::now() + self.wait;
        let mut pause = FIRST_PAUSE;
        let mut first_round = true;
        loop {
            let start = self.current.get();
            let order: Vec<usize> = (0..self.nodes.len())
                .map(|k| (start + k) % self.nodes.len())
                .collect();
            let mut troubles = Vec::new();
            for (k, &i) in order.iter().enumerate() {
                let trouble = match self.at(i, req)? {
                    Reached::Answer { node, status, body } => {
                        self.current.set(node);
                        return Ok((status, body));
                    }
                    Reached::Trouble(trouble) => trouble,
                };
                let described = trouble.describe(&self.nodes[i].url);
                match order.get(k + 1) {
                    Some(&next) if first_round => {
                        crate::log::info(format_args!(
                            "{described}; trying {}",
                            self.nodes[next].url
                        ));
                    }
                    _ => crate::debug!("{described}"),
                }
                troubles.push((trouble, described));
            }
            let passing = troubles.iter().any(|(t, _)| t.passing());
            let left = deadline.saturating_duration_since(Instant::now());
            if !passing || left.is_zero() {
                return Err(self.gave_up(&troubles, passing));
            }
            if first_round {
                crate::log::info(format_args!(
                    "waiting up to {} for an active OpenBao node",
                    humantime::format_duration(self.wait)
                ));
                first_round = false;
            }
            // The last pause ends at the deadline, for one more round there.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    fn gave_up(&self, troubles: &[(Trouble, String)], passing: bool) -> anyhow::Error {
        let all: Vec<&str> = troubles.iter().map(|(_, d)| d.as_str()).collect();
        let said = all.join("; ");
        if passing {
            return anyhow::anyhow!(
                "no active OpenBao node after {}: {said}; check the cluster (`bao operator raft list-peers`), \
                 or raise `failover_wait` under [openbao] if its elections take longer",
                humantime::format_duration(self.wait)
            );
        }
        let sealed = troubles.iter().any(|(t, _)| matches!(t, Trouble::Sealed));
        let hint = if sealed {
            format!(
                "; unseal it (`bao operator unseal`), or list the other nodes of its cluster in {}",
                self.from
            )
        } else {
            String::new()
        };
        match troubles {
            [_] => anyhow::anyhow!("{said}{hint}"),
            _ => anyhow::anyhow!("no OpenBao node could serve the request: {said}{hint}"),
        }
    }

    /// One node, and the configured nodes it redirects to.
    fn at(&self, first: usize, req: &Request<'_>) -> anyhow::Result<Reached> {
        let mut node = first;
        let mut url = format!(
            "{}/v1/{}",
            self.nodes[first].url,
            req.path.trim_start_matches('/')
        );
        let mut hops = 0;
        let trouble = loop {
            let gone = |why: String| Trouble::Gone {
                to: self.nodes[node].url.clone(),
                why,
            };
            match self.exchange(&url, req) {
                Exchange::Answer(status, body) => {
                    return Ok(Reached::Answer { node, status, body });
                }
                Exchange::Redirect(location) => {
                    if hops == MAX_REDIRECTS {
                        bail!(
                            "OpenBao at {} redirected more than {MAX_REDIRECTS} times, last to {}: check the api_addr of each node",
                            self.nodes[first].url,
                            location.escape_debug()
                        );
                    }
                    let (next, next_url) = self.follow(node, &url, &location)?;
                    crate::debug!(
                        "OpenBao at {} redirected to {}",
                        self.nodes[node].url,
                        self.nodes[next].url
                    );
                    hops += 1;
                    node = next;
                    url = next_url;
                }
                Exchange::NotSent(why) if hops == 0 => break Trouble::Down(why),
                Exchange::NotSent(why) => break gone(why),
                Exchange::Sealed if hops == 0 => break Trouble::Sealed,
                Exchange::Sealed => break gone("sealed".into()),
                Exchange::NoLeader(why) => break Trouble::NoLeader(why),
                Exchange::Lost(why) => match &req.once {
                    None => break Trouble::Lost(why),
                    Some(once) => bail!(
                        "{} went to OpenBao at {}, but the connection failed before its answer came ({why}): \
                         {}. awsmfa does not send it again, since OpenBao serves it once only",
                        once.what,
                        self.nodes[node].url,
                        once.lost
                    ),
                },
            }
        };
        Ok(Reached::Trouble(trouble))
    }

    /// Where a redirect from `node` (at `url`) to `location` goes: a configured
    /// node, else an error that names the target and why it is not followed.
    fn follow(&self, node: usize, url: &str, location: &str) -> anyhow::Result<(usize, String)> {
        let from = &self.nodes[node].url;
        let target_url = if location.starts_with('/') && !location.starts_with("//") {
            // A path on the same node.
            let uri: ureq::http::Uri = url.parse()?;
            let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
                bail!("cannot follow a redirect from {url}");
            };
            format!("{scheme}://{authority}{location}")
        } else {
            location.to_string()
        };
        let target = remote::check(
            &target_url,
            &remote::Use {
                carrying: CARRYING,
                from: format!("a redirect from OpenBao at {from}"),
                instead: format!(
                    "set that node's api_addr to an https address and list it in {}",
                    self.from
                ),
            },
        )
        .context("the redirect was not followed")?;
        let origin = Origin::of(&target);
        match self.nodes.iter().position(|n| n.origin == origin) {
            Some(next) => Ok((next, target_url)),
            None => bail!(
                "OpenBao at {from} redirected to {}, which is not one of the OpenBao addresses in {}: \
                 not followed, so no token went there. If it is a node of the same cluster (the active \
                 node's api_addr), add it to that list",
                target_url.escape_debug(),
                self.from
            ),
        }
    }

    fn exchange(&self, url: &str, req: &Request<'_>) -> Exchange {
        let mut builder = ureq::http::Request::builder().method(req.method).uri(url);
        if let Some(token) = req.token {
            builder = builder.header("X-Vault-Token", token.expose_secret());
        }
        if req.once.is_some() {
            // A standby then redirects instead of passing the request on to
            // the active node: a redirect proves nothing was served, where a
            // forward that failed half-way would leave it unknown.
            builder = builder.header("X-Vault-No-Request-Forwarding", "true");
        }
        if req.body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = match builder.body(req.body.unwrap_or("").as_bytes()) {
            Ok(request) => request,
            // Shown without the header's value: it may be the token.
            Err(e) => return Exchange::NotSent(format!("cannot build the request: {e}")),
        };
        let mut response = match self.agent.run(request) {
            Ok(response) => response,
            Err(e) if nothing_sent(&e) => return Exchange::NotSent(e.to_string()),
            Err(e) => return Exchange::Lost(e.to_string()),
        };
        let status = response.status().as_u16();
        if matches!(status, 307 | 308)
            && let Some(location) = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
        {
            return Exchange::Redirect(location.to_string());
        }
        let bytes = match read_body(response.body_mut()) {
            Ok(bytes) => bytes,
            Err(e) => return Exchange::Lost(e.to_string()),
        };
        classify(
            status,
            Json(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
        )
    }
}

/// What ureq reads at most of an answer, as its own `read_to_string` does.
const MAX_BODY: u64 = 10 * 1024 * 1024;

/// An answer's body, in a buffer wiped when it is dropped, as is each smaller
/// one it outgrew: unwrapped SecretIDs, client tokens, keys and sessions pass
/// through it. (ureq's and rustls's own buffers are not ours to wipe.)
fn read_body(body: &mut ureq::Body) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut reader = body.with_config().limit(MAX_BODY).reader();
    let mut buf = Zeroizing::new(vec![0; 8192]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            let mut bigger = Zeroizing::new(vec![0; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// A parsed answer. Its strings may be secrets, as above: each is wiped when
/// the answer is dropped (the object keys, names such as `client_token`, are not).
pub(super) struct Json(Value);

impl Json {
    /// A value made to be sent (a secret written back), wiped like an answer.
    pub(super) fn new(value: Value) -> Self {
        Json(value)
    }
}

impl std::ops::Deref for Json {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl Drop for Json {
    fn drop(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        wipe(&mut self.0);
    }
}

fn classify(status: u16, body: Json) -> Exchange {
    let errors = error_list(&body).join("; ").to_ascii_lowercase();
    // sys/health says `"sealed": true`; other paths say "Vault is sealed".
    if status == 503 && (body["sealed"] == Value::Bool(true) || errors.contains("sealed")) {
        return Exchange::Sealed;
    }
    if matches!(status, 500 | 503) && NO_LEADER.iter().any(|m| errors.contains(m)) {
        return Exchange::NoLeader(error_text(&body, status));
    }
    Exchange::Answer(status, body)
}

/// Whether ureq failed before the request left: no connection, or a TLS
/// handshake that failed. Every request has a fresh connection (no pool), so
/// nothing was written to a server.
fn nothing_sent(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Io(io) => {
            matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ) || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(handshake_only)
        }
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::ConnectProxyFailed(_) => true,
        _ => false,
    }
}

/// TLS errors that only a handshake produces (rustls does no renegotiation):
/// the request had not been sent.
fn handshake_only(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InvalidCertRevocationList(_)
            | rustls::Error::NoApplicationProtocol
    )
}

fn error_list(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `HTTP 403: permission denied`, from OpenBao's `errors`.
pub(super) fn error_text(body: &Value, status: u16) -> String {
    let errors = error_list(body);
    if errors.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::OneOrMany;
    use serde_json::json;

    fn settings(addresses: &[&str]) -> OpenBaoSettings {
        OpenBaoSettings {
            address: Some(OneOrMany::Many(
                addresses.iter().map(|a| a.to_string()).collect(),
            )),
            ..OpenBaoSettings::default()
        }
    }

    fn nodes(addresses: &[&str]) -> Nodes {
        Nodes::new(Some(&settings(addresses))).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn every_address_passes_the_rule_before_any_request() {
        let e = Nodes::new(Some(&settings(&[
            "https://a.example:8200",
            "http://b.example:8200",
        ])))
        .err()
        .expect("a cleartext address in the list is refused");
        let e = format!("{e:#}");
        assert!(
            e.contains("http://b.example:8200 in cleartext")
                && e.contains("[openbao] address in config.toml"),
            "{e}"
        );
        let n = nodes(&[
            "https://a.example:8200/",
            "https://a.example:8200",
            "http://[::1]:8200",
        ]);
        let urls: Vec<&str> = n.nodes.iter().map(|n| n.url.as_str()).collect();
        assert_eq!(urls, ["https://a.example:8200", "http://[::1]:8200"]);
        assert_eq!(n.current_url(), "https://a.example:8200");
    }

    #[test]
    fn a_cluster_is_the_same_secret_source_in_any_order() {
        let one = identity(Some(&settings(&["https://b:8200", "https://a:8200"])));
        let other = identity(Some(&settings(&["https://a:8200", "https://b:8200"])));
        assert_eq!(one, other);
        let single = OpenBaoSettings {
            address: Some(OneOrMany::One("https://a:8200".into())),
            ..OpenBaoSettings::default()
        };
        assert_eq!(identity(Some(&single)), "https://a:8200");
    }

    #[test]
    fn redirects_are_followed_to_configured_origins_only() {
        let n = nodes(&["http://127.0.0.1:8200", "https://Bao-B.example"]);
        let from = "http://127.0.0.1:8200/v1/sys/health";
        // The same origin, written differently: host case, default port.
        let (i, url) = n
            .follow(0, from, "https://bao-b.EXAMPLE:443/v1/sys/health")
            .unwrap();
        assert_eq!(
            (i, url.as_str()),
            (1, "https://bao-b.EXAMPLE:443/v1/sys/health")
        );
        // A path only: the same node.
        let (i, url) = n.follow(0, from, "/v1/other").unwrap();
        assert_eq!((i, url.as_str()), (0, "http://127.0.0.1:8200/v1/other"));
        for (location, why) in [
            (
                "http://127.0.0.1:8201/v1/x",
                "not one of the OpenBao addresses",
            ),
            ("http://bao-b.example/v1/x", "in cleartext"),
            (
                "https://bao-b.example:8200/v1/x",
                "not one of the OpenBao addresses",
            ),
            (
                "https://127.0.0.1:8200/v1/x",
                "not one of the OpenBao addresses",
            ),
            ("//bao-b.example/v1/x", "no scheme"),
        ] {
            let e = format!("{:#}", n.follow(0, from, location).unwrap_err());
            assert!(e.contains(why), "{location}: {e}");
        }
    }

    #[test]
    fn sealed_and_leaderless_nodes_are_told_from_answers() {
        let sealed = |status, body| matches!(classify(status, Json(body)), Exchange::Sealed);
        assert!(sealed(503, json!({"errors": ["Vault is sealed"]})));
        assert!(sealed(503, json!({"initialized": true, "sealed": true})));
        assert!(!sealed(500, json!({"errors": ["Vault is sealed"]})));
        let no_leader =
            |status, body| matches!(classify(status, Json(body)), Exchange::NoLeader(_));
        assert!(no_leader(
            500,
            json!({"errors": ["local node not active but active cluster node not found"]})
        ));
        assert!(no_leader(
            503,
            json!({"errors": ["no active Vault instance found"]})
        ));
        for (status, body) in [
            (500, json!({"errors": ["internal error"]})),
            (
                400,
                json!({"errors": ["wrapping token is not valid or does not exist"]}),
            ),
            (429, json!({"standby": true})),
            (200, json!({"data": {}})),
        ] {
            assert!(
                matches!(classify(status, Json(body.clone())), Exchange::Answer(s, _) if s == status),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn only_a_failed_connect_or_handshake_counts_as_not_sent() {
        use std::io::{Error, ErrorKind};
        let io = |kind| ureq::Error::Io(Error::from(kind));
        assert!(nothing_sent(&io(ErrorKind::ConnectionRefused)));
        assert!(nothing_sent(&ureq::Error::Timeout(ureq::Timeout::Connect)));
        assert!(nothing_sent(&ureq::Error::HostNotFound));
        let bad_cert = ureq::Error::Io(Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(nothing_sent(&bad_cert));
        for lost in [
            io(ErrorKind::ConnectionReset),
            io(ErrorKind::UnexpectedEof),
            io(ErrorKind::BrokenPipe),
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::Timeout(ureq::Timeout::RecvResponse),
            ureq::Error::Io(Error::new(
                ErrorKind::InvalidData,
                rustls::Error::DecryptError,
            )),
        ] {
            assert!(!nothing_sent(&lost), "{lost}");
        }
    }
}
