//! Minting a session: GetSessionToken with a long-lived key and an MFA code,
//! AssumeRole from a source session, or ready-made from OpenBao.

use std::time::Duration;

use anyhow::{anyhow, bail};

use super::{Creds, Kind, Plan};
use crate::{mfa, sts, time};

pub(super) fn mint(plan: &Plan, refresh_before: Duration) -> anyhow::Result<Creds> {
    match &plan.kind {
        Kind::Vended { path, openbao } => {
            crate::debug!("taking a session for {} from OpenBao {path}", plan.profile);
            crate::openbao::Lazy::new(openbao.clone())
                .get()?
                .aws_sts(path)
        }
        Kind::Mfa {
            keys: key_source,
            serial,
            mfa: sources,
            ykman_device,
            ttl,
            openbao,
        } => {
            let bao = crate::openbao::Lazy::new(openbao.clone());
            // Every refusal that needs no network comes before anything that
            // costs the user something: a key fetch, an MFA code.
            plan.endpoint.check()?;
            if key_source.uses_openbao() || sources.iter().any(|s| s.uses_openbao()) {
                bao.check_address()?;
            }
            preflight(plan)?;
            let key = key_source.load(&plan.profile, &bao)?;
            // Held until the code is sent: another awsmfa minting on this
            // device meanwhile would get the same code, which STS refuses.
            let mut device = mfa::Device::lock(serial)?;
            for attempt in 1..=mfa::MAX_ATTEMPTS {
                let request = mfa::Request {
                    profile: &plan.profile,
                    serial,
                    ykman_device: ykman_device.as_deref(),
                    openbao: &bao,
                    last_step: device.last_step(),
                };
                let code = mfa::code(sources, &request, attempt)?;
                crate::debug!(
                    "minting a session for {} with GetSessionToken at {}",
                    plan.profile,
                    plan.endpoint.describe()
                );
                let before = device.last_step();
                device.record(code.step);
                let answer =
                    sts::get_session_token(&plan.endpoint, &key, serial, &code.secret, *ttl)?;
                if let Err(e) = &answer
                    && (e.is_bad_credential() || matches!(e, sts::Error::Unavailable { .. }))
                {
                    // STS refuses the key or signature, and throttles, before it
                    // looks at the code: this step's code is still unused.
                    device.restore(before);
                }
                match answer {
                    Ok(creds) => {
                        // Not holding up another mint on the device meanwhile.
                        drop(device);
                        super::age::record(plan, &key, &creds);
                        return Ok(creds);
                    }
                    // A code that may have reached STS is never sent again: the
                    // next attempt waits for a fresh step (see mfa::step).
                    Err(sts::Error::WrongMfa | sts::Error::CodeSpent(_))
                        if attempt < mfa::MAX_ATTEMPTS =>
                    {
                        continue;
                    }
                    Err(sts::Error::WrongMfa) => bail!(
                        "STS rejected the MFA code for {serial} {} times; check the device matches mfa_serial in [profile {}]",
                        mfa::MAX_ATTEMPTS,
                        plan.profile
                    ),
                    Err(e) => return Err(explain(e, plan)),
                }
            }
            unreachable!("the loop returns on its last attempt")
        }
        Kind::Role {
            source,
            role_arn,
            external_id,
            session_name,
            duration,
        } => {
            let default_name = format!("awsmfa-{}", time::now());
            let request = sts::RoleRequest {
                role_arn,
                session_name: session_name.as_deref().unwrap_or(&default_name),
                external_id: external_id.as_deref(),
                duration: *duration,
            };
            // Before the source session, which may cost an MFA code of its own.
            preflight(plan)?;
            let base = super::get(source, refresh_before)?;
            crate::debug!(
                "minting a session for {} with AssumeRole {role_arn} from {}",
                plan.profile,
                source.profile
            );
            match sts::assume_role(&plan.endpoint, &base, &request)? {
                Ok(creds) => Ok(creds),
                // The cached source session was revoked or expired early: mint a
                // new one once, rather than failing until it times out.
                Err(e) if e.is_bad_credential() => {
                    crate::debug!("source session for {} refused: {e}", source.profile);
                    super::clear(&source.profile)?;
                    let base = super::get(source, refresh_before)?;
                    sts::assume_role(&plan.endpoint, &base, &request)?.map_err(|e| explain(e, plan))
                }
                Err(e) => Err(explain(e, plan)),
            }
        }
    }
}

/// The endpoint's checks before a mint (see [`Endpoint::preflight`]), and one
/// line naming an endpoint that is not AWS's: a session minted at LocalStack,
/// or at an override the user forgot, should not pass unnoticed. Minting only:
/// a cache hit does none of this.
fn preflight(plan: &Plan) -> anyhow::Result<()> {
    if !plan.endpoint.preflight()? {
        crate::log::info(format_args!(
            "minting a session for {} at {}, which is not an AWS endpoint (from {})",
            plan.profile,
            plan.endpoint.describe(),
            plan.endpoint.origin
        ));
    }
    Ok(())
}

fn explain(e: sts::Error, plan: &Plan) -> anyhow::Error {
    let p = &plan.profile;
    match &e {
        sts::Error::Unreachable(_) => anyhow!(
            "{e}\n  endpoint: {} (from {}); check it and the network",
            plan.endpoint.describe(),
            plan.endpoint.origin
        ),
        _ if e.is_bad_credential() && matches!(plan.kind, Kind::Mfa { .. }) => anyhow!(
            "{e}\n  the long-lived key for {p} is not valid (deleted, deactivated, or mistyped); store a working one with `awsmfa add {p}`"
        ),
        sts::Error::Rejected { message, .. } if message.contains("serial number") => {
            let serial = match &plan.kind {
                Kind::Mfa { serial, .. } => serial.as_str(),
                _ => "its source's mfa_serial",
            };
            anyhow!(
                "{e}\n  STS does not know the MFA device {serial} for this key: check mfa_serial in [profile {p}] (IAM console, \"Security credentials\")"
            )
        }
        sts::Error::Rejected { code, .. } if code == "AccessDenied" => {
            anyhow!("{e}\n  check the IAM policy allows this for {p}")
        }
        _ => anyhow!("{e}"),
    }
}
