//! Data sets held in memory as row-major `f32` features plus targets, and their splits.
//!
//! Everything here is our own code (no Burn `dataset` feature): the sets are small or read once,
//! and owning the loaders lets errors name the file, line and column.

mod csv;
mod idx;
mod scale;
mod split;
mod synthetic;

pub use csv::{parse_csv, read_csv};
pub use idx::{IdxArray, fashion_mnist, read_idx};
pub use scale::Scaler;
pub use split::split_indices;

use std::path::{Path, PathBuf};

use crate::config::{DataConfig, DatasetName, TaskKind};
use crate::seeds::{Phase, Purpose, Seeds};

/// Errors while finding or reading data. Each names the file and how to fix the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O failure on a named file.
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A CSV row that cannot be used.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A malformed IDX file.
    #[error("{}: not a valid IDX file: {message}", path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A data set whose files are not where we looked.
    #[error("{what} not found (looked in: {}). {hint}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// What was looked for.
        what: String,
        /// Every place tried.
        tried: Vec<PathBuf>,
        /// How to get it.
        hint: String,
    },
    /// Data that loads but cannot be used as asked.
    #[error("{0}")]
    Unusable(String),
}

/// What a network predicts for each sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class indices in `0..n_classes`.
    Classes {
        /// One label per sample.
        labels: Vec<u32>,
        /// Number of classes in the whole data set (not only this split).
        n_classes: usize,
    },
    /// One real value per sample.
    Real(Vec<f32>),
}

/// Samples in memory: `x` is row-major `[n, n_features]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Features, row-major.
    pub x: Vec<f32>,
    /// Features per sample.
    pub n_features: usize,
    /// Targets.
    pub y: Targets,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.len().checked_div(self.n_features).unwrap_or(0)
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let d = self.n_features;
        let mut x = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let y = match &self.y {
            Targets::Classes { labels, n_classes } => Targets::Classes {
                labels: idx.iter().map(|&i| labels[i]).collect(),
                n_classes: *n_classes,
            },
            Targets::Real(v) => Targets::Real(idx.iter().map(|&i| v[i]).collect()),
        };
        Dataset {
            x,
            n_features: d,
            y,
        }
    }

    /// Class labels, if this is a classification set.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.y {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Real(_) => None,
        }
    }

    /// Number of classes (None for regression).
    pub fn n_classes(&self) -> Option<usize> {
        match &self.y {
            Targets::Classes { n_classes, .. } => Some(*n_classes),
            Targets::Real(_) => None,
        }
    }
}

/// Train, validation and test sets. Without a test split, final numbers are on the training
/// set (XOR has only its four points) and the report says so.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training samples.
    pub train: Dataset,
    /// Validation samples, if a fraction was held out.
    pub valid: Option<Dataset>,
    /// Test samples: the data set's own split or a held-out fraction.
    pub test: Option<Dataset>,
}

