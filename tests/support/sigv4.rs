//! AWS Signature Version 4, both sides: the stub verifies what awsmfa's SDK
//! signed (proving awsmfa signs with the secret it was given, not merely the
//! right key id), and the raw test client signs its own requests.

use sha2::{Digest, Sha256};

use super::hex;

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// RFC 3986 percent-encoding of everything but the unreserved set, as SigV4's
/// canonical query string and awsQuery bodies use it.
pub fn aws_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding ('+' is a space).
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hexval = |c: u8| (c as char).to_digit(16);
                match (hexval(b[i + 1]), hexval(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub fn encode_form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", aws_encode(k), aws_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone)]
pub struct AuthHeader {
    pub access_key_id: String,
    /// `20261122/us-east-1/sts/aws4_request`
    pub scope: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Option<AuthHeader> {
    let rest = value.trim().strip_prefix("AWS4-HMAC-SHA256")?.trim();
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => {}
        }
    }
    let (key, scope) = cred?.split_once('/')?;
    Some(AuthHeader {
        access_key_id: key.to_string(),
        scope: scope.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: sig?.to_string(),
    })
}

/// The canonical request SigV4 hashes. `headers` are all request headers
/// (any case, repeated names allowed); only `signed` ones are used.
pub fn canonical_request(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    signed: &[String],
    body: &[u8],
) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.is_empty() { "/" } else { path };
    let mut q: Vec<(String, String)> = parse_form(query)
        .into_iter()
        .map(|(k, v)| (aws_encode(&k), aws_encode(&v)))
        .collect();
    q.sort();
    let query = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canon_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canon_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-content-sha256"))
        .map_or_else(|| sha256_hex(body), |(_, v)| v.trim().to_string());
    format!(
        "{method}\n{path}\n{query}\n{canon_headers}\n{}\n{payload_hash}",
        signed.join(";")
    )
}

/// The hex signature of `canonical` for `secret` at `amz_date`
/// (`20261122T054521Z`) within `scope` (`date/region/service/aws4_request`).
pub fn signature(secret: &str, amz_date: &str, scope: &str, canonical: &str) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac_sha256(&key, part.as_bytes()).to_vec();
    }
    hex(&hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// Checks a request's SigV4 signature against `secret`. The error carries the
/// canonical request we computed, which is what one needs to debug a mismatch.
pub fn verify(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    auth: &AuthHeader,
    secret: &str,
) -> Result<(), String> {
    let amz_date = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
        .map(|(_, v)| v.trim().to_string())
        .ok_or("no X-Amz-Date header")?;
    let canonical = canonical_request(method, target, headers, &auth.signed_headers, body);
    let expected = signature(secret, &amz_date, &auth.scope, &canonical);
    if expected == auth.signature {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch\n--- canonical request ---\n{canonical}\n---"
        ))
    }
}

/// Signs a POST of `body` to `host` (`127.0.0.1:PORT`) at path `/`, returning
/// the headers to send (Host included). `amz_date` is `YYYYMMDDTHHMMSSZ`.
pub fn sign_post(
    host: &str,
    body: &[u8],
    key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    if let Some(t) = session_token {
        headers.push(("x-amz-security-token".to_string(), t.to_string()));
    }
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let scope = format!("{}/{region}/sts/aws4_request", &amz_date[..8]);
    let canonical = canonical_request("POST", "/", &headers, &signed, body);
    let sig = signature(secret, amz_date, &scope, &canonical);
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={}, Signature={sig}",
            signed.join(";")
        ),
    ));
    headers
}

/// `YYYYMMDDTHHMMSSZ` for now.
pub fn amz_date_now() -> String {
    let s = super::rfc3339(std::time::SystemTime::now());
    s.replace(['-', ':'], "")
}
