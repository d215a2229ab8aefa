//! HTTPS for real. Every other test reaches its stub over plain http://, so only
//! these prove that the rustls clients awsmfa builds (aws-smithy-http-client for
//! STS, ureq for OpenBao) load the platform's roots, which on Linux honour
//! `SSL_CERT_FILE`, verify the server against them, and talk HTTP through the
//! tunnel. A throwaway CA (made with the openssl CLI) signs a certificate for
//! `localhost` and `127.0.0.1`; a TLS front relays the plaintext to the
//! loopback stub.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use serde_json::{Value, json};
use support::http::read_request;
use support::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/dev";
const KEY: &str = "AKIASTUBTLSTEST00001";
const SECRET: &str = "tlslonglivedsecret/0123456789abcdefGHIJK";
/// "Fails within a few seconds": no retry loop, no hang on a rejected handshake.
const FAST: Duration = Duration::from_secs(10);

// --- a throwaway PKI, made by the openssl CLI ------------------------------------

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

struct Pki {
    /// The CA that signed the server certificate (PEM): what `SSL_CERT_FILE` must hold.
    ca: PathBuf,
    /// Another CA, which signed nothing: an unrelated bundle.
    other_ca: PathBuf,
    /// The server certificate (PEM): `localhost` and `127.0.0.1`.
    cert: PathBuf,
    key: PathBuf,
}

/// `openssl ARGS` (split on whitespace) in `dir`, which must succeed.
fn openssl(bin: &Path, dir: &Path, args: &str) {
    let mut cmd = Command::new(bin);
    cmd.args(args.split_whitespace())
        .current_dir(dir)
        .env_remove("OPENSSL_CONF")
        .stdin(std::process::Stdio::null());
    let out = run_with_timeout(cmd, None, TIMEOUT);
    assert!(
        out.status.success(),
        "openssl {args} failed\n{}",
        out.dump()
    );
}

