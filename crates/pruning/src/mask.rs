//! Masks: one 0/1 array per prunable parameter, in the parameter's own shape and layout.
//!
//! Masks live on the host as plain data so that they can be checked, counted, saved and
//! compared exactly; `apply` sends them to the device once per update.

use std::collections::BTreeMap;

use crate::error::PruneError;

/// A 0/1 mask for one parameter; `true` = kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Shape of the parameter, as the parameter stores it.
    pub shape: Vec<usize>,
    /// Row-major keep flags.
    pub keep: Vec<bool>,
}

impl Mask {
    /// A mask that keeps everything.
    pub fn ones(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            keep: vec![true; shape.iter().product()],
        }
    }

    /// A mask from 0/1 floats, checked to be binary.
    pub fn from_f32(name: &str, shape: &[usize], values: &[f32]) -> Result<Self, PruneError> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(PruneError::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: vec![values.len()],
            });
        }
        let keep = values
            .iter()
            .enumerate()
            .map(|(index, &v)| match v {
                1.0 => Ok(true),
                0.0 => Ok(false),
                value => Err(PruneError::NotBinary {
                    name: name.to_string(),
                    index,
                    value,
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            shape: shape.to_vec(),
            keep,
        })
    }

    /// The mask as 0/1 floats (for multiplying a tensor).
    pub fn to_f32(&self) -> Vec<f32> {
        self.keep
            .iter()
            .map(|&k| if k { 1.0 } else { 0.0 })
            .collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keep.len()
    }

    /// Whether the mask is empty (a zero-sized parameter).
    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    /// Entries kept.
    pub fn kept(&self) -> usize {
        self.keep.iter().filter(|&&k| k).count()
    }

    /// Fraction removed.
    pub fn sparsity(&self) -> f64 {
        if self.keep.is_empty() {
            0.0
        } else {
            1.0 - self.kept() as f64 / self.len() as f64
        }
    }

    /// Keeps only what both masks keep (pruning never revives a weight).
    pub fn and(&self, other: &Mask) -> Mask {
        Mask {
            shape: self.shape.clone(),
            keep: self
                .keep
                .iter()
                .zip(&other.keep)
                .map(|(a, b)| *a && *b)
                .collect(),
        }
    }
}

/// Masks by parameter path, ordered by path (so reports and files have a stable order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskSet {
    /// The masks.
    pub masks: BTreeMap<String, Mask>,
}

impl MaskSet {
    /// All-ones masks for the given `(path, shape)` parameters.
    pub fn ones<'a>(params: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Self {
        Self {
            masks: params
                .into_iter()
                .map(|(p, s)| (p.to_string(), Mask::ones(s)))
                .collect(),
        }
    }

    /// Checks that the set has exactly one mask of the right shape for each `(path, shape)`.
    pub fn check<'a>(
        &self,
        params: impl IntoIterator<Item = (&'a str, &'a [usize])> + Clone,
    ) -> Result<(), PruneError> {
        let valid: Vec<String> = params
            .clone()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect();
        for (path, shape) in params {
            let mask = self
                .masks
                .get(path)
                .ok_or_else(|| PruneError::MissingMask {
                    name: path.to_string(),
                })?;
            if mask.shape != shape || mask.keep.len() != shape.iter().product::<usize>() {
                return Err(PruneError::ShapeMismatch {
                    name: path.to_string(),
                    expected: shape.to_vec(),
                    got: mask.shape.clone(),
                });
            }
        }
        if let Some(extra) = self.masks.keys().find(|k| !valid.contains(k)) {
            return Err(PruneError::ExtraMask {
                name: extra.clone(),
                valid,
            });
        }
        Ok(())
    }

    /// Entries kept and total, over all masks.
    pub fn counts(&self) -> (usize, usize) {
        self.counts_where(|_| true)
    }

    fn counts_where(&self, keep: impl Fn(&Mask) -> bool) -> (usize, usize) {
        self.masks
            .values()
            .filter(|m| keep(m))
            .fold((0, 0), |(k, n), m| (k + m.kept(), n + m.len()))
    }

    /// Fraction removed over all masks.
    pub fn sparsity(&self) -> f64 {
        fraction_removed(self.counts())
    }

    /// Fraction removed over the weight matrices and kernels only (biases and norms masked with
    /// their units left out): what "a network at 90 % sparsity" means.
    pub fn weight_sparsity(&self) -> f64 {
        fraction_removed(self.counts_where(|m| m.shape.len() >= 2))
    }
}

fn fraction_removed((kept, total): (usize, usize)) -> f64 {
    if total == 0 {
        0.0
    } else {
        1.0 - kept as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariants_are_checked_with_named_errors() {
        let shapes: Vec<(&str, &[usize])> = vec![("a.weight", &[2, 3]), ("b.weight", &[3, 1])];
        let mut set = MaskSet::ones(shapes.clone());
        assert_eq!(set.check(shapes.clone()), Ok(()));
        set.masks.insert("c.weight".into(), Mask::ones(&[1]));
        assert!(matches!(
            set.check(shapes.clone()),
            Err(PruneError::ExtraMask { .. })
        ));
        set.masks.remove("c.weight");
        set.masks.insert("b.weight".into(), Mask::ones(&[1, 3]));
        assert_eq!(
            set.check(shapes.clone()).unwrap_err().to_string(),
            "mask for `b.weight` has shape [1, 3], but the parameter has shape [3, 1]"
        );
        set.masks.remove("b.weight");
        assert!(matches!(
            set.check(shapes),
            Err(PruneError::MissingMask { .. })
        ));
        assert!(matches!(
            Mask::from_f32("x", &[2], &[1.0, 0.5]),
            Err(PruneError::NotBinary { index: 1, .. })
        ));
    }

    #[test]
    fn counts_and_sparsity() {
        let m = Mask::from_f32("x", &[2, 2], &[1.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!((m.kept(), m.len()), (1, 4));
        assert_eq!(m.sparsity(), 0.75);
        let both = m.and(&Mask::from_f32("x", &[2, 2], &[0.0, 1.0, 1.0, 1.0]).unwrap());
        assert_eq!(both.kept(), 0);
    }
}
