//! Compaction: a neuron-pruned network rewritten as a smaller dense one.
//!
//! A hidden unit whose outgoing weights are all zero contributes nothing and is removed. A unit
//! whose incoming weights are all zero still outputs the constant φ(b_j) — sigmoid(0) is 0.5, not
//! 0 — so before removing it we add φ(b_j)·U[:, j] to the next layer's bias. Removing units can
//! leave units of the next layer without inputs, so this repeats until nothing changes. The
//! output layer's units are the network's outputs and are never removed.

use super::host::{HostLayer, HostMlp, activate_one};

/// The compacted network and what was removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    /// The smaller dense network; same outputs as the original.
    pub model: HostMlp,
    /// For each hidden layer, the original indices of the units kept.
    pub kept_units: Vec<Vec<usize>>,
}

fn remove_unit(cur: &mut HostLayer, next: &mut HostLayer, j: usize) {
    cur.w.drain(j * cur.n_in..(j + 1) * cur.n_in);
    cur.b.remove(j);
    cur.n_out -= 1;
    let n_in = next.n_in;
    let mut w = Vec::with_capacity(next.n_out * (n_in - 1));
    for o in 0..next.n_out {
        let row = &next.w[o * n_in..(o + 1) * n_in];
        w.extend_from_slice(&row[..j]);
        w.extend_from_slice(&row[j + 1..]);
    }
    next.w = w;
    next.n_in -= 1;
}

/// Removes every hidden unit with no incoming or no outgoing weight left (weights exactly 0),
/// but one per layer: a network whose hidden units are all dead computes a constant, and keeps a
/// single silent unit per layer to compute it with.
pub fn compact(m: &HostMlp) -> Compacted {
    let mut layers = m.layers.clone();
    let mut kept_units: Vec<Vec<usize>> = layers[..layers.len() - 1]
        .iter()
        .map(|l| (0..l.n_out).collect())
        .collect();
    loop {
        let mut changed = false;
        for li in 0..layers.len() - 1 {
            let (left, right) = layers.split_at_mut(li + 1);
            let (cur, next) = (&mut left[li], &mut right[0]);
            let mut j = cur.n_out;
            while j > 0 {
                j -= 1;
                let no_in = cur.w[j * cur.n_in..(j + 1) * cur.n_in]
                    .iter()
                    .all(|v| *v == 0.0);
                let no_out = (0..next.n_out).all(|o| next.w[o * next.n_in + j] == 0.0);
                if !(no_in || no_out) {
                    continue;
                }
                if cur.n_out == 1 {
                    // The last unit of a layer stays: a layer of width 0 is no network (Burn
                    // cannot multiply by it). A constant one is folded into the next bias and
                    // silenced, so it adds nothing twice.
                    if !no_out {
                        let c = activate_one(m.activation, cur.b[j]);
                        for o in 0..next.n_out {
                            next.b[o] += c * next.w[o * next.n_in + j];
                            next.w[o * next.n_in + j] = 0.0;
                        }
                        changed = true;
                    }
                    continue;
                }
                if !no_out {
                    // A constant unit: its output φ(b_j) reaches the next layer through U[:, j].
                    let c = activate_one(m.activation, cur.b[j]);
                    for o in 0..next.n_out {
                        next.b[o] += c * next.w[o * next.n_in + j];
                    }
                }
                remove_unit(cur, next, j);
                kept_units[li].remove(j);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Compacted {
        model: HostMlp {
            layers,
            activation: m.activation,
        },
        kept_units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActivationKind;

    #[test]
    fn a_layer_with_every_unit_dead_keeps_one_silent_unit_and_the_same_outputs() {
        // 2 → 2 → 1, both hidden units without inputs: the output is a constant.
        let m = HostMlp {
            layers: vec![
                HostLayer {
                    w: vec![0.0; 4],
                    n_out: 2,
                    n_in: 2,
                    b: vec![1.0, -1.0],
                },
                HostLayer {
                    w: vec![2.0, 3.0],
                    n_out: 1,
                    n_in: 2,
                    b: vec![0.5],
                },
            ],
            activation: ActivationKind::Tanh,
        };
        let c = compact(&m);
        assert_eq!(c.model.widths(), vec![2, 1, 1]);
        for x in [[0.0, 0.0], [1.0, -2.0]] {
            let (a, b) = (m.forward(&x, 1), c.model.forward(&x, 1));
            assert!((a[0] - b[0]).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_unit_without_inputs_is_folded_into_the_next_bias() {
        // 2 inputs → 3 hidden → 1 output. Unit 0: no inputs, bias 1. Unit 2: no outputs.
        let m = HostMlp {
            layers: vec![
                HostLayer {
                    w: vec![0.0, 0.0, 1.0, -1.0, 2.0, 3.0],
                    n_out: 3,
                    n_in: 2,
                    b: vec![1.0, 0.5, -0.5],
                },
                HostLayer {
                    w: vec![2.0, 1.0, 0.0],
                    n_out: 1,
                    n_in: 3,
                    b: vec![0.25],
                },
            ],
            activation: ActivationKind::Sigmoid,
        };
        let c = compact(&m);
        assert_eq!(c.model.widths(), vec![2, 1, 1]);
        assert_eq!(c.kept_units, vec![vec![1]]);
        let sigmoid1 = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((c.model.layers[1].b[0] - (0.25 + 2.0 * sigmoid1)).abs() < 1e-6);
        for x in [[0.3, -0.7], [1.0, 2.0]] {
            let (a, b) = (m.forward(&x, 1), c.model.forward(&x, 1));
            assert!((a[0] - b[0]).abs() < 1e-6);
        }
    }
}
