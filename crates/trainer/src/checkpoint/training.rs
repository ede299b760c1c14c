//! The training loop's part of a checkpoint: everything the loop cannot rebuild from the config
//! — weights, the optimizer's state, the shuffling generator and the epoch's sample order, the
//! position (epoch, step), early stopping's state and best model, and each hook's state (the
//! pruner's masks, gradient window, generator and update record) and `metrics.csv`'s length.

use std::collections::BTreeMap;

use pruning::{HookState, Snapshot, TrainHook};

use super::Bag;
use super::parts::{put_snapshot, take_snapshot};
use crate::model::Net;

/// The loop's state at the end of an epoch.
#[derive(Debug, Clone)]
pub struct LoopCheckpoint {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: usize,
    /// Every parameter's values, by id (ids are derived from the seed, so a rebuilt network
    /// has the same ones).
    pub model: Snapshot,
    /// Early stopping's best model so far.
    pub best: Option<Snapshot>,
    /// The optimizer's record (burnpack bytes).
    pub optim: Vec<u8>,
    /// The shuffling generator's state.
    pub shuffle: [u64; 4],
    /// The sample order the next shuffle starts from.
    pub order: Vec<usize>,
    /// Early stopping: best validation loss and evaluations since.
    pub early: Option<(Option<f64>, usize)>,
    /// Each hook's name and state, in the loop's order.
    pub hooks: Vec<(String, Option<HookState>)>,
    /// metrics.csv's length at the checkpoint, when the phase logs: rows after it (epochs a
    /// killed run did after its last checkpoint) are cut on resume and written again.
    pub metrics_bytes: Option<u64>,
    /// Steps each dense layer ran as a sparse product so far, by layer index.
    pub sparse_steps: BTreeMap<usize, usize>,
}

impl LoopCheckpoint {
    /// Whether this checkpoint was written by a loop like the one about to resume: the same
    /// hooks, in order, and values for every parameter of `model`.
    /// Also that every value has its parameter's size and the sample order is an order of the
    /// `n_samples` training samples: a corrupted file is refused, never indexed out of bounds.
    pub fn fits(
        &self,
        model: &Net,
        hooks: &[&mut dyn TrainHook<Net>],
        n_samples: usize,
    ) -> Result<(), String> {
        let names: Vec<&str> = hooks.iter().map(|h| h.name()).collect();
        let saved: Vec<&str> = self.hooks.iter().map(|(n, _)| n.as_str()).collect();
        if names != saved {
            return Err(format!(
                "it was written by a loop with hooks {saved:?}, this run has {names:?}: resume with the build and config that wrote it"
            ));
        }
        // Ids derive from the seed: a network that does not find its own ids in the file is
        // not the network that wrote it, and restoring would silently keep fresh weights.
        let params = pruning::param_infos(model);
        if let Some(p) = params
            .iter()
            .find(|p| !self.model.values().contains_key(&p.id))
        {
            return Err(format!(
                "it holds no values for this network's `{}`: it was written for another network or by another build; start the run again",
                p.path
            ));
        }
        for snapshot in std::iter::once(&self.model).chain(self.best.as_ref()) {
            for p in &params {
                let size: usize = p.shape.iter().product();
                let got = snapshot.values().get(&p.id).map_or(size, Vec::len);
                if got != size {
                    return Err(format!(
                        "`{}` has {got} values in it but {size} in the network: the file is corrupt; start the run again",
                        p.path
                    ));
                }
            }
        }
        let mut seen = vec![false; n_samples];
        let permutation = self.order.len() == n_samples
            && self
                .order
                .iter()
                .all(|&i| i < n_samples && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return Err(format!(
                "its sample order is not an order of the {n_samples} training samples: the file is corrupt or the data changed; start the run again"
            ));
        }
        Ok(())
    }

