//! The host loops of the sparse product and its gradients.
//!
//! Everything runs on transposed activations, `[features][batch]`: one kept weight then
//! scales a whole row of the batch (`lanes` contiguous floats) into an accumulator row, which
//! vectorizes across the batch instead of gathering single floats. The accumulator, 64 lanes
//! at a time, stays in registers while a row's kept weights stream past. Each loop is compiled
//! for AVX-512 and AVX2 as well as the baseline and picked at run time, as the dense GEMM does.

use std::mem::MaybeUninit;

/// Lanes accumulated at once: four AVX-512 registers, eight AVX2 ones.
const CHUNK: usize = 64;
/// The narrower chunk for what is left of a batch (one AVX-512 register, two AVX2 ones).
const NARROW: usize = 16;

/// Sixteen floats on one 64-byte cache line.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
struct Line([f32; 16]);

/// Floats that start on a 64-byte boundary, so that rows of a multiple of 16 floats (a block of
/// 128 samples, transposed) are whole cache lines. A `Vec<f32>` starts wherever the allocator
/// puts it, 16 bytes past a line as often as not; then every 64-byte load of a row straddles
/// two lines, and the forward pass of the 90 %-sparse step took about 0.29 instead of 0.24 ms
/// in the processes where most blocks landed so (docs/performance.md).
#[derive(Debug, Clone)]
pub(crate) struct Aligned {
    lines: Vec<Line>,
    len: usize,
}

