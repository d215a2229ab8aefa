//! A small reader for the INI dialect of `~/.aws/config`, reading what botocore
//! (the AWS CLI, boto3) reads through Python's `configparser`:
//!
//! - `[section]` headers; `key = value` and `key: value` (the first `=` or `:`
//!   splits), keys lower-cased, values trimmed;
//! - comments: a line whose first non-blank character is `#` or `;` (no inline
//!   comments: `region = x # y` is the value `x # y`, as in botocore);
//! - continuation: a line indented deeper than its key's line continues that
//!   value (joined with `\n`, blank lines kept inside, dropped at the end). This
//!   is how nested blocks are written (`s3 =` + indented `max_concurrent_requests
//!   = 20`); they are read as text and never rejected;
//! - leniency outside awsmfa's sections: a malformed line in a section awsmfa
//!   does not read (`[sso-session x]`, `[services x]`, …) is skipped. In one it
//!   reads, or before any section, it is an error naming `file:line`. So is
//!   text after a used section's `]` other than a comment, which botocore would
//!   drop silently: it is most likely a typo the user wants to hear about.
//!
//! Why not the SDK's own parser (`aws-runtime`'s `env_config`, already in the
//! dependency tree through aws-sdk-sts)? Decision: keep this one, because
//! - it keeps a line number only for its own syntax errors: the parsed
//!   properties carry none, so awsmfa's complaints about a value
//!   (`duration_seconds = soon`) could no longer point at the line to fix;
//! - it differs from botocore where users notice: no `key: value`, inline
//!   `# comments` cut from values, and a malformed line in any section
//!   (`[sso-session]` included) fails the whole file;
//! - its only way in is an async loader (`env_config::source::load`, which
//!   by default reads `~/.aws/credentials` as well and reads a non-UTF-8 file
//!   as empty), so `credential-process`, which reads this file on every call
//!   within a 4 ms budget, would need an executor and more work for less.
//!
//! This reader is a single pass over the text.

use std::path::Path;

#[derive(Debug)]
pub struct Section {
    /// The text between the brackets, runs of blanks made one: `profile dev`, `default`.
    pub header: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug)]
pub struct Entry {
    /// Lower-cased, as botocore reads it.
    pub key: String,
    /// Continuation lines joined with `\n`; a nested block's value starts with one.
    pub value: String,
    pub line: usize,
}