    /// The state as bag entries.
    pub fn to_bag(&self) -> Bag {
        let mut bag = Bag::default();
        put_snapshot(&mut bag, "model.", &self.model);
        if let Some(best) = &self.best {
            put_snapshot(&mut bag, "best.", best);
        }
        bag.bytes.insert("optim".into(), self.optim.clone());
        let order = self.order.iter().map(|&i| i as u64).collect();
        bag.words.insert("order".into(), order);
        bag.words.insert("shuffle".into(), self.shuffle.to_vec());
        let mut names = Vec::new();
        for (i, (name, state)) in self.hooks.iter().enumerate() {
            names.push(name.clone());
            let Some(st) = state else { continue };
            let mut part = Bag::default();
            part.text.insert("state".into(), "yes".into());
            part.floats.extend(renamed(&st.floats, "f."));
            part.words.extend(renamed(&st.words, "w."));
            part.text.extend(renamed(&st.text, "t."));
            bag.nest(&format!("hook.{i}."), part);
        }
        bag.text.insert("hooks".into(), names.join("\n"));
        bag.text.insert("epoch".into(), self.epoch.to_string());
        bag.text.insert("step".into(), self.step.to_string());
        if let Some(len) = self.metrics_bytes {
            bag.text.insert("metrics_bytes".into(), len.to_string());
        }
        if !self.sparse_steps.is_empty() {
            let lines: Vec<String> = self
                .sparse_steps
                .iter()
                .map(|(layer, n)| format!("{layer}={n}"))
                .collect();
            bag.text.insert("sparse_steps".into(), lines.join("\n"));
        }
        if let Some((best, since)) = self.early {
            let best = best.map_or("none".into(), |b| b.to_bits().to_string());
            bag.text.insert("early".into(), format!("{best},{since}"));
        }
        bag
    }

    /// The state [`LoopCheckpoint::to_bag`] wrote.
    pub fn from_bag(mut bag: Bag) -> Result<Self, String> {
        let names: Vec<String> = bag.get("hooks")?.split('\n').map(String::from).collect();
        let mut hooks = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let mut part = bag.take(&format!("hook.{i}."));
            let state = part.text.remove("state").is_some().then(|| HookState {
                floats: part.take("f.").floats,
                words: part.take("w.").words,
                text: part.take("t.").text,
            });
            hooks.push((name, state));
        }
        let early = match bag.text.get("early") {
            None => None,
            Some(e) => {
                let bad = || "`early` does not parse".to_string();
                let (b, since) = e.split_once(',').ok_or_else(bad)?;
                let best = match b {
                    "none" => None,
                    bits => Some(f64::from_bits(bits.parse().map_err(|_| bad())?)),
                };
                Some((best, since.parse().map_err(|_| bad())?))
            }
        };
        let mut sparse_steps = BTreeMap::new();
        for line in bag
            .text
            .get("sparse_steps")
            .into_iter()
            .flat_map(|t| t.lines())
        {
            let bad = || format!("`sparse_steps` line `{line}` does not parse");
            let (layer, n) = line.split_once('=').ok_or_else(bad)?;
            let layer = layer.parse().map_err(|_| bad())?;
            sparse_steps.insert(layer, n.parse().map_err(|_| bad())?);
        }
        let model = take_snapshot(&mut bag, "model.")?;
        let best = bag
            .text
            .contains_key("best.step")
            .then(|| take_snapshot(&mut bag, "best."))
            .transpose()?;
        let shuffle: [u64; 4] = bag
            .words("shuffle")?
            .try_into()
            .map_err(|_| "`shuffle` is corrupt")?;
        Ok(Self {
            epoch: bag.parse("epoch")?,
            step: bag.parse("step")?,
            model,
            best,
            optim: bag.bytes.remove("optim").ok_or("`optim` is missing")?,
            shuffle,
            order: bag.words("order")?.iter().map(|&i| i as usize).collect(),
            early,
            hooks,
            metrics_bytes: (bag.text.contains_key("metrics_bytes"))
                .then(|| bag.parse("metrics_bytes"))
                .transpose()?,
            sparse_steps,
        })
    }
}

fn renamed<'a, V: Clone>(
    map: &'a std::collections::BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (String, V)> + 'a {
    map.iter()
        .map(move |(k, v)| (format!("{prefix}{k}"), v.clone()))
}
