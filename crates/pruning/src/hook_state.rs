//! What a training-loop hook must carry across a checkpoint: its state as named arrays of
//! floats and 64-bit words plus short texts, so the trainer can write every hook's state into
//! one file beside the model without knowing what the hooks are.
//!
//! Only state that the run's config cannot rebuild belongs here (masks chosen so far, running
//! gradient sums, a random generator's position); a hook rebuilt from the config and given
//! its saved state continues exactly where the saved one stood.

use std::collections::BTreeMap;

use crate::hook::HookError;

/// A hook's saved state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookState {
    /// Named float arrays (masks as 0/1, gradient sums, weight snapshots), bit-exact.
    pub floats: BTreeMap<String, Vec<f32>>,
    /// Named 64-bit words (counters, generator state, `f64` bits).
    pub words: BTreeMap<String, Vec<u64>>,
    /// Named texts (warnings).
    pub text: BTreeMap<String, String>,
}

fn missing(kind: &str, key: &str) -> HookError {
    format!("the checkpoint's hook state has no {kind} `{key}` (written by another version?)")
        .into()
}

impl HookState {
    /// The float array `key`.
    pub fn floats(&self, key: &str) -> Result<&[f32], HookError> {
        self.floats
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| missing("float array", key))
    }

    /// The word array `key`.
    pub fn words(&self, key: &str) -> Result<&[u64], HookError> {
        self.words
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| missing("word array", key))
    }

    /// The single word `key`.
    pub fn word(&self, key: &str) -> Result<u64, HookError> {
        match self.words(key)? {
            [w] => Ok(*w),
            other => Err(format!(
                "hook state `{key}`: expected one word, found {}",
                other.len()
            )
            .into()),
        }
    }

    /// The text `key`.
    pub fn text(&self, key: &str) -> Result<&str, HookError> {
        self.text
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| missing("text", key))
    }
}
