//! Where a signed request may go. A GetSessionToken request carries a signature
//! made with the long-lived key and a live MFA code: http is allowed only to
//! loopback, whatever set the endpoint (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL,
//! a profile's endpoint_url), and every refusal comes before any MFA source
//! runs. The same rule holds for OpenBao's address.
//!
//! Every URL these tests expect to be refused names a host under `.invalid`
//! (RFC 6761: never resolves), so a regression cannot send anything anywhere;
//! the URLs that are allowed point at the loopback STS stub.

mod support;

use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const KEY: &str = "AKIASTUBENDPOINTS001";
const SECRET: &str = "endpointslonglivedsecret/0123456789abcd";
const ROLE: &str = "arn:aws:iam::123456789012:role/deployer";

/// Refused for every source: cleartext to a name, cleartext with a port and
/// path, another scheme, and a URL that does not parse (a port that is not one).
const REFUSED: [&str; 4] = [
    "http://sts.invalid",
    "http://sts.invalid:4566/",
    "ftp://x.invalid",
    "https://sts.invalid:port/",
];

/// An Env with a loopback STS stub (not set as the endpoint: each test says
/// where STS is), the `dev` key stored, and an `mfa_process` that counts its runs.
struct World {
    env: Env,
    stub: StsStub,
    mfa: CountingMfa,
}

impl World {
    fn new() -> Option<World> {
        let (stub, mut env) = stub_and_env(KEY, SECRET, SERIAL, SEED)?;
        // Each test says where STS is.
        env.unset("AWS_ENDPOINT_URL_STS");
        let mfa = env.counting_mfa(SEED);
        let w = World { env, stub, mfa };
        w.write_config("", "");
        let mut cmd = w.env.cmd(["add", "dev", "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET);
        assert_ok(&w.env.run_cmd(cmd));
        Some(w)
    }

    /// ~/.aws/config: `dev` (with `dev_extra` in its section) plus `extra`.
    fn write_config(&self, dev_extra: &str, extra: &str) {
        self.env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\nmfa_process = {}\n{dev_extra}\n{extra}",
            self.mfa.script.display()
        ));
    }

    fn mfa_runs(&self) -> usize {
        self.mfa.runs()
    }
}

/// Both minting commands fail with exit 1, a message naming `url`, `from` and
/// the rule, and no MFA source run, no STS call, nothing on stdout.
#[track_caller]
fn assert_refused_before_mfa(w: &World, profile: &str, url: &str, from: &str) {
    for args in [
        vec!["credential-process", profile],
        vec!["exec", profile, "--", "true"],
    ] {
        let out = w.env.run(&args);
        assert_no_panic(&out);
        assert_code(&out, 1);
        let err = out.stderr_str();
        assert!(
            err.contains(url) && err.contains(from) && err.contains("loopback"),
            "{args:?} with {url} from {from}: the message should name both and the rule\n{}",
            out.dump()
        );
        assert!(out.stdout.is_empty(), "{args:?}\n{}", out.dump());
        assert_eq!(w.mfa_runs(), 0, "{args:?} with {url}: the MFA source ran");
        assert_eq!(w.stub.total_calls(), 0, "{args:?} with {url}");
    }
}

#[test]
fn refused_from_aws_endpoint_url_sts_before_any_mfa() {
    let Some(mut w) = World::new() else { return };
    for url in REFUSED {
        w.env.set("AWS_ENDPOINT_URL_STS", url);
        assert_refused_before_mfa(&w, "dev", url, "(from AWS_ENDPOINT_URL_STS)");
    }
    let out = w.env.run(["credential-process", "dev"]);
    assert!(
        out.stderr_str().contains("unset AWS_ENDPOINT_URL_STS"),
        "the message should say how to get out\n{}",
        out.dump()
    );
}

#[test]
fn refused_from_aws_endpoint_url_before_any_mfa() {
    let Some(mut w) = World::new() else { return };
    for url in REFUSED {
        w.env.set("AWS_ENDPOINT_URL", url);
        assert_refused_before_mfa(&w, "dev", url, "(from AWS_ENDPOINT_URL)");
    }
}

#[test]
fn refused_from_profile_endpoint_url_before_any_mfa() {
    let Some(w) = World::new() else { return };
    for url in REFUSED {
        w.write_config(&format!("endpoint_url = {url}\n"), "");
        assert_refused_before_mfa(
            &w,
            "dev",
            url,
            "(from endpoint_url in [profile dev] (~/.aws/config:1))",
        );
    }
}

#[test]
fn https_to_a_name_that_does_not_resolve_fails_before_any_mfa() {
    let Some(mut w) = World::new() else { return };
    w.env.set("AWS_ENDPOINT_URL", "https://sts.invalid");
    for args in [
        vec!["credential-process", "dev"],
        vec!["exec", "dev", "--", "true"],
    ] {
        let out = w.env.run(&args);
        assert_no_panic(&out);
        assert_code(&out, 1);
        assert!(
            out.stderr_str().contains(
                "cannot resolve sts.invalid (from AWS_ENDPOINT_URL): no MFA code was asked for; \
                 check the endpoint and the network"
            ),
            "{args:?}\n{}",
            out.dump()
        );
        assert_eq!(w.mfa_runs(), 0, "{args:?}: the MFA source ran");
    }
}

