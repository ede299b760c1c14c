//! One-sample kernels for CPUs with AVX-512: a dense matrix-vector product and a sliced sparse
//! one.
//!
//! At batch 1 no weight is reused, so a layer costs the time to stream its weights from cache.
//! On the development machine (2 AVX-512 cores), the whole 784-300-100-10 network takes:
//! - 19.3 µs through the portable dot product;
//! - 7.6 µs through `gemv` below: four rows at a time against one input, the weights read in
//!   aligned 64-byte lines where a row's length is a multiple of 16 (the 784-input layer),
//!   unaligned otherwise (a packed copy with every row aligned reached 6.7 µs);
//! - 6.8 µs for CSR at 90 %, which does a scalar gather per nonzero;
//! - 4.1 µs for the first form of the sliced layout below, which cut the inputs into fixed
//!   segments of 32.
//!
//! On a slower day, in one sitting, `gemv` took 9.0-9.6 µs, that first form 5.6 µs at 90 %
//! and the sliced layout with sliding windows 3.2 µs. With aligned index lines, groups of six
//! steps and the hidden units regrouped ([`row_order`]), 1.83 µs against `gemv`'s 7.76 µs
//! (criterion, one sitting, 2026-12-04).
//!
//! CPUs without AVX-512F run the portable kernels, which round differently: the same network
//! gives the same numbers on the same CPU, not across CPUs.
//!
//! The sliced layout ("SELL" with sliding windows): 16 output rows form a slice, one row per
//! vector lane. A step holds one nonzero per lane, all from one window of 32 inputs (two
//! aligned lines of the input, starting at any line); it picks the 16 inputs out of the
//! window's two registers with a permute (`vpermt2ps`, no gather), then does one multiply-add.
//! A lane without a weight in a step multiplies 0 by the window's first input, which adds
//! nothing when the input is finite; an input with an infinite or NaN value goes to CSR
//! instead, which touches only the inputs a row uses, so such a value reaches only the rows
//! that use it. Steps come in groups of six that share one index register (step `j` in bits
//! `5j..5j + 5` of each lane: the permute reads only an index's low five bits, so each step
//! shifts the register by five); two consecutive steps share a window.
//!
//! Each slice runs as one flat loop over its groups: the first form's blocks (one per segment
//! and slice) had a data-dependent number of steps, so the end of each block's loop was a
//! branch that changed from block to block, likely mispredicted (this VM exposes no counters to
//! confirm it); giving each block its exact count, with code unrolled per count, already took
//! 5.9 to 5.0 µs. At 90 % the sliding windows fill 58 % of the 784-input layer's lanes (fixed
//! segments: 49 %, after rounding each block to whole groups of four, 38 %).

use std::mem::MaybeUninit;

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_and_si512, _mm512_castps_si512,
    _mm512_cmpeq_epi32_mask, _mm512_fmadd_ps, _mm512_load_ps, _mm512_load_si512, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_load_ps, _mm512_maskz_loadu_ps, _mm512_permutex2var_ps,
    _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_srli_epi32, _mm512_store_ps,
    _mm512_storeu_ps,
};

/// Whether this CPU runs these kernels (`std` caches the detection).
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Sixteen floats on one 64-byte cache line.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line([f32; 16]);

/// A group's sixteen packed lane indices on one 64-byte cache line (a `[u32; 16]` in a `Vec`
/// may start anywhere, and a load across two lines costs two).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq)]
struct Indices([u32; 16]);

/// A line's sixteen floats in a register.
#[target_feature(enable = "avx512f")]
fn load(line: &Line) -> __m512 {
    // SAFETY: a `Line` is 16 floats on a 64-byte boundary.
    unsafe { _mm512_load_ps(line.0.as_ptr()) }
}

/// The lanes `lo..hi` (`lo <= hi <= 16`).
fn lanes(lo: usize, hi: usize) -> __mmask16 {
    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
}

/// `y = W·x + b` for one sample; `w` is `[y.len(), x.len()]`, row-major.
///
/// # Panics
/// If the CPU lacks AVX-512F or the lengths disagree.
pub(crate) fn gemv(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    assert!(available(), "gemv needs AVX-512F");
    assert_eq!(w.len(), y.len() * x.len(), "weight shape");
    assert_eq!(b.len(), y.len(), "bias length");
    // SAFETY: the CPU has AVX-512F (asserted above).
    unsafe { gemv_avx512(w, b, x, y) }
}

