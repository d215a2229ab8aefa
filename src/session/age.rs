//! How old a profile's long-lived key is: IAM's CreateDate for it, found out
//! right after a mint (with the fresh MFA session: IAM policies commonly deny
//! ListAccessKeys without MFA) and kept in the state directory, so that `list`
//! and `doctor` can say so without a call. Never on a cached path, once per
//! key, and never failing the mint it follows.

use super::{Kind, Plan};
use crate::creds::{Creds, LongLivedKey};
use crate::{iam, keys, state, sts, time};

/// A key whose age IAM would not tell is asked about again after a day.
const RETRY_AFTER: u64 = 24 * 3600;

/// Past this age `list` and `doctor` say the key is due for `rotate`.
pub const ROTATE_AFTER_DAYS: u64 = 90;

/// Records when `key` was created, after `session` was minted with it.
pub(super) fn record(plan: &Plan, key: &LongLivedKey, session: &Creds) {
    let stamp = keys::stamp(&key.access_key_id);
    if let Some(known) = state::read_key_age(&plan.profile)
        && known.key == stamp
        && (known.created.is_some() || time::now() < known.checked.saturating_add(RETRY_AFTER))
    {
        return;
    }
    // A session from an STS that is not AWS's (LocalStack, a test server) means
    // nothing to AWS's IAM: ask only an IAM that was pointed at too.
    let foreign_sts = plan
        .endpoint
        .check()
        .ok()
        .flatten()
        .is_some_and(|t| !t.is_aws());
    if foreign_sts && plan.iam.url.is_none() {
        return;
    }
    let created = match created(plan, key, session) {
        Ok(created) => created,
        Err(e) => {
            crate::debug!("cannot tell how old the key of {} is: {e:#}", plan.profile);
            None
        }
    };
    remember(&plan.profile, &key.access_key_id, created);
}

/// The user from GetCallerIdentity signed with the key itself (a session's
/// identity is not always the user's), then the key among the user's.
fn created(plan: &Plan, key: &LongLivedKey, session: &Creds) -> anyhow::Result<Option<u64>> {
    plan.iam.check()?;
    let me = sts::get_caller_identity(&plan.endpoint, key)??;
    let user = me
        .user_name()
        .ok_or_else(|| anyhow::anyhow!("{} is not an IAM user", me.arn))?;
    let listed = iam::list_keys(&plan.iam, session, user)??;
    Ok(listed
        .iter()
        .find(|k| k.id == key.access_key_id)
        .and_then(|k| k.created))
}

/// Keeps what is known of the age of the key `access_key_id`.
pub fn remember(profile: &str, access_key_id: &str, created: Option<u64>) {
    let age = state::KeyAge {
        created,
        checked: time::now(),
        key: keys::stamp(access_key_id),
    };
    if let Err(e) = state::write_key_age(profile, &age) {
        crate::debug!("cannot record the age of the key of {profile}: {e:#}");
    }
}

/// When IAM created the profile's key, as last found out; None when unknown,
/// or when the keyring now holds another key than the one it was found for.
pub fn key_created(plan: &Plan) -> Option<u64> {
    let Kind::Mfa { keys, .. } = &plan.kind else {
        return None;
    };
    let known = state::read_key_age(&plan.profile)?;
    match keys.current_stamp(&plan.profile) {
        Some(stamp) if stamp != known.key => None,
        _ => known.created,
    }
}
