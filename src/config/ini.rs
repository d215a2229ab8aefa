//! A small reader for the INI dialect of `~/.aws/config`: sections, `key = value`
//! pairs, `#`/`;` comments and indented sub-properties (`s3 =` blocks). It keeps
//! line numbers so every complaint can point at the line to fix.

use std::path::Path;

#[derive(Debug)]
pub struct Section {
    /// The text between the brackets, trimmed: `profile dev`, `default`.
    pub header: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut in_nested_block = false;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if trimmed.starts_with('[') {
            let Some(header) = trimmed.strip_prefix('[').and_then(|t| t.split_once(']')) else {
                anyhow::bail!(
                    "{}:{line}: section header `{trimmed}` has no closing `]`",
                    path.display()
                );
            };
            let (name, rest) = header;
            let rest = rest.trim();
            if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
                anyhow::bail!(
                    "{}:{line}: unexpected text `{rest}` after section header",
                    path.display()
                );
            }
            sections.push(Section {
                header: name.split_whitespace().collect::<Vec<_>>().join(" "),
                line,
                entries: Vec::new(),
            });
            in_nested_block = false;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            anyhow::bail!(
                "{}:{line}: `{trimmed}` comes before any `[profile NAME]` section",
                path.display()
            );
        };
        // Indented lines under an empty `key =` are sub-properties (`s3 =\n  max_concurrent_requests = 20`),
        // which awsmfa has no use for; they are skipped, not rejected.
        if indented && in_nested_block {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            anyhow::bail!(
                "{}:{line}: expected `key = value` or `[profile NAME]`, found `{}`",
                path.display(),
                trimmed.chars().take(40).collect::<String>()
            );
        };
        let key = key.trim();
        if key.is_empty() {
            anyhow::bail!("{}:{line}: a `= value` line has no key", path.display());
        }
        let value = value.trim();
        in_nested_block = value.is_empty();
        section.entries.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            line,
        });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> anyhow::Result<Vec<Section>> {
        parse(text, Path::new("cfg"))
    }

    #[test]
    fn sections_keys_comments_and_nested_blocks() {
        let s = p("# top\n[default]\nregion = eu-west-1\n\n[profile  dev ]\n; c\ns3 =\n  max = 2\nmfa_serial=arn:x\n")
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].header, "profile dev");
        assert_eq!(s[1].line, 5);
        let keys: Vec<_> = s[1]
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect();
        assert_eq!(keys, [("s3", 7), ("mfa_serial", 9)]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = p("[profile a]\nregion = x\nthis is wrong\n").unwrap_err();
        assert!(
            e.to_string().starts_with("cfg:3: expected `key = value`"),
            "{e}"
        );
        let e = p("[profile a\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:1: section header"), "{e}");
        let e = p("region = x\n").unwrap_err();
        assert!(e.to_string().starts_with("cfg:1:"), "{e}");
    }
}
