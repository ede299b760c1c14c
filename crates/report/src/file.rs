//! Reading a report back: the file's path and the failing field's whole path in every error.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A report that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file cannot be read.
    #[error("{path}: {cause}")]
    Io {
        /// The report.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not the report it should be: a field missing, of the wrong type, or not JSON.
    #[error("{path}: {}{message}; it was not written by this version of Lopper, or was edited", field.as_deref().map(|f| format!("at `{f}`: ")).unwrap_or_default())]
    Field {
        /// The report.
        path: PathBuf,
        /// Where in the file (`rounds[0].after_pruning`), when not at its top.
        field: Option<String>,
        /// What is wrong (serde's words: "missing field `accuracy` at line 9 column 5").
        message: String,
    },
    /// A CSV file that is not the table it should be.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        message: String,
    },
}

/// Reads the report at `path` as a `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ReportError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse(path, &text)
}

/// Parses `text` (the contents of `path`) as a `T`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ReportError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        ReportError::Field {
            path: path.to_path_buf(),
            field: (field != ".").then_some(field),
            message: e.into_inner().to_string(),
        }
    })
}

/// The report as the pretty-printed JSON Lopper writes (with a final newline).
pub fn to_json<T: Serialize>(report: &T) -> String {
    // Reports hold strings, numbers, maps with string keys and sequences: serialising them
    // cannot fail, and a failure would be a bug in this crate's types, not the user's input.
    match serde_json::to_string_pretty(report) {
        Ok(text) => text + "\n",
        Err(e) => unreachable!("a report type failed to serialise: {e}"),
    }
}

/// Deserialises an `Option` field that must be present (as `null` when empty): serde's
/// default would read a missing field as `None`, the quiet default these types exist to
/// refuse.
pub(crate) fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d)
}