#[target_feature(enable = "avx512f")]
fn gemv_avx512(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        y.copy_from_slice(b);
        return;
    }
    // With n a multiple of 16 every row starts at the same offset `d` in its line: `x` goes `d`
    // floats into aligned, zero-filled lines, so that a row's aligned line i pairs with line i
    // of `xs`. Otherwise rows start at different offsets, and `x` goes in unshifted.
    let d = if n.is_multiple_of(16) { offset(w) } else { 0 };
    let mut xs = vec![Line([0.0; 16]); (d + n).div_ceil(16)];
    // SAFETY: `Line` is `repr(C)` around `[f32; 16]`, so the lines are 16·len contiguous floats.
    let flat =
        unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast::<f32>(), 16 * xs.len()) };
    flat[d..d + n].copy_from_slice(x);
    let dots = |o: usize, rows: usize, out: &mut [f32]| match (rows, n.is_multiple_of(16)) {
        (4, true) => out.copy_from_slice(&rows_in_step::<4>(&w[o * n..(o + 4) * n], n, &xs)),
        (4, false) => out.copy_from_slice(&rows_unaligned::<4>(&w[o * n..(o + 4) * n], n, &xs)),
        (_, true) => out.copy_from_slice(&rows_in_step::<1>(&w[o * n..(o + 1) * n], n, &xs)),
        (_, false) => out.copy_from_slice(&rows_unaligned::<1>(&w[o * n..(o + 1) * n], n, &xs)),
    };
    let mut o = 0;
    while o < y.len() {
        let rows = if o + 4 <= y.len() { 4 } else { 1 };
        let mut s = [0f32; 4];
        dots(o, rows, &mut s[..rows]);
        for r in 0..rows {
            y[o + r] = b[o + r] + s[r];
        }
        o += rows;
    }
}

