//! Reading the file: syntax, unknown keys (all of them, with a suggestion), types (via serde), then
//! the semantic checks; every problem carries the dotted key and the 1-based line.

use crate::validate;
use crate::NodeConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`edge.xdp_mode`); empty for a syntax error or an unreadable file.
    pub key: String,
    /// 1-based line in the file; `None` when the key is not in the file (its default is at fault).
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Why a config was refused: every problem found, each with key and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    problems: Vec<Problem>,
}

impl ConfigError {
    pub(crate) fn new(origin: &str, problems: Vec<Problem>) -> Self {
        ConfigError {
            origin: origin.into(),
            problems,
        }
    }

    /// The problems, in file order of the checks.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The file (or other origin) the problems are in.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem: `origin:line: key: message`, or `origin: key (default): message`
    /// when the key is not in the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match (p.line, p.key.is_empty()) {
                (Some(l), false) => write!(f, "{}:{l}: {}: {}", self.origin, p.key, p.message)?,
                (Some(l), true) => write!(f, "{}:{l}: {}", self.origin, p.message)?,
                (None, false) => write!(f, "{}: {} (default): {}", self.origin, p.key, p.message)?,
                (None, true) => write!(f, "{}: {}", self.origin, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A parsed and validated config, with the lines of its keys for later (runtime) errors.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: NodeConfig,
    origin: String,
    lines: BTreeMap<String, usize>,
}

impl Loaded {
    /// The 1-based line of a dotted key (`edge.interfaces`, a section `edge`, or an array element
    /// `edge.interfaces[1]`); `None` when the file does not set it.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.get(key).copied()
    }

    /// Where the config came from (the path as given, or `parse`'s origin).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// An error about `key` found at run time (e.g. an interface that does not exist), located
    /// like the load errors: `origin:line: key: message`. `key` may name an array element
    /// (`edge.interfaces[1]`): the line is the element's, the key reported is the array's.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let base = key.split('[').next().unwrap_or(key);
        let line = self.line_of(key).or_else(|| self.line_of(base));
        ConfigError::new(
            &self.origin,
            vec![Problem {
                key: base.into(),
                line,
                message: message.into(),
            }],
        )
    }
}

pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            &origin,
            vec![Problem {
                key: String::new(),
                line: None,
                message: format!("cannot read the config file: {e}"),
            }],
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // Where the first bad byte is, as an editor shows it: line and column (in characters).
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let good = std::str::from_utf8(good).expect("valid up to here");
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        let column = good[line_start..].chars().count() + 1;
        let byte = e.as_bytes()[good.len()];
        one(
            &origin,
            "",
            Some(line_at(good, good.len())),
            format!(
                "not UTF-8 text: byte 0x{byte:02x} at column {column} (a config file must be \
                 UTF-8; was it saved in another encoding?)"
            ),
        )
    })?;
    parse(&text, &origin)
}

/// A key (or array element, `path[i]`) seen in the file.
struct Entry {
    /// Dotted path; array elements end in `[i]`.
    path: String,
    /// Key segments (empty for array elements: they are never unknown keys).
    segs: Vec<String>,
    /// Is the value a table (header or inline)?
    is_table: bool,
    /// Is it an array of tables (`[[name]]`)?
    is_array_of_tables: bool,
    /// Byte offset of the key (or element) for its line.
    at: Option<usize>,
    /// The span of the value, to find which key a serde error is about.
    value: Option<Range<usize>>,
}

fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn one(origin: &str, key: &str, line: Option<usize>, message: String) -> ConfigError {
    ConfigError::new(
        origin,
        vec![Problem {
            key: key.into(),
            line,
            message,
        }],
    )
}

