//! awsmfa: MFA-protected, cached AWS sessions for OpenTofu and Terragrunt,
//! without a credential in the shell, a file or argv. The binary (`main.rs`)
//! only parses and dispatches; everything else is here. How the modules fit
//! together: docs/ARCHITECTURE.md.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod coredump;
pub mod creds;
pub mod exec;
pub mod health;
pub mod iam;
pub mod keys;
pub mod lock;
pub mod log;
pub mod mfa;
pub mod onepassword;
pub mod openbao;
pub mod paths;
pub mod remote;
pub mod roots;
pub mod server;
pub mod session;
pub mod shell;
pub mod state;
pub mod store;
pub mod sts;
pub mod time;
pub mod tool;
pub mod tty;

/// An error that ends awsmfa with a specific exit code (127 when the command
/// given to `exec` does not exist, as a shell would say).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}