/// The dot products of `R` consecutive rows of `w` (`[R, n]`, `n` a multiple of 16) with `x`,
/// which `xs` holds shifted by the rows' [`offset`] `d`.
///
/// Each row is read in whole aligned lines, from the line its first weight lies on to the line
/// of its last, the first and last masked to the row's own lanes: in the microbenchmark of
/// docs/performance.md, unaligned weight loads (most straddling two lines, each of those
/// costing two) took 11.3 µs for 784-300-100-10 against 6.7 µs aligned. The weights stream
/// from L2, `x` sits in L1.
///
/// The result does not depend on `d` (that is, on where the allocator put the weights). The
/// lines go in order, so each lane adds its terms in increasing index whatever `d` is; `d`
/// only rotates which lane holds which sum. The sum across lanes adds lane i to lane i + 8,
/// then i + 4, i + 2 and i + 1 (indices modulo each half), which pairs the same values under
/// any rotation. A test checks every offset bit for bit.
#[target_feature(enable = "avx512f")]
fn rows_in_step<const R: usize>(w: &[f32], n: usize, xs: &[Line]) -> [f32; R] {
    assert!(w.len() == R * n && n.is_multiple_of(16) && n > 0);
    let d = offset(w);
    let base = w.as_ptr().wrapping_sub(d);
    // Lines 0..=last; the row starts at lane d of line 0 and ends before lane `end` of line last.
    let last = (d + n).div_ceil(16) - 1;
    let end = d + n - 16 * last;
    assert!(xs.len() > last, "shifted input too short");
    let mut acc = [_mm512_setzero_ps(); R];
    // Line 0, the whole lines between, then line `last`: in order, so each lane adds its terms
    // in increasing index. The two edge lines are masked to the row; for a row on one line,
    // line 0 is also its last.
    let edge = |i: usize, m: __mmask16, acc: &mut [__m512; R]| {
        // SAFETY: i ≤ last < xs.len() (asserted above).
        let xv = load(unsafe { xs.get_unchecked(i) });
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: the lanes of m on line i of row r are floats of the row (its first line
            // from lane d, its last line up to lane `end`); masked-off lanes are not read
            // (AVX-512 suppresses their faults). Row r's line i is 16·i + r·n floats past
            // `base`, 64-byte aligned, as rows are consecutive and n is a multiple of 16.
            let wv = unsafe { _mm512_maskz_load_ps(m, base.wrapping_add(16 * i + r * n)) };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
    };
    edge(0, lanes(d, if last == 0 { end } else { 16 }), &mut acc);
    for i in 1..last {
        // SAFETY: i < last < xs.len() (asserted above).
        let xv = load(unsafe { xs.get_unchecked(i) });
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: line i (0 < i < last) of row r lies wholly inside the row; alignment as
            // above.
            let wv = unsafe { _mm512_load_ps(base.wrapping_add(16 * i + r * n)) };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
    }
    if last > 0 {
        edge(last, lanes(0, end), &mut acc);
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}

/// The dot products of `R` consecutive rows of `w` (`[R, n]`) with `x` (on aligned lines in
/// `xs`), the weights loaded unaligned: rows of a length that is not a multiple of 16 start at
/// different offsets in their lines, and shifting `x` for each offset cost more than it saved
/// (copies per call, four input loads per step).
#[target_feature(enable = "avx512f")]
fn rows_unaligned<const R: usize>(w: &[f32], n: usize, xs: &[Line]) -> [f32; R] {
    assert!(w.len() == R * n && xs.len() >= n.div_ceil(16));
    let mut acc = [_mm512_setzero_ps(); R];
    let whole = n / 16;
    for (i, line) in xs[..whole].iter().enumerate() {
        let xv = load(line);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: floats 16·i .. 16·i + 16 of row r lie inside it (i < n / 16).
            let wv = unsafe { _mm512_loadu_ps(w.as_ptr().add(r * n + 16 * i)) };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
    }
    if !n.is_multiple_of(16) {
        let xv = load(&xs[whole]);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: the lanes 0..n % 16 are the row's last floats; masked-off lanes are not
            // read.
            let wv = unsafe {
                _mm512_maskz_loadu_ps(lanes(0, n % 16), w.as_ptr().add(r * n + 16 * whole))
            };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}

/// How many floats of its 64-byte line precede `w`'s first.
fn offset(w: &[f32]) -> usize {
    (w.as_ptr() as usize % 64) / 4
}

/// A layer in the sliced layout (see the module's doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sliced {
    n_out: usize,
    n_in: usize,
    /// Groups of slice `s`: `group[s]..group[s + 1]`.
    group: Vec<u32>,
    /// Per group: lane `l`'s input within its step's window (0..32) for the group's step `j`,
    /// in bits `5j..5j + 5` of entry `l`.
    idx: Vec<Indices>,
    /// Per pair of steps (`STEPS / PER_WINDOW` per group): the first line of their window.
    window: Vec<u32>,
    /// Per step ([`STEPS`] per group): each lane's weight, 0 where the lane has none.
    val: Vec<Line>,
    /// Per slice: its rows' biases (0 past the last row).
    bias: Vec<Line>,
}

/// Steps that share a window (and its two input registers). At 90 %, one step per window filled
/// 61 % of the 784-input layer's lanes but loaded the window for every step; four per window
/// (with groups of four steps: once per group) filled 50 %; two (58 %) measured fastest:
/// 3.6-3.8 µs for the network against 4.0-4.2 (one) and 3.9-4.0 µs (four), in a scratch
/// benchmark. With groups of six, a C model of the first layer's loop gave the same order:
/// 0.61 ns a step with two, 0.58 ns with three but 9 % more steps, 0.78 ns with one.
const PER_WINDOW: usize = 2;
/// Steps per group, which share one index register. Six 5-bit indices fill 30 of a lane's 32
/// bits: fewer index bytes and loads per step than four (one per byte), for the same permutes
/// and shifts. The first layer of 784-300-100-10 at 90 % (rows regrouped, index lines aligned)
/// took 1.53-1.55 µs with four and 1.46 µs with six (three runs each, by turns).
const STEPS: usize = 6;
/// Bits of a step's index within its window of 32 inputs.
const INDEX_BITS: u32 = 5;
// A group's steps hold whole windows, and their indices fit a lane.
const _: () = assert!(STEPS.is_multiple_of(PER_WINDOW) && STEPS as u32 * INDEX_BITS <= 32);

impl Sliced {
    /// The layout of a CSR layer: rows `row_ptr[o]..row_ptr[o + 1]` of `col` (ascending within
    /// a row, each below `n_in`) and `val`.
    pub(crate) fn from_csr(
        n_in: usize,
        row_ptr: &[u32],
        col: &[u32],
        val: &[f32],
        b: &[f32],
    ) -> Self {
        let n_out = row_ptr.len() - 1;
        assert_eq!(b.len(), n_out, "bias length");
        // Checked in release builds too: the kernel's unchecked reads of the input rely on it.
        assert!(
            (0..n_out).all(|o| {
                let c = &col[row_ptr[o] as usize..row_ptr[o + 1] as usize];
                c.windows(2).all(|p| p[0] < p[1]) && c.iter().all(|&i| (i as usize) < n_in)
            }),
            "columns ascending within each row, below n_in"
        );
        let mut s = Self {
            n_out,
            n_in,
            group: vec![0],
            idx: Vec::new(),
            window: Vec::new(),
            val: Vec::new(),
            bias: Vec::new(),
        };
        for r0 in (0..n_out).step_by(16) {
            let rows = r0..(r0 + 16).min(n_out);
            let mut bias = Line([0.0; 16]);
            bias.0[..rows.len()].copy_from_slice(&b[rows.clone()]);
            s.bias.push(bias);
            s.push_slice(&row_ptr[rows.start..=rows.end], col, val);
            s.group.push(s.idx.len() as u32);
        }
        s
    }

    /// The steps of one slice, whose rows' nonzeros are `row_ptr[l]..row_ptr[l + 1]`, padded
    /// to whole groups with steps that hold no weight.
    ///
    /// Greedy: the window starts at the line of the leftmost nonzero not yet taken, and in each
    /// of its steps every lane takes its row's next nonzero if that lies in the window. Windows
    /// aligned to segments of 32 (the layout before this one) filled 49 % of the 784-input
    /// layer's lanes at 90 %; a window free to start at any line fills 58 %.
    fn push_slice(&mut self, row_ptr: &[u32], col: &[u32], val: &[f32]) {
        let rows = rows_of(row_ptr, col);
        // Per step: its window's first line, each lane's input within it and weight.
        let mut steps: Vec<(u32, [u32; 16], Line)> = Vec::new();
        schedule(&rows, |line, taken| {
            let (mut ix, mut v) = ([0u32; 16], Line([0.0; 16]));
            for (l, k) in taken.iter().enumerate() {
                if let Some(k) = *k {
                    ix[l] = rows[l][k] - 16 * line as u32;
                    v.0[l] = val[row_ptr[l] as usize + k];
                }
            }
            steps.push((line as u32, ix, v));
        });
        while !steps.len().is_multiple_of(STEPS) {
            steps.push((0, [0; 16], Line([0.0; 16])));
        }
        for group in steps.chunks_exact(STEPS) {
            let mut idx = [0u32; 16];
            for (j, (line, ix, v)) in group.iter().enumerate() {
                for (packed, &i) in idx.iter_mut().zip(ix) {
                    debug_assert!(i < 1 << INDEX_BITS, "an index within its window");
                    *packed |= i << (INDEX_BITS as usize * j);
                }
                if j % PER_WINDOW == 0 {
                    self.window.push(*line);
                }
                self.val.push(*v);
            }
            self.idx.push(Indices(idx));
        }
    }

    /// Lines of the padded input: a window's second line may lie one past the input's last.
    fn n_lines(&self) -> usize {
        self.n_in.div_ceil(16) + 1
    }

    /// Whether this layout should beat CSR's gather per nonzero for a layer with `nnz`
    /// nonzeros. A cost model, so that the choice depends on the weights alone and the same
    /// network gives the same numbers for the same finite sample (one with an infinite or NaN
    /// input runs through CSR, see `matvec`). The CSR side is the first form's fit; a step's
    /// 0.75 ns is the slope of 784-300-100-10's time from 90 % to 98 % (development machine),
    /// scaled by how much slower CSR ran that day; a slice's 3 ns and an input's 0.1 ns (copied
    /// and checked) are estimates. With CSR forced, the sliced layout was faster at every
    /// sparsity measured, 90 % to 99.9 %, as the model says.
    pub(crate) fn faster_than_csr(&self, nnz: usize) -> bool {
        let sliced =
            0.75 * self.val.len() as f64 + 3.0 * self.bias.len() as f64 + 0.1 * self.n_in as f64;
        let csr = 0.23 * nnz as f64 + 2.7 * self.n_out as f64;
        sliced < csr
    }

    /// `y = W·x + b` for one sample, or `false` (and `y` untouched) if `x` holds an infinite or
    /// NaN value: a lane without a weight multiplies 0 by some input of its window, which must
    /// then add nothing, and 0 × ∞ would add NaN. The caller then runs CSR, which touches only
    /// the inputs a row uses.
    ///
    /// # Panics
    /// If the CPU lacks AVX-512F or the lengths disagree.
    pub(crate) fn matvec(&self, x: &[f32], y: &mut [f32]) -> bool {
        assert!(available(), "the sliced kernel needs AVX-512F");
        assert_eq!(x.len(), self.n_in, "input width");
        assert_eq!(y.len(), self.n_out, "output width");
        // SAFETY: the CPU has AVX-512F (asserted above).
        unsafe { self.matvec_avx512(x, y) }
    }

    #[target_feature(enable = "avx512f")]
    fn matvec_avx512(&self, x: &[f32], y: &mut [f32]) -> bool {
        // The input on aligned lines: on the stack up to 64 lines (1008 inputs), not an
        // allocation per layer and sample, and left unwritten until `finite_lines` writes the
        // first `n_lines` (the input's and one zero line): zeroing all 64 cost 16-19 ns a
        // layer, about 50 ns of the 90 % network's 2.4 µs.
        let mut stack = [const { MaybeUninit::<Line>::uninit() }; 64];
        let mut heap = Vec::new();
        let n_lines = self.n_lines();
        let lines = if n_lines <= stack.len() {
            &mut stack[..n_lines]
        } else {
            heap.resize_with(n_lines, MaybeUninit::uninit);
            &mut heap[..]
        };
        let Some(xp) = finite_lines(x, lines) else {
            return false;
        };
        for (sl, bias) in self.bias.iter().enumerate() {
            let groups = self.group[sl] as usize..self.group[sl + 1] as usize;
            let sum = self.slice(groups, xp, load(bias));
            let rows = (self.n_out - 16 * sl).min(16);
            let out = &mut y[16 * sl..16 * sl + rows];
            // SAFETY: `out` holds `rows` floats; a full slice stores 16, a partial one only its
            // `rows` lanes.
            unsafe {
                if rows == 16 {
                    _mm512_storeu_ps(out.as_mut_ptr(), sum);
                } else {
                    _mm512_mask_storeu_ps(out.as_mut_ptr(), lanes(0, rows), sum);
                }
            }
        }
        true
    }

    /// One slice's sums over `groups`, starting from `bias`.
    #[target_feature(enable = "avx512f")]
    fn slice(&self, groups: std::ops::Range<usize>, xp: &[Line], bias: __m512) -> __m512 {
        assert!(groups.end <= self.idx.len() && xp.len() == self.n_lines());
        // One accumulator per step of a group, so the multiply-adds do not wait on each other.
        let mut acc = [_mm512_setzero_ps(); STEPS];
        acc[0] = bias;
        for q in groups {
            // SAFETY (unchecked reads: dropping the bounds checks and the allocation above took
            // the network at 90 % from 4.0-4.4 to 3.2 µs, one run each): `from_csr` gives every
            // group `q < idx.len()` `STEPS` steps in `val` and `STEPS / PER_WINDOW` windows in
            // `window`. Each window's line is below `n_lines() - 1`: it is the line of an input
            // below `n_in` (asserted in `from_csr`), or 0 for a padding step, which exists only
            // in a slice with a nonzero, so `n_in >= 1` and `n_lines() >= 2`. `xp` has `n_lines()`
            // lines (asserted above). `idx[q]` is one `Indices`, 64 bytes on a 64-byte line.
            unsafe {
                let mut ix = _mm512_load_si512(self.idx.get_unchecked(q).0.as_ptr().cast());
                let mut window = (_mm512_setzero_ps(), _mm512_setzero_ps());
                for (j, a) in acc.iter_mut().enumerate() {
                    if j % PER_WINDOW == 0 {
                        let w = (STEPS * q + j) / PER_WINDOW;
                        let line = *self.window.get_unchecked(w) as usize;
                        debug_assert!(line + 1 < xp.len(), "window past the input");
                        window = (
                            load(xp.get_unchecked(line)),
                            load(xp.get_unchecked(line + 1)),
                        );
                    }
                    let xv = _mm512_permutex2var_ps(window.0, ix, window.1);
                    *a = _mm512_fmadd_ps(load(self.val.get_unchecked(STEPS * q + j)), xv, *a);
                    ix = _mm512_srli_epi32::<{ INDEX_BITS }>(ix);
                }
            }
        }
        acc.into_iter()
            .reduce(|s, a| _mm512_add_ps(s, a))
            .unwrap_or(bias)
    }
}

/// The greedy schedule of one slice (see [`Sliced::push_slice`]), whose lane `l` holds the row
/// with nonzero columns `rows[l]` (ascending): for each step, its window's first line and, per
/// lane, the position in the lane's row of the nonzero it takes (`None`: no weight).
fn schedule(rows: &[&[u32]], mut step: impl FnMut(usize, &[Option<usize>; 16])) {
    assert!(rows.len() <= 16, "a slice holds 16 rows");
    let mut next = [0usize; 16];
    while let Some(&first) = rows.iter().zip(&next).filter_map(|(r, &k)| r.get(k)).min() {
        let line = first as usize / 16;
        for _ in 0..PER_WINDOW {
            let mut taken = [None; 16];
            for (l, r) in rows.iter().enumerate() {
                if let Some(&c) = r.get(next[l])
                    && (c as usize) < 16 * line + 32
                {
                    taken[l] = Some(next[l]);
                    next[l] += 1;
                }
            }
            step(line, &taken);
        }
    }
}

/// Each row's columns, from CSR row starts and columns.
fn rows_of<'a>(row_ptr: &[u32], col: &'a [u32]) -> Vec<&'a [u32]> {
    row_ptr
        .windows(2)
        .map(|r| &col[r[0] as usize..r[1] as usize])
        .collect()
}

