//! `add` and `remove`: the long-lived key in the keyring.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::keys::{self, LongLivedKey};
use crate::tty::{Tty, Unusable};
use crate::{log, paths, session};

pub fn add(profile: &str, from_env: bool) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    match cfg.aws.get(profile) {
        Some(p) if p.role_arn.is_some() => bail!(
            "profile {profile} assumes a role with the key of its source_profile ({}); add the key there: `awsmfa add {}`",
            p.source_profile.as_deref().unwrap_or("?"),
            p.source_profile.as_deref().unwrap_or("SOURCE")
        ),
        Some(_) => {}
        None => log::warn(format_args!(
            "{} has no [profile {profile}] yet; add one with mfa_serial before using it",
            paths::display(&cfg.aws.path)
        )),
    }
    let key = if from_env {
        let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let secret = SecretString::from(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default());
        if id.is_empty() || secret.expose_secret().is_empty() {
            bail!("--from-env needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set");
        }
        LongLivedKey {
            access_key_id: id,
            secret_access_key: secret,
        }
    } else {
        let mut tty = Tty::open().map_err(|why| match why {
            Unusable::Missing => anyhow::anyhow!("no terminal to type the key at; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and use --from-env"),
            Unusable::Background => anyhow::anyhow!("{why}; run `awsmfa add {profile}` in the foreground, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and use --from-env"),
        })?;
        let id = tty
            .ask(&format!("Access key ID for {profile}: "), true)
            .context("cannot read from the terminal")?;
        let secret = tty
            .ask("Secret access key (not shown): ", false)
            .context("cannot read from the terminal")?;
        LongLivedKey {
            access_key_id: id.expose_secret().trim().to_string(),
            secret_access_key: SecretString::from(secret.expose_secret().trim().to_string()),
        }
    };
    keys::validate(&key.access_key_id, key.secret_access_key.expose_secret())?;
    let store = keys::save(profile, &key)?;
    // Sessions minted with the previous key must not outlive it.
    for p in super::dependents(&cfg, profile) {
        session::clear(&p)?;
    }
    log::info(format_args!(
        "stored the key for {profile} in the {store} keyring"
    ));
    Ok(())
}

pub fn remove(profile: &str, yes: bool) -> anyhow::Result<()> {
    let cfg = Config::load()?;
    if !yes {
        let mut tty = Tty::open().map_err(|why| match why {
            Unusable::Missing => {
                anyhow::anyhow!("no terminal to confirm at; pass --yes to remove {profile}'s key")
            }
            Unusable::Background => anyhow::anyhow!(
                "{why}; run it in the foreground, or pass --yes to remove {profile}'s key"
            ),
        })?;
        let answer = tty.ask(
            &format!("Delete the stored key and cached sessions of {profile}? [y/N] "),
            true,
        )?;
        if !matches!(answer.expose_secret().trim(), "y" | "Y" | "yes") {
            bail!("nothing removed");
        }
    }
    // Sessions first: their fingerprints include the stamp of the key.
    let mut cleared = 0;
    for p in super::dependents(&cfg, profile) {
        cleared += usize::from(super::list::clear_one(&cfg, &p)?);
    }
    let had_key = keys::delete(profile)?;
    if !had_key && cleared == 0 {
        bail!("profile {profile} has no stored key and no cached session");
    }
    log::info(format_args!(
        "removed {}{} cached session(s) for {profile}",
        if had_key { "the key and " } else { "" },
        cleared
    ));
    Ok(())
}
