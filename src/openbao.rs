//! OpenBao (Vault-compatible API): long-lived keys from KV-v2, MFA codes from the
//! TOTP engine, and STS credentials from the AWS secrets engine, for agents that
//! must hold no static key. The client token lives in this process's memory only.
//! Which node of a cluster a request goes to, where a redirect may lead and when
//! a request is sent again is [`cluster`]'s to decide.

mod cluster;

use std::cell::OnceCell;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::config::settings::OpenBaoSettings;
use crate::health::Health;
use cluster::{Json, Once, Request, error_text};

pub use cluster::identity;

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

    /// The cleartext rule for every configured address, without building a
    /// client: for the minting path to refuse before any other source runs. No
    /// address at all is left for the first use to report, since a list of MFA
    /// sources may never get to OpenBao.
    pub fn check_address(&self) -> anyhow::Result<()> {
        cluster::check_addresses(self.settings.as_ref())
    }

    pub fn get(&self) -> anyhow::Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = Client::new(self.settings.as_ref())?;
        Ok(self.client.get_or_init(|| client))
    }

    /// For `doctor`, when a cluster is configured: each node's state, the
    /// ones that cannot serve as warnings (minting goes on through the others).
    pub fn nodes_health(&self) -> Vec<Health> {
        let Ok(client) = self.get() else {
            return Vec::new();
        };
        if client.nodes.count() < 2 {
            return Vec::new();
        }
        client
            .nodes
            .survey()
            .into_iter()
            .map(|(url, state)| match state {
                Ok(role) => Health::Ok(format!("OpenBao node {url}: {role}")),
                Err(why) => Health::Warn {
                    what: format!("OpenBao node {url}: {why}"),
                    fix: "the other nodes serve meanwhile; unseal or restart this one \
                          (`bao operator unseal`, `bao operator raft list-peers`)"
                        .into(),
                },
            })
            .collect()
    }

    /// For `doctor`: [`Client::check`], for `what` (e.g. "MFA codes from totp/code/me").
    pub fn health(&self, what: &str) -> Health {
        // The address after the check: the node that answered it.
        match self.get().and_then(|c| {
            let detail = c.check()?;
            Ok((c.address().to_string(), detail))
        }) {
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
    nodes: cluster::Nodes,
    role_id: Option<String>,
    secret_id_file: Option<String>,
    token: OnceCell<SecretString>,
}

/// What a lost unwrap or login costs, and what to do.
const NEW_SECRET_ID: &str =
    "hand over a new wrapped SecretID (AWSMFA_OPENBAO_WRAPPED_SECRET_ID or secret_id_file)";

impl Client {
    pub fn new(settings: Option<&OpenBaoSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            nodes: cluster::Nodes::new(settings)?,
            role_id: settings.and_then(|s| s.role_id.clone()),
            secret_id_file: settings.and_then(|s| s.secret_id_file.clone()),
            token: OnceCell::new(),
        })
    }

    /// The node that answered last.
    pub fn address(&self) -> &str {
        self.nodes.current_url()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Json)> {
        self.nodes.call(&Request {
            method,
            path,
            token,
            body,
            once: None,
        })
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
        if let Ok(token) = std::env::var("AWSMFA_OPENBAO_WRAPPED_SECRET_ID").map(Zeroizing::new)
            && !token.trim().is_empty()
        {
            return Ok(SecretString::from(token.trim()));
        }
        if let Some(file) = &self.secret_id_file {
            let path = crate::paths::expand_tilde(file);
            let text = std::fs::read_to_string(&path)
                .map(Zeroizing::new)
                .with_context(|| format!("cannot read secret_id_file {}", path.display()))?;
            return Ok(SecretString::from(text.trim()));
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
        let (status, body) = self.nodes.call(&Request {
            method: "POST",
            path: "sys/wrapping/unwrap",
            token: Some(&wrapping),
            body: None,
            once: Some(Once {
                what: "the request to unwrap the SecretID",
                lost: format!("the wrapping token may have been used up by it: {NEW_SECRET_ID}"),
            }),
        })?;
        if status == 400 || status == 403 {
            bail!(
                "OpenBao refused to unwrap the SecretID ({}): the wrapping token was already used or has expired. \
                 A wrapped SecretID serves exactly one login; if no earlier awsmfa run used this one, it may have been intercepted: \
                 revoke that SecretID. Either way, hand over a new wrapped one",
                error_text(&body, status)
            );
        }
        if status != 200 {
            bail!(
                "OpenBao could not unwrap the SecretID ({}); the wrapping token may have been used up: {NEW_SECRET_ID}",
                error_text(&body, status)
            );
        }
        let secret_id = body["data"]["secret_id"]
            .as_str()
            .context("the unwrapped response holds no secret_id")?;
        let secret_id = SecretString::from(secret_id.to_string());
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let login = Zeroizing::new(serde_json::to_string(&Login {
            role_id,
            secret_id: secret_id.expose_secret(),
        })?);
        let (status, body) = self.nodes.call(&Request {
            method: "POST",
            path: "auth/approle/login",
            token: None,
            body: Some(&login),
            once: Some(Once {
                what: "the AppRole login",
                lost: format!("the SecretID may have been used up by it: {NEW_SECRET_ID}"),
            }),
        })?;
        if status != 200 {
            bail!(
                "OpenBao AppRole login failed ({})",
                error_text(&body, status)
            );
        }
        let token = body["auth"]["client_token"]
            .as_str()
            .context("the AppRole login response holds no client_token")?;
        crate::debug!("logged in to OpenBao at {} with AppRole", self.address());
        Ok(SecretString::from(token.to_string()))
    }

    /// `data` of an authenticated GET.
    fn read(&self, path: &str) -> anyhow::Result<Json> {
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

    /// KV-v2: sets two fields of `MOUNT/PATH` as a new version, keeping the
    /// secret's other fields (read, changed, written back whole: KV-v2 replaces
    /// a secret's data with each version). A write sent twice makes one more
    /// identical version, no harm.
    pub fn kv_set_fields(
        &self,
        spec: &str,
        fields: [&str; 2],
        values: [&SecretString; 2],
    ) -> anyhow::Result<()> {
        let (mount, path) = spec
            .split_once('/')
            .with_context(|| format!("`openbao:{spec}` should be openbao:MOUNT/PATH"))?;
        let current = self.read(&format!("{mount}/data/{path}"))?;
        let Some(kept) = current["data"]["data"].as_object() else {
            bail!("OpenBao {mount}/{path} holds no KV-v2 data");
        };
        let mut map = kept.clone();
        for (name, value) in fields.iter().zip(values) {
            map.insert(
                (*name).to_string(),
                serde_json::Value::String(value.expose_secret().to_string()),
            );
        }
        let mut wrapper = serde_json::Map::new();
        wrapper.insert("data".into(), serde_json::Value::Object(map));
        let data = Json::new(serde_json::Value::Object(wrapper));
        let body = Zeroizing::new(data.to_string());
        let token = self.token()?;
        let (status, answer) = self.call(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(token),
            Some(&body),
        )?;
        if status != 200 && status != 204 {
            bail!(
                "OpenBao refused to write {mount}/{path} ({}); the token needs `create` and `update` on {mount}/data/{path}",
                error_text(&answer, status)
            );
        }
        Ok(())
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
            expiration: crate::time::after(lease).ok_or_else(|| {
                anyhow!("OpenBao {mount}/sts/{role} returned an absurd lease_duration ({lease} s)")
            })?,
        })
    }

    /// For `doctor`: reachable, and the credentials would work — without
    /// consuming a single-use wrapping token.
    pub fn check(&self) -> anyhow::Result<String> {
        let (status, _) = self.call("GET", "sys/health", None, None)?;
        if status != 200 && status != 429 && status != 473 {
            bail!("OpenBao at {} is not ready (HTTP {status})", self.address());
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
        let lookup =
            Zeroizing::new(serde_json::json!({"token": wrapping.expose_secret()}).to_string());
        let (status, body) = self.call("POST", "sys/wrapping/lookup", None, Some(&lookup))?;
        if status != 200 {
            bail!(
                "the wrapped SecretID is not valid ({}): it was used already or expired",
                error_text(&body, status)
            );
        }
        Ok("wrapped SecretID valid (not unwrapped)".into())
    }
}