pub(crate) fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    // Syntax first: the toml crate's own error has the best message and span; the key of its
    // line, when it has one, says which setting it is about.
    if let Err(e) = text.parse::<toml::Table>() {
        let at = e.span().map(|s| s.start);
        let line = at.map(|a| line_at(text, a));
        let key = at.and_then(|a| key_of_line(text, a));
        let mut message = tidy(e.message());
        if message.contains("number too large to fit in target type") {
            let value = at.map_or("", |a| value_at(text, a));
            message = format!(
                "{value} is too large (a TOML number is at most {}){}",
                i64::MAX,
                key.as_deref()
                    .and_then(validate::number_range)
                    .map_or(String::new(), |(lo, hi)| format!(
                        "; expected a whole number from {lo} to {hi}"
                    ))
            );
        }
        return Err(one(origin, key.as_deref().unwrap_or(""), line, message));
    }
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        one(
            origin,
            "",
            e.span().map(|s| line_at(text, s.start)),
            e.to_string(),
        )
    })?;
    let mut entries = Vec::new();
    walk_table(doc.as_table(), &[], &mut entries);
    let lines: BTreeMap<String, usize> = entries
        .iter()
        .filter_map(|e| e.at.map(|a| (e.path.clone(), line_at(text, a))))
        .collect();

    // Every unknown key at once, each with a suggestion when one is close.
    let schema = toml::Value::try_from(NodeConfig::default()).expect("defaults serialize");
    let mut problems = Vec::new();
    for e in &entries {
        let Some((last, parent)) = e.segs.split_last() else {
            continue;
        };
        let Some(level) = lookup(&schema, parent).and_then(|v| v.as_table()) else {
            continue; // inside an unknown section (reported once, at the section) or a type error
        };
        if let Some(known) = level.get(last) {
            if e.is_array_of_tables && known.is_table() {
                problems.push(Problem {
                    key: e.path.clone(),
                    line: e.at.map(|a| line_at(text, a)),
                    message: format!("[[{}]] is an array of tables; write [{0}]", e.path),
                });
            }
            continue;
        }
        let message = if parent.is_empty() && e.is_table {
            match suggest(last, level.keys()) {
                Some(s) => format!("unknown section (did you mean [{s}]?)"),
                None => format!("unknown section (sections: {})", join(level.keys())),
            }
        } else if parent.is_empty() {
            // A plain value at the top is a key that lost its section header.
            match elsewhere(&schema, last) {
                Some(s) => format!("unknown key (did you mean {s}?)"),
                None => format!(
                    "unknown key (keys belong in a section: {})",
                    join(level.keys())
                ),
            }
        } else {
            let near = suggest(last, level.keys())
                .map(|s| prefixed(parent, s))
                .or_else(|| elsewhere(&schema, last));
            match near {
                Some(s) => format!("unknown key (did you mean {s}?)"),
                None => format!("unknown key (expected one of: {})", join(level.keys())),
            }
        };
        problems.push(Problem {
            key: e.path.clone(),
            line: e.at.map(|a| line_at(text, a)),
            message,
        });
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(origin, problems));
    }

    // Types: serde stops at the first; its span names the value, the index names the key.
    let config: NodeConfig = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let found = span.as_ref().and_then(|s| innermost(&entries, s.start));
        let line = span.map(|s| line_at(text, s.start));
        match found {
            Some(entry) => {
                let (key, msg) = match entry.path.split_once('[') {
                    Some((base, idx)) => (
                        base.to_string(),
                        format!(
                            "entry {}: {}",
                            idx.trim_end_matches(']'),
                            plain_numbers(&tidy(e.message()), base)
                        ),
                    ),
                    None => (
                        entry.path.clone(),
                        plain_numbers(&tidy(e.message()), &entry.path),
                    ),
                };
                one(origin, &key, line, msg)
            }
            None => one(origin, "", line, tidy(e.message())),
        }
    })?;

    let problems: Vec<Problem> = validate::check(&config)
        .into_iter()
        .map(|f| Problem {
            line: f.at.iter().find_map(|k| lines.get(k).copied()),
            key: f.key,
            message: f.message,
        })
        .collect();
    if !problems.is_empty() {
        return Err(ConfigError::new(origin, problems));
    }
    Ok(Loaded {
        config,
        origin: origin.into(),
        lines,
    })
}

/// serde quotes names in backticks (a config file's reader expects TOML's double quotes), and
/// toml's syntax messages span lines; a problem is one line.
fn tidy(message: &str) -> String {
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
        .replace('`', "\"");
    // "expected struct Node" names a Rust type; the reader wrote a value where a section goes.
    match message.find("expected struct ") {
        Some(at) => format!("{}expected a table (a [section])", &message[..at]),
        None => message,
    }
}

