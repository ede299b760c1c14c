//! Writes `metrics.csv` in long format (`step,epoch,split,metric,value`), flushed every epoch
//! so that a run that fails or is killed keeps everything measured so far.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pruning::{EpochEnd, HookError, HookState, TrainHook};
use report::metrics::MetricRow;

use crate::model::Mlp;

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

    /// Continues step and epoch numbering after an earlier phase (fine-tuning after pruning
    /// logs its epoch 1 as the run's next epoch).
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

impl TrainHook<Mlp> for MetricsLog {
    fn name(&self) -> &str {
        "metrics.csv"
    }

    fn on_epoch_end(&mut self, _model: &Mlp, e: &EpochEnd) -> Result<(), HookError> {
        let named = |e: std::io::Error, path: &Path| format!("{}: {e}", path.display());
        for (split, metric, value) in &e.metrics {
            let (step, epoch) = (e.step + self.step_offset, e.epoch + self.epoch_offset);
            self.row(step, epoch, split, metric, *value)
                .map_err(|e| named(e, &self.path))?;
        }
        self.flush().map_err(|e| named(e, &self.path))?;
        Ok(())
    }

    // The file's length at the checkpoint: rows after it (from the epochs a killed run did
    // after its last checkpoint) are cut on resume, and the resumed epochs write them again.
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        let len = self.out.get_ref().metadata()?.len() + self.out.buffer().len() as u64;
        // On the disk before the checkpoint that records its length.
        self.out.get_ref().sync_data()?;
        let mut st = HookState::default();
        st.words.insert("bytes".into(), vec![len]);
        Ok(Some(st))
    }

    fn load_state(&mut self, _model: &Mlp, st: HookState) -> Result<(), HookError> {
        Ok(self.truncate(st.word("bytes")?)?)
    }
}
