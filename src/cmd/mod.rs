//! One function per subcommand; each reads configuration, calls into the
//! library modules, and talks to the person on stderr or the terminal.

mod doctor;
mod keys;
mod list;
mod rotate;
mod run;
mod serve;
mod status;
mod trust;

pub use doctor::doctor;
pub use keys::{add, remove};
pub use list::{clear, list};
pub use rotate::{RotateArgs, rotate};
pub use run::{ExecArgs, credential_process, exec, shim};
pub use status::status;
pub use trust::{allow, deny};

use crate::config::Config;

/// Profiles whose sessions were minted from `profile`'s (roles naming it as
/// `source_profile`, directly or through other roles), itself included.
fn dependents(cfg: &Config, profile: &str) -> Vec<String> {
    let mut out = vec![profile.to_string()];
    let mut i = 0;
    while i < out.len() {
        let current = out[i].clone();
        for p in &cfg.aws.profiles {
            if p.source_profile.as_deref() == Some(current.as_str()) && !out.contains(&p.name) {
                out.push(p.name.clone());
            }
        }
        i += 1;
    }
    out
}
