//! Property tests for every parser of outside input, through the library: the
//! `~/.aws/config` reader, config.toml, a repository's `.awsmfa.toml`, and the
//! secrets-manager hand-over. Whatever the bytes, each one answers with a value
//! or an error — never a panic — and what it accepts keeps awsmfa's own rules
//! (names in their character sets, errors that name file and line).
//!
//! Inputs are built from fragments of each format mixed with arbitrary text, so
//! the cases reach deep into the grammar rather than failing at the first byte.

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};

use awsmfa::config::AwsConfig;
use awsmfa::config::names::{is_command_name, is_profile_name};
use awsmfa::config::settings::{Settings, parse_root_file};
use proptest::prelude::*;

fn text_from(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(fragments).prop_map(str::to_string),
        1 => "\\PC{0,6}",
        1 => prop::sample::select(&["\n", "\r\n", "\t", " ", "\u{0}", "\u{1b}", "\u{202e}"][..])
            .prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

const INI: &[&str] = &[
    "[profile ",
    "[default]",
    "[sso-session x]",
    "[services s]",
    "]",
    "\n",
    "\n  ",
    "=",
    ":",
    " = ",
    "region",
    "mfa_serial",
    "role_arn",
    "source_profile",
    "duration_seconds",
    "session_ttl",
    "endpoint_url",
    "mfa_process",
    "credential_process",
    "s3 =\n  x = 1",
    "#",
    ";",
    "90m",
    "3600",
    "-1",
    "99999999999999999999",
    "arn:aws:iam::1:mfa/x",
    "dev",
];

const TOML: &[&str] = &[
    "[roots.",
    "[roots.\"",
    "[profiles.",
    "[openbao]",
    "]",
    "\"",
    "\n",
    " = ",
    "profile",
    "wrap",
    "refresh_before",
    "doppler",
    "infisical",
    "{ project_id = \"p\", env = \"e\" }",
    "server",
    "min_remaining",
    "mfa",
    "keys",
    "session_ttl",
    "[\"tofu\", \"cd\"]",
    "[",
    ",",
    "true",
    "\"15m\"",
    "\"a/b\"",
    "\"x;y\"",
    "\"tf-x\"",
    "'",
    "#",
    "\\n",
    "\\u0000",
    "~/",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn aws_config_reader_never_panics(text in text_from(INI)) {
        let path = PathBuf::from("/h/.aws/config");
        match AwsConfig::parse(&text, path) {
            Ok(cfg) => {
                for p in &cfg.profiles {
                    prop_assert!(p.line >= 1);
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/h/.aws/config"), "{}", msg);
            }
        }
    }

    #[test]
    fn config_toml_keeps_its_name_rules(text in text_from(TOML)) {
        match Settings::parse(&text, PathBuf::from("/c/config.toml")) {
            Ok(s) => {
                prop_assert!(s.wrap.iter().all(|w| is_command_name(w)), "{:?}", s.wrap);
                prop_assert!(s.profiles.keys().all(|p| is_profile_name(p)));
                prop_assert!(s.roots.values().all(|r| is_profile_name(&r.profile)));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/c/config.toml"), "{}", msg);
            }
        }
    }

    #[test]
    fn root_files_keep_their_name_rules(text in text_from(TOML)) {
        let path = Path::new("/r/.awsmfa.toml");
        match parse_root_file(&text, path) {
            Ok(root) => {
                prop_assert!(is_profile_name(&root.profile), "{:?}", root.profile);
                // Only the user's own config.toml decides how sessions are served.
                prop_assert!(root.server.is_none() && root.min_remaining.is_none());
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.starts_with("/r/.awsmfa.toml"), "{}", msg);
            }
        }
    }

    /// Whatever a secrets manager leaves on the descriptor, the inner awsmfa
    /// refuses it (a nonce it did not write cannot match) without a panic.
    #[test]
    fn the_chain_hand_over_refuses_what_it_did_not_send(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\{\"v\":1,\"nonce\":\"[0-9a-f]{0,40}\",\"profile\":\"dev\".{0,80}".prop_map(String::into_bytes),
        ]
    ) {
        let (read, mut write) = std::io::pipe().expect("pipe");
        write.write_all(&bytes).expect("fill pipe");
        drop(write);
        let fd = read.into_raw_fd();
        let arg = format!("{fd}:{}", "ab".repeat(16));
        let result = awsmfa::exec::receive_handover(&arg, "dev");
        prop_assert!(result.is_err());
    }
}
