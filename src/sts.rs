//! GetSessionToken, AssumeRole and GetCallerIdentity, and the HTTP client, timeouts
//! and retry rule every AWS client of awsmfa's shares (`iam` builds on them). SDK
//! clients and the async runtime cost milliseconds (certificate loading alone is
//! ~5 ms), so only the minting path and `rotate` may come here.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_sts::config::interceptors::InterceptorContext;
use aws_sdk_sts::config::retry::{ClassifyRetry, RetryAction, RetryConfig};
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

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

/// Where an endpoint override came from (STS's, or IAM's for `rotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    StsVar,
    IamVar,
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
            Origin::IamVar => f.write_str("AWS_ENDPOINT_URL_IAM"),
            Origin::AnyVar => f.write_str("AWS_ENDPOINT_URL"),
            Origin::Profile { name, at } => write!(f, "endpoint_url in [profile {name}] ({at})"),
            Origin::Default => f.write_str("the default AWS endpoint"),
        }
    }
}

impl Origin {
    /// How to stop using the override, for the messages that refuse it.
    pub fn instead(&self) -> String {
        match self {
            Origin::StsVar | Origin::IamVar | Origin::AnyVar => format!("unset {self}"),
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
    /// The request may have reached STS, and with it the one-time code, but no
    /// usable answer came back: the connection broke after the request left, or
    /// the answer was cut short or unreadable. STS may have accepted the code, and
    /// it refuses a code twice, so this code is not sent again: a new one is
    /// needed, as after [`Error::WrongMfa`].
    CodeSpent(String),
    /// STS answered (using the code, if one was sent) with no session that
    /// could be used: none, one without a secret, or one already over.
    Unusable(String),
    /// STS kept throttling or failing (5xx) through the retries.
    Unavailable { code: String, message: String },
    /// STS answered with an error code.
    Rejected { code: String, message: String },
    /// No answer: DNS, connection, TLS, timeout.
    Unreachable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::WrongMfa => write!(f, "STS rejected the MFA code"),
            Error::CodeSpent(why) => write!(
                f,
                "STS may have used the MFA code without answering ({why}); it refuses a code twice, so a new code is needed"
            ),
            Error::Unusable(why) => write!(f, "STS answered, but not with a usable session: {why}"),
            Error::Unavailable { code, message } => write!(
                f,
                "STS said {code} ({}), and still did after retrying for a few seconds: it is throttling or failing; try again in a minute",
                message.trim_end_matches('.')
            ),
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

/// Tries per STS call, and the jittered backoff between them (a random share of
/// 0.2 s, 0.4 s, 0.8 s, then 1 s): throttling, 5xx and failed connections get a few
/// seconds in all, and the operation timeout bounds even that.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// How far a failed attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The TLS handshake failed: a refused certificate stays refused.
    Tls,
    /// No connection was made (DNS, refused, connect timeout): nothing was sent.
    Unsent,
    /// The request may have left: it may have been acted on.
    MaybeSent,
}

/// Each error in `err`'s chain, stepping into the error an `io::Error` wraps
/// (its `source()` skips it), which is where rustls puts its own.
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

fn reach(err: &(dyn std::error::Error + 'static)) -> Reach {
    if chain(err).any(|e| e.is::<rustls::Error>()) {
        return Reach::Tls;
    }
    // The connector (TCP, then TLS) runs inside hyper-util's client, which marks
    // its failures as `Connect`; anything else happened with a connection up.
    let connect = chain(err).any(|e| {
        e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
    });
    if connect {
        Reach::Unsent
    } else {
        Reach::MaybeSent
    }
}

/// Runs after the SDK's own classifiers (which retry throttling, 5xx, I/O
/// errors, timeouts and answers that broke off) and forbids what must not be
/// repeated: a failed TLS handshake, and — for a single-use request (one
/// carrying a one-time code, or IAM's CreateAccessKey) — any failure after the
/// request may have left. A throttled or 5xx answer is an error the service gave
/// before acting on the request, so it may go again.
#[derive(Debug)]
pub(crate) struct NoBlindRetry {
    pub(crate) carries_code: bool,
}

impl ClassifyRetry for NoBlindRetry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let reached = match err.as_connector_error() {
            Some(e) => reach(e),
            None if err.is_response_error() => Reach::MaybeSent,
            None => return RetryAction::NoActionIndicated,
        };
        match reached {
            Reach::Tls => RetryAction::RetryForbidden,
            Reach::MaybeSent if self.carries_code => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "awsmfa: no retry after a TLS failure or a possibly used MFA code"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether a failed call may have reached the service (and been acted on):
/// anything but a connection that was never made.
pub(crate) fn may_have_left<E, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(failure) => failure
            .as_connector_error()
            .is_none_or(|e| reach(e) == Reach::MaybeSent),
        _ => true,
    }
}

/// `err` and every error under it, one line; a cause an error already
/// quotes in its own text is not repeated.
pub(crate) fn describe_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut why = err.to_string();
    for e in chain(err).skip(1) {
        let text = e.to_string();
        if !why.contains(&text) {
            why = format!("{why}: {text}");
        }
    }
    why
}

fn classify<E>(err: SdkError<E, HttpResponse>, carries_code: bool) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let why = describe_chain(&err);
    match &err {
        SdkError::DispatchFailure(failure) => {
            match failure
                .as_connector_error()
                .map(|e| (reach(e), e.is_timeout()))
            {
                Some((Reach::MaybeSent, true)) => Error::Unreachable(format!(
                    "no answer within {}s ({why})",
                    READ_TIMEOUT.as_secs()
                )),
                Some((Reach::MaybeSent, false)) if carries_code => Error::CodeSpent(why),
                _ => Error::Unreachable(why),
            }
        }
        SdkError::TimeoutError(_) => Error::Unreachable(format!(
            "no answer within {}s ({why})",
            OPERATION_TIMEOUT.as_secs()
        )),
        // The answer broke off: STS may have acted on the request.
        SdkError::ResponseError(_) if carries_code => Error::CodeSpent(why),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let message = err.message().unwrap_or("").trim().to_string();
            let Some(code) = err.code() else {
                return match status {
                    // A success STS sent but we cannot read: the code was used.
                    200..=299 if carries_code => {
                        Error::CodeSpent(format!("an unreadable answer: {why}"))
                    }
                    _ if retried_status(status) => Error::Unavailable {
                        code: format!("HTTP {status}"),
                        message: why,
                    },
                    _ => Error::Unreachable(format!("unexpected answer (HTTP {status}): {why}")),
                };
            };
            // "…unable to validate MFA code. Please verify your MFA serial number is
            // valid…" is about the device, not the code: asking again cannot help.
            if code == "AccessDenied"
                && message.contains("MultiFactorAuthentication")
                && !message.contains("serial number")
            {
                Error::WrongMfa
            } else if retried_status(status) || retried_code(code) {
                Error::Unavailable {
                    code: code.to_string(),
                    message,
                }
            } else {
                Error::Rejected {
                    code: code.to_string(),
                    message,
                }
            }
        }
        _ => Error::Unreachable(format!("unexpected answer: {why}")),
    }
}

