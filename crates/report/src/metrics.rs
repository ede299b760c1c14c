//! `metrics.csv`: every number a run measured, one per row in long format
//! (`step,epoch,split,metric,value`), written as training goes and read back for the curves.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// The header line.
pub const HEADER: [&str; 5] = ["step", "epoch", "split", "metric", "value"];

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Optimizer steps completed, counted over the run's phases.
    pub step: usize,
    /// The epoch, counted over the run's phases (0: before training).
    pub epoch: usize,
    /// `train`, `valid`, `test`, or the source of a pruning event (`prune`, `lottery`, a layer).
    pub split: String,
    /// `loss`, `accuracy`, `sparsity`, …
    pub metric: String,
    /// The value (NaN when a loss diverged).
    pub value: f64,
}

/// Writes the header to a new file.
pub fn write_header<W: Write>(out: W) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(std::io::Error::other)?;
    w.flush()
}

/// Appends one row to `out` (written whole, never flushed here: the caller flushes per epoch).
pub fn write_row<W: Write>(mut out: W, row: &MetricRow) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(64));
    w.serialize(row).map_err(std::io::Error::other)?;
    let line = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    out.write_all(&line)
}

/// Reads `path`.
pub fn read(path: &Path) -> Result<Vec<MetricRow>, ReportError> {
    let bad = |e: csv::Error| ReportError::Csv {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(bad)?;
    r.deserialize().collect::<Result<_, _>>().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_a_broken_row_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let mut buf = Vec::new();
        write_header(&mut buf).unwrap();
        let rows = [
            MetricRow {
                step: 10,
                epoch: 1,
                split: "train".into(),
                metric: "loss".into(),
                value: 0.25,
            },
            MetricRow {
                step: 10,
                epoch: 1,
                split: "layers.0.weight".into(),
                metric: "sparsity".into(),
                value: f64::NAN,
            },
        ];
        for r in &rows {
            write_row(&mut buf, r).unwrap();
        }
        std::fs::write(&path, &buf).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back[0], rows[0]);
        assert!(back[1].value.is_nan());
        std::fs::write(
            &path,
            String::from_utf8(buf).unwrap() + "11,x,train,loss,1\n",
        )
        .unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("metrics.csv") && e.contains("line: 4"), "{e}");
    }
}
