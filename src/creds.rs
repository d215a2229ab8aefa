//! The credential types and the AWS variable names that carry them: the leaf of
//! the module graph. Everything may use it; it uses nothing of awsmfa's.

use std::path::PathBuf;

use secrecy::SecretString;

/// A long-lived IAM access key: fetched for a mint, never stored by awsmfa
/// anywhere but the keyring.
pub struct LongLivedKey {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

/// STS session credentials.
pub struct Creds {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    /// Unix seconds.
    pub expiration: u64,
}

/// Inherited credential settings that would compete with an injected session
/// (the same list aws-vault clears, plus the expiry it sets). Also what a
/// helper tool (ykman, op, an `mfa_process`) never inherits.
pub const CREDENTIAL_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_FILE",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_DEFAULT_PROFILE",
    "AWS_PROFILE",
    "AWS_SDK_LOAD_CONFIG",
];

/// Where a child fetches its credentials under `exec --server`: the loopback
/// container-credentials endpoint, and the token every request must carry.
pub struct ContainerEndpoint {
    /// `http://127.0.0.1:PORT/PATH`, for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub url: String,
    /// A 0600 file holding the token, for `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    pub token_file: PathBuf,
    /// The token itself, for SDKs that read only `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    pub token: SecretString,
}

/// The container-credentials settings. Removed wherever a session is
/// injected (a stale endpoint must not outlive the server that answered it),
/// set only by `exec --server`. The relative URI is ECS's and wins over the
/// full one in botocore.
pub const CONTAINER_VARS: &[&str] = &[
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];
