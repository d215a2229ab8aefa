//! OpenBao (Vault-compatible API): long-lived keys from KV-v2, MFA codes from the
//! TOTP engine, and STS credentials from the AWS secrets engine, for agents that
//! must hold no static key. The client token lives in this process's memory only.

use std::cell::OnceCell;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::settings::OpenBaoSettings;
use crate::health::Health;

/// A client made on first use: most mints never talk to OpenBao.
pub struct Lazy {
    settings: Option<OpenBaoSettings>,
    client: OnceCell<Client>,
}

impl Lazy {
    pub fn new(settings: Option<OpenBaoSettings>) -> Self {
        Self {
            settings,
            client: OnceCell::new(),
        }
    }

    /// The cleartext rule for the configured address, without building a
    /// client: for the minting path to refuse before any other source runs. No
    /// address at all is left for the first use to report, since a list of MFA
    /// sources may never get to OpenBao.
    pub fn check_address(&self) -> anyhow::Result<()> {
        checked_address(self.settings.as_ref()).map(drop)
    }

    pub fn get(&self) -> anyhow::Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = Client::new(self.settings.as_ref())?;
        Ok(self.client.get_or_init(|| client))
    }

    /// For `doctor`: [`Client::check`], for `what` (e.g. "MFA codes from totp/code/me").
    pub fn health(&self, what: &str) -> Health {
        match self
            .get()
            .and_then(|c| Ok((c.address().to_string(), c.check()?)))
        {
            Ok((address, detail)) => {
                Health::Ok(format!("OpenBao at {address} for {what}: {detail}"))
            }
            Err(e) => Health::fail(
                format!("{what}: {e:#}"),
                "check [openbao] in config.toml, BAO_ADDR and the token or wrapped SecretID",
            ),
        }
    }
}

pub struct Client {
    address: String,
    role_id: Option<String>,
    secret_id_file: Option<String>,
    agent: ureq::Agent,
    token: OnceCell<SecretString>,
}

