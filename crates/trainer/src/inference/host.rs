//! The network as host arrays, and a dense forward pass over them.

use burn::tensor::Device;

use crate::config::ActivationKind;
use crate::export::layer_tensors;
use crate::model::Net;

/// One dense layer: `w` is `[n_out, n_in]` row-major (row o = unit o's incoming weights).
#[derive(Debug, Clone, PartialEq)]
pub struct HostLayer {
    /// Weights, `[n_out, n_in]`.
    pub w: Vec<f32>,
    /// Output units.
    pub n_out: usize,
    /// Inputs.
    pub n_in: usize,
    /// Bias, one per output unit.
    pub b: Vec<f32>,
}

/// A whole MLP on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMlp {
    /// Layers, input side first.
    pub layers: Vec<HostLayer>,
    /// Hidden activation (the last layer has none).
    pub activation: ActivationKind,
}

/// The hidden activation applied in place.
pub fn activate(kind: ActivationKind, h: &mut [f32]) {
    match kind {
        ActivationKind::Relu => h.iter_mut().for_each(|v| *v = v.max(0.0)),
        ActivationKind::Sigmoid => h.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        ActivationKind::Tanh => h.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// The activation of one value.
pub fn activate_one(kind: ActivationKind, v: f32) -> f32 {
    let mut x = [v];
    activate(kind, &mut x);
    x[0]
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it (a single
/// float accumulator forces a sequential chain).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl HostLayer {
    /// `x·Wᵀ + b` for `x` `[batch, n_in]`, as `[batch, n_out]`, through `gemm` on this thread
    /// (inference serves one request per core; a batch this size gains little from a second).
    pub fn gemm(&self, x: &[f32], batch: usize) -> Vec<f32> {
        assert_eq!(x.len(), batch * self.n_in, "input width");
        assert_eq!(self.w.len(), self.n_out * self.n_in, "weight shape");
        assert_eq!(self.b.len(), self.n_out, "bias length");
        let mut y = Vec::with_capacity(batch * self.n_out);
        for _ in 0..batch {
            y.extend_from_slice(&self.b);
        }
        let (n_in, n_out) = (self.n_in as isize, self.n_out as isize);
        // SAFETY: the three buffers are exactly `[batch, n_in]`, `[n_out, n_in]` (asserted
        // above) and `[batch, n_out]` (built here from a bias asserted to be n_out long), and the strides below stay inside
        // them: x row-major (column stride 1, row stride n_in); W read as Wᵀ `[n_in, n_out]`
        // (column stride n_in, row stride 1); y row-major. `dst := 1·dst + 1·x·Wᵀ` keeps the
        // bias y starts with.
        unsafe {
            gemm::gemm(
                batch,
                self.n_out,
                self.n_in,
                y.as_mut_ptr(),
                1,
                n_out,
                true,
                x.as_ptr(),
                1,
                n_in,
                self.w.as_ptr(),
                n_in,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        y
    }
}

impl HostMlp {
    /// Copies a trained model to the host.
    pub fn from_mlp(model: &Net) -> Self {
        Self {
            layers: layer_tensors(model)
                .into_iter()
                .map(|(w, [n_out, n_in], b)| HostLayer { w, n_out, n_in, b })
                .collect(),
            activation: model.activation,
        }
    }

    /// A Burn model with these weights on `device`.
    pub fn to_mlp(&self, device: &Device) -> Net {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut w = vec![0f32; l.w.len()];
                for o in 0..l.n_out {
                    for i in 0..l.n_in {
                        w[i * l.n_out + o] = l.w[o * l.n_in + i];
                    }
                }
                (w, [l.n_in, l.n_out], l.b.clone())
            })
            .collect();
        Net::from_weights(layers, self.activation, device)
    }

    /// Layer widths, input first.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].n_in];
        w.extend(self.layers.iter().map(|l| l.n_out));
        w
    }

    /// Puts hidden layer `li`'s units in `order` (new unit `k` is old unit `order[k]`): its rows
    /// and biases, and the next layer's columns, so the network computes the same function
    /// (to rounding: the next layer adds its terms in another order).
    ///
    /// # Panics
    /// If `li` is the last layer, the two layers' shapes disagree, or `order` is not a
    /// permutation of the layer's units.
    pub fn permute_hidden(&mut self, li: usize, order: &[usize]) {
        assert!(
            li + 1 < self.layers.len(),
            "only a hidden layer's units can move"
        );
        let (left, right) = self.layers.split_at_mut(li + 1);
        let (cur, next) = (&mut left[li], &mut right[0]);
        assert!(
            cur.w.len() == cur.n_out * cur.n_in
                && cur.b.len() == cur.n_out
                && next.n_in == cur.n_out
                && next.w.len() == next.n_out * next.n_in,
            "layer shapes agree"
        );
        let mut seen = vec![false; cur.n_out];
        assert!(
            order.len() == cur.n_out
                && order
                    .iter()
                    .all(|&o| o < cur.n_out && !std::mem::replace(&mut seen[o], true)),
            "order is a permutation of the layer's units"
        );
        let n_in = cur.n_in;
        cur.w = order
            .iter()
            .flat_map(|&o| cur.w[o * n_in..(o + 1) * n_in].iter().copied())
            .collect();
        cur.b = order.iter().map(|&o| cur.b[o]).collect();
        let cols = next.n_in;
        next.w = (0..next.n_out)
            .flat_map(|r| order.iter().map(move |&o| r * cols + o))
            .map(|k| next.w[k])
            .collect();
    }

    /// Multiply-adds per sample of a dense forward pass.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.n_out * l.n_in).sum()
    }

    /// Outputs `[batch, n_out]` for inputs `x` `[batch, n_in]`, dense. Batches of 8 or more
    /// go through a GEMM (`gemm`'s blocked, packed kernels, AVX-512 where the CPU has it), which
    /// reuses each weight across the batch from cache; a single sample, where there is nothing to
    /// reuse, streams the weights once: with AVX-512F four rows at a time, on aligned lines where a
    /// row's length is a multiple of 16; else a dot product per unit.
    pub fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let last = self.layers.len() - 1;
        if batch >= super::csr::BATCHED {
            let mut h = x.to_vec();
            for (li, l) in self.layers.iter().enumerate() {
                let mut out = l.gemm(&h, batch);
                if li < last {
                    activate(self.activation, &mut out);
                }
                h = out;
            }
            return h;
        }
        per_sample(
            &self.layers,
            x,
            batch,
            self.activation,
            |l| (l.n_in, l.n_out),
            |l, xs, ys| {
                #[cfg(target_arch = "x86_64")]
                if super::avx512::available() {
                    super::avx512::gemv(&l.w, &l.b, xs, ys);
                    return;
                }
                for (o, y) in ys.iter_mut().enumerate() {
                    *y = l.b[o] + dot(&l.w[o * l.n_in..(o + 1) * l.n_in], xs);
                }
            },
        )
    }
}

