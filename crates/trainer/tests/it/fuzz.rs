//! The fuzzing harness: every reader of user input — the config parser and `--set`, the CSV and
//! IDX readers, and the safetensors model, mask and checkpoint readers (and `trainer prune`'s) —
//! fed mutated valid inputs, must return `Ok` or an error, never panic. A bounded number of cases
//! per reader runs in every `cargo test` (`LOPPER_FUZZ_CASES`, default 256); proptest keeps each
//! input that ever failed in `tests/fuzz-regressions/` and replays it first on every run.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config(name: &str) -> Config {
    let cases = std::env::var("LOPPER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(Box::leak(
            format!("tests/fuzz-regressions/{name}.txt").into_boxed_str(),
        )))),
        ..Config::default()
    }
}

/// One edit of a byte string; positions and lengths wrap around its length.
#[derive(Debug, Clone)]
enum Edit {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
    /// Four bytes replaced by a value that breaks size arithmetic.
    Word(usize, u32),
    /// A run of ASCII digits (a size or offset in a JSON header) replaced by a huge number.
    BigNumber(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let words = prop::sample::select(vec![0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 60_000]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::FlipBit(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Edit::SetByte(p, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Edit::Insert(p, v)),
        (any::<usize>(), 1usize..32).prop_map(|(p, n)| Edit::Delete(p, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Duplicate(p, n)),
        (any::<usize>(), words).prop_map(|(p, w)| Edit::Word(p, w)),
        any::<usize>().prop_map(Edit::BigNumber),
    ]
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = b.len().max(1);
        match *e {
            Edit::FlipBit(p, bit) if !b.is_empty() => b[p % n] ^= 1 << bit,
            Edit::SetByte(p, v) if !b.is_empty() => b[p % n] = v,
            Edit::Insert(p, v) => b.insert(p % (b.len() + 1), v),
            Edit::Delete(p, k) if !b.is_empty() => {
                let s = p % n;
                b.drain(s..(s + k).min(b.len()));
            }
            Edit::Truncate(p) => b.truncate(p % (b.len() + 1)),
            Edit::Duplicate(p, k) if !b.is_empty() => {
                let s = p % n;
                let chunk = b[s..(s + k).min(b.len())].to_vec();
                b.splice(s..s, chunk);
            }
            Edit::Word(p, w) if b.len() >= 4 => {
                let s = p % (b.len() - 3);
                b[s..s + 4].copy_from_slice(&w.to_le_bytes());
            }
            Edit::BigNumber(p) => {
                let digits: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let s = digits[p % digits.len()];
                    let end = (s..b.len())
                        .find(|&i| !b[i].is_ascii_digit())
                        .unwrap_or(b.len());
                    b.splice(s..end, b"18446744073709551615".iter().copied());
                }
            }
            _ => {}
        }
    }
    b
}

fn shipped_configs() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![crate::repo().join("configs")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(config("config"))]
    #[test]
    fn the_config_parser_never_panics(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 0..6),
        key in prop::sample::select(vec![
            "seed", "data.name", "data.path", "data.n", "data.validation_fraction",
            "model.hidden", "train.epochs", "train.batch_size", "train.lr",
            "pruning.sparsity", "pruning.granularity", "pruning.layer_factor.x",
            "pruning.search", "sweep.grid", "plots.gray_kernels", "a..b", "", ".",
        ]),
        value in prop::sample::select(vec![
            "0", "-1", "1e309", "nan", "[]", "[0]", "[1000000000000]", "\"2:0\"", "\"\"",
            "{}", "{ metric = \"val_accuracy\" }", "true", "'\\u0000'", "18446744073709551616",
        ]),
    ) {
        let configs = shipped_configs();
        let (path, text) = &configs[seed.index(configs.len())];
        let mutated = String::from_utf8_lossy(&apply(text.clone().into_bytes(), &edits)).into_owned();
        let _ = trainer::config::parse_config(&mutated, path, &[]);
        let _ = trainer::config::parse_config(text, path, &[format!("{key}={value}")]);
    }
}

