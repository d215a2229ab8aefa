//! OpenBao as a cluster: a list of addresses, standbys that forward or
//! redirect, sealed and dead nodes, and where a token may go when a node
//! answers with a redirect — against a real three-node raft cluster of
//! `bao server` processes on loopback, and small loopback servers that answer
//! what a hostile or broken node would.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::http::{Reply, Request, TinyServer};
use support::*;

#[track_caller]
fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "expected {n:?} in:\n{haystack}");
    }
}

// --- redirects, with loopback servers ------------------------------------------------

/// An Env whose `dev` profile takes its key and codes from OpenBao at
/// `addresses` with `BAO_TOKEN=token`, and an STS stub that must never be called.
fn token_env(addresses: &[&str], token: &str) -> (Env, StsStub) {
    let stub = StsStub::start();
    let mut env = Env::new();
    env.set_sts_endpoint(&stub.url()).set("BAO_TOKEN", token);
    env.write_aws_config(&format!(
        "[profile dev]\nregion = us-east-1\nmfa_serial = {BAO_SERIAL}\n"
    ));
    write_addresses(&env, addresses);
    (env, stub)
}

fn write_addresses(env: &Env, addresses: &[&str]) {
    env.write_awsmfa_config(&format!(
        "[openbao]\naddress = {addresses:?}\n\n[profiles.dev]\n\
         keys = \"openbao:secret/aws/dev\"\nmfa = \"openbao:totp/code/dev\"\n"
    ));
}

/// A node that answers every request with a 307 to `to(request path)`.
fn redirecting(to: impl Fn(&str) -> String + Send + Sync + 'static) -> TinyServer {
    TinyServer::start(move |req| Reply::redirect(&to(&req.target)))
}

#[test]
fn a_redirect_is_followed_only_to_a_configured_address() {
    let token = format!("tok-{}", random_hex(12));
    // Any request that reaches `elsewhere` is a token sent where it must not go.
    let elsewhere = TinyServer::start(|_| Reply::json(200, &json!({"data": {}})));
    let target = elsewhere.url();
    let standby = redirecting(move |path| format!("{target}{path}"));
    let (env, stub) = token_env(&[&standby.url()], &token);

    let out = env.run(["exec", "dev", "--", "true"]);
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[
            &format!(
                "OpenBao at {} redirected to {}/v1/secret/data/aws/dev, which is not one of the OpenBao \
                 addresses in [openbao] address in config.toml: not followed, so no token went there",
                standby.url(),
                elsewhere.url()
            ),
            "add it to that list",
        ],
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert_eq!(
        standby.requests().len(),
        1,
        "a refused redirect is not tried again"
    );
    assert_eq!(stub.total_calls(), 0);

    // Plain http off loopback: refused by the rule every configured address
    // passes, before any connection. `[::ffff:127.0.0.1]` is loopback in
    // IPv6's mapped form, which the rule does not count as loopback; had
    // awsmfa connected anyway, `elsewhere` would have seen the request.
    let port = elsewhere.port();
    for location in [
        format!("http://[::ffff:127.0.0.1]:{port}"),
        "http://192.0.2.10:8200".to_string(),
    ] {
        let to = location.clone();
        let standby = redirecting(move |path| format!("{to}{path}"));
        write_addresses(&env, &[&standby.url()]);
        let start = Instant::now();
        let out = env.run(["exec", "dev", "--", "true"]);
        assert_code(&out, 1);
        assert_contains(
            &out.stderr_str(),
            &[
                "the redirect was not followed",
                &format!(
                    "refusing to send OpenBao requests (its token, and the keys or codes it returns) to \
                     {location}/v1/secret/data/aws/dev in cleartext (from a redirect from OpenBao at {})",
                    standby.url()
                ),
            ],
        );
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "no connect was tried"
        );
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );

    // To a configured node, a redirect is followed with the token, and doctor
    // names the node that answered.
    let answering = TinyServer::start(|req: &Request| match req.target.as_str() {
        "/v1/sys/health" => Reply::json(200, &json!({"initialized": true, "sealed": false})),
        "/v1/auth/token/lookup-self" => Reply::json(200, &json!({"data": {"policies": ["dev"]}})),
        _ => Reply::json(404, &json!({"errors": []})),
    });
    let target = answering.url();
    let standby = redirecting(move |path| format!("{target}{path}"));
    write_addresses(&env, &[&standby.url(), &answering.url()]);
    let out = env.run(["doctor"]);
    assert_contains(
        &out.stdout_str(),
        &[&format!(
            "ok    profile dev: OpenBao at {} for keys from secret/aws/dev: token valid",
            answering.url()
        )],
    );
    let lookups: Vec<_> = answering
        .requests()
        .into_iter()
        .filter(|r| r.target == "/v1/auth/token/lookup-self")
        .collect();
    assert!(!lookups.is_empty(), "{}", out.dump());
    for r in &lookups {
        assert_eq!(r.header("x-vault-token"), Some(token.as_str()));
    }

    // A node that redirects to itself: a bounded loop, then a message.
    let looping = redirecting(|path| path.to_string());
    write_addresses(&env, &[&looping.url()]);
    let out = env.run(["exec", "dev", "--", "true"]);
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[&format!(
            "OpenBao at {} redirected more than 3 times",
            looping.url()
        )],
    );
    assert_eq!(looping.requests().len(), 4);
    assert_eq!(stub.total_calls(), 0);
}