/// A CA and a server certificate it signed, in `dir`; `None` (after the
/// require rule) without the openssl CLI.
fn pki(dir: &Path) -> Option<Pki> {
    let bin = require("the openssl CLI (Debian package openssl)", which("openssl"))?;
    std::fs::create_dir_all(dir).expect("create PKI dir");
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).expect("write openssl.cnf");
    let tag = random_hex(4);
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "other-ca"] {
        openssl(
            &bin,
            dir,
            &format!(
                "req -x509 -config openssl.cnf -extensions ca_ext {new_key} -days 2 \
                 -subj /CN=awsmfa-test-{ca}-{tag} -keyout {ca}.key -out {ca}.pem"
            ),
        );
    }
    openssl(
        &bin,
        dir,
        &format!(
            "req -new -config openssl.cnf {new_key} -subj /CN=localhost \
             -keyout server.key -out server.csr"
        ),
    );
    openssl(
        &bin,
        dir,
        &format!(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x{} -days 2 \
             -extfile openssl.cnf -extensions server_ext -out server.pem",
            random_hex(8)
        ),
    );
    Some(Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

// --- the TLS front -------------------------------------------------------------------

/// One completed handshake, as the server saw it.
#[derive(Debug, Clone)]
struct Handshake {
    /// SNI: the host name asked for (none for an IP address).
    sni: Option<String>,
    alpn: Option<String>,
}

#[derive(Default)]
struct FrontLog {
    handshakes: Vec<Handshake>,
    /// Handshakes that failed, with rustls's reason.
    failures: Vec<String>,
}

/// A loopback listener that terminates TLS and relays the plaintext both ways to
/// `backend`, one thread per connection. It offers ALPN `http/1.1` only: the
/// stubs speak HTTP/1.1.
struct TlsFront {
    addr: SocketAddr,
    log: Arc<Mutex<FrontLog>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsFront {
    fn start(pki: &Pki, backend: SocketAddr) -> TlsFront {
        let chain = CertificateDer::pem_file_iter(&pki.cert)
            .and_then(Iterator::collect)
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_file(&pki.key).expect("server key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        let addr = listener.local_addr().expect("front address");
        let log = Arc::new(Mutex::new(FrontLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let acceptor = thread::Builder::new()
            .name("tls-front-accept".into())
            .spawn(move || {
                for tcp in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, l, s) = (config.clone(), l.clone(), s.clone());
                    thread::spawn(move || relay(tcp, config, backend, &l, &s));
                }
            })
            .expect("spawn TLS front");
        TlsFront {
            addr,
            log,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn lock(&self) -> MutexGuard<'_, FrontLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handshakes(&self) -> Vec<Handshake> {
        self.lock().handshakes.clone()
    }

    fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// The failed handshakes, once there is one: the relay thread may still be
    /// reading the client's last bytes when the client has already exited.
    fn wait_for_failures(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.lock().failures.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        self.failures()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() blocks; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One client connection: the handshake, then plaintext both ways until either
/// side closes. Both sockets have short read timeouts, so a single thread can
/// alternate between them (a rustls connection cannot be split across threads).
fn relay(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    backend: SocketAddr,
    log: &Mutex<FrontLog>,
    stop: &AtomicBool,
) {
    let record = |f: &dyn Fn(&mut FrontLog)| f(&mut log.lock().unwrap_or_else(|p| p.into_inner()));
    let Ok(mut conn) = ServerConnection::new(config) else {
        return;
    };
    let poll = Some(Duration::from_millis(2));
    if tcp.set_read_timeout(poll).is_err() {
        return;
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut plain: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        while conn.wants_write() {
            if conn.write_tls(&mut tcp).is_err() {
                return;
            }
        }
        let mut client_gone = false;
        if conn.wants_read() {
            match conn.read_tls(&mut tcp) {
                Ok(0) => client_gone = true,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // Send our alert, if any, then give up on this connection.
                        let _ = conn.write_tls(&mut tcp);
                        let handshaking = conn.is_handshaking();
                        record(&|l| {
                            if handshaking {
                                l.failures.push(e.to_string());
                            }
                        });
                        return;
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return,
            }
        }
        if conn.is_handshaking() {
            if client_gone {
                record(&|l| l.failures.push("client left during the handshake".into()));
                return;
            }
            continue;
        }
        let backend = match &mut plain {
            Some(b) => b,
            None => {
                let hs = Handshake {
                    sni: conn.server_name().map(str::to_string),
                    alpn: conn
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                };
                record(&|l| l.handshakes.push(hs.clone()));
                let Ok(b) = TcpStream::connect(backend) else {
                    return;
                };
                if b.set_read_timeout(poll).is_err() {
                    return;
                }
                plain.insert(b)
            }
        };
        // Client → backend.
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => return, // close_notify
                Ok(n) => {
                    if backend.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if client_gone {
            return;
        }
        // Backend → client.
        match backend.read(&mut buf) {
            Ok(0) => {
                conn.send_close_notify();
                while conn.wants_write() {
                    if conn.write_tls(&mut tcp).is_err() {
                        break;
                    }
                }
                return;
            }
            Ok(n) => {
                if conn.writer().write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

// --- a tiny OpenBao ----------------------------------------------------------------

/// Answers what `doctor` asks OpenBao with a token: `sys/health` and
/// `auth/token/lookup-self`. Plain HTTP; put a [`TlsFront`] before it.
struct Bao {
    addr: SocketAddr,
    /// (method, path) of every request.
    requests: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Bao {
    fn start(token: &str) -> Bao {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind OpenBao stand-in");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, token) = (requests.clone(), stop.clone(), token.to_string());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let (r, s, token) = (r.clone(), s.clone(), token.clone());
                    thread::spawn(move || serve_bao(stream, &r, &s, &token));
                }
            }
        });
        Bao {
            addr,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn serve_bao(
    mut stream: TcpStream,
    requests: &Mutex<Vec<(String, String)>>,
    stop: &AtomicBool,
    token: &str,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + TIMEOUT;
    let keep_going = || !stop.load(Ordering::SeqCst) && Instant::now() < deadline;
    let mut buf = Vec::new();
    // Keep-alive: ureq reuses the connection for the second call.
    while let Ok(Some(req)) = read_request(&mut stream, &mut buf, &keep_going) {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let authorized = req.header("x-vault-token") == Some(token);
        let (status, body) = match (req.method.as_str(), path.as_str()) {
            ("GET", "/v1/sys/health") => (
                200,
                json!({"initialized": true, "sealed": false, "standby": false, "version": "2.7.2"}),
            ),
            ("GET", "/v1/auth/token/lookup-self") if authorized => {
                (200, json!({"data": {"policies": ["default"], "ttl": 3600}}))
            }
            ("GET", "/v1/auth/token/lookup-self") => {
                (403, json!({"errors": ["permission denied"]}))
            }
            _ => (404, json!({"errors": []})),
        };
        requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((req.method.clone(), path));
        let body = body.to_string();
        let reason = match status {
            200 => "OK",
            403 => "Forbidden",
            _ => "Not Found",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body.as_bytes()).is_err()
        {
            return;
        }
        if req.wants_close() {
            return;
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

// --- the world -----------------------------------------------------------------------

/// An STS stub behind a TLS front, and an Env with a `dev` profile whose key is
/// stored and whose codes come from oathtool. `SSL_CERT_FILE` is left to the test.
struct World {
    // Dropped first: no connection is relayed to a stopped stub.
    front: TlsFront,
    stub: StsStub,
    env: Env,
    pki: Pki,
}

impl World {
    fn new() -> Option<World> {
        if !keyutils_available() {
            return None;
        }
        require("oathtool (Debian package oathtool)", which("oathtool"))?;
        let env = Env::new();
        let pki = pki(&env.root.join("pki"))?;
        let stub = StsStub::start();
        stub.add_user(KEY, SECRET).add_mfa(SERIAL, SEED);
        let front = TlsFront::start(&pki, stub.addr());
        env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n\
             mfa_process = oathtool --totp -b {SEED}\n"
        ));
        let mut cmd = env.cmd(["add", "dev", "--from-env"]);
        cmd.env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET);
        assert_ok(&env.run_cmd(cmd));
        Some(World {
            front,
            stub,
            env,
            pki,
        })
    }

    /// `https://HOST:PORT` of the front, set as `AWS_ENDPOINT_URL_STS`.
    fn use_host(&mut self, host: &str) -> String {
        let url = format!("https://{host}:{}", self.front.port());
        self.env.set_sts_endpoint(&url);
        url
    }
}

/// credential-process through TLS, trusting the test CA via SSL_CERT_FILE.
fn mints_over_https(host: &str, sni: Option<&str>) {
    let Some(mut w) = World::new() else { return };
    let url = w.use_host(host);
    let ca = w.pki.ca.clone();
    w.env.set("SSL_CERT_FILE", &ca);

    let out = w.env.run(["credential-process", "dev"]);
    assert_no_panic(&out);
    assert_ok(&out);
    let issued = w.stub.issued();
    assert_eq!(issued.len(), 1, "{issued:?}\n{}", out.dump());
    let i = &issued[0];
    let printed: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", out.dump()));
    assert_eq!(printed["AccessKeyId"], i.access_key_id.as_str());
    assert_eq!(printed["SecretAccessKey"], i.secret_access_key.as_str());
    assert_eq!(printed["SessionToken"], i.session_token.as_str());

    // Exactly one GetSessionToken, and it came through the front (the only
    // address awsmfa knows), addressed to the https host.
    assert_eq!(w.stub.calls("GetSessionToken"), 1);
    assert_eq!(w.stub.total_calls(), 1);
    let req = w.stub.last_request().expect("a request");
    let host_header = support::http::header(&req.headers, "host").unwrap_or("");
    assert_eq!(host_header, url.trim_start_matches("https://"), "{req:?}");
    let handshakes = w.front.handshakes();
    assert!(!handshakes.is_empty(), "no TLS handshake reached the front");
    assert!(
        w.front.failures().is_empty(),
        "failed handshakes: {:?}",
        w.front.failures()
    );
    for hs in &handshakes {
        assert_eq!(hs.sni.as_deref(), sni, "{hs:?}");
        assert_eq!(hs.alpn.as_deref(), Some("http/1.1"), "{hs:?}");
    }
}

/// credential-process through TLS, *not* trusting the test CA.
fn refuses_an_untrusted_certificate(bundle: impl FnOnce(&World) -> PathBuf) {
    let Some(mut w) = World::new() else { return };
    let url = w.use_host("localhost");
    let bundle = bundle(&w);
    w.env.set("SSL_CERT_FILE", &bundle);

    let start = Instant::now();
    let out = w.env.run(["credential-process", "dev"]);
    let took = start.elapsed();
    assert_no_panic(&out);
    assert_code(&out, 1);
    let err = out.stderr_str();
    assert!(
        err.contains("cannot reach STS") && err.contains(&url),
        "the message should say STS is unreachable and name {url}\n{}",
        out.dump()
    );
    assert!(
        err.contains("invalid peer certificate"),
        "the message should give the reason\n{}",
        out.dump()
    );
    assert!(out.stdout.is_empty(), "{}", out.dump());
    assert!(took < FAST, "took {took:?}\n{}", out.dump());
    assert_eq!(w.stub.total_calls(), 0, "{:?}", w.stub.requests());
    assert!(
        w.front.handshakes().is_empty(),
        "{:?}",
        w.front.handshakes()
    );
    // It was the certificate that was refused, not a connection that failed.
    let failures = w.front.wait_for_failures();
    assert!(
        !failures.is_empty(),
        "no handshake was attempted\n{}",
        out.dump()
    );
    assert!(
        failures.iter().all(|f| f.contains("UnknownCA")),
        "{failures:?}\n{}",
        out.dump()
    );
    // Refused once, not retried: the same certificate would be refused again.
    // (A moment for a relay thread still recording a last failure.)
    thread::sleep(Duration::from_millis(300));
    let failures = w.front.failures();
    assert_eq!(failures.len(), 1, "retried: {failures:?}\n{}", out.dump());
}

// --- STS -------------------------------------------------------------------------------

#[test]
fn sts_over_https_localhost_trusts_ssl_cert_file() {
    mints_over_https("localhost", Some("localhost"));
}

#[test]
fn sts_over_https_ip_address_trusts_ssl_cert_file() {
    // No SNI for an IP address; the certificate's IP subjectAltName must match.
    mints_over_https("127.0.0.1", None);
}

#[test]
fn sts_over_https_refuses_a_certificate_from_an_unrelated_ca() {
    refuses_an_untrusted_certificate(|w| w.pki.other_ca.clone());
}

#[test]
fn sts_over_https_refuses_any_certificate_with_an_empty_bundle() {
    refuses_an_untrusted_certificate(|w| w.env.write_file("empty.pem", ""));
}

// --- OpenBao ---------------------------------------------------------------------------

/// An Env whose `dev` profile takes its keys from OpenBao at `https://localhost:PORT`,
/// a [`Bao`] behind a TLS front, and the token doctor checks.
struct BaoWorld {
    // Dropped first: no connection is relayed to a stopped Bao.
    front: TlsFront,
    bao: Bao,
    env: Env,
    pki: Pki,
    _stub: StsStub,
    url: String,
}

impl BaoWorld {
    fn new() -> Option<BaoWorld> {
        let mut env = Env::new();
        let pki = pki(&env.root.join("pki"))?;
        let token = format!("tok-{}", random_hex(12));
        let bao = Bao::start(&token);
        let front = TlsFront::start(&pki, bao.addr);
        let url = format!("https://localhost:{}", front.port());
        // doctor checks that the STS endpoint answers a TCP connect.
        let stub = StsStub::start();
        env.set_sts_endpoint(&stub.url());
        env.set("BAO_TOKEN", &token);
        // Codes typed at a terminal: doctor only warns that there is none.
        env.write_aws_config(&format!(
            "[profile dev]\nregion = us-east-1\nmfa_serial = {SERIAL}\n\
             credential_process = awsmfa credential-process dev\n"
        ));
        env.write_awsmfa_config(&format!(
            "[openbao]\naddress = \"{url}\"\n\n[profiles.dev]\nkeys = \"openbao:secret/aws/dev\"\n"
        ));
        Some(BaoWorld {
            front,
            bao,
            env,
            pki,
            _stub: stub,
            url,
        })
    }

    /// doctor's line about the OpenBao keys of `dev`.
    fn line(&self, out: &Output) -> String {
        let stdout = out.stdout_str();
        stdout
            .lines()
            .find(|l| l.contains("profile dev: ") && l.contains("secret/aws/dev"))
            .unwrap_or_else(|| panic!("no OpenBao line from doctor\n{}", out.dump()))
            .to_string()
    }
}

#[test]
fn openbao_over_https_trusts_ssl_cert_file() {
    let Some(mut w) = BaoWorld::new() else { return };
    let ca = w.pki.ca.clone();
    w.env.set("SSL_CERT_FILE", &ca);

    let out = w.env.run(["doctor"]);
    assert_no_panic(&out);
    assert_eq!(
        w.line(&out),
        format!(
            "ok    profile dev: OpenBao at {} for keys from secret/aws/dev: token valid",
            w.url
        ),
        "\n{}",
        out.dump()
    );
    assert_eq!(
        w.bao.requests(),
        [
            ("GET".to_string(), "/v1/sys/health".to_string()),
            ("GET".to_string(), "/v1/auth/token/lookup-self".to_string()),
        ]
    );
    let handshakes = w.front.handshakes();
    assert!(!handshakes.is_empty(), "no TLS handshake reached the front");
    for hs in &handshakes {
        assert_eq!(hs.sni.as_deref(), Some("localhost"), "{hs:?}");
    }
    assert!(w.front.failures().is_empty(), "{:?}", w.front.failures());
    // Nothing else fails either, but the keyring where there is none (no keyutils).
    let stdout = out.stdout_str();
    let fails: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL") && !l.contains(" keyring: "))
        .collect();
    assert!(fails.is_empty(), "{fails:?}\n{}", out.dump());
}

/// doctor against OpenBao through TLS, *not* trusting the test CA; `reason`
/// is what the message must give as the cause.
fn bao_refuses_an_untrusted_certificate(bundle: impl FnOnce(&BaoWorld) -> PathBuf, reason: &str) {
    let Some(mut w) = BaoWorld::new() else { return };
    let bundle = bundle(&w);
    w.env.set("SSL_CERT_FILE", &bundle);

    let start = Instant::now();
    let out = w.env.run(["doctor"]);
    let took = start.elapsed();
    assert_no_panic(&out);
    assert_code(&out, 1);
    let line = w.line(&out);
    let expected = format!(
        "FAIL  profile dev: keys from secret/aws/dev: cannot reach OpenBao at {}",
        w.url
    );
    assert!(line.starts_with(&expected), "{line}\n{}", out.dump());
    assert!(line.contains(reason), "{line}\n{}", out.dump());
    assert!(took < FAST, "took {took:?}\n{}", out.dump());
    assert!(w.bao.requests().is_empty(), "{:?}", w.bao.requests());
    // A connection came, and no handshake completed. (ureq drops it without
    // sending an alert, so the front cannot see the reason.)
    assert!(
        w.front.handshakes().is_empty(),
        "{:?}",
        w.front.handshakes()
    );
    assert!(
        !w.front.wait_for_failures().is_empty(),
        "no handshake was attempted\n{}",
        out.dump()
    );
}

#[test]
fn openbao_over_https_refuses_a_certificate_from_an_unrelated_ca() {
    bao_refuses_an_untrusted_certificate(
        |w| w.pki.other_ca.clone(),
        "invalid peer certificate: UnknownIssuer",
    );
}

#[test]
fn openbao_over_https_refuses_any_certificate_with_an_empty_bundle() {
    bao_refuses_an_untrusted_certificate(
        |w| w.env.write_file("empty.pem", ""),
        "No CA certificates were loaded",
    );
}
