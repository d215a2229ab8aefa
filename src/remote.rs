//! Where awsmfa may send a secret. A request to STS is signed with the
//! long-lived key and carries a one-time MFA code; a request to OpenBao carries
//! its token. Over plain http anyone on the path can read and replay them, so
//! one rule serves both: https anywhere, http only where the traffic cannot
//! leave the machine. A leaf: uses nothing else in awsmfa.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{anyhow, bail};

const LOOPBACK: &str = "loopback (127.0.0.1, ::1, localhost)";

/// What a URL is for, and where it came from, for the messages.
pub struct Use {
    /// What would travel, e.g. "a request signed with your long-lived key and a one-time MFA code".
    pub carrying: &'static str,
    /// e.g. "AWS_ENDPOINT_URL_STS".
    pub from: String,
    /// The way out other than https, e.g. "unset AWS_ENDPOINT_URL_STS".
    pub instead: String,
}

/// A URL that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Set when the host is an IP literal: nothing to resolve.
    pub ip: Option<IpAddr>,
    pub https: bool,
}

/// The rule: the URL parses, its scheme is https, or http to a loopback
/// literal (127.0.0.0/8, ::1) or the name `localhost`. Parsed with the same
/// `http` crate the STS and OpenBao clients parse it with, so the host judged
/// here is the host they connect to.
pub fn check(url: &str, ctx: &Use) -> anyhow::Result<Target> {
    let shown = url.escape_debug();
    let malformed = |why: &str| {
        anyhow!(
            "cannot use `{shown}` (from {}): {why}; it should be https://HOST[:PORT], or http:// to {LOOPBACK}; fix it, or {}",
            ctx.from,
            ctx.instead
        )
    };
    let uri: ureq::http::Uri = url.parse().map_err(|e| malformed(&format!("{e}")))?;
    let Some(scheme) = uri.scheme_str() else {
        return Err(malformed("it has no scheme (https://)"));
    };
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        bail!(
            "refusing to send {} to {shown} (from {}): the scheme is `{}`, but only https is allowed, and plain http to {LOOPBACK}; use https, or {}",
            ctx.carrying,
            ctx.from,
            scheme.escape_debug(),
            ctx.instead
        );
    };
    let Some(authority) = uri.authority() else {
        return Err(malformed("it has no host"));
    };
    let raw_host = authority.host();
    let host = raw_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw_host);
    if host.is_empty() {
        return Err(malformed("it has no host"));
    }
    // The http crate reads a port it cannot parse as no port at all, which
    // would quietly mean 80 or 443 here and an error in the client.
    let after_host = authority
        .as_str()
        .rsplit('@')
        .next()
        .and_then(|hp| hp.get(raw_host.len()..))
        .unwrap_or("");
    let port = match after_host.strip_prefix(':') {
        None | Some("") => {
            if https {
                443
            } else {
                80
            }
        }
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(malformed(&format!(
                    "`{}` is not a port",
                    text.escape_debug()
                )));
            }
        },
    };
    let ip = host.parse::<IpAddr>().ok();
    if !https && !is_loopback(host, ip) {
        bail!(
            "refusing to send {} to {shown} in cleartext (from {}): plain http is allowed only to {LOOPBACK}; use https, or {}",
            ctx.carrying,
            ctx.from,
            ctx.instead
        );
    }
    Ok(Target {
        host: host.to_string(),
        port,
        ip,
        https,
    })
}

fn is_loopback(host: &str, ip: Option<IpAddr>) -> bool {
    match ip {
        Some(ip) => ip.is_loopback(),
        None => host.eq_ignore_ascii_case("localhost"),
    }
}