// --- a real raft cluster -----------------------------------------------------------

/// A three-node cluster and the agent's world around it ([`BaoProfile`]).
struct Cluster {
    bao: BaoCluster,
    p: BaoProfile,
}

fn cluster() -> Option<Cluster> {
    if !keyutils_available() {
        return None;
    }
    let start = Instant::now();
    let bao = BaoCluster::start()?;
    eprintln!("the OpenBao cluster came up in {:?}", start.elapsed());
    let p = BaoProfile::provision(&bao.api());
    Some(Cluster { bao, p })
}

impl Cluster {
    fn url(&self, i: usize) -> String {
        self.bao.url(i).to_string()
    }

    /// A new wrapped SecretID for the AppRole, handed to awsmfa.
    fn hand_over_secret_id(&mut self) -> String {
        let wrapping = self.bao.api().wrapped_secret_id(BAO_ROLE);
        self.p
            .env
            .set("AWSMFA_OPENBAO_WRAPPED_SECRET_ID", &wrapping);
        wrapping
    }

    /// Whether OpenBao still holds `wrapping` unused.
    fn still_wrapped(&self, wrapping: &str) -> bool {
        let api = self.bao.api();
        let (status, _) = api.call(
            "POST",
            "sys/wrapping/lookup",
            Some(api.root_token()),
            &[],
            Some(&json!({"token": wrapping})),
        );
        status == 200
    }

    /// After one mint: with only `addresses` configured and a new wrapped
    /// SecretID, exec fails saying `message`, and the wrapping token is unused.
    #[track_caller]
    fn refused_before_unwrapping(&mut self, addresses: &[&str], message: &str) {
        self.p.env.run_ok(["clear", "dev"]);
        self.p.approle_config(addresses, "");
        let wrapping = self.hand_over_secret_id();
        let out = self.p.exec();
        assert_code(&out, 1);
        assert_contains(&out.stderr_str(), &[message]);
        assert!(
            self.still_wrapped(&wrapping),
            "the wrapping token is unused"
        );
        assert_eq!(self.p.stub.total_calls(), 1, "no second mint");
    }

    /// How often `path` was requested in the cluster's audit log after entry `mark`.
    fn count_since(&self, mark: usize, path: &str) -> usize {
        self.bao
            .api()
            .requests_since(mark)
            .iter()
            .filter(|e| e.path == path)
            .count()
    }
}