impl std::ops::Deref for Aligned {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`, so the lines are `16 · lines.len() >=
        // len` contiguous, initialized floats.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, borrowed uniquely.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl Aligned {
    /// `len` floats starting on a cache line, written by `fill`; the rest of the last line is
    /// zero. Not zero-filled first: the callers write every float, each line whole in turn, and
    /// a fill beforehand was a pass of its own (23 µs of the 44 µs the first layer's 128 × 784
    /// input block took to transpose, before the strips of `avx::tiles`).
    ///
    /// # Safety
    /// `fill` writes all `len` floats of the slice it is given.
    unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Self {
        let n_lines = len.div_ceil(16);
        let mut lines: Vec<Line> = Vec::with_capacity(n_lines);
        let spare = &mut lines.spare_capacity_mut()[..n_lines];
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`, so `n_lines` uninitialized lines are
        // `16 · n_lines` uninitialized floats.
        let floats = unsafe {
            std::slice::from_raw_parts_mut(
                spare.as_mut_ptr().cast::<MaybeUninit<f32>>(),
                16 * n_lines,
            )
        };
        let (body, tail) = floats.split_at_mut(len);
        fill(body);
        tail.fill(MaybeUninit::new(0.0));
        // SAFETY: `fill` wrote the first `len` floats (the caller's promise) and the fill the
        // rest of the last line, so all `n_lines` lines are initialized.
        unsafe { lines.set_len(n_lines) };
        Aligned { lines, len }
    }
}

/// `t` (`[rows][cols]`, row-major) transposed to `[cols][rows]`, starting on a cache line.
pub(crate) fn transpose(t: &[f32], rows: usize, cols: usize) -> Aligned {
    // SAFETY: `transpose_uninit` writes every float of its output.
    unsafe { Aligned::written(t.len(), |out| transpose_uninit(t, rows, cols, out)) }
}

/// Columns `c0..c0 + n` of `t` (`[rows][cols]`, row-major) as `[rows][n]`, starting on a cache
/// line: a block of samples of activations already laid out `[features][batch]`.
pub(crate) fn columns(t: &[f32], rows: usize, cols: usize, c0: usize, n: usize) -> Aligned {
    assert!(
        t.len() == rows * cols && c0 + n <= cols,
        "a block of columns inside the matrix"
    );
    // SAFETY: every one of the `rows` rows of `n` floats is written from its row of `t`.
    unsafe {
        Aligned::written(rows * n, |out| {
            for (o, row) in out.chunks_exact_mut(n.max(1)).zip(t.chunks_exact(cols)) {
                for (o, &v) in o.iter_mut().zip(&row[c0..c0 + n]) {
                    *o = MaybeUninit::new(v);
                }
            }
        })
    }
}

/// `src` (`[rows][n]`) written into columns `c0..c0 + n` of `out` (`[rows][cols]`): a block's
/// result put in its place among the samples of a `[features][batch]` output.
pub(crate) fn put_columns(
    src: &[f32],
    rows: usize,
    n: usize,
    out: &mut [MaybeUninit<f32>],
    cols: usize,
    c0: usize,
) {
    assert!(
        src.len() == rows * n && out.len() == rows * cols && c0 + n <= cols,
        "a block of columns inside the matrix"
    );
    if n == 0 {
        return;
    }
    for (o, s) in out.chunks_exact_mut(cols).zip(src.chunks_exact(n)) {
        for (o, &v) in o[c0..c0 + n].iter_mut().zip(s) {
            *o = MaybeUninit::new(v);
        }
    }
}

/// Adds `bias[r]` to every float of row `r` of `t` (`[rows][lanes]`): a layer's bias on its
/// transposed output, the same single rounding as adding it to `[batch][rows]`.
pub(crate) fn add_bias(t: &mut [f32], bias: &[f32], lanes: usize) {
    if lanes == 0 {
        return;
    }
    for (row, &b) in t.chunks_exact_mut(lanes).zip(bias) {
        for v in row {
            *v += b;
        }
    }
}

/// The bias gradient: `dy` summed over its `batch` samples for each of its `cols` outputs,
/// with the bits of Burn's gradient for a bias added to a `[batch][cols]` product held in
/// row-major memory (as the trainer's are): above one sample, the broadcast addition's
/// `sum_dim(0)`, which on Flex and ndarray adds a row at a time into a zeroed result, so each
/// output's samples are summed from zero in order; at one sample there is no broadcast, and the
/// gradient is `dy` itself (a `-0.0` stays one, where a sum from zero would make it `+0.0`).
/// `transposed`: `dy` is `[cols][batch]`.
pub(crate) fn bias_grad(dy: &[f32], batch: usize, cols: usize, transposed: bool) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        batch * cols,
        "the output gradient is batch × cols"
    );
    if batch == 1 {
        // One sample: `[1][cols]` and `[cols][1]` hold the same floats in the same order.
        return dy.to_vec();
    }
    let mut db = vec![0f32; cols];
    if batch == 0 {
        return db;
    }
    if !transposed {
        for row in dy.chunks_exact(cols.max(1)) {
            for (d, &v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        return db;
    }
    // Each output's row summed in sample order. With AVX, eight rows at a time: an 8 × 8 tile
    // transposed puts sample `b` of the eight rows in one register, added to theirs in turn,
    // instead of one chain of dependent additions per row.
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked above).
        unsafe { avx::row_sums(dy, cols, batch, &mut db) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (d, row) in db[done..]
        .iter_mut()
        .zip(dy[done * batch..].chunks_exact(batch))
    {
        for &v in row {
            *d += v;
        }
    }
    db
}

/// `t` (`[rows][cols]`, row-major) transposed into `out` (`[cols][rows]`), every float of which
/// it writes: 8 × 8 tiles through AVX shuffles where the CPU has AVX (element by element, the
/// transposes were a tenth of a 90 %-sparse training step), the ragged edges and other CPUs one
/// element at a time.
pub(crate) fn transpose_uninit(t: &[f32], rows: usize, cols: usize, out: &mut [MaybeUninit<f32>]) {
    assert!(
        t.len() == rows * cols && out.len() == rows * cols,
        "transpose sizes"
    );
    // The rows and columns the tiles covered.
    #[cfg(target_arch = "x86_64")]
    let (rt, ct) = if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked above).
        unsafe { avx::tiles(t, rows, cols, out) }
    } else {
        (0, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (rt, ct) = (0, 0);
    // The tiles wrote rows `..rt` × columns `..ct`; this writes the rest.
    for r in 0..rows {
        let cs = if r < rt { ct..cols } else { 0..cols };
        for c in cs {
            out[c * rows + r] = MaybeUninit::new(t[r * cols + c]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_setzero_ps,
        _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    use std::mem::MaybeUninit;

    /// The whole 8 × 8 tiles of `t` transposed into `out`; returns the rows and columns they
    /// cover (the edges beyond are the caller's).
    #[target_feature(enable = "avx")]
    pub(super) fn tiles(
        t: &[f32],
        rows: usize,
        cols: usize,
        out: &mut [MaybeUninit<f32>],
    ) -> (usize, usize) {
        assert!(t.len() >= rows * cols && out.len() >= rows * cols);
        let (rt, ct) = (rows / 8 * 8, cols / 8 * 8);
        // A strip of 8 columns at a time, down all the rows: the 8 rows of `out` it writes are
        // written whole, one after the other, and the lines of `t` it reads half of stay in the
        // level-1 cache for the next strip. Rows outermost (as before) wrote each line of `out`
        // in two halves far apart; the first layer's input block (128 × 784) took 44 µs, now
        // 39 µs, and the 90 %-sparse step of 784-300-100-10 0.625-0.634 ms, now 0.607-0.613 ms.
        for c0 in (0..ct).step_by(8) {
            for r0 in (0..rt).step_by(8) {
                // SAFETY: rows r0..r0 + 8 and columns c0..c0 + 8 lie inside `t` (`[rows][cols]`),
                // so each load reads 8 floats of one row; transposed, columns c0..c0 + 8 and rows
                // r0..r0 + 8 lie inside `out` (`[cols][rows]`), so each store writes 8 floats of
                // one row of `out`. The lengths are asserted above.
                unsafe {
                    let r: [__m256; 8] = std::array::from_fn(|i| {
                        _mm256_loadu_ps(t.as_ptr().add((r0 + i) * cols + c0))
                    });
                    let o = transpose8(r);
                    for (j, v) in o.into_iter().enumerate() {
                        let at = out.as_mut_ptr().add((c0 + j) * rows + r0);
                        _mm256_storeu_ps(at.cast::<f32>(), v);
                    }
                }
            }
        }
        (rt, ct)
    }

    /// Each row of `t` (`[rows][lanes]`) summed from zero in lane order into `out`, eight rows
    /// at a time; returns the rows done (a multiple of eight; the rest are the caller's).
    #[target_feature(enable = "avx")]
    pub(super) fn row_sums(t: &[f32], rows: usize, lanes: usize, out: &mut [f32]) -> usize {
        assert!(t.len() >= rows * lanes && out.len() >= rows);
        let (rt, lt) = (rows / 8 * 8, lanes / 8 * 8);
        for r0 in (0..rt).step_by(8) {
            let mut acc = _mm256_setzero_ps();
            for l0 in (0..lt).step_by(8) {
                // SAFETY: rows r0..r0 + 8 and lanes l0..l0 + 8 lie inside `t` (asserted above).
                let r: [__m256; 8] = std::array::from_fn(|i| unsafe {
                    _mm256_loadu_ps(t.as_ptr().add((r0 + i) * lanes + l0))
                });
                // Column j of the tile: lane l0 + j of the eight rows.
                for c in transpose8(r) {
                    acc = _mm256_add_ps(acc, c);
                }
            }
            let mut sums = [0f32; 8];
            // SAFETY: `sums` holds eight floats.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), acc) };
            for (i, s) in sums.iter_mut().enumerate() {
                for &v in &t[(r0 + i) * lanes + lt..(r0 + i + 1) * lanes] {
                    *s += v;
                }
                out[r0 + i] = *s;
            }
        }
        rt
    }

    /// Rows of an 8 × 8 tile to its columns: unpacks pair rows, shuffles pair the pairs, and
    /// 128-bit permutes join the halves.
    #[inline]
    #[target_feature(enable = "avx")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t: [__m256; 8] = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let u: [__m256; 8] = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        [
            _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
            _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
        ]
    }
}

/// Picks the widest instruction set the CPU has for `$body`, a call of an `#[inline(always)]`
/// function whose loops the compiler then vectorizes for it; `$fused` is `true` where the
/// instruction set has fused multiply-add (a `mul_add` elsewhere would be a slow library call).
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) |$fused:ident| $body:block) => {
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn avx512($($arg: $ty),*) {
                    const $fused: bool = true;
                    $body
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    const $fused: bool = true;
                    $body
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX-512F and FMA (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            const $fused: bool = false;
            $body
        }
    };
}

