//! Compressed sparse row weights and the sparse forward pass.
//!
//! Written here rather than taken from a crate: the kernel is twenty lines, and `sprs` or
//! `nalgebra-sparse` would bring their own matrix types and conversions for one product. Rows
//! are output units (PyTorch's `[out, in]` layout), so one row's nonzeros are one unit's
//! incoming weights and a sample's output is a gather-dot per row. On CPUs with AVX-512F, one
//! sample runs through a sliced copy of the layer instead (`avx512.rs`), where that is faster.

use super::host::{HostMlp, activate};
use crate::config::ActivationKind;

/// One layer in CSR: `row_ptr[o]..row_ptr[o + 1]` index the nonzeros of output unit `o`.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    n_out: usize,
    n_in: usize,
    /// Row starts, `n_out + 1` entries.
    row_ptr: Vec<u32>,
    /// Input index of each nonzero (always below `n_in`: the kernels rely on it).
    col: Vec<u32>,
    /// Value of each nonzero.
    val: Vec<f32>,
    b: Vec<f32>,
    /// The same weights in the sliced layout, on CPUs with AVX-512F where its cost model says it
    /// is faster: one sample with finite inputs then runs there (8.3 → 3.1 µs for
    /// 784-300-100-10 at 90 % on a slow day, in one sitting; 1.8 µs since 2026-12-04). It takes
    /// about as much memory as CSR (207 against 216 KB for 784-300-100-10 at 90 %, random
    /// masks: lanes padded where a row has no weight in a step, but no column indices), and is
    /// not counted in `bytes`, which is the stored format's size.
    #[cfg(target_arch = "x86_64")]
    sliced: Option<super::avx512::Sliced>,
}

impl Csr {
    /// The nonzeros of `w` (`[n_out, n_in]`).
    pub fn from_dense(w: &[f32], n_out: usize, n_in: usize, b: &[f32]) -> Self {
        let (row_ptr, col, val) = csr_arrays(w, n_out, n_in);
        Self {
            n_out,
            n_in,
            #[cfg(target_arch = "x86_64")]
            sliced: super::avx512::available()
                .then(|| super::avx512::Sliced::from_csr(n_in, &row_ptr, &col, &val, b))
                .filter(|s| s.faster_than_csr(val.len())),
            row_ptr,
            col,
            val,
            b: b.to_vec(),
        }
    }

    /// Nonzero weights.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// Bytes of the CSR arrays: values (f32), column indices and row starts (u32).
    pub fn bytes(&self) -> usize {
        Self::stored_bytes(self.nnz(), self.n_out)
    }

    /// [`Csr::bytes`] of a layer with `nnz` nonzeros and `n_out` rows, without building it.
    pub fn stored_bytes(nnz: usize, n_out: usize) -> usize {
        4 * (2 * nnz + n_out + 1)
    }

    /// Output units.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Inputs.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// `y = W·x + b` for one sample: through the sliced layout where the CPU has AVX-512F and
    /// `x` is finite, else a gather per nonzero.
    #[inline]
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), self.n_in, "input width");
        assert_eq!(y.len(), self.n_out, "output width");
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = &self.sliced
            && s.matvec(x, y)
        {
            return;
        }
        for (o, yo) in y.iter_mut().enumerate() {
            let (s, e) = (self.row_ptr[o] as usize, self.row_ptr[o + 1] as usize);
            let (cols, vals) = (&self.col[s..e], &self.val[s..e]);
            let mut acc = [0f32; 8];
            let (cc, vc) = (cols.chunks_exact(8), vals.chunks_exact(8));
            let (cr, vr) = (cc.remainder(), vc.remainder());
            for (c, v) in cc.zip(vc) {
                for j in 0..8 {
                    // SAFETY: `from_dense` is the only constructor and stores only column
                    // indices below `n_in`; the fields are private; `x.len() == n_in` is
                    // asserted above. The gather is the kernel's inner loop, where a bounds
                    // check per weight costs a third of the time.
                    acc[j] += v[j] * unsafe { *x.get_unchecked(c[j] as usize) };
                }
            }
            let mut sum: f32 = acc.iter().sum();
            for (c, v) in cr.iter().zip(vr) {
                sum += v * x[*c as usize];
            }
            *yo = self.b[o] + sum;
        }
    }
}

/// The CSR arrays of `w` (`[n_out, n_in]`): row starts (`n_out + 1`), the column of each
/// nonzero (ascending within a row) and its value.
pub(crate) fn csr_arrays(w: &[f32], n_out: usize, n_in: usize) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let mut row_ptr = Vec::with_capacity(n_out + 1);
    let (mut col, mut val) = (Vec::new(), Vec::new());
    row_ptr.push(0);
    for o in 0..n_out {
        for (i, &v) in w[o * n_in..(o + 1) * n_in].iter().enumerate() {
            if v != 0.0 {
                col.push(i as u32);
                val.push(v);
            }
        }
        row_ptr.push(col.len() as u32);
    }
    (row_ptr, col, val)
}

