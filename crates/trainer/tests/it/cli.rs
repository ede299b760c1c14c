//! The `trainer` binary: exit codes and one plain error line, no panic.

use std::process::Command;

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.current_dir(crate::repo());
    c
}

#[test]
fn bad_input_exits_2_with_one_plain_message() {
    let out = trainer()
        .args(["--config", "no-such.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: config file `no-such.toml` not found"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let out = trainer()
        .args(["--config", "xor", "--set", "train.lr=0", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("`train.lr` must be a positive number (got 0) (set by --set)"),
        "{err}"
    );
}

#[test]
fn xor_from_the_command_line_reports_success_and_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = trainer()
        .args(["--config", "xor.toml", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("XOR learned: all 4 points classified correctly."),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("run folder: {}", out_dir.display())),
        "{stdout}"
    );
    // The same --out again is refused rather than overwritten.
    let again = trainer()
        .args(["--config", "xor.toml", "--quiet", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("is not empty")
    );
}

/// `trainer prune` on a PyTorch conv model's file (4-D kernels `[out, in, kh, kw]`): global L1
/// over kernels and dense layers, and `rows` removing whole filters, give PyTorch's masks; a
/// removed filter is all zeros in the written kernel.
#[test]
fn prune_command_on_a_pytorch_conv_file_matches_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = crate::repo().join("crates/pruning/tests/it/vectors/conv");
    let torch = std::fs::read(vectors.join("masks.safetensors")).unwrap();
    let torch = safetensors::SafeTensors::deserialize(&torch).unwrap();
    let cases: [(&str, &[&str], &[&str]); 2] = [
        (
            "global_l1_a0.85",
            &["--sparsity", "0.85", "--scope", "global"],
            &[
                "conv1.weight",
                "conv2.weight",
                "fc1.weight",
                "fc2.weight",
                "fc3.weight",
            ],
        ),
        (
            "ln_structured_n1_dim0_a0.5",
            &["--sparsity", "0.5", "--granularity", "rows"],
            &["conv1.weight", "conv2.weight"],
        ),
    ];
    for (key, flags, layers) in cases {
        let out = tmp.path().join(format!("{key}.safetensors"));
        let run = trainer()
            .arg("prune")
            .arg(vectors.join("weights.safetensors"))
            .args(["--criterion", "l1", "--quiet"])
            .args(flags)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let bytes = std::fs::read(&out).unwrap();
        let ours = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for layer in layers {
            let mask = ours.tensor(&format!("{layer}_mask")).unwrap();
            assert_eq!(
                mask.shape(),
                ours.tensor(layer).unwrap().shape(),
                "{key} {layer}"
            );
            assert_eq!(
                mask.data(),
                torch.tensor(&format!("{key}/{layer}")).unwrap().data(),
                "{key}: {layer}"
            );
        }
        if key.starts_with("ln_structured") {
            // Half of conv2's 16 filters are gone, each one whole.
            let w = ours.tensor("conv2.weight").unwrap();
            let filters: Vec<bool> = w
                .data()
                .chunks_exact(4 * 6 * 25)
                .map(|f| f.iter().all(|b| *b == 0))
                .collect();
            assert_eq!(filters.iter().filter(|z| **z).count(), 8);
        }
    }
}

#[test]
fn prune_command_writes_pytorch_identical_masks_and_zeroed_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = crate::repo().join("crates/pruning/tests/it/vectors");
    let out = tmp.path().join("pruned.safetensors");
    let run = trainer()
        .arg("prune")
        .arg(vectors.join("weights.safetensors"))
        .args([
            "--criterion",
            "l1",
            "--sparsity",
            "0.8",
            "--scope",
            "global",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ours = std::fs::read(&out).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let torch = std::fs::read(vectors.join("masks.safetensors")).unwrap();
    let torch = safetensors::SafeTensors::deserialize(&torch).unwrap();
    for layer in ["fc1.weight", "fc2.weight", "fc3.weight"] {
        let mask = ours.tensor(&format!("{layer}_mask")).unwrap();
        assert_eq!(
            mask.data(),
            torch
                .tensor(&format!("global_l1_a0.8/{layer}"))
                .unwrap()
                .data()
        );
        let w = ours.tensor(layer).unwrap();
        for (c, &m) in w.data().chunks_exact(4).zip(mask.data()) {
            let v = f32::from_le_bytes(c.try_into().unwrap());
            assert_eq!(m == 0, v == 0.0, "{layer}: weight {v} vs mask {m}");
        }
    }
    // Gradient criteria need data, and the message says so.
    let run = trainer()
        .arg("prune")
        .arg(vectors.join("weights.safetensors"))
        .args(["--criterion", "taylor", "--sparsity", "0.5", "--out"])
        .arg(tmp.path().join("x.safetensors"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("needs gradients from data"));
}