dispatch!(gather_rows(ptr: &[u32], idx: &[u32], val: &[f32], src: &[f32], lanes: usize, out: &mut [MaybeUninit<f32>]) |FUSED| {
    gather_rows_impl::<FUSED>(ptr, idx, val, src, lanes, out)
});

dispatch!(weight_grad(ptr: &[u32], idx: &[u32], xt: &[f32], dyt: &[f32], lanes: usize, g: &mut [f32]) |FUSED| {
    weight_grad_impl::<FUSED, f32>(ptr, idx, xt, dyt, lanes, g)
});

dispatch!(weight_grad_into(ptr: &[u32], idx: &[u32], xt: &[f32], dyt: &[f32], lanes: usize, g: &mut [MaybeUninit<f32>]) |FUSED| {
    weight_grad_impl::<FUSED, MaybeUninit<f32>>(ptr, idx, xt, dyt, lanes, g)
});

/// A weight-gradient kernel over rows of `T`: `(ptr, idx, xt, dyt, lanes, g)`.
type GradKernel<T> = fn(&[u32], &[u32], &[f32], &[f32], usize, &mut [T]);

/// A row of a weight gradient as [`weight_grad_impl`] finds it: floats to add to (`f32`, from
/// the blocks before), or memory to write whole (`MaybeUninit<f32>`, the first block's).
pub(crate) trait GradRow: Sized + Send {
    /// The row, ready to add this block's gradients to.
    fn ready(row: &mut [Self]) -> &mut [f32];
    /// The kernel for rows of this kind ([`weight_grad`] or [`weight_grad_into`]).
    const KERNEL: GradKernel<Self>;
}

