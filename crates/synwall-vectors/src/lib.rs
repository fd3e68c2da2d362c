//! Test-vector files for the cookie schemes: recognise a file's scheme from its content, parse it,
//! and check every case and every check in it against `synwall-cookie`, reporting field-level diffs.
//!
//! The schemas are the ones of `shared/vectors/` (see its README). Any file of the same schema is
//! accepted (other seeds, other sizes); fields we do not check are ignored, and an output field that
//! a file omits is simply not compared.

mod freebsd;
mod linux;
mod synwall_v1;
mod util;

use serde_json::Value;
use std::fmt;

/// A scheme a vector file can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `synwall_v1.json` (top-level `"scheme": "synwall-v1"`).
    SynwallV1,
    /// `linux_isn.json` (`meta.scheme = "linux-isn"`).
    LinuxIsn,
    /// `linux_ts.json` (`meta.scheme = "linux-ts"`).
    LinuxTs,
    /// `freebsd.json` (`meta.scheme = "freebsd"`).
    FreeBsd,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::SynwallV1 => "synwall-v1",
            Scheme::LinuxIsn => "linux-isn",
            Scheme::LinuxTs => "linux-ts",
            Scheme::FreeBsd => "freebsd",
        })
    }
}

/// Why a file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but no recognised scheme marker.
    #[error("unrecognised vector file: expected a top-level \"scheme\": \"synwall-v1\" or a \"meta.scheme\" of linux-isn, linux-ts or freebsd")]
    UnknownScheme,
    /// The scheme is known but the content does not fit its schema.
    #[error("{scheme} vectors: {msg}")]
    Schema {
        /// The recognised scheme.
        scheme: Scheme,
        /// What is wrong, with the path to the field.
        msg: String,
    },
}

/// One mismatch between a vector and our computation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where: case id and check index/kind.
    pub location: String,
    /// Which field.
    pub field: String,
    /// The file's value.
    pub expected: String,
    /// Ours.
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n    expected: {}\n    got:      {}",
            self.location, self.field, self.expected, self.got
        )
    }
}

/// The outcome of checking one file. An item is one generation (a case's outputs) or one
/// validation (one check); an item passes when every field it has matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The recognised scheme.
    pub scheme: Scheme,
    /// Items that matched.
    pub passed: usize,
    /// Items with at least one mismatch.
    pub failed: usize,
    /// Every mismatch, in file order.
    pub failures: Vec<Failure>,
}

/// Collects per-item results while a checker walks a file.
pub(crate) struct Tally {
    report: Report,
    item_failed: bool,
}

impl Tally {
    fn new(scheme: Scheme) -> Self {
        Tally {
            report: Report {
                scheme,
                passed: 0,
                failed: 0,
                failures: Vec::new(),
            },
            item_failed: false,
        }
    }

    fn fail(&mut self, loc: &dyn Fn() -> String, field: String, expected: String, got: String) {
        self.item_failed = true;
        self.report.failures.push(Failure {
            location: loc(),
            field,
            expected,
            got,
        });
    }

    /// Compare one field of the current item.
    pub(crate) fn field<T: PartialEq + Show>(
        &mut self,
        loc: &dyn Fn() -> String,
        name: &str,
        expected: T,
        got: T,
    ) {
        if expected != got {
            self.fail(loc, name.to_string(), expected.show(), got.show());
        }
    }

    /// Compare a record of named fields (`None`: no record, e.g. an invalid cookie restores
    /// nothing): each differing field is reported as `name.field`; a record on one side only as
    /// `name`, the record spelled out.
    pub(crate) fn record<T: PartialEq + Fields>(
        &mut self,
        loc: &dyn Fn() -> String,
        name: &str,
        expected: Option<&T>,
        got: Option<&T>,
    ) {
        match (expected, got) {
            (Some(e), Some(g)) => {
                for ((field, e), (_, g)) in e.fields().into_iter().zip(g.fields()) {
                    if e != g {
                        self.fail(loc, format!("{name}.{field}"), e, g);
                    }
                }
            }
            (None, None) => {}
            (e, g) => {
                let spell = |r: Option<&T>| match r {
                    Some(r) => format!("valid: {}", describe(&r.fields())),
                    None => "invalid (nothing restored)".to_string(),
                };
                self.fail(loc, name.to_string(), spell(e), spell(g));
            }
        }
    }

    /// [`Tally::record`] only if the file has the record.
    pub(crate) fn opt_record<T: PartialEq + Fields>(
        &mut self,
        loc: &dyn Fn() -> String,
        name: &str,
        expected: Option<&T>,
        got: &T,
    ) {
        if expected.is_some() {
            self.record(loc, name, expected, Some(got));
        }
    }

    /// Compare a field only if the file has it.
    pub(crate) fn opt_field<T: PartialEq + Show>(
        &mut self,
        loc: &dyn Fn() -> String,
        name: &str,
        expected: Option<T>,
        got: T,
    ) {
        if let Some(e) = expected {
            self.field(loc, name, e, got);
        }
    }

    /// Close the current item.
    pub(crate) fn end_item(&mut self) {
        if self.item_failed {
            self.report.failed += 1;
        } else {
            self.report.passed += 1;
        }
        self.item_failed = false;
    }

    fn finish(self) -> Report {
        self.report
    }
}

/// A value as a mismatch report shows it: numbers and words, `none` for an absent value.
pub(crate) trait Show {
    fn show(&self) -> String;
}

macro_rules! show_display {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
show_display!(u8, u16, u32, u64, usize, bool, str, String);

impl<T: Show + ?Sized> Show for &T {
    fn show(&self) -> String {
        (**self).show()
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> String {
        self.as_ref().map_or_else(|| "none".to_string(), Show::show)
    }
}

/// An output record of a vector file, field by field (the file's field names, shown values).
pub(crate) trait Fields {
    fn fields(&self) -> Vec<(&'static str, String)>;
}

/// `a 1, b true, ...`
fn describe(fields: &[(&'static str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Recognise the scheme of a parsed file.
pub fn detect(v: &Value) -> Result<Scheme, VectorError> {
    if v.get("scheme").and_then(Value::as_str) == Some("synwall-v1") {
        return Ok(Scheme::SynwallV1);
    }
    match v.pointer("/meta/scheme").and_then(Value::as_str) {
        Some("linux-isn") => Ok(Scheme::LinuxIsn),
        Some("linux-ts") => Ok(Scheme::LinuxTs),
        Some("freebsd") => Ok(Scheme::FreeBsd),
        _ => Err(VectorError::UnknownScheme),
    }
}

/// Parse and check a whole file's text.
pub fn check_text(text: &str) -> Result<Report, VectorError> {
    let v: Value = serde_json::from_str(text)?;
    let scheme = detect(&v)?;
    let schema = |e: serde_json::Error| VectorError::Schema {
        scheme,
        msg: e.to_string(),
    };
    let mut t = Tally::new(scheme);
    match scheme {
        Scheme::SynwallV1 => synwall_v1::check(&serde_json::from_value(v).map_err(schema)?, &mut t),
        Scheme::LinuxIsn => linux::check_isn(&serde_json::from_value(v).map_err(schema)?, &mut t),
        Scheme::LinuxTs => linux::check_ts(&serde_json::from_value(v).map_err(schema)?, &mut t),
        Scheme::FreeBsd => freebsd::check(&serde_json::from_value(v).map_err(schema)?, &mut t),
    }
    .map_err(|msg| VectorError::Schema { scheme, msg })?;
    Ok(t.finish())
}
