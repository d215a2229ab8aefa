//! `awsmfa rotate` against moto's IAM and STS: a full rotation with one MFA
//! code, the two-key limit, `kill -9` at each step, `--all --older-than`, the
//! key's age in `list`, and no secret on disk, in argv or in output.
//!
//! Two moto behaviours shape these tests (not awsmfa): moto's STS accepts any
//! key for GetSessionToken, so a session minted by awsmfa proves nothing about
//! the stored key; and a GetSessionToken session is not tied to a user in moto
//! (GetCallerIdentity with it says `user/moto`). So whether a stored key works
//! is checked here by reading it from the keyring and asking GetCallerIdentity
//! with it through boto3: moto names the owning IAM user only for keys it made.
//! (awsmfa itself finds the user with the long-lived key and names it in every
//! IAM call, which works the same against AWS.)

mod support;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{Reply, Request, TinyServer};
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXP";
const ACCOUNT: &str = "123456789012";
const USER: &str = "alice";

/// boto3 against moto: the IAM side of the world, as an administrator sees it.
/// Secrets travel on stdin, never in argv.
const IAM_PY: &str = r#"
import boto3, json, sys
url, cmd = sys.argv[1], sys.argv[2]
admin = dict(endpoint_url=url, region_name="us-east-1",
             aws_access_key_id="AKIAADMINADMINADMIN0", aws_secret_access_key="admin")
iam = boto3.client("iam", **admin)
if cmd == "user":
    iam.create_user(UserName=sys.argv[3])
if cmd in ("user", "key"):
    k = iam.create_access_key(UserName=sys.argv[3])["AccessKey"]
    print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
elif cmd == "keys":
    print(json.dumps([k["AccessKeyId"] for k in
                      iam.list_access_keys(UserName=sys.argv[3])["AccessKeyMetadata"]]))
elif cmd == "whoami":
    key_id, secret = sys.stdin.read().split()
    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret)
    print(sts.get_caller_identity()["Arn"])
"#;

struct Key {
    id: String,
    secret: String,
}

/// moto, a stalling proxy in front of it, and an Env whose `dev` profile
/// (MFA codes from a counting `mfa_process`) holds the only key of IAM user
/// `alice`, stored in the kernel keyring.
struct World {
    env: Env,
    moto: Moto,
    proxy: Proxy,
    python: PathBuf,
    mfa: CountingMfa,
    /// The key `dev` started with.
    first: Key,
}

impl World {
    fn new() -> Option<World> {
        Self::with_config("")
    }

    /// `extra`: more of ~/.aws/config after `[profile dev]`.
    fn with_config(extra: &str) -> Option<World> {
        if !keyutils_available() {
            return None;
        }
        require("oathtool (Debian package oathtool)", which("oathtool"))?;
        let python = venv_python()?;
        let moto = Moto::start()?;
        let proxy = Proxy::start(moto.url());
        let mut env = Env::new();
        // Both services through the proxy, as AWS_ENDPOINT_URL_IAM and _STS.
        env.set_sts_endpoint(&proxy.url());
        env.set("AWS_ENDPOINT_URL_IAM", proxy.url());
        env.write_file("iam.py", IAM_PY);
        let mfa = env.counting_mfa(SEED);
        env.write_aws_config(&format!(
            "[profile dev]\nmfa_serial = arn:aws:iam::{ACCOUNT}:mfa/dev\nmfa_process = {}\n{extra}",
            mfa.script.display()
        ));
        let mut w = World {
            env,
            moto,
            proxy,
            python,
            mfa,
            first: Key {
                id: String::new(),
                secret: String::new(),
            },
        };
        w.first = w.iam_key("user", USER);
        w.add("dev", &w.first);
        Some(w)
    }

    fn py(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut cmd = self.env.command(&self.python);
        cmd.arg(self.env.root.join("iam.py"))
            .arg(self.moto.url())
            .args(args);
        let out = run_with_timeout(cmd, input.map(str::as_bytes), TIMEOUT);
        assert_ok(&out);
        out
    }

    /// `user NAME` (a new user and its key) or `key NAME` (another key).
    fn iam_key(&self, what: &str, user: &str) -> Key {
        let v: Value = serde_json::from_str(&self.py(&[what, user], None).stdout_str()).unwrap();
        Key {
            id: v["id"].as_str().unwrap().into(),
            secret: v["secret"].as_str().unwrap().into(),
        }
    }

