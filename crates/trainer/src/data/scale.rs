//! Feature scaling fitted on the training split and applied unchanged to the others, so no
//! statistic of validation or test data leaks into training.

use super::Dataset;
use crate::config::Scale;

/// A fitted scaling: `x' = (x - shift) * factor`, per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    shift: Vec<f32>,
    factor: Vec<f32>,
}

impl Scaler {
    /// Fits `kind` on `train`. Constant features are shifted but not divided (factor 1).
    pub fn fit(kind: Scale, train: &Dataset) -> Scaler {
        let d = train.n_features;
        let n = train.len().max(1);
        let rows = || train.x.chunks_exact(d);
        let safe = |range: f64| {
            if range > 0.0 {
                (1.0 / range) as f32
            } else {
                1.0
            }
        };
        match kind {
            Scale::None => Scaler {
                shift: vec![0.0; d],
                factor: vec![1.0; d],
            },
            Scale::Standardize => {
                let mut mean = vec![0f64; d];
                for r in rows() {
                    for (m, &v) in mean.iter_mut().zip(r) {
                        *m += f64::from(v);
                    }
                }
                mean.iter_mut().for_each(|m| *m /= n as f64);
                let mut var = vec![0f64; d];
                for r in rows() {
                    for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
                        *s += (f64::from(v) - m).powi(2);
                    }
                }
                Scaler {
                    shift: mean.iter().map(|&m| m as f32).collect(),
                    factor: var.iter().map(|&s| safe((s / n as f64).sqrt())).collect(),
                }
            }
            Scale::Minmax => {
                let mut lo = vec![f32::INFINITY; d];
                let mut hi = vec![f32::NEG_INFINITY; d];
                for r in rows() {
                    for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(r) {
                        *l = l.min(v);
                        *h = h.max(v);
                    }
                }
                Scaler {
                    factor: lo
                        .iter()
                        .zip(&hi)
                        .map(|(l, h)| safe(f64::from(h - l)))
                        .collect(),
                    shift: lo,
                }
            }
            Scale::GlobalMinmax => {
                let lo = train.x.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = train.x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                Scaler {
                    shift: vec![lo; d],
                    factor: vec![safe(f64::from(hi - lo)); d],
                }
            }
        }
    }

    /// Applies the fitted scaling in place.
    pub fn apply(&self, set: &mut Dataset) {
        let d = set.n_features;
        for r in set.x.chunks_exact_mut(d) {
            for ((v, s), f) in r.iter_mut().zip(&self.shift).zip(&self.factor) {
                *v = (*v - s) * f;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;

    fn set(x: Vec<f32>) -> Dataset {
        let n = x.len() / 2;
        Dataset {
            x,
            n_features: 2,
            y: Targets::Real(vec![0.0; n]),
        }
    }

    #[test]
    fn scalers_map_training_data_as_documented() {
        let train = set(vec![0.0, 10.0, 2.0, 10.0, 4.0, 10.0]);
        let mut s = train.clone();
        Scaler::fit(Scale::Minmax, &train).apply(&mut s);
        assert_eq!(s.x, vec![0.0, 0.0, 0.5, 0.0, 1.0, 0.0]);
        let mut s = train.clone();
        Scaler::fit(Scale::GlobalMinmax, &train).apply(&mut s);
        assert_eq!(s.x, vec![0.0, 1.0, 0.2, 1.0, 0.4, 1.0]);
        let mut s = train.clone();
        Scaler::fit(Scale::Standardize, &train).apply(&mut s);
        let m: f32 = s.x.iter().step_by(2).sum::<f32>() / 3.0;
        assert!(m.abs() < 1e-6);
        assert!((s.x[4] - 1.224_744_9).abs() < 1e-5);
    }
}