impl GradRow for f32 {
    fn ready(row: &mut [f32]) -> &mut [f32] {
        row
    }
    const KERNEL: GradKernel<Self> = weight_grad;
}

impl GradRow for MaybeUninit<f32> {
    /// Set to zero first: the row's contents on entry are not read.
    fn ready(row: &mut [Self]) -> &mut [f32] {
        row.fill(MaybeUninit::new(0.0));
        // SAFETY: every float of the row was just written, and `MaybeUninit<f32>` has `f32`'s
        // layout.
        unsafe { &mut *(std::ptr::from_mut(row) as *mut [f32]) }
    }
    const KERNEL: GradKernel<Self> = weight_grad_into;
}

/// Kept weights × lanes (multiply-adds) below which a product's rows stay on one thread: about
/// 30 µs of work, against a few microseconds to hand half of it to another thread.
const PARALLEL_GRAIN: usize = 1 << 19;

/// [`gather_rows`] with its rows split over rayon's pool where the work is large enough and
/// the caller is one of the pool's threads. Each
/// output row is one thread's, computed as [`gather_rows`] computes it: the same bits
/// however the rows are split.
pub(crate) fn gather_rows_par(
    ptr: &[u32],
    idx: &[u32],
    val: &[f32],
    src: &[f32],
    lanes: usize,
    out: &mut [MaybeUninit<f32>],
) {
    split_rows(ptr, 0, out, lanes, lanes, &|_, ptr, out| {
        gather_rows(ptr, idx, val, src, lanes, out);
    });
}

/// [`gather_rows_par`] into a new buffer of `(ptr.len() - 1) · lanes` floats, not zero-filled
/// first: the product writes every float of every row.
pub(crate) fn gather_rows_new(
    ptr: &[u32],
    idx: &[u32],
    val: &[f32],
    src: &[f32],
    lanes: usize,
) -> Vec<f32> {
    let len = ptr.len().saturating_sub(1) * lanes;
    let mut out = Vec::with_capacity(len);
    gather_rows_par(
        ptr,
        idx,
        val,
        src,
        lanes,
        &mut out.spare_capacity_mut()[..len],
    );
    // SAFETY: `gather_rows_par` covers every row (`split_rows` hands each to one call), and
    // `gather_rows_impl` writes each row's `lanes` floats: wide chunks, narrow ones, the rest.
    unsafe { out.set_len(len) };
    out
}

/// The weight gradient of one block of samples into `g` (`[rows, cols]`): added to the
/// gradients of the blocks before where `g` holds floats, written whole (the kept weights'
/// gradients, zero elsewhere; contents on entry not read) where it is uninitialized memory
/// ([`GradRow`]). Its rows are split over rayon's pool where the work is large enough; the same
/// bits however the rows are split (each row's gradients are one thread's).
pub(crate) fn weight_grad_par<T: GradRow>(
    ptr: &[u32],
    idx: &[u32],
    xt: &[f32],
    dyt: &[f32],
    lanes: usize,
    g: &mut [T],
) {
    let rows = ptr.len().saturating_sub(1);
    if rows == 0 || g.is_empty() {
        return;
    }
    let cols = g.len() / rows;
    split_rows(ptr, 0, g, cols, lanes, &|first, ptr, g| {
        let rows = first..first + ptr.len() - 1;
        T::KERNEL(
            ptr,
            idx,
            &xt[rows.start * lanes..rows.end * lanes],
            dyt,
            lanes,
            g,
        );
    });
}