    /// The user's key ids in IAM.
    fn iam_keys(&self, user: &str) -> Vec<String> {
        serde_json::from_str(&self.py(&["keys", user], None).stdout_str()).unwrap()
    }

    /// The ARN moto gives `key`'s owner: the user's for a key moto made and
    /// still has, `user/moto` for anything else.
    fn whoami(&self, key: &Key) -> String {
        let input = format!("{} {}", key.id, key.secret);
        self.py(&["whoami"], Some(&input))
            .stdout_str()
            .trim()
            .to_string()
    }

    fn add(&self, profile: &str, key: &Key) {
        let mut cmd = self.env.cmd(["add", profile, "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret);
        assert_ok(&self.env.run_cmd(cmd));
    }

    /// The key stored for `profile`, read from the kernel keyring as any
    /// process of the user's could (`keyctl pipe`).
    fn stored(&self, profile: &str) -> Key {
        let script = r#"p=$(keyctl get_persistent @s) || exit 1
for id in $(keyctl rlist "$p"); do
  case "$(keyctl rdescribe "$id" 2>/dev/null)" in
    *":key:$2@$1") exec keyctl pipe "$id" ;;
  esac
done
exit 3"#;
        let mut cmd = self.env.command("keyctl");
        cmd.args(["session", "-", "sh", "-c", script, "stored"])
            .arg(self.env.keyring_service())
            .arg(profile);
        let out = run_with_timeout(cmd, None, TIMEOUT);
        assert_ok(&out);
        let v: Value = serde_json::from_slice(&out.stdout).expect("awsmfa's keyring entry");
        Key {
            id: v["AccessKeyId"].as_str().unwrap().into(),
            secret: v["SecretAccessKey"].as_str().unwrap().into(),
        }
    }

    fn user_arn(&self) -> String {
        format!("arn:aws:iam::{ACCOUNT}:user/{USER}")
    }

    /// The stored key is a key of alice's that moto knows: it works.
    #[track_caller]
    fn assert_stored_works(&self, context: &str) -> Key {
        let stored = self.stored("dev");
        assert_eq!(self.whoami(&stored), self.user_arn(), "{context}");
        assert!(
            self.iam_keys(USER).contains(&stored.id),
            "{context}: {} not in IAM",
            stored.id
        );
        stored
    }

    fn rotate(&self, args: &[&str]) -> Output {
        let out = self.env.run(args);
        assert_no_panic(&out);
        out
    }
}

/// Keyring entries outlive the test otherwise (see core_moto.rs).
impl Drop for World {
    fn drop(&mut self) {
        let _ = self.env.run(["clear"]);
        for p in ["dev", "typed", "broken"] {
            let _ = self.env.run(["remove", p, "--yes"]);
        }
    }
}

/// Where the proxy stops answering: the first request for `action` (and, for
/// GetCallerIdentity, signed with another key than `unless_key`), after
/// passing it on to moto when `forward` — IAM acted, its answer never came.
#[derive(Clone)]
struct Stall {
    action: &'static str,
    unless_key: Option<String>,
    forward: bool,
}

/// A loopback HTTP proxy in front of moto that can hold one request forever,
/// so a test can `kill -9` awsmfa at exactly that step.
struct Proxy {
    server: TinyServer,
    rule: Arc<Mutex<Option<Stall>>>,
    stalled: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

fn form_value(body: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// The access key id a SigV4 request is signed with.
fn signing_key(req: &Request) -> Option<String> {
    let auth = req.header("authorization")?;
    let cred = auth.split("Credential=").nth(1)?;
    Some(cred.split('/').next()?.to_string())
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let rule: Arc<Mutex<Option<Stall>>> = Arc::new(Mutex::new(None));
        let stalled = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (r, s, rel) = (rule.clone(), stalled.clone(), release.clone());
        let server = TinyServer::start(move |req| {
            let action = form_value(&req.body, "Action").unwrap_or_default();
            let stall = r.lock().unwrap().clone().filter(|st| {
                st.action == action
                    && st
                        .unless_key
                        .as_ref()
                        .is_none_or(|k| signing_key(req).as_ref() != Some(k))
            });
            let forward = || {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !["content-length", "connection", "transfer-encoding"]
                            .contains(&k.to_ascii_lowercase().as_str())
                    })
                    .cloned()
                    .collect();
                http_request(
                    &upstream,
                    &req.method,
                    &req.target,
                    &headers,
                    &req.body,
                    TIMEOUT,
                )
            };
            if let Some(st) = stall {
                *r.lock().unwrap() = None;
                if st.forward {
                    let _ = forward();
                }
                s.store(true, Ordering::SeqCst);
                let until = Instant::now() + TIMEOUT;
                while !rel.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Reply::Reset;
            }
            match forward() {
                Ok(resp) => Reply::Respond {
                    status: resp.status,
                    headers: resp
                        .headers
                        .into_iter()
                        .filter(|(k, _)| {
                            !["content-length", "connection", "transfer-encoding"]
                                .contains(&k.to_ascii_lowercase().as_str())
                        })
                        .collect(),
                    body: resp.body,
                },
                Err(_) => Reply::Reset,
            }
        });
        Proxy {
            server,
            rule,
            stalled,
            release,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn stall(&self, stall: Stall) {
        self.stalled.store(false, Ordering::SeqCst);
        self.release.store(false, Ordering::SeqCst);
        *self.rule.lock().unwrap() = Some(stall);
    }

    /// Lets a held request go (its client is gone) and passes everything on again.
    fn release(&self) {
        *self.rule.lock().unwrap() = None;
        self.release.store(true, Ordering::SeqCst);
    }

    fn wait_stalled(&self, child: &mut std::process::Child) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.stalled.load(Ordering::SeqCst) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("awsmfa ended ({status}) before reaching the stalled step");
            }
            assert!(Instant::now() < deadline, "the stall was never reached");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[track_caller]
fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let all = format!("{}{}", out.stdout_str(), out.stderr_str());
    for s in secrets {
        assert!(!all.contains(s), "a secret key was printed\n{}", out.dump());
    }
}

#[test]
fn rotate_replaces_the_key_in_iam_and_the_keyring_with_one_mfa_code() {
    let Some(w) = World::new() else { return };
    // A session cached before is made with the old key: rotate must drop it.
    assert_ok(&w.env.run(["exec", "dev", "--", "true"]));
    assert_eq!(w.mfa.runs(), 1);
    w.env.run_ok(["clear", "dev"]);
    w.env.forget_totp_steps();

    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_ok(&out);
    assert_eq!(w.mfa.runs(), 2, "one MFA code for the whole rotation");
    let new = w.assert_stored_works("after rotate");
    assert_ne!(new.id, w.first.id);
    assert_eq!(w.iam_keys(USER), [new.id.as_str()], "the old key is gone");
    assert_eq!(w.whoami(&w.first), "arn:aws:sts::123456789012:user/moto");
    let err = out.stderr_str();
    assert!(
        err.contains(&format!(
            "rotated the key of dev: {} is stored in keyring, {} is deleted",
            new.id, w.first.id
        )),
        "{}",
        out.dump()
    );
    assert_no_secret(&out, &[&new.secret, &w.first.secret]);

    // Sessions of the old key are gone: the next command mints with the new one.
    let rows: Value = serde_json::from_str(&w.env.run_ok(["list", "--json"]).stdout_str()).unwrap();
    let dev = &rows[0];
    assert_eq!(dev["session"], "none", "{rows:#}");
    assert_eq!(dev["key_age_days"], 0, "{rows:#}");
    assert!(
        dev["key_created"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // The age column, then the roots (none here).
    let list = w.env.run_ok(["list"]);
    assert!(
        list.stdout_str()
            .lines()
            .next()
            .unwrap()
            .ends_with("  KEY AGE  ROOTS")
    );
    assert!(
        list.stdout_str()
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("  0d       -"),
        "{}",
        list.dump()
    );
    w.env.forget_totp_steps();
    let out = w.env.run(["-v", "exec", "dev", "--", "true"]);
    assert_ok(&out);
    assert!(
        out.stderr_str().contains("GetSessionToken"),
        "{}",
        out.dump()
    );
    assert_eq!(w.mfa.runs(), 3);

    // Nothing of either secret on disk.
    w.env.assert_not_on_disk(&[&new.secret, &w.first.secret]);
}

#[test]
fn rotate_without_a_terminal_needs_yes_and_a_role_names_its_source() {
    let Some(w) = World::with_config(&format!(
        "[profile admin]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/admin\nsource_profile = dev\n"
    )) else {
        return;
    };
    let out = w.rotate(&["rotate", "dev"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str()
            .contains("no terminal to confirm at; pass --yes"),
        "{}",
        out.dump()
    );
    let out = w.rotate(&["rotate", "admin", "--yes"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str()
            .contains("rotate that one: `awsmfa rotate dev`"),
        "{}",
        out.dump()
    );
    let out = w.rotate(&["rotate", "--all"]);
    assert_code(&out, 2);
    let out = w.rotate(&["rotate"]);
    assert_code(&out, 2);
    assert_eq!(w.mfa.runs(), 0);
    assert_eq!(w.iam_keys(USER), [w.first.id.as_str()]);
    assert_eq!(w.stored("dev").id, w.first.id);
}

#[test]
fn a_user_with_two_keys_is_refused_and_nothing_is_deleted() {
    let Some(w) = World::new() else { return };
    let other = w.iam_key("key", USER);
    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(
        err.contains("already has two access keys")
            && err.contains(&format!("{} (stored for dev)", w.first.id))
            && err.contains(&format!(
                "aws iam delete-access-key --user-name {USER} --access-key-id {}",
                other.id
            )),
        "{}",
        out.dump()
    );
    let mut keys = w.iam_keys(USER);
    keys.sort();
    let mut want = vec![w.first.id.clone(), other.id.clone()];
    want.sort();
    assert_eq!(keys, want, "nothing deleted, nothing made");
    assert_eq!(w.stored("dev").id, w.first.id);
    assert!(w.mfa.runs() <= 1);
    assert_no_secret(&out, &[&w.first.secret, &other.secret]);
}

/// Starts `rotate dev --yes`, holds it at `stall`, and kills it there with
/// SIGKILL. Returns what it printed.
fn kill_at(w: &World, stall: Stall) -> Output {
    w.proxy.stall(stall);
    let mut cmd = w.env.cmd(["rotate", "dev", "--yes"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut rotate = Reaper(cmd.spawn().expect("start rotate"));
    let stdout = process::Collector::new(rotate.child().stdout.take());
    let stderr = process::Collector::new(rotate.child().stderr.take());
    w.proxy.wait_stalled(rotate.child());
    rotate.child().kill().expect("SIGKILL rotate");
    let status = rotate.child().wait().expect("wait for rotate");
    w.proxy.release();
    Output {
        status,
        stdout: stdout.finish(TIMEOUT),
        stderr: stderr.finish(TIMEOUT),
    }
}

#[test]
fn killed_when_iam_made_the_key_but_never_answered() {
    let Some(w) = World::new() else { return };
    let out = kill_at(
        &w,
        Stall {
            action: "CreateAccessKey",
            unless_key: None,
            forward: true,
        },
    );
    assert_no_secret(&out, &[&w.first.secret]);
    assert_eq!(
        w.assert_stored_works("killed in CreateAccessKey").id,
        w.first.id
    );
    let orphan: Vec<String> = w
        .iam_keys(USER)
        .into_iter()
        .filter(|k| *k != w.first.id)
        .collect();
    assert_eq!(orphan.len(), 1, "IAM made a key whose secret nobody has");
    // The next run names it, and deletes nothing.
    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_code(&out, 1);
    assert!(
        out.stderr_str().contains(&format!(
            "aws iam delete-access-key --user-name {USER} --access-key-id {}",
            orphan[0]
        )),
        "{}",
        out.dump()
    );
    assert_eq!(w.iam_keys(USER).len(), 2);
    assert_eq!(w.assert_stored_works("after the re-run").id, w.first.id);
}

#[test]
fn killed_while_checking_the_new_key_is_finished_by_the_next_run() {
    let Some(w) = World::new() else { return };
    kill_at(
        &w,
        Stall {
            action: "GetCallerIdentity",
            unless_key: Some(w.first.id.clone()),
            forward: false,
        },
    );
    // The old key is still the stored one, and works; the new one waits aside.
    assert_eq!(w.assert_stored_works("killed in the check").id, w.first.id);
    assert_eq!(w.iam_keys(USER).len(), 2);
    let runs = w.mfa.runs();
    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_ok(&out);
    assert!(
        out.stderr_str()
            .contains("finishing the rotation of dev that stopped before storing"),
        "{}",
        out.dump()
    );
    assert_eq!(
        w.mfa.runs(),
        runs,
        "the cached MFA session served the re-run"
    );
    let new = w.assert_stored_works("after the re-run");
    assert_ne!(new.id, w.first.id);
    assert_eq!(w.iam_keys(USER), [new.id.as_str()]);
    assert_no_secret(&out, &[&new.secret]);
    w.env.assert_not_on_disk(&[&new.secret, &w.first.secret]);
}

#[test]
fn killed_while_deleting_the_old_key_is_finished_by_the_next_run() {
    let Some(w) = World::new() else { return };
    kill_at(
        &w,
        Stall {
            action: "DeleteAccessKey",
            unless_key: None,
            forward: false,
        },
    );
    // The new key is stored and works; the old one is still in IAM.
    let new = w.assert_stored_works("killed in DeleteAccessKey");
    assert_ne!(new.id, w.first.id);
    assert_eq!(w.iam_keys(USER).len(), 2);
    // The re-run mints with the new key (moto takes a code twice).
    w.env.forget_totp_steps();
    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_ok(&out);
    assert!(
        out.stderr_str()
            .contains("finishing the rotation of dev that stopped after storing"),
        "{}",
        out.dump()
    );
    assert_eq!(w.assert_stored_works("after the re-run").id, new.id);
    assert_eq!(w.iam_keys(USER), [new.id.as_str()], "the old key is gone");
}

#[test]
fn rotate_all_rotates_only_due_keys_and_skips_typed_codes() {
    // `typed` types its codes (no mfa_process); `broken` holds a key IAM never made.
    let Some(w) = World::with_config(&format!(
        "[profile typed]\nmfa_serial = arn:aws:iam::{ACCOUNT}:mfa/typed\n\n\
         [profile broken]\nmfa_serial = arn:aws:iam::{ACCOUNT}:mfa/broken\nmfa_process = oathtool --totp -b {SEED}\n"
    )) else {
        return;
    };
    let bob = w.iam_key("user", "bob");
    w.add("typed", &bob);

    let out = w.rotate(&["rotate", "--all", "--older-than", "90d"]);
    assert_ok(&out);
    let err = out.stderr_str();
    assert!(
        err.contains("dev: the key is 0 day(s) old, not older than 90d: not rotated"),
        "{}",
        out.dump()
    );
    assert!(
        err.contains("skipped typed: its MFA code is typed")
            && err.contains("`awsmfa rotate typed` at a terminal"),
        "{}",
        out.dump()
    );
    assert!(
        err.contains("skipped broken: no key is stored"),
        "{}",
        out.dump()
    );
    assert_eq!(w.iam_keys(USER), [w.first.id.as_str()]);
    assert_eq!(w.mfa.runs(), 1, "one code to learn the key's age");

    // Known now: not due, without a code or a call.
    let out = w.rotate(&["rotate", "--all", "--older-than", "90d"]);
    assert_ok(&out);
    assert_eq!(w.mfa.runs(), 1);

    // A key that does not work fails the run (exit 1); the others still rotate.
    w.add(
        "broken",
        &Key {
            id: "AKIANOTAKEYOFMOTO000".into(),
            secret: "not-a-secret-moto-made-0123".into(),
        },
    );
    w.env.forget_totp_steps();
    let out = w.rotate(&["rotate", "--all", "--older-than", "0s"]);
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(err.contains("rotated the key of dev"), "{}", out.dump());
    assert!(err.contains("skipped typed"), "{}", out.dump());
    assert!(err.contains("awsmfa: error: broken:"), "{}", out.dump());
    assert!(
        err.contains("1 of 3 profile(s) not rotated: broken"),
        "{}",
        out.dump()
    );
    let new = w.assert_stored_works("after --all");
    assert_ne!(new.id, w.first.id);
    assert_eq!(w.iam_keys(USER), [new.id.as_str()]);
    assert_eq!(
        w.iam_keys("bob"),
        [bob.id.as_str()],
        "typed was not rotated"
    );
    assert_no_secret(&out, &[&new.secret, &bob.secret]);
}

#[test]
fn a_key_in_openbao_is_replaced_by_a_new_kv_version_keeping_its_other_fields() {
    let Some(mut w) = World::new() else { return };
    let Some(bao) = OpenBao::start() else { return };
    bao.kv_put(
        "secret/aws/dev",
        serde_json::json!({
            "access_key_id": w.first.id,
            "secret_access_key": w.first.secret,
            "owner": "jacob",
        }),
    );
    w.env.write_awsmfa_config(&format!(
        "[openbao]\naddress = \"{}\"\n\n[profiles.dev]\nkeys = \"openbao:secret/aws/dev\"\n",
        bao.url()
    ));
    w.env.set("BAO_TOKEN", bao.root_token());
    // Not the keyring's key: the one in OpenBao is rotated.
    w.env.run_ok(["remove", "dev", "--yes"]);

    let out = w.rotate(&["rotate", "dev", "--yes"]);
    assert_ok(&out);
    assert_eq!(w.mfa.runs(), 1);
    let secret = bao.root("GET", "secret/data/aws/dev", None);
    let data = &secret["data"]["data"];
    let new = Key {
        id: data["access_key_id"].as_str().unwrap().into(),
        secret: data["secret_access_key"].as_str().unwrap().into(),
    };
    assert_ne!(new.id, w.first.id);
    assert_eq!(data["owner"], "jacob", "the secret's other fields are kept");
    assert_eq!(secret["data"]["metadata"]["version"], 2);
    assert_eq!(w.whoami(&new), w.user_arn());
    assert_eq!(w.iam_keys(USER), [new.id.as_str()]);
    assert!(
        out.stderr_str()
            .contains("is stored in openbao:secret/aws/dev"),
        "{}",
        out.dump()
    );
    assert_no_secret(&out, &[&new.secret, &w.first.secret]);
    w.env.assert_not_on_disk(&[&new.secret, &w.first.secret]);
}

#[test]
fn a_key_in_1password_is_written_back_through_stdin_never_argv() {
    let Some(mut w) = World::new() else { return };
    // 1Password's side: outside the test root, which is scanned for secrets.
    let store = std::env::temp_dir().join(format!("awsmfa-op-store-{}", unique_suffix()));
    let item = "Private/AWS dev";
    std::fs::write(
        &store,
        format!(
            "{item}|username|STRING|{}\n{item}|credential|CONCEALED|{}\n{item}|notes|CONCEALED|keep me\n",
            w.first.id, w.first.secret
        ),
    )
    .unwrap();
    let log = w.env.root.join("op.log");
    w.env
        .prepend_path(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins"))
        .set("STANDIN_OP_STORE", &store)
        .set("STANDIN_OP_SIGNED_IN", "1")
        .set("STANDIN_LOG", &log);
    w.env
        .write_awsmfa_config(&format!("[profiles.dev]\nkeys = \"op:{item}\"\n"));
    w.env.run_ok(["remove", "dev", "--yes"]);

    let out = w.rotate(&["rotate", "dev", "--yes"]);
    let stored = std::fs::read_to_string(&store).unwrap();
    let _ = std::fs::remove_file(&store);
    assert_ok(&out);
    let field = |label: &str| {
        stored
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{item}|{label}|")))
            .and_then(|rest| rest.split_once('|'))
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    let new = Key {
        id: field("username"),
        secret: field("credential"),
    };
    assert_ne!(new.id, w.first.id);
    assert_eq!(
        field("notes"),
        "keep me",
        "the item's other fields are kept"
    );
    assert_eq!(w.whoami(&new), w.user_arn());
    assert_eq!(w.iam_keys(USER), [new.id.as_str()]);
    assert_eq!(w.mfa.runs(), 1);
    // op was asked to edit the item, and the secret never was on its command line.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("arg edit\n"), "{log}");
    assert!(
        !log.contains(&new.secret) && !log.contains(&w.first.secret),
        "{log}"
    );
    assert_no_secret(&out, &[&new.secret, &w.first.secret]);
    w.env.assert_not_on_disk(&[&new.secret, &w.first.secret]);
}