#[test]
fn a_standby_first_serves_and_its_redirect_goes_only_to_a_configured_active_node() {
    let Some(mut c) = cluster() else { return };
    let leader = c.bao.leader();
    let standbys = c.bao.standbys();
    assert_eq!(standbys.len(), 2, "two standbys");
    let (standby, other, active) = (c.url(standbys[0]), c.url(standbys[1]), c.url(leader));

    // Standbys first. They forward reads; the unwrap and the login go with
    // X-Vault-No-Request-Forwarding, so the standby redirects them to the
    // active node, which is configured.
    c.p.approle_config(&[&standby, &other, &active], "");
    c.hand_over_secret_id();
    let mark = c.bao.api().audit().len();
    let out =
        c.p.env
            .run(["-v", "exec", "dev", "--", "printenv", "AWS_ACCESS_KEY_ID"]);
    c.p.assert_minted(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[&format!("OpenBao at {standby} redirected to {active}")],
    );
    assert_eq!(c.count_since(mark, "sys/wrapping/unwrap"), 1);
    assert_eq!(c.count_since(mark, "auth/approle/login"), 1);

    // Only the standby configured: its redirect to the active node is not
    // followed.
    c.refused_before_unwrapping(
        &[&standby],
        &format!(
            "OpenBao at {standby} redirected to {active}/v1/sys/wrapping/unwrap, which is not one of the \
             OpenBao addresses in [openbao] address in config.toml: not followed, so no token went there"
        ),
    );

    // With a token, that standby alone serves: it forwards what it cannot read.
    let token = c.bao.api().create_token(&[BAO_ROLE], None);
    c.p.env
        .unset("AWSMFA_OPENBAO_WRAPPED_SECRET_ID")
        .set("BAO_TOKEN", &token);
    c.p.assert_minted(&c.p.exec(), 2);
}

#[test]
fn a_sealed_node_is_skipped_with_a_message() {
    let Some(mut c) = cluster() else { return };
    let leader = c.bao.leader();
    let standbys = c.bao.standbys();
    let (sealed, standby) = (standbys[0], c.url(standbys[1]));
    c.bao.seal(sealed);
    let (sealed, active) = (c.url(sealed), c.url(leader));

    // doctor shows each node as it is, the sealed one as a warning.
    c.p.approle_config(&[&sealed, &standby, &active], "");
    let out = c.p.env.run(["doctor"]);
    assert_contains(
        &out.stdout_str(),
        &[
            &format!(
                "warn  OpenBao node {sealed}: sealed\n      → the other nodes serve meanwhile"
            ),
            &format!("ok    OpenBao node {standby}: standby\n"),
            &format!("ok    OpenBao node {active}: active\n"),
        ],
    );

    // The list in BAO_ADDR this time (comma-separated), only the RoleID in config.toml.
    c.p.write_config(&format!("role_id = \"{}\"", c.p.role_id));
    c.p.env.set("BAO_ADDR", format!("{sealed}, {active}"));
    c.hand_over_secret_id();
    let out = c.p.exec();
    c.p.assert_minted(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[&format!(
            "awsmfa: OpenBao at {sealed} is sealed; trying {active}"
        )],
    );

    // The sealed node alone: a message that says what to do.
    c.p.env.unset("BAO_ADDR");
    c.refused_before_unwrapping(
        &[&sealed],
        &format!(
            "OpenBao at {sealed} is sealed; unseal it (`bao operator unseal`), or list the other nodes \
             of its cluster in [openbao] address in config.toml"
        ),
    );
}