/// Calls `f(first, ptr, out)` on ranges of rows that together cover those of `ptr` (`first`
/// being the range's first row, counted from this call's first row `at`; `ptr` its offsets;
/// `out` its `per_row` outputs per row), halving them by kept weights while a half holds at
/// least [`PARALLEL_GRAIN`] multiply-adds, the halves run by `rayon::join`.
fn split_rows<T: Send>(
    ptr: &[u32],
    at: usize,
    out: &mut [T],
    per_row: usize,
    lanes: usize,
    f: &(impl Fn(usize, &[u32], &mut [T]) + Sync),
) {
    let rows = ptr.len().saturating_sub(1);
    let kept = match (ptr.first(), ptr.last()) {
        (Some(&a), Some(&b)) => (b - a) as usize,
        _ => 0,
    };
    // Only from inside a pool (the trainer's training thread is in rayon's global one), whose
    // threads share their floating-point mode; a caller outside it may flush subnormals to zero
    // where the workers do not, and would get other bits from a split.
    let pooled = rayon::current_thread_index().is_some();
    if rows < 2 || kept * lanes < 2 * PARALLEL_GRAIN || !pooled || rayon::current_num_threads() < 2
    {
        return f(at, ptr, out);
    }
    // The first row whose offset reaches half the kept weights, leaving both halves a row.
    let half = ptr[0] + (kept / 2) as u32;
    let mid = ptr.partition_point(|&p| p < half).clamp(1, rows - 1);
    let (a, b) = out.split_at_mut(mid * per_row);
    rayon::join(
        || split_rows(&ptr[..=mid], at, a, per_row, lanes, f),
        || split_rows(&ptr[mid..], at + mid, b, per_row, lanes, f),
    );
}

/// `a + b · c`, fused where the instruction set has it.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { b.mul_add(c, a) } else { a + b * c }
}

/// `out[r] = Σ val[k] · src[idx[k]]` over `k ∈ ptr[r]..ptr[r + 1]`, every row `lanes` floats,
/// each written (its contents on entry not read: the buffer is not zero-filled first).
#[inline(always)]
fn gather_rows_impl<const FUSED: bool>(
    ptr: &[u32],
    idx: &[u32],
    val: &[f32],
    src: &[f32],
    lanes: usize,
    out: &mut [MaybeUninit<f32>],
) {
    for (r, o) in out.chunks_exact_mut(lanes).enumerate() {
        let ks = ptr[r] as usize..ptr[r + 1] as usize;
        let (idx, val) = (&idx[ks.clone()], &val[ks]);
        // Wide chunks, then narrow ones, then single lanes: any batch size vectorizes.
        let mut c0 = 0;
        while c0 + CHUNK <= lanes {
            gather_chunk::<FUSED, CHUNK>(idx, val, src, lanes, c0, &mut o[c0..c0 + CHUNK]);
            c0 += CHUNK;
        }
        while c0 + NARROW <= lanes {
            gather_chunk::<FUSED, NARROW>(idx, val, src, lanes, c0, &mut o[c0..c0 + NARROW]);
            c0 += NARROW;
        }
        for c in c0..lanes {
            let mut a = 0f32;
            for (&i, &v) in idx.iter().zip(val) {
                a = madd::<FUSED>(a, v, src[i as usize * lanes + c]);
            }
            o[c] = MaybeUninit::new(a);
        }
    }
}