impl Csr {
    /// `Yᵀ = W·Xᵀ + b` for a batch held transposed (`xt` is `[n_in, batch]`, `yt` is
    /// `[n_out, batch]`): each nonzero scales one contiguous row of `xt`, a loop the compiler
    /// vectorises across the batch, and every weight is read once per batch.
    pub fn matmat_t(&self, xt: &[f32], batch: usize, yt: &mut [f32]) {
        for o in 0..self.n_out {
            let y = &mut yt[o * batch..(o + 1) * batch];
            y.fill(self.b[o]);
            let (s, e) = (self.row_ptr[o] as usize, self.row_ptr[o + 1] as usize);
            for k in s..e {
                let v = self.val[k];
                let c = self.col[k] as usize;
                let xr = &xt[c * batch..(c + 1) * batch];
                for (yi, xi) in y.iter_mut().zip(xr) {
                    *yi += v * xi;
                }
            }
        }
    }
}

/// `x` `[rows, cols]` → `[cols, rows]`.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

/// Batches at least this large use the transposed kernel.
pub(crate) const BATCHED: usize = 8;

/// An MLP whose layers are CSR.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMlp {
    /// Layers, input side first. Hidden units may be in another order than the host network's
    /// (see [`CsrMlp::from_host`]).
    pub layers: Vec<Csr>,
    /// Hidden activation.
    pub activation: ActivationKind,
}

impl CsrMlp {
    /// The CSR form of a host network (zeros dropped). Where the CPU runs the sliced layout,
    /// each hidden layer's units are first reordered so that its slices take fewer steps
    /// (`inference::avx512::row_order`: the first layer of 784-300-100-10 at 90 % took 1.62 µs in
    /// its natural order and 1.45 µs regrouped); the inputs and outputs keep their order, so
    /// the network computes the same function, to rounding (a reordered layer's next layer adds
    /// its terms in another order).
    pub fn from_host(m: &HostMlp) -> Self {
        #[cfg(target_arch = "x86_64")]
        let regrouped = super::avx512::available().then(|| {
            let mut m = m.clone();
            for li in 0..m.layers.len().saturating_sub(1) {
                let l = &m.layers[li];
                let (row_ptr, col, _) = csr_arrays(&l.w, l.n_out, l.n_in);
                let order = super::avx512::row_order(&row_ptr, &col);
                m.permute_hidden(li, &order);
            }
            m
        });
        #[cfg(target_arch = "x86_64")]
        let m = regrouped.as_ref().unwrap_or(m);
        Self {
            layers: m
                .layers
                .iter()
                .map(|l| Csr::from_dense(&l.w, l.n_out, l.n_in, &l.b))
                .collect(),
            activation: m.activation,
        }
    }

    /// Outputs `[batch, n_out]` for inputs `[batch, n_in]`.
    pub fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let last = self.layers.len() - 1;
        if batch >= BATCHED {
            let mut h = transpose(x, batch, self.layers[0].n_in());
            for (li, l) in self.layers.iter().enumerate() {
                let mut out = vec![0f32; l.n_out * batch];
                l.matmat_t(&h, batch, &mut out);
                if li < last {
                    activate(self.activation, &mut out);
                }
                h = out;
            }
            return transpose(&h, self.layers[last].n_out(), batch);
        }
        super::host::per_sample(
            &self.layers,
            x,
            batch,
            self.activation,
            |l| (l.n_in, l.n_out),
            Csr::matvec,
        )
    }
}

#[cfg(test)]
mod tests {
    use pruning::Rng;

    use super::*;
    use crate::inference::HostLayer;
    use crate::inference::host::tests::random_mlp;

    /// The CSR network's outputs against the host network's, at batch 1 (the sliced kernels
    /// where the CPU has them) and 9 (the batched kernel).
    fn assert_same_outputs(m: &HostMlp, rng: &mut Rng, what: &str) {
        let csr = CsrMlp::from_host(m);
        let n_in = m.layers[0].n_in;
        for batch in [1, 9] {
            let x: Vec<f32> = (0..batch * n_in).map(|_| rng.normal() as f32).collect();
            let (want, got) = (m.forward(&x, batch), csr.forward(&x, batch));
            assert_eq!(got.len(), want.len(), "{what}: length");
            for (o, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{what}, batch {batch}, output {o}: {g} against {w}"
                );
            }
        }
    }

    #[test]
    fn a_network_with_regrouped_hidden_units_computes_the_same_outputs() {
        let mut rng = Rng::new(17);
        let m = random_mlp(&mut rng, &[200, 120, 40, 10], 0.1);
        #[cfg(target_arch = "x86_64")]
        if super::super::avx512::available() {
            let l = &m.layers[0];
            let natural = Csr::from_dense(&l.w, l.n_out, l.n_in, &l.b);
            let csr = CsrMlp::from_host(&m);
            assert_ne!(
                csr.layers[0], natural,
                "the first hidden layer's units were regrouped"
            );
        }
        assert_same_outputs(&m, &mut rng, "200-120-40-10 at 90 %");
    }

    #[test]
    fn layers_without_inputs_or_units_convert_and_run() {
        let mut rng = Rng::new(19);
        // A hidden layer with no inputs (its units are their biases), and one with no units.
        let mut m = random_mlp(&mut rng, &[3, 4, 2], 0.5);
        m.layers[1] = HostLayer {
            w: Vec::new(),
            n_out: 2,
            n_in: 0,
            b: vec![0.5, -1.0],
        };
        m.layers[0] = HostLayer {
            w: Vec::new(),
            n_out: 0,
            n_in: 3,
            b: Vec::new(),
        };
        assert_same_outputs(&m, &mut rng, "3-0-2");
        let m = random_mlp(&mut rng, &[0, 5, 2], 0.5);
        assert_same_outputs(&m, &mut rng, "0-5-2");
    }
}
