//! The three shells awsmfa has hooks for, as the real-shell tests name and
//! find them. Test files add what they need to `Kind` in their own `impl`.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Zsh,
    Bash,
    Fish,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Zsh => "zsh",
            Kind::Bash => "bash",
            Kind::Fish => "fish",
        }
    }

    /// The shell, or `None` after the skip/fail rule.
    pub fn binary(self) -> Option<PathBuf> {
        super::require(
            &format!("{} (Debian package {})", self.name(), self.name()),
            super::which(self.name()),
        )
    }
}