/// Steps of a slice holding `rows`, before padding to whole groups.
fn steps_of(rows: &[&[u32]]) -> usize {
    let mut n = 0;
    schedule(rows, |_, _| n += 1);
    n
}

/// An order of a layer's rows (each given by its nonzero columns, ascending) that packs them
/// into slices of 16 with fewer steps than their natural order, so that a layer whose output
/// units may be reordered (a hidden layer: the next layer's columns follow) runs faster.
///
/// Greedy: rows by nonzero count, most first; each slice starts from the fullest row left and
/// then takes, among the next `pool` rows left, the one that adds the fewest steps. A slice's
/// step count is set by its rows' fullest windows, so rows that fill the same windows belong
/// together. On 784-300-100-10's first layer at 90 % (random masks, the benchmark's), the
/// natural order took 2,580 steps and 1.62 µs, this order (pool 64, 39 ms to find) 2,304 steps
/// and 1.45 µs. `pool` shrinks as the layer's nonzeros grow, to keep near 2^26 row visits;
/// where even one candidate would exceed that, the rows are only sorted. The natural order is
/// kept where the greedy's is not shorter.
pub(crate) fn row_order(row_ptr: &[u32], col: &[u32]) -> Vec<usize> {
    let rows = rows_of(row_ptr, col);
    let natural: Vec<usize> = (0..rows.len()).collect();
    let mut left = natural.clone();
    left.sort_by_key(|&r| std::cmp::Reverse(rows[r].len()));
    let pool = (1usize << 26) / (32 * col.len()).max(1);
    if pool < 2 {
        return keep_shorter(&rows, natural, left);
    }
    let pool = pool.min(64);
    let mut order = Vec::with_capacity(rows.len());
    let mut slice: Vec<&[u32]> = Vec::with_capacity(16);
    while !left.is_empty() {
        slice.clear();
        let first = left.remove(0);
        slice.push(rows[first]);
        order.push(first);
        while slice.len() < 16 && !left.is_empty() {
            let mut best = (usize::MAX, 0);
            for (pos, &r) in left.iter().enumerate().take(pool) {
                slice.push(rows[r]);
                let steps = steps_of(&slice);
                slice.pop();
                if steps < best.0 {
                    best = (steps, pos);
                }
            }
            let r = left.remove(best.1);
            slice.push(rows[r]);
            order.push(r);
        }
    }
    keep_shorter(&rows, natural, order)
}