/// serde says what type it expected (\"expected u64\"): a reader wants the values the key takes.
fn plain_numbers(message: &str, key: &str) -> String {
    let Some((head, ty)) = message.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let by_type = match ty {
        "u8" => (0, u8::MAX as u64),
        "u16" => (0, u16::MAX as u64),
        "u32" => (0, u32::MAX as u64),
        // TOML numbers stop at i64::MAX.
        "u64" | "usize" => (0, i64::MAX as u64),
        _ => return message.to_string(),
    };
    let (lo, hi) = validate::number_range(key).unwrap_or(by_type);
    // A number in quotes is a string to TOML.
    let quoted = if head.starts_with("invalid type: string") {
        " (without quotes)"
    } else {
        ""
    };
    format!("{head}, expected a whole number from {lo} to {hi}{quoted}")
}

/// The dotted key set on the line holding `offset`, if that line is a plain `key = value`
/// (the section from the closest `[header]` above it).
fn key_of_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.split('.').all(|part| {
                let part = part.trim();
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
    };
    if !bare(key) {
        return None;
    }
    let key: String = key.split('.').map(str::trim).collect::<Vec<_>>().join(".");
    let section = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        let name = l.strip_prefix('[')?.strip_suffix(']')?;
        (!name.starts_with('[')).then(|| name.trim().to_string())
    });
    Some(match section {
        Some(s) if bare(&s) => format!("{s}.{key}"),
        Some(_) => return None,
        None => key,
    })
}

/// The value token at `offset` (up to whitespace, a comma, a bracket or a comment).
fn value_at(text: &str, offset: usize) -> &str {
    let rest = &text[offset.min(text.len())..];
    let end = rest
        .find(|c: char| c.is_whitespace() || ",]}#".contains(c))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn join<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    keys.map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn prefixed(parent: &[String], key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{}.{key}", parent.join("."))
    }
}

fn lookup<'a>(v: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter().try_fold(v, |v, k| v.as_table()?.get(k))
}

/// A key of the same name in another section (`[edge] epoch_seconds` -> `node.epoch_seconds`).
fn elsewhere(schema: &toml::Value, key: &str) -> Option<String> {
    let sections = schema.as_table()?;
    let hits: Vec<String> = sections
        .iter()
        .filter(|(_, t)| t.as_table().is_some_and(|t| t.contains_key(key)))
        .map(|(s, _)| format!("{s}.{key}"))
        .collect();
    (hits.len() == 1).then(|| hits[0].clone())
}

/// The closest known key when it is close enough to be a typo.
fn suggest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let k = norm(key);
    known
        .map(|c| (edit_distance(&k, &norm(c)), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The most specific entry whose value (or key) covers `offset`.
fn innermost(entries: &[Entry], offset: usize) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.value.as_ref().is_some_and(|v| v.contains(&offset)) || e.at == Some(offset))
        .min_by_key(|e| e.value.as_ref().map_or(0, |v| v.len()))
}

fn walk_table(t: &toml_edit::Table, prefix: &[String], out: &mut Vec<Entry>) {
    for (k, _) in t.iter() {
        if let Some((key, item)) = t.get_key_value(k) {
            walk_item(key, item, prefix, out);
        }
    }
}

fn walk_item(
    key: &toml_edit::Key,
    item: &toml_edit::Item,
    prefix: &[String],
    out: &mut Vec<Entry>,
) {
    let mut segs = prefix.to_vec();
    segs.push(key.get().to_string());
    let path = segs.join(".");
    let (is_table, value, header) = match item {
        toml_edit::Item::Table(t) => (true, t.span(), t.span()),
        toml_edit::Item::Value(v) => (v.is_inline_table(), v.span(), None),
        toml_edit::Item::ArrayOfTables(a) => (false, a.span(), None),
        toml_edit::Item::None => return,
    };
    let at = key
        .span()
        .or(header)
        .or_else(|| value.clone())
        .map(|s| s.start);
    out.push(Entry {
        path: path.clone(),
        segs: segs.clone(),
        is_table,
        is_array_of_tables: matches!(item, toml_edit::Item::ArrayOfTables(_)),
        at,
        value,
    });
    match item {
        toml_edit::Item::Table(t) => walk_table(t, &segs, out),
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            for (k, _) in t.iter() {
                if let Some((key, item)) = t.get_key_value(k) {
                    walk_item(key, item, &segs, out);
                }
            }
        }
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                out.push(Entry {
                    path: format!("{path}[{i}]"),
                    segs: Vec::new(),
                    is_table: false,
                    is_array_of_tables: false,
                    at: v.span().map(|s| s.start),
                    value: v.span(),
                });
            }
        }
        _ => {}
    }
}