/// Lanes `c0..c0 + W` of one output row: `W` accumulators held while the row's weights pass.
#[inline(always)]
fn gather_chunk<const FUSED: bool, const W: usize>(
    idx: &[u32],
    val: &[f32],
    src: &[f32],
    lanes: usize,
    c0: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let mut acc = [0f32; W];
    for (&i, &v) in idx.iter().zip(val) {
        if let Some(s) = src[i as usize * lanes + c0..].first_chunk::<W>() {
            for j in 0..W {
                acc[j] = madd::<FUSED>(acc[j], v, s[j]);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = MaybeUninit::new(a);
    }
}

/// For every kept weight `(r, idx[k])` of row `r` (`k ∈ ptr[r]..ptr[r + 1]`), its gradient
/// over this block's samples, `Σ_b xt[r][b] · dyt[idx[k]][b]`, added to `g[r · cols + idx[k]]`
/// (`g` is `[rows, cols]`). Where `g` is uninitialized memory (`MaybeUninit<f32>`, the first
/// block), each row is first set to zero ([`GradRow::ready`]), just before its kept weights are
/// added, while it is in the cache: the first block needs no zero-filled buffer, a pass of its
/// own over the whole gradient (a megabyte for the first layer of 784-300-100-10).
/// Row by row: the rows read once per kept weight are then `dyt`'s, one per output, and the
/// writes to `g` stay within one row. For the first layer of 784-300-100-10 that is 300 rows
/// of 512 bytes instead of 784 (column by column, as before): 4 % off the 90 % sparse step,
/// measured by turns. Layers with more outputs than inputs may gain less, or lose.
#[inline(always)]
fn weight_grad_impl<const FUSED: bool, T: GradRow>(
    ptr: &[u32],
    idx: &[u32],
    xt: &[f32],
    dyt: &[f32],
    lanes: usize,
    g: &mut [T],
) {
    let rows = ptr.len().saturating_sub(1);
    if rows == 0 || g.is_empty() {
        return;
    }
    let cols = g.len() / rows;
    debug_assert_eq!(g.len(), rows * cols, "the gradient is [rows, cols]");
    for (r, gr) in g.chunks_exact_mut(cols).enumerate() {
        let gr = T::ready(gr);
        let x = &xt[r * lanes..(r + 1) * lanes];
        for &c in &idx[ptr[r] as usize..ptr[r + 1] as usize] {
            let c = c as usize;
            gr[c] += dot::<FUSED>(x, &dyt[c * lanes..(c + 1) * lanes]);
        }
    }
}

/// `Σ a[j] · b[j]`: CHUNK independent sums over wide chunks, NARROW over narrow ones, then
/// the rest one by one, so no addition waits on another's latency for long.
#[inline(always)]
fn dot<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut wide = [0f32; CHUNK];
    let (aw, bw) = (a.chunks_exact(CHUNK), b.chunks_exact(CHUNK));
    let (a_rest, b_rest) = (aw.remainder(), bw.remainder());
    for (x, y) in aw.zip(bw) {
        for j in 0..CHUNK {
            wide[j] = madd::<FUSED>(wide[j], x[j], y[j]);
        }
    }
    let mut narrow = [0f32; NARROW];
    let (an, bn) = (a_rest.chunks_exact(NARROW), b_rest.chunks_exact(NARROW));
    let mut tail = 0f32;
    for (x, y) in an.remainder().iter().zip(bn.remainder()) {
        tail = madd::<FUSED>(tail, *x, *y);
    }
    for (x, y) in an.zip(bn) {
        for j in 0..NARROW {
            narrow[j] = madd::<FUSED>(narrow[j], x[j], y[j]);
        }
    }
    let folded = hsum_to_narrow(&wide);
    let narrow: [f32; NARROW] = std::array::from_fn(|j| narrow[j] + folded[j]);
    hsum_narrow(&narrow) + tail
}

/// A wide chunk's lanes summed down to NARROW by halvings on fixed-size arrays, which compile
/// to vector adds (a loop over one array spilled it to the stack).
#[inline(always)]
fn hsum_to_narrow(a: &[f32; CHUNK]) -> [f32; NARROW] {
    let a32: [f32; 32] = std::array::from_fn(|j| a[j] + a[j + 32]);
    std::array::from_fn(|j| a32[j] + a32[j + 16])
}

/// The sum of a narrow chunk's lanes, by halvings.
#[inline(always)]
fn hsum_narrow(a: &[f32; NARROW]) -> f32 {
    let a8: [f32; 8] = std::array::from_fn(|j| a[j] + a[j + 8]);
    let a4: [f32; 4] = std::array::from_fn(|j| a8[j] + a8[j + 4]);
    (a4[0] + a4[2]) + (a4[1] + a4[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `g` as the output of a product that only writes floats ([`gather_rows`]).
    fn view(g: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: the same layout; the products only write floats through it.
        unsafe { &mut *(std::ptr::from_mut(g) as *mut [MaybeUninit<f32>]) }
    }

    #[test]
    fn transposes_whole_tiles_and_ragged_edges() {
        for (rows, cols) in [
            (1, 1),
            (3, 5),
            (8, 8),
            (16, 24),
            (13, 21),
            (128, 784),
            (37, 300),
        ] {
            let t: Vec<f32> = (0..rows * cols).map(|k| k as f32).collect();
            let out = transpose(&t, rows, cols);
            assert_eq!(out.as_ptr() as usize % 64, 0, "on a cache line");
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        out[c * rows + r],
                        t[r * cols + c],
                        "{rows}×{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }

    /// A random `[rows, cols]` pattern keeping about `density` of the weights, by rows: the
    /// offsets and column indices of each row's kept weights.
    fn random_rows(rows: usize, cols: usize, density: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let mut rng = crate::Rng::new(seed);
        let (mut ptr, mut idx) = (vec![0u32], Vec::new());
        for _ in 0..rows {
            idx.extend((0..cols as u32).filter(|_| rng.uniform(0.0, 1.0) < density));
            ptr.push(idx.len() as u32);
        }
        (ptr, idx)
    }

    #[test]
    fn rows_split_over_the_pool_give_the_one_thread_bits() {
        // The first layer of 784-300-100-10 at 90 % and batch 128: split several times.
        let (rows, cols, lanes) = (784, 300, 128);
        let (ptr, idx) = random_rows(rows, cols, 0.1, 7);
        assert!((ptr[rows] as usize) * lanes >= 4 * PARALLEL_GRAIN);
        let mut rng = crate::Rng::new(8);
        let mut normal = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (val, xt, dyt) = (
            normal(idx.len()),
            normal(rows * lanes),
            normal(cols * lanes),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let (mut one, mut split) = (vec![0.0; rows * lanes], vec![0.0; rows * lanes]);
        gather_rows(&ptr, &idx, &val, &dyt, lanes, view(&mut one));
        pool.install(|| gather_rows_par(&ptr, &idx, &val, &dyt, lanes, view(&mut split)));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one), bits(&split), "gather_rows");
        assert!(one.iter().all(|x| *x != 0.0), "every row has kept weights");
        let (mut one, mut split) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
        weight_grad(&ptr, &idx, &xt, &dyt, lanes, &mut one);
        pool.install(|| weight_grad_par(&ptr, &idx, &xt, &dyt, lanes, &mut split));
        assert_eq!(bits(&one), bits(&split), "weight_grad");
        // Written whole into a buffer that holds something else (NaN, as a reused allocation
        // might), split over the pool: the same bits, zero off the pattern.
        let mut into = vec![MaybeUninit::new(f32::NAN); rows * cols];
        pool.install(|| weight_grad_par(&ptr, &idx, &xt, &dyt, lanes, &mut into[..]));
        // SAFETY: `weight_grad_par` wrote every entry (here they were initialized anyway).
        let into: Vec<f32> = into.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert_eq!(
            bits(&one),
            bits(&into),
            "weight_grad_par into uninitialized rows"
        );
        let nonzero = one.iter().filter(|x| **x != 0.0).count();
        assert_eq!(
            nonzero,
            idx.len(),
            "a gradient at every kept weight, nowhere else"
        );
    }

    #[test]
    fn a_row_holding_most_kept_weights_splits_and_gives_the_one_thread_bits() {
        // Empty rows before and after one heavy row: the halves by kept weights would leave one
        // side without rows, unless the split keeps a row on each side.
        let (cols, lanes) = (8192, 128);
        let heavy: Vec<u32> = (0..cols as u32).collect();
        for ptr in [vec![0, 0, 0, 0, 8192], vec![0, 8192, 8192, 8192, 8192]] {
            let rows = ptr.len() - 1;
            let mut rng = crate::Rng::new(9);
            let mut normal =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let (val, xt, src) = (normal(cols), normal(rows * lanes), normal(cols * lanes));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let (mut one, mut split) = (vec![0.0; rows * lanes], vec![0.0; rows * lanes]);
            gather_rows(&ptr, &heavy, &val, &src, lanes, view(&mut one));
            pool.install(|| gather_rows_par(&ptr, &heavy, &val, &src, lanes, view(&mut split)));
            assert_eq!(one, split, "{ptr:?}");
            let (mut one, mut split) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
            weight_grad(&ptr, &heavy, &xt, &src, lanes, &mut one);
            pool.install(|| weight_grad_par(&ptr, &heavy, &xt, &src, lanes, &mut split));
            assert_eq!(one, split, "{ptr:?}");
        }
    }
}