/// Loads, splits and scales the data a config asks for. `base` is the config file's folder,
/// used to find the repository's `datasets/` when the run starts elsewhere.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn load(config: &DataConfig, seed: u64, base: &Path) -> Result<Splits, DataError> {
    let (full, own_test) = load_raw(config, seed, base)?;
    let mut rng = Seeds::new(seed).rng(Phase::Train, Purpose::Split);
    let stratify = config.stratify.then(|| full.labels()).flatten();
    let n = full.len();
    let test_fraction = if own_test.is_some() {
        0.0
    } else {
        config.test_fraction
    };
    let parts = split_indices(
        n,
        stratify,
        &[config.validation_fraction, test_fraction],
        &mut rng,
    );
    let [train_idx, valid_idx, test_idx] = <[Vec<usize>; 3]>::try_from(parts).expect("3 parts");
    let mut train_idx = train_idx;
    if let Some(limit) = config.limit {
        train_idx.truncate(limit);
    }
    if train_idx.is_empty() {
        return Err(DataError::Unusable(format!(
            "data set `{}` leaves no training samples after the split",
            config.name.as_str()
        )));
    }
    let mut train = full.select(&train_idx);
    let mut valid = (!valid_idx.is_empty()).then(|| full.select(&valid_idx));
    let mut test = match own_test {
        Some(t) => Some(t),
        None => (!test_idx.is_empty()).then(|| full.select(&test_idx)),
    };
    let scaler = Scaler::fit(config.scale, &train);
    for set in [Some(&mut train), valid.as_mut(), test.as_mut()]
        .into_iter()
        .flatten()
    {
        scaler.apply(set);
    }
    Ok(Splits { train, valid, test })
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn load_raw(
    config: &DataConfig,
    seed: u64,
    base: &Path,
) -> Result<(Dataset, Option<Dataset>), DataError> {
    use DatasetName::*;
    let mut rng = Seeds::new(seed).rng(Phase::Train, Purpose::Data);
    let n = config.n.unwrap_or(200);
    Ok(match config.name {
        Xor => (synthetic::xor(), None),
        SeedXor => (synthetic::seed_xor(), None),
        Moons => (
            synthetic::moons(n, config.noise.unwrap_or(0.1), &mut rng),
            None,
        ),
        Circles => (
            synthetic::circles(n, config.noise.unwrap_or(0.05), &mut rng),
            None,
        ),
        Spirals => (
            synthetic::spirals(
                n,
                config.classes.unwrap_or(2),
                config.noise.unwrap_or(0.2),
                &mut rng,
            ),
            None,
        ),
        Blobs => (
            synthetic::blobs(
                n,
                config.classes.unwrap_or(3),
                config.features.unwrap_or(2),
                config.noise.unwrap_or(1.0),
                &mut rng,
            ),
            None,
        ),
        Csv => {
            let path = config.path.as_ref().expect("validated: csv has a path");
            let task = config.task.unwrap_or(TaskKind::Classification);
            (read_csv(path, config.target.as_deref(), task)?, None)
        }
        Digits => {
            let path = match &config.path {
                Some(p) => p.clone(),
                None => find_in_datasets("digits.csv", base, &[])?,
            };
            (
                read_csv(&path, Some("digit"), TaskKind::Classification)?,
                None,
            )
        }
        FashionMnist => {
            let dir = match &config.dir {
                Some(d) => d.clone(),
                None => find_in_datasets(
                    "fashion-mnist",
                    base,
                    &[PathBuf::from("/usr/share/datasets/fashion-mnist")],
                )?,
            };
            let (train, test) = idx::fashion_mnist(&dir)?;
            (train, Some(test))
        }
    })
}

/// The repository's `datasets/NAME`, looked up from the working directory, from the config's
/// folder, and from this crate's source tree (so tests and examples find it anywhere).
fn find_in_datasets(name: &str, base: &Path, extra: &[PathBuf]) -> Result<PathBuf, DataError> {
    let mut tried = vec![
        PathBuf::from("datasets").join(name),
        base.join("../datasets").join(name),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets")
            .join(name),
    ];
    tried.extend_from_slice(extra);
    if let Some(found) = tried.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let hint = if name == "fashion-mnist" {
        "Install Debian's package (`sudo apt-get install dataset-fashion-mnist`, files land in \
         /usr/share/datasets/fashion-mnist/), or put the four files train-images-idx3-ubyte.gz, \
         train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz into \
         datasets/fashion-mnist/ (or set data.dir)"
            .to_string()
    } else {
        format!("The repository ships datasets/{name}; set data.path to its location")
    };
    Err(DataError::NotFound {
        what: format!("data set file `{name}`"),
        tried,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fashion_mnist_names_every_place_and_both_remedies() {
        // Without the system path (passed separately by `load_raw`) nothing is found, so this
        // runs the error path even on machines with the Debian package installed.
        let tmp = std::env::temp_dir().join("lopper-no-such-base");
        let e = find_in_datasets("fashion-mnist", &tmp, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
        assert!(e.contains("datasets/fashion-mnist/"), "{e}");
        assert!(e.contains("lopper-no-such-base"), "{e}");
    }
}