#[test]
fn http_to_loopback_works_and_is_named_only_when_minting() {
    let Some(mut w) = World::new() else { return };
    let port = w.stub.addr().port();
    for (n, url) in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ]
    .iter()
    .enumerate()
    {
        // Another URL is another fingerprint: each mints once (on one device).
        as_if_a_step_passed(&w.env, &w.stub);
        w.env.set("AWS_ENDPOINT_URL_STS", url);
        let out = w.env.run(["credential-process", "dev"]);
        assert_no_panic(&out);
        assert_ok(&out);
        let line = format!(
            "awsmfa: minting a session for dev at {url}, which is not an AWS endpoint (from AWS_ENDPOINT_URL_STS)\n"
        );
        let err = out.stderr_str();
        assert_eq!(err.matches(&line).count(), 1, "{}", out.dump());
        assert_eq!(w.stub.calls("GetSessionToken"), n + 1);
        assert_eq!(w.mfa_runs(), n + 1);

        // Cache hits: no line, no MFA, no STS call.
        for args in [
            vec!["credential-process", "dev"],
            vec!["exec", "dev", "--", "true"],
        ] {
            let out = w.env.run(&args);
            assert_ok(&out);
            assert!(
                !out.stderr_str().contains("not an AWS endpoint"),
                "{args:?}: a cache hit named the endpoint\n{}",
                out.dump()
            );
        }
        assert_eq!(w.stub.calls("GetSessionToken"), n + 1);
        assert_eq!(w.mfa_runs(), n + 1);
    }
}

#[test]
fn role_with_a_refused_endpoint_fails_before_its_source_mfa() {
    let Some(w) = World::new() else { return };
    // No endpoint variable: each profile names its own, so the source's is the
    // stub and only the role's is refused.
    let stub = format!("endpoint_url = {}\n", w.stub.url());
    for bad in ["http://sts.invalid:4566", "https://sts.invalid"] {
        w.write_config(
            &stub,
            &format!(
                "[profile deploy]\nrole_arn = {ROLE}\nsource_profile = dev\nendpoint_url = {bad}\n"
            ),
        );
        for args in [
            vec!["credential-process", "deploy"],
            vec!["exec", "deploy", "--", "true"],
        ] {
            let out = w.env.run(&args);
            assert_no_panic(&out);
            assert_code(&out, 1);
            let err = out.stderr_str();
            assert!(
                err.contains("sts.invalid") && err.contains("endpoint_url in [profile deploy]"),
                "{args:?} with {bad}\n{}",
                out.dump()
            );
            assert_eq!(w.mfa_runs(), 0, "{args:?} with {bad}: the source's MFA ran");
            assert_eq!(w.stub.total_calls(), 0, "{args:?} with {bad}");
        }
    }
    // The source on its own is fine, and says where it mints.
    let out = w.env.run(["credential-process", "dev"]);
    assert_ok(&out);
    assert!(
        out.stderr_str().contains(&format!(
            "at {}, which is not an AWS endpoint (from endpoint_url in [profile dev] (~/.aws/config:1))",
            w.stub.url()
        )),
        "{}",
        out.dump()
    );
    assert_eq!(w.mfa_runs(), 1);
}

#[test]
fn openbao_address_in_cleartext_is_refused_before_any_mfa() {
    let Some(mut w) = World::new() else { return };
    w.env.set_sts_endpoint(&w.stub.url());
    let bao = "http://bao.invalid:8200";
    // Keys from OpenBao: the address is checked before the key is fetched.
    w.env
        .write_awsmfa_config("[profiles.dev]\nkeys = \"openbao:secret/x\"\n");
    for var in ["BAO_ADDR", "VAULT_ADDR"] {
        w.env.unset("BAO_ADDR").set(var, bao);
        assert_refused_before_mfa(&w, "dev", bao, &format!("(from {var})"));
    }
    w.env.unset("VAULT_ADDR");
    w.env.write_awsmfa_config(&format!(
        "[openbao]\naddress = \"{bao}\"\n\n[profiles.dev]\nkeys = \"openbao:secret/x\"\n"
    ));
    assert_refused_before_mfa(&w, "dev", bao, "(from [openbao] address in config.toml)");

    // Keys from the keyring, OpenBao only as the fallback MFA source: refused
    // before the first source runs, rather than when it falls through.
    w.env.set("BAO_ADDR", bao);
    w.env.write_awsmfa_config(&format!(
        "[profiles.dev]\nmfa = [\"process:{}\", \"openbao:totp/code/dev\"]\n",
        w.mfa.script.display()
    ));
    assert_refused_before_mfa(&w, "dev", bao, "(from BAO_ADDR)");

    // Sessions straight from OpenBao: refused before any request.
    w.env
        .write_awsmfa_config("[profiles.dev]\nsource = \"openbao-aws:aws/deployer\"\n");
    assert_refused_before_mfa(&w, "dev", bao, "(from BAO_ADDR)");
}

#[test]
fn doctor_reports_a_refused_endpoint_without_probing_it() {
    let Some(mut w) = World::new() else { return };
    w.env.set("AWS_ENDPOINT_URL_STS", "http://sts.invalid:4566");
    let out = w.env.run(["doctor"]);
    assert_no_panic(&out);
    assert_code(&out, 1);
    let text = out.stdout_str();
    assert!(
        text.contains(
            "FAIL  STS endpoint: refusing to send a request signed with your long-lived key and a one-time MFA code \
             to http://sts.invalid:4566 in cleartext (from AWS_ENDPOINT_URL_STS): \
             plain http is allowed only to loopback (127.0.0.1, ::1, localhost); use https, or unset AWS_ENDPOINT_URL_STS"
        ),
        "{}",
        out.dump()
    );
    assert!(!text.contains("not reachable"), "{}", out.dump());
    assert_eq!(w.mfa_runs(), 0);
}
