//! Configuration: the user's `~/.aws/config` and awsmfa's `config.toml`.

pub mod aws;
mod ini;
pub mod names;
pub mod settings;

pub use aws::AwsConfig;
pub use settings::Settings;

/// Both files, read together because every command that mints or looks up a
/// session needs both.
pub struct Config {
    pub aws: AwsConfig,
    pub settings: Settings,
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            aws: AwsConfig::load()?,
            settings: Settings::load()?,
        })
    }
}