fn csv_seeds() -> Vec<(String, Option<&'static str>, trainer::config::TaskKind)> {
    use trainer::config::TaskKind::*;
    let digits: String = std::fs::read_to_string(crate::repo().join("datasets/digits.csv"))
        .unwrap()
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    vec![
        (digits, Some("digit"), Classification),
        (
            "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n".into(),
            None,
            Classification,
        ),
        (
            "x,y\n0.5,1.5\n1.5,2.5\n-2,3e-3\n".into(),
            Some("y"),
            Regression,
        ),
        // Quoted fields: commas and doubled quotes inside, quotes after a space.
        (
            "\"a, first\",b,\"label\"\n1, \"2\",\"cat, big\"\n3,4,\"say \"\"hi\"\"\"\n".into(),
            Some("label"),
            Classification,
        ),
    ]
}

proptest! {
    #![proptest_config(config("csv"))]
    #[test]
    fn the_csv_reader_never_panics(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 0..8),
    ) {
        let seeds = csv_seeds();
        let (text, target, task) = &seeds[seed.index(seeds.len())];
        let mutated = String::from_utf8_lossy(&apply(text.clone().into_bytes(), &edits)).into_owned();
        if let Ok(d) = trainer::data::parse_csv(&mutated, Path::new("fuzz.csv"), *target, *task) {
            // What loads is usable: every row has its features, every feature is finite.
            prop_assert_eq!(d.x.len(), d.len() * d.n_features);
            prop_assert!(d.x.iter().all(|v| v.is_finite()));
        }
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    b.extend((0..n).map(|i| i as u8));
    b
}

proptest! {
    #![proptest_config(config("idx"))]
    #[test]
    fn the_idx_reader_never_panics(
        which in 0usize..4,
        edits in prop::collection::vec(edit(), 0..6),
    ) {
        let (raw, rank) = [(idx(&[3, 4, 4]), 3), (idx(&[7]), 1)][which % 2].clone();
        let compressed = which >= 2;
        let bytes = apply(if compressed { gz(&raw) } else { raw }, &edits);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(if compressed { "f.gz" } else { "f" });
        std::fs::write(&path, bytes).unwrap();
        if let Ok(a) = trainer::data::read_idx(&path, rank) {
            let n: usize = a.dims.iter().product();
            prop_assert_eq!(a.data.len(), n);
        }
    }
}

/// A model, its masks and a checkpoint, from one short real run.
fn safetensors_seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let loaded = crate::shipped("xor.toml", &["train.epochs=3", "train.checkpoint_every=1"]);
        let r = trainer::experiment::run_experiment(&loaded, &crate::opts(tmp.path())).unwrap();
        [
            "model.safetensors",
            "masks.safetensors",
            "checkpoint.safetensors",
            "compact.safetensors",
        ]
        .iter()
        .filter_map(|f| Some((f.to_string(), std::fs::read(r.dir.join(f)).ok()?)))
        .collect()
    })
}

proptest! {
    #![proptest_config(config("safetensors"))]
    #[test]
    fn the_model_mask_and_checkpoint_readers_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let seeds = safetensors_seeds();
        let (name, bytes) = &seeds[seed.index(seeds.len())];
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(name);
        std::fs::write(&path, apply(bytes.clone(), &edits)).unwrap();
        #[allow(deprecated)]
        let device = burn::tensor::Device::ndarray();
        let _ = trainer::export::load_model(&path, &device);
        let _ = trainer::export::load_masks(&path);
        let _ = trainer::checkpoint::Checkpoint::load(&path);
        let pruning: trainer::config::PruningConfig =
            toml::from_str("criterion = \"l1\"\nsparsity = 0.5").unwrap();
        let _ = trainer::prune_file::prune_file(&path, &tmp.path().join("out.safetensors"), &pruning, false, 0);
    }
}