/// Runs `layers` one sample at a time (`matvec(layer, x, y)` for each sample, the activation
/// between layers) on `x` `[batch, n_in]`; `widths` gives a layer's `(n_in, n_out)`. The first
/// layer reads `x` itself: copying it cost CSR at 90 % 3.2 → 2.9 µs a sample (one run each).
/// Hidden outputs go to two buffers this thread keeps between calls (batches below
/// `csr::BATCHED`, so they stay small), and a call allocates only its result: an allocation per
/// layer cost 784-300-100-10 at 90 % about 0.07 µs of 1.89 (CSR, batch 1). A `matvec` that
/// itself ran `per_sample` on this thread would find the buffers in use and get fresh ones.
pub(crate) fn per_sample<L>(
    layers: &[L],
    x: &[f32],
    batch: usize,
    activation: ActivationKind,
    widths: impl Fn(&L) -> (usize, usize),
    matvec: impl Fn(&L, &[f32], &mut [f32]),
) -> Vec<f32> {
    type Buffers = std::cell::RefCell<[Vec<f32>; 2]>;
    thread_local! {
        static HIDDEN: Buffers = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
    }
    let run = |l: &L, input: &[f32], out: &mut [f32], n_in: usize, n_out: usize| {
        for s in 0..batch {
            matvec(
                l,
                &input[s * n_in..(s + 1) * n_in],
                &mut out[s * n_out..(s + 1) * n_out],
            );
        }
    };
    let Some((last, hidden)) = layers.split_last() else {
        return Vec::new();
    };
    let forward = |bufs: &mut [Vec<f32>; 2]| {
        // Hidden layer `li` writes buffer `li % 2` and reads the other one (layer 0 reads `x`).
        for (li, l) in hidden.iter().enumerate() {
            let (n_in, n_out) = widths(l);
            let [a, b] = &mut *bufs;
            let (src, dst) = if li % 2 == 0 { (&*b, a) } else { (&*a, b) };
            let input = if li == 0 { x } else { &src[..] };
            dst.clear();
            dst.resize(batch * n_out, 0.0);
            run(l, input, dst, n_in, n_out);
            activate(activation, dst);
        }
        let input = match hidden.len() {
            0 => x,
            n => &bufs[(n - 1) % 2][..],
        };
        let (n_in, n_out) = widths(last);
        let mut y = vec![0f32; batch * n_out];
        run(last, input, &mut y, n_in, n_out);
        y
    };
    HIDDEN.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => forward(&mut bufs),
        Err(_) => forward(&mut [Vec::new(), Vec::new()]),
    })
}

