//! A sweep's `results.csv`: one row per finished run, read and written through the `csv` crate
//! (a grid value holding a comma is quoted, not mangled).

use std::path::Path;

use crate::ReportError;

/// Columns before the grid keys.
const LEAD: [&str; 1] = ["method"];
/// Columns after the grid keys.
const TAIL: [&str; 9] = [
    "seed",
    "split",
    "accuracy",
    "loss",
    "sparsity",
    "accuracy_before_pruning",
    "units_removed",
    "wall_s",
    "run_dir",
];

/// One finished run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// `dense`, `config` or a baseline's name.
    pub method: String,
    /// The grid point: (key, value) in the sweep's key order.
    pub values: Vec<(String, String)>,
    /// The run's seed.
    pub seed: u64,
    /// The split the figures are from: test, else validation, else train.
    pub split: String,
    /// Its accuracy (None for regression).
    pub accuracy: Option<f64>,
    /// Its loss.
    pub loss: f64,
    /// Fraction of prunable weights that are zero by mask (0 for dense runs).
    pub sparsity: f64,
    /// Accuracy on the same split right before pruning (static pruning of a trained network).
    pub accuracy_before_pruning: Option<f64>,
    /// Hidden units left without incoming or outgoing weights (pruned runs).
    pub units_removed: Option<usize>,
    /// Wall time of the run.
    pub wall_s: f64,
    /// The run's folder, relative to the sweep's.
    pub run_dir: String,
}

impl ResultRow {
    /// The value of grid key `key` at this row's point.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `rows` as CSV text with grid columns `keys`.
pub fn to_csv(keys: &[String], rows: &[ResultRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = LEAD
        .iter()
        .copied()
        .chain(keys.iter().map(String::as_str))
        .chain(TAIL)
        .collect();
    let mut records = vec![header.iter().map(ToString::to_string).collect::<Vec<_>>()];
    for r in rows {
        let mut rec = vec![r.method.clone()];
        rec.extend(keys.iter().map(|k| r.value(k).unwrap_or("").to_string()));
        rec.extend([
            r.seed.to_string(),
            r.split.clone(),
            opt(r.accuracy),
            r.loss.to_string(),
            r.sparsity.to_string(),
            opt(r.accuracy_before_pruning),
            opt(r.units_removed),
            r.wall_s.to_string(),
            r.run_dir.clone(),
        ]);
        records.push(rec);
    }
    for rec in records {
        // Writing to a Vec cannot fail.
        if let Err(e) = w.write_record(&rec) {
            unreachable!("csv into memory: {e}");
        }
    }
    match w.into_inner() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => unreachable!("csv into memory: {e}"),
    }
}

/// Reads `path`: the grid keys (columns between `method` and `seed`) and the rows.
pub fn read(path: &Path) -> Result<(Vec<String>, Vec<ResultRow>), ReportError> {
    let bad = |message: String| ReportError::Csv {
        path: path.to_path_buf(),
        message,
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            bad(format!(
                "no `{name}` column (the header is: {})",
                header.join(",")
            ))
        })
    };
    let method = col("method")?;
    let tail: Vec<usize> = TAIL.iter().map(|c| col(c)).collect::<Result<_, _>>()?;
    let keys: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != method && !tail.contains(i))
        .map(|(_, h)| h.clone())
        .collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let line = rec.position().map_or(0, csv::Position::line);
        let cell = |i: usize| rec.get(i).unwrap_or("");
        let num = |c: usize| -> Result<f64, ReportError> {
            let (i, name) = (tail[c], TAIL[c]);
            cell(i).parse().map_err(|_| {
                bad(format!(
                    "line {line}, column `{name}`: `{}` is not a number",
                    cell(i)
                ))
            })
        };
        let maybe = |c: usize| -> Result<Option<f64>, ReportError> {
            if cell(tail[c]).is_empty() {
                Ok(None)
            } else {
                num(c).map(Some)
            }
        };
        let seed = cell(tail[0]).parse().map_err(|_| {
            bad(format!(
                "line {line}, column `seed`: `{}` is not a seed",
                cell(tail[0])
            ))
        })?;
        let units = cell(tail[6]);
        let units_removed = if units.is_empty() {
            None
        } else {
            Some(units.parse().map_err(|_| {
                bad(format!(
                    "line {line}, column `units_removed`: `{units}` is not a count"
                ))
            })?)
        };
        rows.push(ResultRow {
            method: cell(method).to_string(),
            values: header
                .iter()
                .enumerate()
                .filter(|(_, h)| keys.contains(h))
                .map(|(i, h)| (h.clone(), cell(i).to_string()))
                .collect(),
            seed,
            split: cell(tail[1]).to_string(),
            accuracy: maybe(2)?,
            loss: num(3)?,
            sparsity: num(4)?,
            accuracy_before_pruning: maybe(5)?,
            units_removed,
            wall_s: num(7)?,
            run_dir: cell(tail[8]).to_string(),
        });
    }
    Ok((keys, rows))
}
