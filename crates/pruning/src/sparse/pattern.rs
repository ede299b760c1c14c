//! Which weights of a 2-D weight a sparse product visits: the kept positions of its mask,
//! indexed both by column (the forward product and the weight gradient walk each output's
//! inputs) and by row (the input gradient walks each input's outputs).

use crate::error::PruneError;
use crate::mask::Mask;

/// The kept positions of a `[rows, cols]` weight `w` used as the right operand of `x · w`
/// (Burn's `Linear` layout, `[in, out]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    rows: usize,
    cols: usize,
    /// Column `c`'s entries are `col_ptr[c]..col_ptr[c + 1]`.
    pub(crate) col_ptr: Vec<u32>,
    /// Row of each entry, in column order.
    pub(crate) row_of: Vec<u32>,
    /// Row `r`'s entries are `row_ptr[r]..row_ptr[r + 1]`.
    pub(crate) row_ptr: Vec<u32>,
    /// Column of each entry, in row order.
    pub(crate) col_of: Vec<u32>,
    /// Where each row-order entry sits in column order (to reuse the values gathered for it).
    pub(crate) at: Vec<u32>,
    /// For each run of 16 weights of the row-major buffer (`16 i..16 i + 16`), the pruned ones
    /// as bits (bit `l`: weight `16 i + l`; none past the end): zeroing a weight outside its
    /// pattern is then a masked test and, where needed, a masked store per run, reading no mask
    /// (`keep.rs`; only its AVX-512 path reads these).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) pruned: Vec<u16>,
}

impl Pattern {
    /// The kept positions of a 2-D mask.
    pub fn from_mask(name: &str, mask: &Mask) -> Result<Self, PruneError> {
        let &[rows, cols] = mask.shape.as_slice() else {
            return Err(PruneError::Plan(format!(
                "`{name}` has shape {:?}: sparse products take 2-D weights",
                mask.shape
            )));
        };
        if mask.keep.len() != rows * cols {
            return Err(PruneError::Plan(format!(
                "`{name}`'s mask has {} flags for shape [{rows}, {cols}]",
                mask.keep.len()
            )));
        }
        if mask.keep.len() >= u32::MAX as usize {
            return Err(PruneError::Plan(format!(
                "`{name}` has {} weights, more than sparse products index",
                mask.keep.len()
            )));
        }
        Ok(Self::new(rows, cols, &mask.keep))
    }

    fn new(rows: usize, cols: usize, keep: &[bool]) -> Self {
        let mut col_ptr = Vec::with_capacity(cols + 1);
        let mut row_of = Vec::new();
        col_ptr.push(0);
        for c in 0..cols {
            row_of.extend((0..rows).filter(|r| keep[r * cols + c]).map(|r| r as u32));
            col_ptr.push(row_of.len() as u32);
        }
        // Row order, with each entry's position in column order.
        let mut row_ptr = vec![0u32; rows + 1];
        for &r in &row_of {
            row_ptr[r as usize + 1] += 1;
        }
        for r in 0..rows {
            row_ptr[r + 1] += row_ptr[r];
        }
        let mut fill = row_ptr.clone();
        let (mut col_of, mut at) = (vec![0u32; row_of.len()], vec![0u32; row_of.len()]);
        for c in 0..cols {
            for k in col_ptr[c]..col_ptr[c + 1] {
                let r = row_of[k as usize] as usize;
                let slot = fill[r] as usize;
                col_of[slot] = c as u32;
                at[slot] = k;
                fill[r] += 1;
            }
        }
        let pruned = keep
            .chunks(16)
            .map(|run| {
                (run.iter().enumerate())
                    .filter(|(_, k)| !**k)
                    .fold(0u16, |bits, (l, _)| bits | 1 << l)
            })
            .collect();
        Self {
            rows,
            cols,
            col_ptr,
            row_of,
            row_ptr,
            col_of,
            at,
            pruned,
        }
    }

    /// The weight's shape, `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Kept weights.
    pub fn nnz(&self) -> usize {
        self.row_of.len()
    }

    /// The kept fraction.
    pub fn density(&self) -> f64 {
        self.nnz() as f64 / (self.rows * self.cols).max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_orders_list_the_same_kept_positions() {
        // 3 × 4, kept: (0,1) (0,3) (1,0) (2,1) (2,2)
        let keep = [
            false, true, false, true, //
            true, false, false, false, //
            false, true, true, false,
        ];
        let p = Pattern::new(3, 4, &keep);
        assert_eq!(p.nnz(), 5);
        assert_eq!(p.col_ptr, [0, 1, 3, 4, 5]);
        assert_eq!(p.row_of, [1, 0, 2, 2, 0]);
        assert_eq!(p.row_ptr, [0, 2, 3, 5]);
        assert_eq!(p.col_of, [1, 3, 0, 1, 2]);
        // Twelve weights in one run; kept: 1, 3, 4, 9, 10.
        assert_eq!(p.pruned, [0b1001_1110_0101]);
        for (slot, &k) in p.at.iter().enumerate() {
            let r = p.row_ptr.iter().rposition(|&s| s as usize <= slot).unwrap();
            assert_eq!(p.row_of[k as usize] as usize, r);
            let c = p.col_of[slot] as usize;
            assert!((p.col_ptr[c]..p.col_ptr[c + 1]).contains(&k));
        }
        assert!(Pattern::from_mask("w", &Mask::ones(&[2, 2, 2])).is_err());
        // Flags that do not fit the shape (the fields are public): refused.
        let short = Mask {
            shape: vec![1, 15],
            keep: vec![false; 16],
        };
        assert!(Pattern::from_mask("w", &short).is_err());
    }
}
