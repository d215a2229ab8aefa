//! What a key or MFA source says about itself to `doctor`: each source knows
//! how the minting path will use it, so each checks itself, and `doctor` only
//! renders the verdicts. A leaf: uses nothing else in awsmfa.

/// One finding. The texts leave out the profile: `doctor` names it.
#[derive(Debug)]
pub enum Health {
    Ok(String),
    /// Usable, but not in every situation (no terminal here, say).
    Warn {
        what: String,
        fix: String,
    },
    Fail {
        what: String,
        fix: String,
    },
}

impl Health {
    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Health::Fail {
            what: what.into(),
            fix: fix.into(),
        }
    }
}
