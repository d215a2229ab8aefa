//! 1Password, through its CLI `op`: one-time passwords for MFA codes, and two
//! fields of an item for a long-lived key (written back by `rotate`). Nothing is
//! kept: every use asks op, under the time limit of [`crate::tool`].

use std::process::Command;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::health::Health;
use crate::{paths, tool};

/// An item, as `op:VAULT/ITEM` names it in config.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub vault: String,
    pub item: String,
}

#[derive(Deserialize)]
struct Field {
    label: Option<String>,
    value: Option<SecretString>,
}

impl Item {
    /// `VAULT/ITEM`, the part after `op:`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        match spec.split_once('/') {
            Some((vault, item)) if !vault.is_empty() && !item.is_empty() => Ok(Item {
                vault: vault.to_string(),
                item: item.to_string(),
            }),
            _ => bail!("`op:{spec}` should be op:VAULT/ITEM"),
        }
    }

    pub fn otp(&self) -> anyhow::Result<SecretString> {
        let out = self.get(&["--otp"], &format!("the one-time password of {self}"))?;
        Ok(out.stdout_secret())
    }

    /// The values of the fields labelled `labels`, in that order.
    pub fn fields(&self, labels: [&str; 2]) -> anyhow::Result<[SecretString; 2]> {
        let wanted = format!("--fields=label={},label={}", labels[0], labels[1]);
        // op ≥ 2.30 masks concealed fields without --reveal.
        let args = [wanted.as_str(), "--reveal", "--format", "json"];
        let out = self.get(&args, &self.to_string())?;
        let parsed: Vec<Field> = serde_json::from_slice(&out.stdout).with_context(|| {
            format!("op's answer for {self} is not the JSON list of fields expected")
        })?;
        let take = |label: &str| {
            parsed
                .iter()
                .find(|f| f.label.as_deref() == Some(label))
                .and_then(|f| f.value.as_ref())
                .map(|v| SecretString::from(v.expose_secret().to_string()))
                .with_context(|| format!("1Password item {self} has no field labelled `{label}`"))
        };
        Ok([take(labels[0])?, take(labels[1])?])
    }

    /// Sets the fields labelled `labels` to `values`, keeping the rest of the
    /// item: the whole item is read (`--reveal`, or op would write its masks
    /// back into the concealed fields), changed, and piped to `op item edit`
    /// (op ≥ 2.23 reads an item template on stdin). A value never goes on
    /// op's command line, where `ps` shows it: no `label=value` assignments.
    pub fn set_fields(&self, labels: [&str; 2], values: [&SecretString; 2]) -> anyhow::Result<()> {
        let out = self.get(&["--reveal", "--format", "json"], &self.to_string())?;
        let mut item: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("op's answer for {self} is not the item JSON expected"))?;
        let fields = item["fields"]
            .as_array_mut()
            .with_context(|| format!("1Password item {self} has no fields"))?;
        for (label, value) in labels.iter().zip(values) {
            let field = fields
                .iter_mut()
                .find(|f| f["label"].as_str() == Some(label))
                .with_context(|| {
                    format!("1Password item {self} has no field labelled `{label}`")
                })?;
            field["value"] = serde_json::Value::String(value.expose_secret().to_string());
        }
        let template = zeroize::Zeroizing::new(serde_json::to_vec(&item)?);
        let mut command = self.op()?;
        command.args([
            "item",
            "edit",
            &self.item,
            "--vault",
            &self.vault,
            "--format",
            "json",
        ]);
        let out = tool::run_with_input(command, "op (1Password)", template)?;
        if !out.status.success() {
            bail!(
                "op could not write the new key into {self} ({}): it needs op 2.23 or later, signed in (`op signin`) or OP_SERVICE_ACCOUNT_TOKEN with write access to the vault",
                out.status
            );
        }
        Ok(())
    }

    fn op(&self) -> anyhow::Result<Command> {
        let op = paths::which("op").context("the 1Password CLI `op` is not installed")?;
        Ok(Command::new(op))
    }

    /// `op item get ITEM --vault VAULT ARGS…`; `what` names what was read when op fails.
    fn get(&self, args: &[&str], what: &str) -> anyhow::Result<tool::Output> {
        let mut command = self.op()?;
        command
            .args(["item", "get", &self.item, "--vault", &self.vault])
            .args(args);
        let out = tool::run(command, "op (1Password)")?;
        if !out.status.success() {
            bail!(
                "op could not read {what} ({}): sign in (`op signin`) or set OP_SERVICE_ACCOUNT_TOKEN",
                out.status
            );
        }
        Ok(out)
    }
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.vault, self.item)
    }
}

/// For `doctor`: only whether `op` is installed, since asking it anything may
/// pop up an unlock dialog. `what` is what it would be used for.
pub fn health(what: &str) -> Health {
    if paths::which("op").is_some() {
        Health::Ok(format!("1Password CLI found for {what}"))
    } else {
        Health::fail(
            format!("{what} need the 1Password CLI `op`, which is not installed"),
            "install the 1Password CLI",
        )
    }
}
