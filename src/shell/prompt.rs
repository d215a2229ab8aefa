//! `awsmfa prompt`: the segment for starship, powerlevel10k and friends. Reads
//! config.toml and one metadata file; nothing else.

use crate::config::{Settings, names};
use crate::{roots, state, time};

/// `42m`, `2h05m`, `9m!` (less than `refresh_before` left: the next wrapped
/// command will ask for MFA), `expired`, or `·` for no session. The shell
/// scripts compute the same text with builtins.
pub fn ttl_text(expiry: Option<u64>, now: u64, refresh_secs: u64) -> String {
    match expiry {
        None => "·".into(),
        Some(e) if e <= now => "expired".into(),
        Some(e) => {
            let left = e - now;
            let mark = if left < refresh_secs { "!" } else { "" };
            format!("{}{mark}", time::short_left(left))
        }
    }
}

pub fn prompt(format: Option<&str>) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let cwd = std::env::current_dir()?;
    let profile = match roots::find(&cwd, &settings) {
        Some(found) => found.root.profile,
        // `use awsmfa PROFILE` in an .envrc names a profile without a mapped root.
        // Checked like any name: the variable is whatever the environment says.
        None => match std::env::var("AWSMFA_DIRENV_PROFILE") {
            Ok(p) if names::is_profile_name(&p) => p,
            _ => return Ok(()),
        },
    };
    let expiry = state::read_session(&profile).map(|m| m.expiry);
    let ttl = ttl_text(expiry, time::now(), settings.refresh_before.as_secs());
    let text = format
        .unwrap_or("{profile} {ttl}")
        .replace("{profile}", &profile)
        .replace("{ttl}", &ttl);
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_texts() {
        assert_eq!(ttl_text(None, 100, 900), "·");
        assert_eq!(ttl_text(Some(100), 100, 900), "expired");
        assert_eq!(ttl_text(Some(100 + 42 * 60 + 5), 100, 900), "42m");
        assert_eq!(ttl_text(Some(100 + 9 * 60), 100, 900), "9m!");
        assert_eq!(ttl_text(Some(100 + 125 * 60), 100, 900), "2h05m");
    }
}