impl Target {
    /// The host's addresses, looked up now (none to look up for an IP literal):
    /// a name that does not resolve is better found before the user spends a
    /// one-time code on it.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.ip {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<_> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::other("no address"));
        }
        Ok(addrs)
    }

    /// For http, `localhost` must resolve to loopback only (as the Go SDK
    /// demands of container-credential hosts): a hosts file or resolver that
    /// says otherwise would carry the cleartext off the machine.
    pub fn check_addresses(
        &self,
        addrs: &[SocketAddr],
        url: &str,
        ctx: &Use,
    ) -> anyhow::Result<()> {
        if self.https {
            return Ok(());
        }
        if let Some(addr) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "refusing to send {} to {} in cleartext (from {}): {} resolves to {}, which is not loopback; use https, or {}",
                ctx.carrying,
                url.escape_debug(),
                ctx.from,
                self.host,
                addr.ip(),
                ctx.instead
            );
        }
        Ok(())
    }

    /// AWS's own endpoints, in every partition awsmfa knows of.
    pub fn is_aws(&self) -> bool {
        let host = self.host.to_ascii_lowercase();
        [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Use {
        Use {
            carrying: "secrets",
            from: "TEST_VAR".into(),
            instead: "unset TEST_VAR".into(),
        }
    }

    fn ok(url: &str) -> Target {
        check(url, &ctx()).unwrap_or_else(|e| panic!("{url}: {e:#}"))
    }

    fn refused(url: &str) -> String {
        match check(url, &ctx()) {
            Ok(t) => panic!("{url} was allowed: {t:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn https_anywhere() {
        let t = ok("https://sts.us-east-1.amazonaws.com");
        assert_eq!(
            (t.host.as_str(), t.port, t.https),
            ("sts.us-east-1.amazonaws.com", 443, true)
        );
        assert!(t.is_aws());
        let t = ok("HTTPS://Bao.Example.Invalid:8200/");
        assert_eq!(t.port, 8200);
        assert!(!t.is_aws());
        assert!(ok("https://sts.cn-north-1.amazonaws.com.cn").is_aws());
        assert!(ok("https://sts.us-east-1.api.aws").is_aws());
        assert!(!ok("https://amazonaws.com.invalid").is_aws());
        assert!(!ok("https://xamazonaws.com").is_aws());
    }

    #[test]
    fn http_to_loopback_only() {
        for url in [
            "http://127.0.0.1:4566",
            "http://127.8.9.10/",
            "http://[::1]:4566",
            "http://localhost:4566",
            "http://LocalHost",
            "HTTP://127.0.0.1",
        ] {
            let t = ok(url);
            assert!(!t.https && !t.is_aws(), "{url}");
        }
        assert_eq!(ok("http://[::1]:4566").host, "::1");
        assert_eq!(ok("http://localhost").port, 80);
        for url in [
            "http://sts.invalid",
            "http://sts.invalid:4566/",
            "http://localhost.invalid",
            "http://127.0.0.1.invalid",
            "http://[::ffff:10.0.0.1]",
            "http://0.0.0.0:4566",
            "http://127.0.0.1@sts.invalid",
        ] {
            let e = refused(url);
            assert!(
                e.contains("cleartext") && e.contains("loopback") && e.contains("TEST_VAR"),
                "{e}"
            );
        }
    }

    #[test]
    fn other_schemes_and_malformed_urls() {
        for url in [
            "ftp://x.invalid",
            "sts.invalid",
            "sts.invalid:443",
            "/just/a/path",
            "http://",
            "https://[::1",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0",
            "http://127.0.0.1:x",
            "https://sts .invalid",
            "",
        ] {
            let e = refused(url);
            assert!(
                e.contains("loopback") && e.contains("from TEST_VAR"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn an_ip_literal_is_not_resolved() {
        let t = ok("https://[::1]:1");
        let addrs = t.resolve().unwrap();
        assert_eq!(addrs, vec!["[::1]:1".parse().unwrap()]);
        assert!(t.check_addresses(&addrs, "https://[::1]:1", &ctx()).is_ok());
        let t = ok("http://localhost:1");
        let far = ["0.0.0.0:1".parse().unwrap()];
        let e = t
            .check_addresses(&far, "http://localhost:1", &ctx())
            .unwrap_err();
        assert!(format!("{e}").contains("not loopback"), "{e}");
    }
}
