//! Weights and masks as [`Bag`] entries: how the loop's and the runner's states store the
//! networks and masks they hold.

use std::collections::BTreeMap;

use burn::module::ParamId;
use pruning::{Mask, MaskSet, Snapshot};

use super::Bag;

/// `snapshot`'s values under `{prefix}{id}`, its step under `{prefix}step`.
pub fn put_snapshot(bag: &mut Bag, prefix: &str, snapshot: &Snapshot) {
    for (id, v) in snapshot.values() {
        bag.floats
            .insert(format!("{prefix}{}", id.val()), v.clone());
    }
    bag.text
        .insert(format!("{prefix}step"), snapshot.step.to_string());
}

/// The snapshot [`put_snapshot`] stored under `prefix`, taken out of `bag`. Weights that are
/// NaN or infinite would train on as NaN: they are refused here.
pub fn take_snapshot(bag: &mut Bag, prefix: &str) -> Result<Snapshot, String> {
    let part = bag.take(prefix);
    let step = part.parse("step").map_err(|e| format!("{prefix}: {e}"))?;
    let mut values = BTreeMap::new();
    for (id, v) in part.floats {
        let name = format!("{prefix}{id}");
        let id: u64 = id
            .parse()
            .map_err(|_| format!("`{name}`: not a parameter id"))?;
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "`{name}` holds {} at flat index {k}; the checkpoint is corrupt: start the run again",
                v[k]
            ));
        }
        values.insert(ParamId::from(id), v);
    }
    Ok(Snapshot::from_values(step, values))
}

/// Where a mask's shape is kept: `{prefix}shape:{parameter}` (a bag's names are one namespace).
const SHAPE: &str = "shape:";

/// `masks` under `{prefix}{parameter}` (one byte per weight) with their shapes.
pub fn put_masks(bag: &mut Bag, prefix: &str, masks: &MaskSet) {
    for (name, m) in &masks.masks {
        let keep = m.keep.iter().map(|&k| u8::from(k)).collect();
        bag.bytes.insert(format!("{prefix}{name}"), keep);
        let shape = m.shape.iter().map(|&d| d as u64).collect();
        bag.words.insert(format!("{prefix}{SHAPE}{name}"), shape);
    }
}

/// The masks [`put_masks`] stored under `prefix`, taken out of `bag`.
pub fn take_masks(bag: &mut Bag, prefix: &str) -> Result<MaskSet, String> {
    let mut part = bag.take(prefix);
    let mut set = MaskSet::default();
    for (name, keep) in std::mem::take(&mut part.bytes) {
        let shape: Vec<usize> = part
            .words
            .remove(&format!("{SHAPE}{name}"))
            .ok_or_else(|| format!("the mask `{prefix}{name}` has no shape"))?
            .into_iter()
            .map(|d| d as usize)
            .collect();
        if shape.iter().product::<usize>() != keep.len() || keep.iter().any(|&k| k > 1) {
            return Err(format!("the mask `{prefix}{name}` is corrupt"));
        }
        let keep = keep.into_iter().map(|k| k == 1).collect();
        set.masks.insert(name, Mask { shape, keep });
    }
    Ok(set)
}