impl HostMlp {
    /// Writes the network like `model.safetensors` (PyTorch layout, activation in metadata).
    pub fn save(&self, path: &std::path::Path) -> Result<(), crate::export::ExportError> {
        let layers: Vec<(Vec<f32>, [usize; 2], Vec<f32>)> = self
            .layers
            .iter()
            .map(|l| (l.w.clone(), [l.n_out, l.n_in], l.b.clone()))
            .collect();
        crate::export::save_layers(&layers, self.activation, path)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use pruning::Rng;

    use super::*;

    /// A random network of these widths, about `density` of its weights nonzero.
    pub(crate) fn random_mlp(rng: &mut Rng, widths: &[usize], density: f64) -> HostMlp {
        HostMlp {
            layers: widths
                .windows(2)
                .map(|p| HostLayer {
                    w: (0..p[1] * p[0])
                        .map(|_| {
                            if rng.next_f64() < density {
                                rng.normal() as f32
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                    n_out: p[1],
                    n_in: p[0],
                    b: (0..p[1]).map(|_| rng.normal() as f32 * 0.1).collect(),
                })
                .collect(),
            activation: ActivationKind::Relu,
        }
    }

    /// `W·x + b` layer by layer in f64, the activation between layers.
    fn reference(m: &HostMlp, x: &[f32]) -> Vec<f64> {
        let mut h: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for (li, l) in m.layers.iter().enumerate() {
            h = (0..l.n_out)
                .map(|o| {
                    let row = &l.w[o * l.n_in..(o + 1) * l.n_in];
                    let s = f64::from(l.b[o])
                        + row
                            .iter()
                            .zip(&h)
                            .map(|(&w, &v)| f64::from(w) * v)
                            .sum::<f64>();
                    if li + 1 < m.layers.len() {
                        s.max(0.0)
                    } else {
                        s
                    }
                })
                .collect();
        }
        h
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (o, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}: output {o} is {g}, expected {w}"
            );
        }
    }

    #[test]
    fn reordered_hidden_units_leave_the_outputs_as_they_were() {
        let mut rng = Rng::new(23);
        for widths in [&[9, 7, 5, 3][..], &[20, 33, 1, 17, 4], &[6, 16, 2]] {
            let m = random_mlp(&mut rng, widths, 0.6);
            let mut p = m.clone();
            let mut orders = Vec::new();
            for li in 0..p.layers.len() - 1 {
                let mut order: Vec<usize> = (0..p.layers[li].n_out).collect();
                rng.shuffle(&mut order);
                p.permute_hidden(li, &order);
                orders.push(order);
            }
            assert!(
                orders.iter().any(|o| o.windows(2).any(|w| w[0] > w[1])),
                "{widths:?}: some unit moved"
            );
            for batch in [1, 3, 9] {
                let x: Vec<f32> = (0..batch * widths[0])
                    .map(|_| rng.normal() as f32)
                    .collect();
                let want: Vec<f64> = x
                    .chunks(widths[0])
                    .flat_map(|xs| reference(&m, xs))
                    .collect();
                let what = format!("{widths:?} at batch {batch}");
                assert_close(&m.forward(&x, batch), &want, &format!("{what}, as built"));
                assert_close(&p.forward(&x, batch), &want, &format!("{what}, reordered"));
            }
        }
    }

    #[test]
    fn a_layer_that_runs_a_network_itself_gets_buffers_of_its_own() {
        // The outer network's layers each run an inner network per sample, while the outer
        // call holds this thread's buffers.
        let mut rng = Rng::new(31);
        let inner = random_mlp(&mut rng, &[4, 6, 5, 4], 0.8);
        let outer: Vec<usize> = vec![0, 1, 2];
        let x: Vec<f32> = (0..2 * 4).map(|_| rng.normal() as f32).collect();
        let y = per_sample(
            &outer,
            &x,
            2,
            ActivationKind::Relu,
            |_| (4, 4),
            |_, xs, ys| ys.copy_from_slice(&inner.forward(xs, 1)),
        );
        // Three inner passes, the activation between them.
        let mut want = Vec::new();
        for xs in x.chunks(4) {
            let mut h = xs.to_vec();
            for k in 0..3 {
                h = reference(&inner, &h).iter().map(|&v| v as f32).collect();
                if k < 2 {
                    activate(ActivationKind::Relu, &mut h);
                }
            }
            want.extend(h.iter().map(|&v| f64::from(v)));
        }
        assert_close(&y, &want, "nested");
    }

    #[test]
    fn one_sample_at_a_time_through_many_layers_and_two_networks_in_turn() {
        // Four hidden layers of different widths (the buffers kept between calls change size
        // from call to call), below the batched kernels' batch size.
        let mut rng = Rng::new(29);
        let a = random_mlp(&mut rng, &[12, 30, 5, 21, 8, 3], 0.8);
        let b = random_mlp(&mut rng, &[7, 40, 2], 0.8);
        for round in 0..2 {
            for (m, n_in) in [(&a, 12), (&b, 7)] {
                for batch in [1, 2, 7] {
                    let x: Vec<f32> = (0..batch * n_in).map(|_| rng.normal() as f32).collect();
                    let want: Vec<f64> = x.chunks(n_in).flat_map(|xs| reference(m, xs)).collect();
                    let what = format!("round {round}, {:?} at batch {batch}", m.widths());
                    assert_close(&m.forward(&x, batch), &want, &what);
                }
            }
        }
    }
}
