//! direnv support: the `use_awsmfa` library and the shims it puts on PATH. A
//! shim is a two-line script that runs `awsmfa shim NAME`, which finds the real
//! command on PATH past the shims and runs it under `awsmfa exec` — or directly
//! when it is already inside one (terragrunt calling tofu), so there is never a
//! loop or a second session.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::bail;

use super::posix_quote;
use crate::config::{Settings, names};
use crate::{Exit, log, paths, roots, state};

pub fn library() -> String {
    let bin = super::self_path();
    include_str!("../../direnv/awsmfa.sh").replace(
        "${AWSMFA_BIN:-awsmfa}",
        &format!("${{AWSMFA_BIN:-{}}}", posix_quote(&bin.to_string_lossy())),
    )
}

fn shims_dir() -> PathBuf {
    paths::state_dir().join("shims")
}

/// `awsmfa shims [PROFILE]`: writes a shim per wrapped command and prints two
/// lines for the direnv library: the profile, then the shims directory. The
/// library checks both (a profile name, the directory it expects) before
/// either reaches PATH or the environment.
pub fn shims(profile: Option<&str>) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let profile = match profile {
        Some(p) if names::is_profile_name(p) => p.to_string(),
        Some(p) => bail!(
            "`use awsmfa {}`: not a profile name; a profile name is {}",
            log::printable(p),
            names::PROFILE_RULE
        ),
        None => {
            let cwd = std::env::current_dir()?;
            let lookup = roots::lookup(&cwd, &settings);
            for note in &lookup.notes {
                log::warn(note.message());
            }
            match lookup.found {
                Some(found) => found.root.profile,
                None if lookup.not_allowed().is_some() => bail!(
                    "`use awsmfa` without a profile needs a mapped root, and the root file here is not allowed yet (see above)"
                ),
                None => bail!(
                    "`use awsmfa` without a profile needs a mapped root, and {} has none; write `use awsmfa PROFILE`, or {}",
                    paths::display(&cwd),
                    roots::mapping_hint(
                        &roots::looks_like_root(&cwd).unwrap_or(cwd.clone()),
                        &settings
                    )
                ),
            }
        }
    };
    let dir = shims_dir();
    state::create_private_dir(&dir)?;
    let bin = posix_quote(&super::self_path().to_string_lossy());
    for cmd in &settings.wrap {
        let script = format!(
            "#!/bin/sh\n# Made by awsmfa for direnv's `use awsmfa`: runs {cmd} under awsmfa. Safe to delete.\nexec {bin} shim {cmd} \"$@\"\n"
        );
        let path = dir.join(cmd);
        if fs::read_to_string(&path).ok().as_deref() != Some(script.as_str()) {
            state::write_atomic_mode(&path, script.as_bytes(), 0o755)?;
        }
    }
    // Commands dropped from `wrap` lose their shim.
    for entry in fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !settings.wrap.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{profile}")?;
    out.write_all(dir.as_os_str().as_bytes())?;
    writeln!(out)?;
    Ok(())
}

/// The real `name` on PATH, skipping the shims directory.
pub fn find_real(name: &str) -> anyhow::Result<PathBuf> {
    let shims = shims_dir();
    let shims = shims.canonicalize().unwrap_or(shims);
    paths::which_except(name, Some(&shims)).ok_or_else(|| {
        Exit {
            code: 127,
            message: format!("{name}: not found on PATH (outside awsmfa's shims)"),
        }
        .into()
    })
}

/// `awsmfa shim NAME ARGS…`: what a shim runs.
pub fn shim(name: &str, args: &[OsString]) -> anyhow::Result<Vec<OsString>> {
    let real = find_real(name)?;
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(real.into_os_string());
    argv.extend(args.iter().cloned());
    Ok(argv)
}