/// The answers the SDK's classifiers retry: these statuses, and these codes.
fn retried_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

fn retried_code(code: &str) -> bool {
    use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
    THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
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

/// Bounded everywhere: an unreachable endpoint must end in seconds, not hang.
pub(crate) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

pub(crate) fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(FIRST_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// HTTPS through rustls with ring (no aws-lc), trusting the platform's roots.
pub(crate) fn http_client() -> anyhow::Result<SharedHttpClient> {
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::default().with_native_roots(platform_has_roots()))
                .build()
                .map_err(|e| anyhow::anyhow!("cannot set up TLS for AWS: {e}"))?,
        )
        .build_https())
}

/// `carries_code`: the request holds a one-time MFA code (see [`NoBlindRetry`]).
fn client(
    endpoint: &Endpoint,
    creds: Credentials,
    carries_code: bool,
) -> anyhow::Result<aws_sdk_sts::Client> {
    let mut config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(endpoint.region.clone()))
        .credentials_provider(creds)
        .timeout_config(timeouts())
        .retry_config(retries())
        .retry_classifier(NoBlindRetry { carries_code })
        .http_client(http_client()?);
    if let Some(url) = &endpoint.url {
        config = config.endpoint_url(url);
    }
    Ok(aws_sdk_sts::Client::from_conf(config.build()))
}

pub(crate) fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fut))
}

