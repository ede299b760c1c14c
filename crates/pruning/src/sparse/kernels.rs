//! The host loops of the sparse product and its gradients.
//!
//! Everything runs on transposed activations, `[features][batch]`: one kept weight then
//! scales a whole row of the batch (`lanes` contiguous floats) into an accumulator row, which
//! vectorizes across the batch instead of gathering single floats. The accumulator, 64 lanes
//! at a time, stays in registers while a row's kept weights stream past. Each loop is compiled
//! for AVX-512 and AVX2 as well as the baseline and picked at run time, as the dense GEMM does.

/// Lanes accumulated at once: four AVX-512 registers, eight AVX2 ones.
const CHUNK: usize = 64;

/// `t` (`[rows][cols]`, row-major) transposed to `[cols][rows]`.
pub(crate) fn transpose(t: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; t.len()];
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
    out
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
        let mut c0 = 0;
        while c0 + CHUNK <= lanes {
            let mut acc = [0f32; CHUNK];
            for k in ks.clone() {
                let v = val[k];
                let at = idx[k] as usize * lanes + c0;
                if let Some(s) = src[at..].first_chunk::<CHUNK>() {
                    for j in 0..CHUNK {
                        acc[j] = madd::<FUSED>(acc[j], v, s[j]);
                    }
                }
            }
            o[c0..c0 + CHUNK].copy_from_slice(&acc);
            c0 += CHUNK;
        }
        let rest = &mut o[c0..];
        if !rest.is_empty() {
            rest.fill(0.0);
            for k in ks {
                let v = val[k];
                let at = idx[k] as usize * lanes + c0;
                for (a, s) in rest.iter_mut().zip(&src[at..at + lanes - c0]) {
                    *a = madd::<FUSED>(*a, v, *s);
                }
            }
        }
    }
}

/// For every kept weight `(idx[k], c)` of column `c` (`k ∈ ptr[c]..ptr[c + 1]`), its gradient
/// `g[idx[k] · cols + c] = Σ_b xt[idx[k]][b] · dyt[c][b]`; the other entries of `g` are left
/// as they are (zero).
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
            let x = &xt[r * lanes..(r + 1) * lanes];
            // CHUNK lanes of independent sums: the additions of one lane do not wait on each
            // other's latency more than lanes / CHUNK times.
            let mut acc = [0f32; CHUNK];
            let (xc, dc) = (x.chunks_exact(CHUNK), dy.chunks_exact(CHUNK));
            let mut tail = 0f32;
            for (a, b) in xc.remainder().iter().zip(dc.remainder()) {
                tail = madd::<FUSED>(tail, *a, *b);
            }
            for (a, b) in xc.zip(dc) {
                for j in 0..CHUNK {
                    acc[j] = madd::<FUSED>(acc[j], a[j], b[j]);
                }
            }
            g[r * cols + c] = hsum(&acc) + tail;
        }
    }
}

/// The sum of a chunk's lanes by halvings on fixed-size arrays, which compile to a few vector
/// shuffles and adds (a loop over one array spilled it to the stack).
#[inline(always)]
fn hsum(a: &[f32; CHUNK]) -> f32 {
    let a32: [f32; 32] = std::array::from_fn(|j| a[j] + a[j + 32]);
    let a16: [f32; 16] = std::array::from_fn(|j| a32[j] + a32[j + 16]);
    let a8: [f32; 8] = std::array::from_fn(|j| a16[j] + a16[j + 8]);
    let a4: [f32; 4] = std::array::from_fn(|j| a8[j] + a8[j + 4]);
    (a4[0] + a4[2]) + (a4[1] + a4[3])
}