impl Client {
    pub fn new(settings: Option<&OpenBaoSettings>) -> anyhow::Result<Self> {
        // Checked before the client exists, so no request can precede it.
        let address = checked_address(settings)?.context(
            "no OpenBao address: set `address` under [openbao] in config.toml, or BAO_ADDR",
        )?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .new_agent();
        Ok(Self {
            address: address.trim_end_matches('/').to_string(),
            role_id: settings.and_then(|s| s.role_id.clone()),
            secret_id_file: settings.and_then(|s| s.secret_id_file.clone()),
            agent,
            token: OnceCell::new(),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&SecretString>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/v1/{}", self.address, path.trim_start_matches('/'));
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose_secret());
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req.body(body)?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| anyhow!("cannot reach OpenBao at {}: {e}", self.address))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// BAO_TOKEN / VAULT_TOKEN, or an AppRole login with a response-wrapped SecretID.
    fn token(&self) -> anyhow::Result<&SecretString> {
        if let Some(token) = self.token.get() {
            return Ok(token);
        }
        let token = match ["BAO_TOKEN", "VAULT_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
        {
            Some(token) => SecretString::from(token),
            None => self.approle_login()?,
        };
        Ok(self.token.get_or_init(|| token))
    }

    fn wrapping_token(&self) -> anyhow::Result<SecretString> {
        if let Ok(token) = std::env::var("AWSMFA_OPENBAO_WRAPPED_SECRET_ID")
            && !token.trim().is_empty()
        {
            return Ok(SecretString::from(token.trim().to_string()));
        }
        if let Some(file) = &self.secret_id_file {
            let path = crate::paths::expand_tilde(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read secret_id_file {}", path.display()))?;
            return Ok(SecretString::from(text.trim().to_string()));
        }
        bail!(
            "no OpenBao credentials: set BAO_TOKEN, or `role_id` under [openbao] plus a response-wrapped SecretID in AWSMFA_OPENBAO_WRAPPED_SECRET_ID (or secret_id_file)"
        )
    }

    fn approle_login(&self) -> anyhow::Result<SecretString> {
        let role_id = self
            .role_id
            .as_deref()
            .context("OpenBao AppRole needs `role_id` under [openbao] in config.toml")?;
        let wrapping = self.wrapping_token()?;
        // The SecretID arrives wrapped so that only one process can ever read it:
        // a wrapping token that was already used means someone else did.
        let (status, body) = self.call("POST", "sys/wrapping/unwrap", Some(&wrapping), None)?;
        if status != 200 {
            bail!(
                "OpenBao refused to unwrap the SecretID ({}): the wrapping token was already used or has expired. \
                 A wrapped SecretID serves exactly one login; if no earlier awsmfa run used this one, it may have been intercepted: \
                 revoke that SecretID. Either way, hand over a new wrapped one",
                error_text(&body, status)
            );
        }
        let secret_id = body["data"]["secret_id"]
            .as_str()
            .context("the unwrapped response holds no secret_id")?;
        let secret_id = SecretString::from(secret_id.to_string());
        let login = serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
        let (status, body) = self.call("POST", "auth/approle/login", None, Some(login))?;
        if status != 200 {
            bail!(
                "OpenBao AppRole login failed ({})",
                error_text(&body, status)
            );
        }
        let token = body["auth"]["client_token"]
            .as_str()
            .context("the AppRole login response holds no client_token")?;
        crate::debug!("logged in to OpenBao at {} with AppRole", self.address);
        Ok(SecretString::from(token.to_string()))
    }

    /// `data` of an authenticated GET.
    fn read(&self, path: &str) -> anyhow::Result<Value> {
        let token = self.token()?;
        let (status, body) = self.call("GET", path, Some(token), None)?;
        if status != 200 {
            bail!("OpenBao {path}: {}", error_text(&body, status));
        }
        Ok(body)
    }

    /// KV-v2: `MOUNT/PATH` → `GET /v1/MOUNT/data/PATH`, two named fields.
    pub fn kv_fields(&self, spec: &str, fields: [&str; 2]) -> anyhow::Result<[SecretString; 2]> {
        let (mount, path) = spec
            .split_once('/')
            .with_context(|| format!("`openbao:{spec}` should be openbao:MOUNT/PATH"))?;
        let body = self.read(&format!("{mount}/data/{path}"))?;
        let data = &body["data"]["data"];
        let field = |name: &str| {
            data[name]
                .as_str()
                .map(|v| SecretString::from(v.to_string()))
                .with_context(|| format!("OpenBao {mount}/{path} has no field `{name}`"))
        };
        Ok([field(fields[0])?, field(fields[1])?])
    }

    /// TOTP engine: `totp/code/NAME` → the current code. The seed stays in OpenBao.
    pub fn totp(&self, path: &str) -> anyhow::Result<SecretString> {
        let body = self.read(path)?;
        body["data"]["code"]
            .as_str()
            .map(|c| SecretString::from(c.to_string()))
            .with_context(|| format!("OpenBao {path} returned no code"))
    }

    /// AWS secrets engine: `MOUNT/ROLE` → `GET /v1/MOUNT/sts/ROLE`.
    pub fn aws_sts(&self, spec: &str) -> anyhow::Result<crate::creds::Creds> {
        let (mount, role) = spec
            .split_once('/')
            .with_context(|| format!("`openbao-aws:{spec}` should be openbao-aws:MOUNT/ROLE"))?;
        let body = self.read(&format!("{mount}/sts/{role}"))?;
        let data = &body["data"];
        let get = |name: &str| {
            data[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("OpenBao {mount}/sts/{role} returned no {name}"))
        };
        let lease = body["lease_duration"].as_u64().unwrap_or(0);
        if lease == 0 {
            bail!("OpenBao {mount}/sts/{role} returned no lease_duration");
        }
        Ok(crate::creds::Creds {
            access_key_id: get("access_key")?,
            secret_access_key: SecretString::from(get("secret_key")?),
            session_token: SecretString::from(get("security_token")?),
            expiration: crate::time::now() + lease,
        })
    }

    /// For `doctor`: reachable, and the credentials would work — without
    /// consuming a single-use wrapping token.
    pub fn check(&self) -> anyhow::Result<String> {
        let (status, _) = self.call("GET", "sys/health", None, None)?;
        if status != 200 && status != 429 && status != 473 {
            bail!("OpenBao at {} is not ready (HTTP {status})", self.address);
        }
        if let Some(token) = ["BAO_TOKEN", "VAULT_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
        {
            let (status, body) = self.call(
                "GET",
                "auth/token/lookup-self",
                Some(&SecretString::from(token)),
                None,
            )?;
            if status != 200 {
                bail!(
                    "the OpenBao token is not valid ({})",
                    error_text(&body, status)
                );
            }
            return Ok("token valid".into());
        }
        let wrapping = self.wrapping_token()?;
        if self.role_id.is_none() {
            // The login would fail on this before it unwraps anything.
            bail!(
                "a wrapped SecretID is set, but AppRole login needs `role_id` under [openbao] in config.toml"
            );
        }
        let lookup = serde_json::json!({"token": wrapping.expose_secret()});
        let (status, body) = self.call("POST", "sys/wrapping/lookup", None, Some(lookup))?;
        if status != 200 {
            bail!(
                "the wrapped SecretID is not valid ({}): it was used already or expired",
                error_text(&body, status)
            );
        }
        Ok("wrapped SecretID valid (not unwrapped)".into())
    }
}

/// The configured address, if any, once it has passed the rule of
/// [`crate::remote::check`]: every OpenBao request carries a token or a
/// (wrapped) SecretID, and answers with keys or MFA codes.
fn checked_address(settings: Option<&OpenBaoSettings>) -> anyhow::Result<Option<String>> {
    let from_env = |var: &'static str| {
        let address = std::env::var(var).ok().filter(|v| !v.is_empty())?;
        Some((address, var.to_string(), format!("unset {var}")))
    };
    let configured = settings.and_then(|s| s.address.clone()).map(|address| {
        (
            address,
            "[openbao] address in config.toml".to_string(),
            "change `address` under [openbao] in config.toml".to_string(),
        )
    });
    let Some((address, from, instead)) = configured
        .or_else(|| from_env("BAO_ADDR"))
        .or_else(|| from_env("VAULT_ADDR"))
    else {
        return Ok(None);
    };
    crate::remote::check(
        &address,
        &crate::remote::Use {
            carrying: "OpenBao requests (its token, and the keys or codes it returns)",
            from,
            instead,
        },
    )?;
    Ok(Some(address))
}

fn error_text(body: &Value, status: u16) -> String {
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if errors.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", errors.join("; "))
    }
}