/// `regrouped` where its slices take fewer steps (padded to whole groups) than `natural`'s.
fn keep_shorter(rows: &[&[u32]], natural: Vec<usize>, regrouped: Vec<usize>) -> Vec<usize> {
    if padded_steps(rows, &regrouped) < padded_steps(rows, &natural) {
        regrouped
    } else {
        natural
    }
}

/// Steps of `rows` cut into slices of 16 in `order`, each padded to whole groups: the layout's
/// length (`Sliced::val`).
fn padded_steps(rows: &[&[u32]], order: &[usize]) -> usize {
    order
        .chunks(16)
        .map(|c| {
            let slice: Vec<&[u32]> = c.iter().map(|&r| rows[r]).collect();
            steps_of(&slice).div_ceil(STEPS) * STEPS
        })
        .sum()
}

/// Writes `x` onto the lines `xp`, zero past its end, and returns them written if `x` is finite;
/// `None` if it holds an infinite or NaN value (all exponent bits set).
#[target_feature(enable = "avx512f")]
fn finite_lines<'a>(x: &[f32], xp: &'a mut [MaybeUninit<Line>]) -> Option<&'a mut [Line]> {
    assert!(16 * xp.len() >= x.len());
    let exponent = _mm512_set1_epi32(0x7f80_0000);
    let mut bad: __mmask16 = 0;
    let mut parts = x.chunks(16);
    for line in xp.iter_mut() {
        let Some(part) = parts.next() else {
            line.write(Line([0.0; 16]));
            continue;
        };
        // SAFETY: the lanes 0..part.len() are `part`'s floats; masked-off lanes are not read.
        let v = unsafe { _mm512_maskz_loadu_ps(lanes(0, part.len()), part.as_ptr()) };
        let e = _mm512_and_si512(_mm512_castps_si512(v), exponent);
        bad |= _mm512_cmpeq_epi32_mask(e, exponent);
        // SAFETY: a `Line` is 16 floats on a 64-byte boundary; the store writes all of them.
        unsafe { _mm512_store_ps(line.as_mut_ptr().cast::<f32>(), v) };
    }
    // SAFETY: the loop wrote every line of `xp` (a whole line each: the input's floats, zero in
    // the masked-off lanes, or zeros), and `MaybeUninit<Line>` has `Line`'s layout.
    let xp = unsafe { &mut *(std::ptr::from_mut(xp) as *mut [Line]) };
    (bad == 0).then_some(xp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::csr::csr_arrays as csr;
    use pruning::Rng;

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect()
    }

    /// `W·x + b` in f64.
    fn reference(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f64> {
        b.iter()
            .enumerate()
            .map(|(o, &bo)| {
                let row = &w[o * x.len()..(o + 1) * x.len()];
                bo as f64
                    + row
                        .iter()
                        .zip(x)
                        .map(|(&a, &c)| a as f64 * c as f64)
                        .sum::<f64>()
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (o, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}: output {o} is {g}, expected {w}"
            );
        }
    }

    const SHAPES: [(usize, usize); 14] = [
        (0, 5),
        (3, 0),
        (1, 1),
        (1, 16),
        (3, 16),
        (3, 5),
        (4, 16),
        (5, 31),
        (7, 33),
        (17, 64),
        (16, 100),
        (33, 300),
        (300, 784),
        // Past the 64 lines the kernel keeps on the stack.
        (5, 1100),
    ];

    #[test]
    fn gemv_matches_the_reference_and_itself_at_every_alignment() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = Rng::new(3);
        for (n_out, n_in) in SHAPES {
            // The same weights at each of the 16 offsets in a line.
            let w = random(&mut rng, n_out * n_in);
            let (x, b) = (random(&mut rng, n_in), random(&mut rng, n_out));
            let mut first: Option<Vec<u32>> = None;
            for shift in 0..16 {
                let mut buf = vec![0.0; n_out * n_in + 16];
                buf[shift..shift + n_out * n_in].copy_from_slice(&w);
                let w = &buf[shift..shift + n_out * n_in];
                let mut y = vec![f32::NAN; n_out];
                gemv(w, &b, &x, &mut y);
                let what = format!("{n_out}×{n_in} +{shift}");
                assert_close(&y, &reference(w, &b, &x), &what);
                // Where the allocator put the weights must not change a bit of the result.
                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                let y0 = first.get_or_insert_with(|| bits.clone());
                assert_eq!(&bits, y0, "{what}: differs from another offset");
            }
        }
    }

    #[test]
    fn sliced_matches_the_reference_at_every_sparsity_and_shape() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = Rng::new(5);
        for (n_out, n_in) in SHAPES {
            for sparsity in [0.0, 0.5, 0.9, 0.99, 1.0] {
                let w = sparse(&mut rng, n_out * n_in, sparsity);
                let (x, b) = (random(&mut rng, n_in), random(&mut rng, n_out));
                let (ptr, col, val) = csr(&w, n_out, n_in);
                let s = Sliced::from_csr(n_in, &ptr, &col, &val, &b);
                let mut y = vec![f32::NAN; n_out];
                let what = format!("{n_out}×{n_in} at {sparsity}");
                assert!(s.matvec(&x, &mut y), "{what}: a finite input runs");
                assert_close(&y, &reference(&w, &b, &x), &what);
            }
        }
    }

    /// `n` random weights, each zero with probability `sparsity`.
    fn sparse(rng: &mut Rng, n: usize, sparsity: f64) -> Vec<f32> {
        let mut w = random(rng, n);
        for v in &mut w {
            if rng.next_f64() < sparsity {
                *v = 0.0;
            }
        }
        w
    }

    #[test]
    fn a_non_finite_input_runs_through_the_gather_and_rows_that_skip_it_stay_finite() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // A lane without a weight multiplies 0 by its window's first input: input 0 for the
        // padding steps (window 0), 16 for a window that starts at line 1, and so on. Inputs 0,
        // 16, a middle one and the last (in a line of its own where the width is not a
        // multiple of 16) each get an infinite and a NaN value in turn.
        let mut rng = Rng::new(11);
        for (n_out, n_in) in [(300, 784), (40, 100)] {
            let w = sparse(&mut rng, n_out * n_in, 0.9);
            let b = vec![0.25; n_out];
            let (ptr, col, val) = csr(&w, n_out, n_in);
            let s = Sliced::from_csr(n_in, &ptr, &col, &val, &b);
            assert!(s.faster_than_csr(val.len()), "the layer would run sliced");
            let layer = crate::inference::Csr::from_dense(&w, n_out, n_in, &b);
            for (at, bad) in [0, 16, n_in / 2, n_in - 1]
                .into_iter()
                .flat_map(|at| [(at, f32::INFINITY), (at, f32::NAN)])
            {
                let what = format!("{n_out}×{n_in}, {bad} at {at}");
                let mut x = random(&mut rng, n_in);
                x[at] = bad;
                let mut y = vec![7.0; n_out];
                assert!(!s.matvec(&x, &mut y), "{what}: refused");
                assert!(y.iter().all(|&v| v == 7.0), "{what}: output untouched");
                layer.matvec(&x, &mut y);
                x[at] = 0.0;
                let finite = reference(&w, &b, &x);
                for o in 0..n_out {
                    if w[o * n_in + at] == 0.0 {
                        assert_close(&y[o..=o], &finite[o..=o], &format!("{what}: row {o}"));
                    } else {
                        assert!(!y[o].is_finite(), "{what}: row {o} uses it: {}", y[o]);
                    }
                }
            }
        }
    }

    #[test]
    fn regrouping_rows_packs_a_random_90_percent_layer_into_fewer_steps() {
        let mut rng = Rng::new(13);
        let w = sparse(&mut rng, 300 * 784, 0.9);
        let (ptr, col, val) = csr(&w, 300, 784);
        let rows = rows_of(&ptr, &col);
        let order = row_order(&ptr, &col);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..300).collect::<Vec<_>>(), "a permutation");
        let natural: Vec<usize> = (0..300).collect();
        let (before, after) = (padded_steps(&rows, &natural), padded_steps(&rows, &order));
        // 2,580 → 2,304 on the benchmark's layer; a regrouping that stopped paying would show.
        assert!(
            (after as f64) < 0.93 * before as f64,
            "{before} steps in the natural order, {after} regrouped"
        );
        // The count the greedy minimises is the layout's length.
        let s = Sliced::from_csr(784, &ptr, &col, &val, &[0.0; 300]);
        assert_eq!(s.val.len(), before);
    }

    #[test]
    fn the_sliced_layout_is_chosen_from_90_to_99_9_percent_and_csr_for_a_wide_input() {
        let mut rng = Rng::new(7);
        for sparsity in [0.9, 0.999] {
            let (ptr, col, val) = csr(&sparse(&mut rng, 300 * 784, sparsity), 300, 784);
            let s = Sliced::from_csr(784, &ptr, &col, &val, &[0.0; 300]);
            assert!(s.faster_than_csr(val.len()), "at {sparsity}");
        }
        // One weight on an input of 100,000: copying and checking the input costs more than
        // the one product.
        let s = Sliced::from_csr(100_000, &[0, 1], &[5], &[1.0], &[0.0]);
        assert!(
            !s.faster_than_csr(1),
            "a wide input with one weight keeps the gather"
        );
    }
}
