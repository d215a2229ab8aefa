//! GetSessionToken and AssumeRole. The only module that builds an SDK client or
//! starts an async runtime: both cost milliseconds (certificate loading alone is
//! ~5 ms), so only the minting path may come here.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use secrecy::{ExposeSecret, SecretString};

use crate::creds::Creds;
use crate::creds::LongLivedKey;
use crate::remote;

/// Where STS is: the region, and an endpoint override when one is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub region: String,
    pub url: Option<String>,
    /// Where `url` came from: messages name it, so a stray override (LocalStack's
    /// `AWS_ENDPOINT_URL` left in a shell) is found where it was set.
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    StsVar,
    AnyVar,
    /// `endpoint_url` in the profile at `at` (FILE:LINE).
    Profile {
        name: String,
        at: String,
    },
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::StsVar => f.write_str("AWS_ENDPOINT_URL_STS"),
            Origin::AnyVar => f.write_str("AWS_ENDPOINT_URL"),
            Origin::Profile { name, at } => write!(f, "endpoint_url in [profile {name}] ({at})"),
            Origin::Default => f.write_str("the default AWS endpoint"),
        }
    }
}

impl Origin {
    /// How to stop using the override, for the messages that refuse it.
    fn instead(&self) -> String {
        match self {
            Origin::StsVar => "unset AWS_ENDPOINT_URL_STS".into(),
            Origin::AnyVar => "unset AWS_ENDPOINT_URL".into(),
            Origin::Profile { name, .. } => format!("remove endpoint_url from [profile {name}]"),
            Origin::Default => "check the region".into(),
        }
    }
}

/// What a GetSessionToken or AssumeRole request carries.
const CARRYING: &str = "a request signed with your long-lived key and a one-time MFA code";

impl Endpoint {
    pub fn describe(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!("https://sts.{}.amazonaws.com", self.region),
        }
    }

    /// The cleartext rule of [`crate::remote::check`] for a configured URL;
    /// `None` for the SDK's own endpoint, which is always https to AWS.
    pub fn check(&self) -> anyhow::Result<Option<remote::Target>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        remote::check(url, &self.usage()).map(Some)
    }

    /// Everything that can be known to fail before an MFA code is spent: the
    /// rule, then the host's name (an unresolvable one would cost a YubiKey
    /// touch or a typed code for nothing). True when the endpoint is AWS's own.
    pub fn preflight(&self) -> anyhow::Result<bool> {
        let Some(target) = self.check()? else {
            return Ok(true);
        };
        let addrs = target.resolve().map_err(|e| {
            anyhow::anyhow!(
                "cannot resolve {} (from {}): no MFA code was asked for; check the endpoint and the network ({e})",
                target.host,
                self.origin
            )
        })?;
        target.check_addresses(&addrs, &self.describe(), &self.usage())?;
        Ok(target.is_aws())
    }

    fn usage(&self) -> remote::Use {
        remote::Use {
            carrying: CARRYING,
            from: self.origin.to_string(),
            instead: self.origin.instead(),
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// STS says the MFA code was wrong (or already used): worth asking again.
    WrongMfa,
    /// STS answered with an error code.
    Rejected { code: String, message: String },
    /// No answer: DNS, connection, TLS, timeout.
    Unreachable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::WrongMfa => write!(f, "STS rejected the MFA code"),
            Error::Rejected { code, message } => write!(f, "STS said {code}: {message}"),
            Error::Unreachable(why) => write!(f, "cannot reach STS: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A long-lived or session credential that STS does not accept.
    pub fn is_bad_credential(&self) -> bool {
        matches!(self, Error::Rejected { code, .. } if matches!(code.as_str(),
            "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "UnrecognizedClientException"))
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let mut why = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            Error::Unreachable(why)
        }
        _ => {
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = err.message().unwrap_or("").trim().to_string();
            // "…unable to validate MFA code. Please verify your MFA serial number is
            // valid…" is about the device, not the code: asking again cannot help.
            if code == "AccessDenied"
                && message.contains("MultiFactorAuthentication")
                && !message.contains("serial number")
            {
                Error::WrongMfa
            } else if err.code().is_none() {
                Error::Unreachable(format!("unexpected answer: {err}"))
            } else {
                Error::Rejected { code, message }
            }
        }
    }
}

/// Whether the platform has any root certificate (SSL_CERT_FILE / SSL_CERT_DIR,
/// else the system store), loaded as the HTTP client loads them. With none, the
/// client must not be told to use them: debug builds of aws-smithy-http-client
/// assert there is one, a panic instead of the certificate error every https
/// endpoint then gets. Costs one more load (~2 ms) on the minting path only.
fn platform_has_roots() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

fn client(endpoint: &Endpoint, creds: Credentials) -> anyhow::Result<aws_sdk_sts::Client> {
    let mut config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(endpoint.region.clone()))
        .credentials_provider(creds)
        // Bounded everywhere: an unreachable endpoint must end in seconds, not hang.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .read_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .tls_context(
                    TlsContext::builder()
                        .with_trust_store(
                            TrustStore::default().with_native_roots(platform_has_roots()),
                        )
                        .build()
                        .map_err(|e| anyhow::anyhow!("cannot set up TLS for STS: {e}"))?,
                )
                .build_https(),
        );
    if let Some(url) = &endpoint.url {
        config = config.endpoint_url(url);
    }
    Ok(aws_sdk_sts::Client::from_conf(config.build()))
}

fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fut))
}

fn into_creds(c: Option<&aws_sdk_sts::types::Credentials>) -> Result<Creds, Error> {
    let c = c.ok_or_else(|| Error::Rejected {
        code: "NoCredentials".into(),
        message: "the response carried no credentials".into(),
    })?;
    Ok(Creds {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: SecretString::from(c.secret_access_key().to_string()),
        session_token: SecretString::from(c.session_token().to_string()),
        expiration: u64::try_from(c.expiration().secs()).unwrap_or(0),
    })
}

pub fn get_session_token(
    endpoint: &Endpoint,
    key: &LongLivedKey,
    serial: &str,
    code: &SecretString,
    duration: Duration,
) -> anyhow::Result<Result<Creds, Error>> {
    let creds = Credentials::new(
        &key.access_key_id,
        key.secret_access_key.expose_secret(),
        None,
        None,
        "awsmfa",
    );
    let client = client(endpoint, creds)?;
    block_on(async {
        client
            .get_session_token()
            .serial_number(serial)
            .token_code(code.expose_secret())
            .duration_seconds(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(classify)
            .and_then(|out| into_creds(out.credentials()))
    })
}

pub struct RoleRequest<'a> {
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
    pub duration: Duration,
}

pub fn assume_role(
    endpoint: &Endpoint,
    base: &Creds,
    role: &RoleRequest,
) -> anyhow::Result<Result<Creds, Error>> {
    let creds = Credentials::new(
        &base.access_key_id,
        base.secret_access_key.expose_secret(),
        Some(base.session_token.expose_secret().to_string()),
        None,
        "awsmfa",
    );
    let client = client(endpoint, creds)?;
    block_on(async {
        client
            .assume_role()
            .role_arn(role.role_arn)
            .role_session_name(role.session_name)
            .set_external_id(role.external_id.map(str::to_string))
            .duration_seconds(i32::try_from(role.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(classify)
            .and_then(|out| into_creds(out.credentials()))
    })
}