/// The session from an STS answer, its secrets copied into `SecretString`s
/// and the SDK's `String`s, parsed from the XML body, wiped. The body itself
/// is not: the SDK holds it as a refcounted `Bytes` (several handles, until
/// `send` returns) read through hyper's and rustls's buffers, and none of
/// them is handed over whole, so no wipe of it would be sound. It is freed
/// as the call ends; meanwhile core dumps are off and the process is not
/// dumpable (`coredump`).
fn into_creds(c: Option<aws_sdk_sts::types::Credentials>) -> Result<Creds, Error> {
    let mut c = c.ok_or_else(|| Error::Unusable("it holds no credentials".into()))?;
    // The SDK fills an element the answer lacks with "" or the epoch.
    let missing = [
        ("AccessKeyId", &c.access_key_id),
        ("SecretAccessKey", &c.secret_access_key),
        ("SessionToken", &c.session_token),
    ]
    .into_iter()
    .find_map(|(name, value)| value.is_empty().then_some(name));
    let creds = Creds {
        access_key_id: std::mem::take(&mut c.access_key_id),
        secret_access_key: SecretString::from(c.secret_access_key.as_str()),
        session_token: SecretString::from(c.session_token.as_str()),
        expiration: u64::try_from(c.expiration.secs()).unwrap_or(0),
    };
    c.secret_access_key.zeroize();
    c.session_token.zeroize();
    if let Some(name) = missing {
        return Err(Error::Unusable(format!("it holds no {name}")));
    }
    if creds.expiration <= crate::time::now() {
        return Err(Error::Unusable(format!(
            "its session ended at {}",
            crate::time::rfc3339(creds.expiration)
        )));
    }
    Ok(creds)
}

/// A long-lived key as the SDK signs with it.
fn key_credentials(key: &LongLivedKey) -> Credentials {
    Credentials::new(
        &key.access_key_id,
        key.secret_access_key.expose_secret(),
        None,
        None,
        "awsmfa",
    )
}

/// A session as the SDK signs with it (AssumeRole, IAM calls).
pub(crate) fn session_credentials(session: &Creds) -> Credentials {
    Credentials::new(
        &session.access_key_id,
        session.secret_access_key.expose_secret(),
        Some(session.session_token.expose_secret().to_string()),
        None,
        "awsmfa",
    )
}

pub fn get_session_token(
    endpoint: &Endpoint,
    key: &LongLivedKey,
    serial: &str,
    code: &SecretString,
    duration: Duration,
) -> anyhow::Result<Result<Creds, Error>> {
    let creds = key_credentials(key);
    let client = client(endpoint, creds, true)?;
    block_on(async {
        client
            .get_session_token()
            .serial_number(serial)
            .token_code(code.expose_secret())
            .duration_seconds(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify(e, true))
            .and_then(|out| into_creds(out.credentials))
    })
}

/// Who a long-lived key belongs to.
pub struct Identity {
    pub account: String,
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME` for an IAM user's key.
    pub arn: String,
}

impl Identity {
    /// The IAM user's name (the ARN's last part), when the key is an IAM user's.
    pub fn user_name(&self) -> Option<&str> {
        // arn:PARTITION:iam::ACCOUNT:user/PATH/NAME
        let mut parts = self.arn.splitn(6, ':');
        let service = parts.nth(2)?;
        let resource = parts.nth(2)?;
        let path = resource.strip_prefix("user/")?;
        (service == "iam")
            .then(|| path.rsplit('/').next())
            .flatten()
            .filter(|name| !name.is_empty())
    }
}

/// GetCallerIdentity signed with `key`: whether STS accepts the key, and whose
/// it is. Needs no MFA and no permission (no IAM policy can deny it).
pub fn get_caller_identity(
    endpoint: &Endpoint,
    key: &LongLivedKey,
) -> anyhow::Result<Result<Identity, Error>> {
    let creds = key_credentials(key);
    let client = client(endpoint, creds, false)?;
    block_on(async {
        client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(e, false))
            .map(|out| Identity {
                account: out.account().unwrap_or_default().to_string(),
                arn: out.arn().unwrap_or_default().to_string(),
            })
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
    let creds = session_credentials(base);
    let client = client(endpoint, creds, false)?;
    block_on(async {
        client
            .assume_role()
            .role_arn(role.role_arn)
            .role_session_name(role.session_name)
            .set_external_id(role.external_id.map(str::to_string))
            .duration_seconds(i32::try_from(role.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify(e, false))
            .and_then(|out| into_creds(out.credentials))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_iam_user_arn_names_a_user() {
        let user = |arn: &str| {
            Identity {
                account: "1".into(),
                arn: arn.into(),
            }
            .user_name()
            .map(str::to_string)
        };
        assert_eq!(
            user("arn:aws:iam::123456789012:user/alice").as_deref(),
            Some("alice")
        );
        assert_eq!(
            user("arn:aws-cn:iam::123456789012:user/team/ops/bob").as_deref(),
            Some("bob")
        );
        assert_eq!(user("arn:aws:sts::123456789012:user/moto"), None);
        assert_eq!(user("arn:aws:sts::123456789012:assumed-role/admin/s"), None);
        assert_eq!(user("arn:aws:iam::123456789012:root"), None);
        assert_eq!(user("arn:aws:iam::123456789012:user/"), None);
        assert_eq!(user(""), None);
    }
}
