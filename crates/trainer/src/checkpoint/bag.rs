//! Named arrays and text in one safetensors file: the container a checkpoint is written in.
//!
//! A checkpoint holds parts owned by different modules — the training loop's state, the
//! runner's state between phases — and each writes its part under a prefix of its own
//! ([`Bag::nest`]) and reads it back with [`Bag::take`], without knowing the others' keys.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Arrays by name (f32, u64 and u8) and text values by name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bag {
    /// f32 arrays (weights).
    pub floats: BTreeMap<String, Vec<f32>>,
    /// u64 arrays (orders, generator states, counters).
    pub words: BTreeMap<String, Vec<u64>>,
    /// u8 arrays (masks, the optimizer's record).
    pub bytes: BTreeMap<String, Vec<u8>>,
    /// Text values (the header's metadata).
    pub text: BTreeMap<String, String>,
}

fn prefixed<V>(map: &mut BTreeMap<String, V>, prefix: &str) -> BTreeMap<String, V> {
    let keys: Vec<String> = map
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|k| map.remove(&k).map(|v| (k[prefix.len()..].to_string(), v)))
        .collect()
}

fn renamed<V>(map: BTreeMap<String, V>, prefix: &str) -> impl Iterator<Item = (String, V)> {
    map.into_iter()
        .map(move |(k, v)| (format!("{prefix}{k}"), v))
}

impl Bag {
    /// Adds every entry of `part` under `prefix` (`part`'s `x` becomes `{prefix}x`).
    pub fn nest(&mut self, prefix: &str, part: Bag) {
        self.floats.extend(renamed(part.floats, prefix));
        self.words.extend(renamed(part.words, prefix));
        self.bytes.extend(renamed(part.bytes, prefix));
        self.text.extend(renamed(part.text, prefix));
    }

    /// Removes every entry under `prefix` and returns them without it.
    pub fn take(&mut self, prefix: &str) -> Bag {
        Bag {
            floats: prefixed(&mut self.floats, prefix),
            words: prefixed(&mut self.words, prefix),
            bytes: prefixed(&mut self.bytes, prefix),
            text: prefixed(&mut self.text, prefix),
        }
    }

    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.floats.is_empty()
            && self.words.is_empty()
            && self.bytes.is_empty()
            && self.text.is_empty()
    }

    /// The text value `key`, or an error naming it.
    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.text
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("`{key}` is missing"))
    }

    /// The text value `key` parsed, or an error naming it.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<T, String> {
        self.get(key)?
            .parse()
            .map_err(|_| format!("`{key}` does not parse"))
    }

    /// The u64 array `key`, or an error naming it.
    pub fn words(&self, key: &str) -> Result<&[u64], String> {
        self.words
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("`{key}` is missing"))
    }

    /// The safetensors file holding the bag (text as the header's metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, String> {
        let floats = self.floats.iter().map(|(k, v)| {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (k, Dtype::F32, v.len(), b)
        });
        let words = self.words.iter().map(|(k, v)| {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (k, Dtype::U64, v.len(), b)
        });
        let bytes = self
            .bytes
            .iter()
            .map(|(k, v)| (k, Dtype::U8, v.len(), v.clone()));
        let buffers: Vec<_> = floats.chain(words).chain(bytes).collect();
        let mut names: Vec<&String> = buffers.iter().map(|b| b.0).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two arrays are named `{}`", w[0]));
        }
        let mut views = Vec::with_capacity(buffers.len());
        for (name, dtype, n, data) in &buffers {
            let view = TensorView::new(*dtype, vec![*n], data).map_err(|e| e.to_string())?;
            views.push(((*name).clone(), view));
        }
        let meta: HashMap<String, String> = self.text.clone().into_iter().collect();
        crate::export::safetensors_bytes(views, meta)
    }

    /// Reads a bag back from a safetensors file's bytes.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, String> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let mut bag = Bag {
            text: header
                .metadata()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Bag::default()
        };
        for (name, view) in st.tensors() {
            let data = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    let v = data.chunks_exact(4);
                    let v = v.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                    bag.floats.insert(name, v.collect());
                }
                Dtype::U64 => {
                    let v = data.chunks_exact(8).map(|c| {
                        u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                    });
                    bag.words.insert(name, v.collect());
                }
                Dtype::U8 => {
                    bag.bytes.insert(name, data.to_vec());
                }
                other => return Err(format!("`{name}` is {other:?}: not a checkpoint's type")),
            }
        }
        Ok(bag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bag_reads_back_with_its_parts_under_their_prefixes() {
        let mut part = Bag::default();
        part.floats
            .insert("w".into(), vec![1.5, -0.0, f32::MIN_POSITIVE]);
        part.words.insert("order".into(), vec![3, u64::MAX]);
        part.bytes
            .insert("mask.layers.0.weight".into(), vec![0, 1, 1]);
        part.text.insert("phase".into(), "4".into());
        let mut bag = Bag::default();
        bag.nest("train.", part.clone());
        bag.text.insert("format".into(), "x".into());
        let mut back = Bag::from_safetensors(&bag.to_safetensors().unwrap()).unwrap();
        assert_eq!(back.take("train."), part);
        assert_eq!(back.get("format").unwrap(), "x");
        assert!(back.take("train.").is_empty());
        assert_eq!(
            back.parse::<usize>("phase").unwrap_err(),
            "`phase` is missing"
        );
        // One namespace for every array: a clash is an error, not a corrupt file.
        bag.bytes.insert("train.w".into(), vec![1]);
        assert_eq!(
            bag.to_safetensors().unwrap_err(),
            "two arrays are named `train.w`"
        );
    }
}
