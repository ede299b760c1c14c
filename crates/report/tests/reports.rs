//! Reports read back through their own types: a missing or mistyped field is an error that
//! names the file and the field, never a default.

use std::path::Path;

use report::{
    Evals, Outcome, PruningReport, ReportError, ResultRow, SplitEval, Summary, load, results,
    to_json,
};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SUMMARY: &str = r#"{
  "config": "configs/xor.toml", "dataset": "xor", "backend": "ndarray",
  "device": {"api": "", "backend": "ndarray", "device_type": "cpu", "driver": "", "name": "cpu"},
  "seed": 1, "widths": [2, 3, 1], "parameters": 13, "loss": "binary cross-entropy",
  "versions": {"burn": "0.22.1", "lopper": "0.1.0"},
  "weights_layout": "model.safetensors: PyTorch [out_features, in_features]",
  "status": "ok", "epochs": 1000, "steps": 1000, "stopped_early": false,
  "final": {"train": {"accuracy": 1.0, "correct": 4, "loss": 0.0888, "n": 4}},
  "wall_time_s": 0.127
}"#;

const PRUNING: &str = r#"{
  "config": {"mode": "static", "alpha": 0.5},
  "mode": "static",
  "before_pruning": {"train": {"accuracy": 1.0, "loss": 0.0009, "n": 4}},
  "rounds": [{"round": 1, "sparsity": 0.333,
              "after_pruning": {"train": {"accuracy": 1.0, "loss": 0.0888, "n": 4}}}],
  "layers": [{"name": "layers.0.weight", "shape_out_in": [3, 2], "weights": 6, "kept": 4,
              "sparsity": 0.333, "dead_units": 1}],
  "total": {"weights": 9, "kept": 6, "sparsity": 0.333, "parameters": 13,
            "nonzero_parameters": 9, "compression_ratio": 1.44, "dense_macs_per_sample": 9,
            "nonzero_macs_per_sample": 6, "theoretical_speedup": 1.5},
  "sizes": {"dense_bytes": 52, "csr_bytes": 88, "bitmask_bytes": 42, "compact_bytes": 36},
  "compact": {"widths": [2, 2, 1], "dense_macs_per_sample": 9, "compact_macs_per_sample": 6},
  "warnings": []
}"#;

#[test]
fn a_summary_and_a_pruning_report_read_back_and_write_out_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let s: Summary = load(&write(dir.path(), "summary.json", SUMMARY)).unwrap();
    let Outcome::Ok(f) = &s.outcome else {
        panic!("status ok reads as {:?}", s.outcome)
    };
    assert_eq!(f.final_evals.reported().unwrap().0, "train");
    assert_eq!(f.final_evals.accuracy("train"), Some(1.0));
    let again: Summary = report::file::parse(Path::new("x"), &to_json(&s)).unwrap();
    assert_eq!(again, s);

    let p: PruningReport = load(&write(dir.path(), "pruning.json", PRUNING)).unwrap();
    assert_eq!(p.mode_name(), "static");
    assert_eq!(p.rounds().len(), 1);
    assert_eq!(p.units_removed(), 1);
    assert_eq!(p.before_pruning().unwrap().accuracy("train"), Some(1.0));
    let again: PruningReport = report::file::parse(Path::new("x"), &to_json(&p)).unwrap();
    assert_eq!(again, p);
}

#[test]
fn a_report_missing_a_field_fails_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    // A nested field: the message gives its whole path.
    let text = PRUNING.replace(
        r#""sparsity": 0.333, "dead_units": 1"#,
        r#""sparsity": 0.333"#,
    );
    let path = write(dir.path(), "pruning.json", &text);
    let e = load::<PruningReport>(&path).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ReportError::Field { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("layers[0]") && msg.contains("dead_units"),
        "{msg}"
    );

    // A field that may be null must still be there: a missing accuracy is not "regression".
    let text = SUMMARY.replace(r#""accuracy": 1.0, "#, "");
    let path = write(dir.path(), "summary.json", &text);
    let msg = load::<Summary>(&path).unwrap_err().to_string();
    assert!(
        msg.contains("final.train") && msg.contains("accuracy"),
        "{msg}"
    );

    // The status decides which fields a summary needs.
    let text = SUMMARY.replace(r#""status": "ok""#, r#""status": "failed""#);
    let path = write(dir.path(), "summary.json", &text);
    let msg = load::<Summary>(&path).unwrap_err().to_string();
    assert!(msg.contains("error"), "{msg}");
}

#[test]
fn a_pruning_report_written_before_the_mode_field_reads_its_mode_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let old = PRUNING.replace("  \"mode\": \"static\",\n", "");
    assert_ne!(old, PRUNING);
    let p: PruningReport = load(&write(dir.path(), "pruning.json", &old)).unwrap();
    assert_eq!(p.mode_name(), "static");
}

#[test]
fn results_csv_round_trips_grid_values_with_commas() {
    let dir = tempfile::tempdir().unwrap();
    let keys = vec!["pruning.levels".to_string()];
    let row = ResultRow {
        method: "config".into(),
        values: vec![("pruning.levels".into(), "[0.5, 0.8]".into())],
        seed: 3,
        split: "test".into(),
        accuracy: Some(0.9721),
        loss: 0.1,
        sparsity: 0.8,
        accuracy_before_pruning: None,
        units_removed: Some(2),
        wall_s: 1.5,
        run_dir: "config/x/seed-3".into(),
    };
    let text = results::to_csv(&keys, std::slice::from_ref(&row));
    assert!(
        text.starts_with("method,pruning.levels,seed,split,accuracy,"),
        "{text}"
    );
    let path = write(dir.path(), "results.csv", &text);
    let (k, rows) = results::read(&path).unwrap();
    assert_eq!(k, keys);
    assert_eq!(rows, vec![row]);

    let broken = text.replace(",1.5,", ",soon,");
    let path = write(dir.path(), "results.csv", &broken);
    let msg = results::read(&path).unwrap_err().to_string();
    assert!(msg.contains("line 2") && msg.contains("wall_s"), "{msg}");
}

#[test]
fn the_reported_split_is_test_then_valid_then_train() {
    let e = |n| SplitEval {
        n,
        loss: 0.0,
        accuracy: None,
        correct: None,
    };
    let mut evals = Evals::default();
    evals.0.insert("train".into(), e(1));
    evals.0.insert("valid".into(), e(2));
    assert_eq!(evals.reported().unwrap().0, "valid");
    evals.0.insert("test".into(), e(3));
    assert_eq!(evals.reported().unwrap().0, "test");
}
