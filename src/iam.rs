//! IAM, for `rotate` and for the age of a key: ListAccessKeys, CreateAccessKey
//! and DeleteAccessKey, always signed with an MFA session (IAM policies commonly
//! deny key management without MFA) and always naming the user (a session's
//! own key id is not a user's). The client is STS's (sts.rs): the same TLS
//! stack, timeouts and retry rule. IAM is global: requests are signed for the
//! profile's region, us-east-1 without one, and the SDK picks the partition's
//! endpoint from it.

use aws_sdk_iam::config::{BehaviorVersion, Region};
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use secrecy::SecretString;

use crate::creds::{Creds, LongLivedKey};
use crate::remote;
use crate::sts::{self, NoBlindRetry, Origin};

/// Where IAM is: `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL`, the profile's
/// `endpoint_url`, or AWS's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub region: String,
    pub url: Option<String>,
    pub origin: Origin,
}

/// What an IAM request carries.
const CARRYING: &str =
    "a request signed with your MFA session (and, from CreateAccessKey, a new secret key)";

impl Endpoint {
    pub fn describe(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| "https://iam.amazonaws.com".into())
    }

    /// The cleartext rule of [`crate::remote::check`], and the host's name
    /// looked up; `None` for AWS's own endpoint.
    pub fn check(&self) -> anyhow::Result<Option<remote::Target>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let usage = remote::Use {
            carrying: CARRYING,
            from: self.origin.to_string(),
            instead: self.origin.instead(),
        };
        let target = remote::check(url, &usage)?;
        let addrs = target.resolve().map_err(|e| {
            anyhow::anyhow!(
                "cannot resolve {} (from {}): check the endpoint and the network ({e})",
                target.host,
                self.origin
            )
        })?;
        target.check_addresses(&addrs, url, &usage)?;
        Ok(Some(target))
    }
}

/// One access key of a user, as ListAccessKeys describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    /// Unix seconds.
    pub created: Option<u64>,
    pub active: bool,
}

#[derive(Debug)]
pub enum Error {
    /// IAM answered with an error code.
    Rejected { code: String, message: String },
    /// The request never left (DNS, refused connection, TLS).
    Unreachable(String),
    /// The request may have reached IAM, and been carried out, but no answer
    /// came back.
    NoAnswer(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Rejected { code, message } => write!(f, "IAM said {code}: {message}"),
            Error::Unreachable(why) => write!(f, "cannot reach IAM: {why}"),
            Error::NoAnswer(why) => write!(f, "IAM did not answer: {why}"),
        }
    }
}

impl std::error::Error for Error {}

fn classify<E>(
    err: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let why = sts::describe_chain(&err);
    if let SdkError::ServiceError(_) = &err
        && let Some(code) = err.code()
    {
        return Error::Rejected {
            code: code.to_string(),
            message: err.message().unwrap_or("").trim().to_string(),
        };
    }
    if sts::may_have_left(&err) {
        Error::NoAnswer(why)
    } else {
        Error::Unreachable(why)
    }
}

/// `once`: the request must not be sent twice (CreateAccessKey).
fn client(endpoint: &Endpoint, session: &Creds, once: bool) -> anyhow::Result<aws_sdk_iam::Client> {
    let creds = crate::sts::session_credentials(session);
    let mut config = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(endpoint.region.clone()))
        .credentials_provider(creds)
        .timeout_config(sts::timeouts())
        .retry_config(sts::retries())
        .retry_classifier(NoBlindRetry { carries_code: once })
        .http_client(sts::http_client()?);
    if let Some(url) = &endpoint.url {
        config = config.endpoint_url(url);
    }
    Ok(aws_sdk_iam::Client::from_conf(config.build()))
}

fn seconds(t: Option<&aws_smithy_types::DateTime>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.secs()).ok())
}

/// The user's access keys (a user has at most two).
pub fn list_keys(
    endpoint: &Endpoint,
    session: &Creds,
    user: &str,
) -> anyhow::Result<Result<Vec<AccessKey>, Error>> {
    let client = client(endpoint, session, false)?;
    sts::block_on(async {
        client
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(classify)
            .map(|out| {
                out.access_key_metadata()
                    .iter()
                    .filter_map(|k| {
                        Some(AccessKey {
                            id: k.access_key_id()?.to_string(),
                            created: seconds(k.create_date()),
                            active: k
                                .status()
                                .is_some_and(|s| *s == aws_sdk_iam::types::StatusType::Active),
                        })
                    })
                    .collect()
            })
    })
}

/// A new access key for `user`, and when IAM made it (Unix seconds).
pub fn create_key(
    endpoint: &Endpoint,
    session: &Creds,
    user: &str,
) -> anyhow::Result<Result<(LongLivedKey, Option<u64>), Error>> {
    let client = client(endpoint, session, true)?;
    sts::block_on(async {
        let out = client
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(classify)?;
        let Some(key) = out.access_key() else {
            return Err(Error::NoAnswer(
                "the CreateAccessKey answer holds no key".into(),
            ));
        };
        Ok((
            LongLivedKey {
                access_key_id: key.access_key_id().to_string(),
                secret_access_key: SecretString::from(key.secret_access_key().to_string()),
            },
            seconds(key.create_date()),
        ))
    })
}

pub fn delete_key(
    endpoint: &Endpoint,
    session: &Creds,
    user: &str,
    access_key_id: &str,
) -> anyhow::Result<Result<(), Error>> {
    let client = client(endpoint, session, false)?;
    sts::block_on(async {
        client
            .delete_access_key()
            .user_name(user)
            .access_key_id(access_key_id)
            .send()
            .await
            .map_err(classify)
            .map(drop)
    })
}
