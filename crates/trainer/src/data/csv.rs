//! A CSV reader for numeric tables with a header row and a named target column.
//!
//! Fields are split by the `csv` crate, so a quoted field may hold commas, quotes and line
//! breaks (`"setosa, var."` is one class label). Every rejected row names the file, line and
//! column, because a researcher's CSV is usually fine except for one line somewhere in the
//! middle.

use std::collections::BTreeMap;
use std::path::Path;

use super::{DataError, Dataset, Targets};
use crate::config::TaskKind;

/// Reads `path`. The target is the column named `target` (default: the last column); for
/// classification its values (numbers or names) are mapped to classes in sorted order.
pub fn read_csv(path: &Path, target: Option<&str>, task: TaskKind) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    parse_csv(&text, path, target, task)
}

/// A field quoted after a space (`1, "cat"`): the csv crate unquotes only a quote that opens
/// the field, so the quotes left after trimming are removed here.
fn unquote(field: &str) -> String {
    match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\"").trim().to_string(),
        None => field.to_string(),
    }
}

/// The non-blank records of `text` with the line each starts on, fields trimmed.
fn records(text: &str) -> impl Iterator<Item = Result<(usize, Vec<String>), (usize, String)>> + '_ {
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Rows of the wrong length are reported by us, with the line and the header's count.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // The crate's own line count skips blank lines; the byte offset is exact.
    let newlines: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // A record's position is where the reader started on it, before any blank lines it skipped.
    let bytes = text.as_bytes();
    let line_of = move |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let at = usize::try_from(p.byte())
                .unwrap_or(bytes.len())
                .min(bytes.len());
            let start = bytes[at..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(at, |k| at + k);
            newlines.partition_point(|&n| n < start) + 1
        })
    };
    reader.into_records().filter_map(move |r| match r {
        Ok(rec) => {
            let line = line_of(rec.position());
            // A quote opened and never closed swallows the lines after it into one field.
            if rec.iter().any(|f| f.contains(['\n', '\r'])) {
                let message = "a quoted field runs past the end of its line: an unbalanced `\"`";
                return Some(Err((line, message.into())));
            }
            let fields: Vec<String> = rec.iter().map(unquote).collect();
            let blank = fields.len() == 1 && fields[0].is_empty();
            (!blank).then_some(Ok((line, fields)))
        }
        Err(e) => {
            let line = line_of(e.position());
            Some(Err((line, e.to_string())))
        }
    })
}

/// The header's column names and which of them is the target, shared by every row's parsing.
struct Columns<'a> {
    names: &'a [&'a str],
    target: usize,
}