/// `uses(header)`: whether awsmfa reads the section, which makes its malformed
/// lines errors rather than lines to skip.
pub fn parse(text: &str, path: &Path, uses: impl Fn(&str) -> bool) -> anyhow::Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    // Whether the last section is one awsmfa reads.
    let mut strict = false;
    // The indentation of the last entry's line while later lines may continue it.
    let mut open_entry: Option<usize> = None;
    // Blank lines seen inside a value, kept only if the value goes on after them.
    let mut blanks = 0;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            blanks += 1;
            continue;
        }
        if trimmed.starts_with(['#', ';']) {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        if let Some(entry_indent) = open_entry
            && indent > entry_indent
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            for _ in 0..=blanks {
                entry.value.push('\n');
            }
            entry.value.push_str(trimmed);
            blanks = 0;
            continue;
        }
        open_entry = None;
        blanks = 0;
        if let Some(inner) = trimmed.strip_prefix('[') {
            let (name, rest) = inner.split_once(']').unwrap_or((inner, ""));
            let header = name.split_whitespace().collect::<Vec<_>>().join(" ");
            strict = uses(&header);
            if strict && !inner.contains(']') {
                anyhow::bail!(
                    "{}:{line}: section header `{trimmed}` has no closing `]`",
                    path.display()
                );
            }
            let rest = rest.trim();
            if strict && !(rest.is_empty() || rest.starts_with(['#', ';'])) {
                anyhow::bail!(
                    "{}:{line}: unexpected text `{rest}` after section header",
                    path.display()
                );
            }
            sections.push(Section {
                header,
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            anyhow::bail!(
                "{}:{line}: `{trimmed}` comes before any `[profile NAME]` section",
                path.display()
            );
        };
        let split = trimmed
            .split_once(['=', ':'])
            .map(|(key, value)| (key.trim_end(), value.trim_start()))
            .filter(|(key, _)| !key.is_empty());
        let Some((key, value)) = split else {
            if !strict {
                continue;
            }
            if trimmed.starts_with(['=', ':']) {
                anyhow::bail!("{}:{line}: a `= value` line has no key", path.display());
            }
            anyhow::bail!(
                "{}:{line}: expected `key = value` or `[profile NAME]`, found `{}`",
                path.display(),
                trimmed.chars().take(40).collect::<String>()
            );
        };
        section.entries.push(Entry {
            key: key.to_lowercase(),
            value: value.to_string(),
            line,
        });
        open_entry = Some(indent);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every section read strictly except `sso-session` and `services` ones.
    fn p(text: &str) -> anyhow::Result<Vec<Section>> {
        parse(text, Path::new("cfg"), |h| {
            !(h.starts_with("sso-session") || h.starts_with("services"))
        })
    }

    fn entries(s: &Section) -> Vec<(&str, &str, usize)> {
        s.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect()
    }

    #[test]
    fn sections_keys_and_comments() {
        let s = p("# top\n[default]\nregion = eu-west-1\n\n[profile  dev ]\n; c\n  # indented comment\nmfa_serial=arn:x\n")
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].header, "profile dev");
        assert_eq!(s[1].line, 5);
        assert_eq!(entries(&s[0]), [("region", "eu-west-1", 3)]);
        assert_eq!(entries(&s[1]), [("mfa_serial", "arn:x", 8)]);
    }

    /// One case per rule: what the first section of the text holds, as
    /// (key, value, line).
    #[test]
    fn each_rule_reads_as_botocore_does() {
        type Case = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str, usize)],
        );
        let cases: &[Case] = &[
            (
                "a comment after a header is allowed; one after a value is part of it",
                "[profile a] # mine\nregion = x # y\n",
                &[("region", "x # y", 2)],
            ),
            (
                "a colon separates too, and the first separator wins",
                "[profile a]\nmfa_serial: arn:aws:iam::1:mfa/j\nrole_arn = arn:aws:iam::1:role/r\nregion:eu-west-1\n",
                &[
                    ("mfa_serial", "arn:aws:iam::1:mfa/j", 2),
                    ("role_arn", "arn:aws:iam::1:role/r", 3),
                    ("region", "eu-west-1", 4),
                ],
            ),
            (
                "keys are lower-cased, values are not",
                "[profile a]\nMFA_Serial = ARN:X\n",
                &[("mfa_serial", "ARN:X", 2)],
            ),
            (
                "indented lines continue the value above, blank lines inside kept, comments not",
                "[profile a]\ncredential_process = tool\n    --flag\n\n  ; c\n    --other\n\nregion = x\n",
                &[
                    ("credential_process", "tool\n--flag\n\n--other", 2),
                    ("region", "x", 8),
                ],
            ),
            (
                "only lines deeper than their key's continue it; right after a header, one is an entry",
                "[profile a]\n  region = x\n  mfa_serial = y\n",
                &[("region", "x", 2), ("mfa_serial", "y", 3)],
            ),
            (
                "nested blocks are read as text and never rejected",
                "[profile a]\ns3 =\n  max_concurrent_requests = 20\n  not even key value\n  = odd\nregion = x\n",
                &[
                    (
                        "s3",
                        "\nmax_concurrent_requests = 20\nnot even key value\n= odd",
                        2,
                    ),
                    ("region", "x", 6),
                ],
            ),
        ];
        for (rule, text, expected) in cases {
            let s = p(text).unwrap();
            assert_eq!(entries(&s[0]), *expected, "{rule}");
        }
    }

    #[test]
    fn malformed_lines_in_unread_sections_are_skipped() {
        let s = p("[sso-session corp]\nsso_start_url = https://x\nnot a setting\n= no key\n[services dev\nwhatever\n[sso-session y] trailing\n[profile a]\nregion = x\n")
            .unwrap();
        let headers: Vec<_> = s.iter().map(|s| s.header.as_str()).collect();
        assert_eq!(
            headers,
            [
                "sso-session corp",
                "services dev",
                "sso-session y",
                "profile a"
            ]
        );
        assert_eq!(entries(&s[0]), [("sso_start_url", "https://x", 2)]);
        assert_eq!(entries(&s[3]), [("region", "x", 9)]);
    }

    #[test]
    fn errors_in_read_sections_name_the_line() {
        let e = p("[profile a]\nregion = x\nthis is wrong\n").unwrap_err();
        assert!(
            e.to_string().starts_with("cfg:3: expected `key = value`"),
            "{e}"
        );
        let e = p("[profile a\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:1: section header"), "{e}");
        let e = p("[profile a] junk\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:1: unexpected text"), "{e}");
        let e = p("[profile a]\n= x\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:2: a `= value` line"), "{e}");
        // Before any section, no section can excuse it.
        let e = p("region = x\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:1:"), "{e}");
        // After a skipped section, a read one is strict again.
        let e = p("[sso-session s]\njunk\n[profile b]\njunk\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:4:"), "{e}");
    }
}
