//! A CSV reader for numeric tables with a header row and a named target column.
//!
//! Deliberately small: comma-separated, no quoting inside numeric fields. Every rejected row
//! names the file, line and column, because a researcher's CSV is usually fine except for one
//! line somewhere in the middle.

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

fn split_fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
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
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| err(1, 1, "the file is empty; expected a header row".into()))?;
    let names = split_fields(header);
    if names.len() < 2 {
        return Err(err(
            1,
            1,
            "the header has fewer than two columns (need features and a target); is the file comma-separated?".into(),
        ));
    }
    let target_col = match target {
        Some(t) => names.iter().position(|n| *n == t).ok_or_else(|| {
            err(
                1,
                1,
                format!(
                    "no column named `{t}` for the target; columns: {}",
                    names.join(", ")
                ),
            )
        })?,
        None => names.len() - 1,
    };
    let n_features = names.len() - 1;
    let mut x = Vec::new();
    let mut raw_targets: Vec<(usize, String)> = Vec::new();
    for (line_no, line) in lines {
        let fields = split_fields(line);
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
            if j == target_col {
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
    }
    if raw_targets.is_empty() {
        return Err(err(2, 1, "no data rows after the header".into()));
    }
    let y = match task {
        TaskKind::Regression => Targets::Real(
            raw_targets
                .iter()
                .map(|(line, v)| {
                    v.parse::<f32>().map_err(|_| {
                        err(
                            *line,
                            target_col + 1,
                            format!("target `{}`: `{v}` is not a number", names[target_col]),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        TaskKind::Classification => {
            // Numeric labels sort numerically, names alphabetically.
            let all_numeric = raw_targets.iter().all(|(_, v)| v.parse::<f64>().is_ok());
            let mut classes: Vec<&str> = raw_targets.iter().map(|(_, v)| v.as_str()).collect();
            if all_numeric {
                classes.sort_by(|a, b| {
                    a.parse::<f64>()
                        .unwrap()
                        .total_cmp(&b.parse::<f64>().unwrap())
                });
            } else {
                classes.sort_unstable();
            }
            classes.dedup();
            let index: BTreeMap<&str, u32> = classes
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, i as u32))
                .collect();
            if classes.len() < 2 {
                return Err(DataError::Unusable(format!(
                    "{}: target column `{}` has a single class; classification needs two or more",
                    path.display(),
                    names[target_col]
                )));
            }
            Targets::Classes {
                labels: raw_targets.iter().map(|(_, v)| index[v.as_str()]).collect(),
                n_classes: classes.len(),
            }
        }
    };
    Ok(Dataset { x, n_features, y })
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
}
