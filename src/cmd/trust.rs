//! `allow` and `deny`: the user's word on a repository's `.awsmfa.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::AwsConfig;
use crate::config::settings::{self, Settings};
use crate::roots::{self, ROOT_FILE, file, trust};
use crate::{log, paths};

/// The root file `awsmfa allow [DIR]` means: the path of a `.awsmfa.toml`
/// itself, or the nearest one at or above DIR (default: here).
fn locate(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match arg {
        Some(p) => p.to_path_buf(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if dir.file_name().is_some_and(|n| n == ROOT_FILE) && !dir.is_dir() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent.unwrap_or(Path::new("."));
        let parent = parent
            .canonicalize()
            .with_context(|| format!("cannot find {}", paths::display(parent)))?;
        return Ok(parent.join(ROOT_FILE));
    }
    if !dir.is_dir() {
        bail!(
            "{} is neither a directory nor a {ROOT_FILE}",
            paths::display(&dir)
        );
    }
    roots::nearest_file(&dir).with_context(|| {
        format!(
            "no {ROOT_FILE} in {} or above it (root files are looked for up to your home directory)",
            paths::display(&dir)
        )
    })
}

pub fn allow(arg: Option<&Path>) -> anyhow::Result<()> {
    let path = locate(arg)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let file = match file::read(dir) {
        file::Seen::File(file) => file,
        file::Seen::Ignored(why) => bail!("{} cannot be allowed: {why}", paths::display(&path)),
        file::Seen::Absent => bail!("{} does not exist", paths::display(&path)),
    };
    // What is recorded is exactly what was parsed and shown here.
    let root =
        settings::parse_root_file(&file.text, &file.path).context("fix it before allowing it")?;
    trust::allow(&file)?;
    let settings = Settings::load().unwrap_or_default();
    println!("allowed {}", paths::display(&file.path));
    println!("  root     {} and below", paths::display(dir));
    println!("  profile  {}", root.profile);
    println!(
        "  secrets  {}",
        root.secrets
            .as_ref()
            .map_or("none".into(), |s| s.describe())
    );
    if !settings.wrap.is_empty() {
        println!("  wraps    {}", settings.wrap.join(" "));
    }
    if let Ok(aws) = AwsConfig::load()
        && aws.get(&root.profile).is_none()
    {
        log::warn(format_args!(
            "profile {} is not in {}; the root maps to it, but it cannot be used until it is",
            log::printable(&root.profile),
            paths::display(&aws.path)
        ));
    }
    Ok(())
}

pub fn deny(arg: Option<&Path>) -> anyhow::Result<()> {
    // A root file that is gone can still be denied by its directory.
    let path = match locate(arg) {
        Ok(path) => path,
        Err(e) => match arg.map(Path::canonicalize) {
            Some(Ok(dir)) if dir.is_dir() => dir.join(ROOT_FILE),
            _ => return Err(e),
        },
    };
    if trust::deny(&path)? {
        println!("denied {}", paths::display(&path));
    } else {
        println!("{} was not allowed", paths::display(&path));
    }
    Ok(())
}
