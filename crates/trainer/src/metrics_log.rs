//! The run's log: `metrics.csv` in long format (`step,epoch,split,metric,value`), flushed every
//! epoch so that a run that fails or is killed keeps everything measured so far.
//!
//! The training loop writes each epoch's metrics and what its hooks published; phases write
//! their evaluations. Steps and epochs are numbered across the run's phases: the runner sets
//! where each phase starts ([`MetricsLog::set_offset`]), nobody else.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pruning::{EpochEnd, Published};
use report::metrics::MetricRow;

/// The `metrics.csv` writer.
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
    step_offset: usize,
    epoch_offset: usize,
}

impl MetricsLog {
    /// Creates the file (with its header) at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        report::metrics::write_header(&mut out)?;
        out.flush()?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            step_offset: 0,
            epoch_offset: 0,
        })
    }

    /// Opens an existing file to continue it (a resumed run): rows go after what is there,
    /// and a checkpoint's state cuts the file back to where the checkpoint was written.
    pub fn append(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            step_offset: 0,
            epoch_offset: 0,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An IO error of this file, as the run's IO error with its path.
    pub fn io_error(&self) -> impl Fn(std::io::Error) -> crate::train::TrainError + use<> {
        let path = self.path.clone();
        move |cause| crate::train::TrainError::Io {
            path: path.clone(),
            cause,
        }
    }

    /// Continues step and epoch numbering after the earlier phases (fine-tuning after pruning
    /// logs its epoch 1 as the run's next epoch): set by the runner at each phase's start.
    pub fn set_offset(&mut self, steps: usize, epochs: usize) {
        self.step_offset = steps;
        self.epoch_offset = epochs;
    }

    /// Steps and epochs logged by earlier phases.
    pub fn offset(&self) -> (usize, usize) {
        (self.step_offset, self.epoch_offset)
    }

    /// Appends one row (also used for metrics measured outside the loop, e.g. final ones).
    pub fn row(
        &mut self,
        step: usize,
        epoch: usize,
        split: &str,
        metric: &str,
        value: f64,
    ) -> std::io::Result<()> {
        let row = MetricRow {
            step,
            epoch,
            split: split.to_string(),
            metric: metric.to_string(),
            value,
        };
        report::metrics::write_row(&mut self.out, &row)
    }

    /// Flushes to the operating system (every epoch: a killed run keeps its rows).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Flushes and waits for the disk: at the end of the run. `metrics.csv` is the one file
    /// that grows in place instead of being renamed whole (crate::atomic); a torn last line is
    /// cut off on resume, back to the length the checkpoint recorded.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

impl MetricsLog {
    /// The file's length with everything logged so far, on the disk: what a checkpoint
    /// records, before the checkpoint itself is written.
    pub fn position(&mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        let file = self.out.get_ref();
        file.sync_data()?;
        file.metadata().map(|m| m.len())
    }

    /// Logs a training phase's epoch: what its hooks published, then the epoch's metrics, and
    /// flushes (a killed run keeps every finished epoch).
    pub fn epoch(&mut self, published: &[Published], end: &EpochEnd) -> std::io::Result<()> {
        self.published(published)?;
        for (split, metric, value) in &end.metrics {
            let (step, epoch) = (end.step + self.step_offset, end.epoch + self.epoch_offset);
            self.row(step, epoch, split, metric, *value)?;
        }
        self.flush()
    }

    /// Logs rows hooks published, each at its own position in the phase.
    pub fn published(&mut self, rows: &[Published]) -> std::io::Result<()> {
        for r in rows {
            let (step, epoch) = (r.step + self.step_offset, r.epoch + self.epoch_offset);
            self.row(step, epoch, &r.split, &r.metric, r.value)?;
        }
        Ok(())
    }

    /// Cuts the file back to `len` bytes (a checkpoint's [`MetricsLog::position`]): rows a
    /// killed run wrote after its checkpoint are written again by the resumed run.
    pub fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_ref();
        let now = file.metadata()?.len();
        if now < len {
            return Err(std::io::Error::other(format!(
                "metrics.csv is shorter ({now} bytes) than when the checkpoint was written ({len}); it was edited"
            )));
        }
        file.set_len(len)
    }
}
