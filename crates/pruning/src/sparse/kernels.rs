//! The host loops of the sparse product and its gradients.
//!
//! Everything runs on transposed activations, `[features][batch]`: one kept weight then
//! scales a whole row of the batch (`lanes` contiguous floats) into an accumulator row, which
//! vectorizes across the batch instead of gathering single floats. The accumulator, 64 lanes
//! at a time, stays in registers while a row's kept weights stream past. Each loop is compiled
//! for AVX-512 and AVX2 as well as the baseline and picked at run time, as the dense GEMM does.

/// Lanes accumulated at once: four AVX-512 registers, eight AVX2 ones.
const CHUNK: usize = 64;
/// The narrower chunk for what is left of a batch (one AVX-512 register, two AVX2 ones).
const NARROW: usize = 16;

/// `t` (`[rows][cols]`, row-major) transposed to `[cols][rows]`.
pub(crate) fn transpose(t: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; t.len()];
    transpose_into(t, rows, cols, &mut out);
    out
}

/// `t` (`[rows][cols]`, row-major) transposed into `out` (`[cols][rows]`).
pub(crate) fn transpose_into(t: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    // Tiles of 8 rows: each source row's 8-float run goes to 8 destination rows, and the
    // destination's 8 consecutive floats per row fill a cache line's worth together.
    const T: usize = 8;
    let mut r0 = 0;
    while r0 < rows {
        let h = T.min(rows - r0);
        let src = &t[r0 * cols..(r0 + h) * cols];
        for c in 0..cols {
            let dst = &mut out[c * rows + r0..c * rows + r0 + h];
            for (i, d) in dst.iter_mut().enumerate() {
                *d = src[i * cols + c];
            }
        }
        r0 += h;
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

dispatch!(gather_rows(ptr: &[u32], idx: &[u32], val: &[f32], src: &[f32], lanes: usize, out: &mut [f32]) |FUSED| {
    gather_rows_impl::<FUSED>(ptr, idx, val, src, lanes, out)
});

dispatch!(weight_grad(ptr: &[u32], idx: &[u32], xt: &[f32], dyt: &[f32], lanes: usize, cols: usize, g: &mut [f32]) |FUSED| {
    weight_grad_impl::<FUSED>(ptr, idx, xt, dyt, lanes, cols, g)
});

/// `a + b · c`, fused where the instruction set has it.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { b.mul_add(c, a) } else { a + b * c }
}

/// `out[r] = Σ val[k] · src[idx[k]]` over `k ∈ ptr[r]..ptr[r + 1]`, every row `lanes` floats.
#[inline(always)]
fn gather_rows_impl<const FUSED: bool>(
    ptr: &[u32],
    idx: &[u32],
    val: &[f32],
    src: &[f32],
    lanes: usize,
    out: &mut [f32],
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
            o[c] = a;
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
    out: &mut [f32],
) {
    let mut acc = [0f32; W];
    for (&i, &v) in idx.iter().zip(val) {
        if let Some(s) = src[i as usize * lanes + c0..].first_chunk::<W>() {
            for j in 0..W {
                acc[j] = madd::<FUSED>(acc[j], v, s[j]);
            }
        }
    }
    out.copy_from_slice(&acc);
}

/// For every kept weight `(idx[k], c)` of column `c` (`k ∈ ptr[c]..ptr[c + 1]`), adds its
/// gradient over this block's samples, `Σ_b xt[idx[k]][b] · dyt[c][b]`, to
/// `g[idx[k] · cols + c]`; the other entries of `g` are left as they are (zero).
#[inline(always)]
fn weight_grad_impl<const FUSED: bool>(
    ptr: &[u32],
    idx: &[u32],
    xt: &[f32],
    dyt: &[f32],
    lanes: usize,
    cols: usize,
    g: &mut [f32],
) {
    for c in 0..cols {
        let dy = &dyt[c * lanes..(c + 1) * lanes];
        for &r in &idx[ptr[c] as usize..ptr[c + 1] as usize] {
            let r = r as usize;
            g[r * cols + c] += dot::<FUSED>(&xt[r * lanes..(r + 1) * lanes], dy);
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