#[test]
fn when_the_active_node_dies_the_next_mint_goes_through_another_node() {
    let Some(mut c) = cluster() else { return };
    let leader = c.bao.leader();
    let urls: Vec<String> = (0..c.bao.len()).map(|i| c.url(i)).collect();
    let mut listed = vec![urls[leader].as_str()];
    listed.extend(
        (0..urls.len())
            .filter(|&i| i != leader)
            .map(|i| urls[i].as_str()),
    );
    c.p.approle_config(&listed, "");
    c.hand_over_secret_id();
    c.p.assert_minted(&c.p.exec(), 1);

    // The wrapped SecretID is made before the crash: raft has it on every node.
    c.p.env.run_ok(["clear", "dev"]);
    c.hand_over_secret_id();
    c.bao.kill(leader);
    let start = Instant::now();
    let out = c.p.exec();
    let took = start.elapsed();
    eprintln!("the mint after the active node died took {took:?}");
    c.p.assert_minted(&out, 2);
    assert_contains(
        &out.stderr_str(),
        &[&format!("awsmfa: cannot reach OpenBao at {}", urls[leader])],
    );
    assert!(took < Duration::from_secs(30), "{took:?}\n{}", out.dump());
    let elected = c.bao.leader();
    assert_ne!(elected, leader);

    // One node of three left: no quorum, so no active node ever. A bounded
    // wait (failover_wait), then a message that says so.
    c.p.env.run_ok(["clear", "dev"]);
    c.hand_over_secret_id();
    c.p.approle_config(&listed, "failover_wait = \"3s\"");
    c.bao.kill(elected);
    let start = Instant::now();
    let out = c.p.exec();
    let took = start.elapsed();
    assert_code(&out, 1);
    assert_contains(
        &out.stderr_str(),
        &[
            "awsmfa: waiting up to 3s for an active OpenBao node",
            "no active OpenBao node after 3s: ",
            "raise `failover_wait` under [openbao]",
        ],
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}\n{}",
        out.dump()
    );
    assert_eq!(c.p.stub.total_calls(), 2);
}

/// `req` sent on to `to`, and its answer.
fn forward(to: &str, req: &Request) -> Reply {
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !["host", "content-length", "connection"].contains(&k.to_ascii_lowercase().as_str())
        })
        .cloned()
        .collect();
    match http_request(to, &req.method, &req.target, &headers, &req.body, TIMEOUT) {
        Ok(answer) => Reply::Respond {
            status: answer.status,
            headers: answer
                .headers
                .iter()
                .filter(|(k, _)| {
                    ["content-type", "location"].contains(&k.to_ascii_lowercase().as_str())
                })
                .cloned()
                .collect(),
            body: answer.body,
        },
        Err(_) => Reply::Reset,
    }
}

#[test]
fn a_wrapped_secret_id_is_unwrapped_once_when_the_node_dies_mid_login() {
    let Some(mut c) = cluster() else { return };
    let leader = c.bao.leader();
    let active = c.url(leader);
    // In front of the active node: passes everything on, but after passing
    // on the unwrap it resets the connection, as a node that dies before its
    // answer leaves.
    let proxy = TinyServer::start(move |req| {
        let answer = forward(&active, req);
        if req.target.starts_with("/v1/sys/wrapping/unwrap") {
            Reply::Reset
        } else {
            answer
        }
    });
    let standbys: Vec<String> = c.bao.standbys().into_iter().map(|i| c.url(i)).collect();
    c.p.approle_config(&[&proxy.url(), &standbys[0], &standbys[1]], "");
    let wrapping = c.hand_over_secret_id();
    let mark = c.bao.api().audit().len();

    let out = c.p.exec();
    assert_code(&out, 1);
    let stderr = out.stderr_str();
    assert_contains(
        &stderr,
        &[
            &format!(
                "the request to unwrap the SecretID went to OpenBao at {}, but the connection failed before its answer came",
                proxy.url()
            ),
            "the wrapping token may have been used up by it",
            "hand over a new wrapped SecretID",
            "awsmfa does not send it again",
        ],
    );
    assert!(!stderr.contains("intercepted"), "{stderr}");
    assert!(!stderr.contains(&wrapping), "{stderr}");
    let unwraps = proxy
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/v1/sys/wrapping/unwrap"))
        .count();
    assert_eq!(unwraps, 1, "the proxy saw one unwrap");
    assert_eq!(
        c.count_since(mark, "sys/wrapping/unwrap"),
        1,
        "the cluster saw one unwrap: no other node was asked"
    );
    assert_eq!(c.count_since(mark, "auth/approle/login"), 0);
    assert!(!c.still_wrapped(&wrapping), "the unwrap did happen");
    assert_eq!(c.p.stub.total_calls(), 0);
}