/// Parses CSV text as if read from `path`.
pub fn parse_csv(
    text: &str,
    path: &Path,
    target: Option<&str>,
    task: TaskKind,
) -> Result<Dataset, DataError> {
    let err = |line: usize, column: usize, message: String| DataError::Csv {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let mut rows = records(text).map(|r| r.map_err(|(line, message)| err(line, 1, message)));
    let (_, names) = rows
        .next()
        .ok_or_else(|| err(1, 1, "the file is empty; expected a header row".into()))??;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let columns = Columns {
        target: target_column(&names, target, &err)?,
        names: &names,
    };
    let n_features = names.len() - 1;
    let mut x = Vec::new();
    let mut raw_targets: Vec<(usize, String)> = Vec::new();
    for row in rows {
        let (line_no, fields) = row?;
        parse_row(line_no, &fields, &columns, (&mut x, &mut raw_targets), &err)?;
    }
    if raw_targets.is_empty() {
        return Err(err(2, 1, "no data rows after the header".into()));
    }
    let y = match task {
        TaskKind::Regression => real_targets(&raw_targets, &columns, &err)?,
        TaskKind::Classification => classes(&raw_targets, path, columns.target, &names, &err)?,
    };
    Ok(Dataset { x, n_features, y })
}

/// The target's column index, checked against the header first, so that a file read with the
/// wrong separator or target name fails on line 1 with the columns it does have.
fn target_column(
    names: &[&str],
    target: Option<&str>,
    err: &impl Fn(usize, usize, String) -> DataError,
) -> Result<usize, DataError> {
    if names.len() < 2 {
        return Err(err(
            1,
            1,
            "the header has fewer than two columns (need features and a target); is the file comma-separated?".into(),
        ));
    }
    match target {
        Some(t) => names.iter().position(|n| *n == t).ok_or_else(|| {
            err(
                1,
                1,
                format!(
                    "no column named `{t}` for the target; columns: {}",
                    names.join(", ")
                ),
            )
        }),
        None => Ok(names.len() - 1),
    }
}

/// One data row: its features are appended to `out.0` and its raw target (with the line, for
/// later messages) to `out.1`, so that a bad field is reported by line and column.
fn parse_row(
    line_no: usize,
    fields: &[String],
    columns: &Columns<'_>,
    out: (&mut Vec<f32>, &mut Vec<(usize, String)>),
    err: &impl Fn(usize, usize, String) -> DataError,
) -> Result<(), DataError> {
    let (x, raw_targets) = out;
    let names = columns.names;
    if fields.len() != names.len() {
        return Err(err(
            line_no,
            fields.len().min(names.len()) + 1,
            format!(
                "expected {} fields as in the header, found {}",
                names.len(),
                fields.len()
            ),
        ));
    }
    for (j, f) in fields.iter().enumerate() {
        if j == columns.target {
            raw_targets.push((line_no, f.to_string()));
            continue;
        }
        let v: f32 = f.parse().map_err(|_| {
            err(
                line_no,
                j + 1,
                format!("column `{}`: `{f}` is not a number", names[j]),
            )
        })?;
        if !v.is_finite() {
            return Err(err(
                line_no,
                j + 1,
                format!("column `{}`: `{f}` is not a finite number", names[j]),
            ));
        }
        x.push(v);
    }
    Ok(())
}

/// Regression targets: every value must be a finite number, and a bad one is reported on its
/// own line in the target column.
fn real_targets(
    raw: &[(usize, String)],
    columns: &Columns<'_>,
    err: &impl Fn(usize, usize, String) -> DataError,
) -> Result<Targets, DataError> {
    let (col, name) = (columns.target, columns.names[columns.target]);
    let values = raw
        .iter()
        .map(|(line, v)| match v.parse::<f32>() {
            Ok(t) if t.is_finite() => Ok(t),
            Ok(_) => Err(err(
                *line,
                col + 1,
                format!("target `{name}`: `{v}` is not a finite number"),
            )),
            Err(_) => Err(err(
                *line,
                col + 1,
                format!("target `{name}`: `{v}` is not a number"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(Targets::Real(values))
}

/// Class indices for the target column. Numeric labels are classes by value, so `1`, `1.0` and
/// `1e0` are one class, sorted numerically; a non-finite number is an error; otherwise labels
/// are names, sorted alphabetically.
fn classes(
    raw: &[(usize, String)],
    path: &Path,
    target_col: usize,
    names: &[&str],
    err: &impl Fn(usize, usize, String) -> DataError,
) -> Result<Targets, DataError> {
    let numbers: Option<Vec<f64>> = raw.iter().map(|(_, v)| v.parse::<f64>().ok()).collect();
    let keys: Vec<String> = match &numbers {
        Some(values) => {
            if let Some(((line, v), _)) = raw.iter().zip(values).find(|(_, n)| !n.is_finite()) {
                return Err(err(
                    *line,
                    target_col + 1,
                    format!("target `{}`: `{v}` is not a class label", names[target_col]),
                ));
            }
            // One key per value: -0 and 0 are one class too.
            values.iter().map(|n| format!("{}", n + 0.0)).collect()
        }
        None => raw.iter().map(|(_, v)| v.clone()).collect(),
    };
    let mut classes: Vec<(f64, &str)> = keys
        .iter()
        .zip(
            numbers
                .iter()
                .flatten()
                .copied()
                .chain(std::iter::repeat(0.0)),
        )
        .map(|(k, n)| (n, k.as_str()))
        .collect();
    classes.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    classes.dedup_by(|a, b| a.1 == b.1);
    if classes.len() < 2 {
        return Err(DataError::Unusable(format!(
            "{}: target column `{}` has a single class; classification needs two or more",
            path.display(),
            names[target_col]
        )));
    }
    let index: BTreeMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (*c, i as u32))
        .collect();
    Ok(Targets::Classes {
        labels: keys.iter().map(|k| index[k.as_str()]).collect(),
        n_classes: classes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dataset, DataError> {
        parse_csv(
            text,
            Path::new("t.csv"),
            Some("y"),
            TaskKind::Classification,
        )
    }

    #[test]
    fn reads_features_and_maps_labels_in_order() {
        let d = parse("a,y,b\n1,10,2\n3,2,4\n5,10,6\n").unwrap();
        assert_eq!(d.x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.labels().unwrap(), &[1, 0, 1]);
        assert_eq!(d.n_features, 2);
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let e = parse("a,b,y\n1,2,0\n1,x,1\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv:3:2: column `b`: `x` is not a number");
        let e = parse("a,b,y\n1,2,0\n1,2\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv:3:3: expected 3 fields as in the header, found 2");
        let e = parse("a,b,c\n1,2,0\n").unwrap_err().to_string();
        assert!(e.contains("no column named `y`"), "{e}");
    }

    #[test]
    fn quoted_fields_may_hold_commas_and_blank_lines_are_skipped() {
        let d = parse("\"a, first\",\"y\"\n1,\"cat, big\"\n\n 2 ,dog\r\n3,\"cat, big\"\n").unwrap();
        assert_eq!(d.x, vec![1.0, 2.0, 3.0]);
        assert_eq!(d.labels().unwrap(), &[0, 1, 0]);
        let e = parse("a,y\n1,0\n\n\"2,5\",1\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv:4:1: column `a`: `2,5` is not a number");
        let spaced = parse("\"a\", \"y\"\n1, \"cat\"\n2, dog\n").unwrap();
        assert_eq!(spaced.labels().unwrap(), &[0, 1]);
        let e = parse("a,y\n1,\"cat\n2,dog\n3,cat\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.csv:2:1: a quoted field runs past"), "{e}");
        let e = parse("a,b,y\n1,2,0\n,,\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv:3:1: column `a`: `` is not a number");
    }

    #[test]
    fn numeric_labels_are_classes_by_value_and_must_be_finite() {
        let d = parse("a,y\n1,1\n2,1.0\n3,0\n4,1e0\n5,-0\n").unwrap();
        assert_eq!(d.labels().unwrap(), &[1, 1, 0, 1, 0]);
        assert_eq!(d.n_classes(), Some(2));
        let e = parse("a,y\n1,1\n2,nan\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv:3:2: target `y`: `nan` is not a class label");
        let names = parse("a,y\n1,cat\n2,dog\n3,cat\n").unwrap();
        assert_eq!(names.labels().unwrap(), &[0, 1, 0]);
        let e = parse_csv(
            "a,y\n1,0.5\n2,inf\n",
            Path::new("t.csv"),
            Some("y"),
            TaskKind::Regression,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "t.csv:3:2: target `y`: `inf` is not a finite number");
    }
}
