//! The gradual schedule against tfmot's `PolynomialDecay` on the shared vectors (copied from
//! `../shared/vectors/polynomial_decay.json`). TensorFlow computes in float32: our f64 value
//! must equal the vector's float64 closed form to 1e-12, and our float32 evaluation (tfmot's
//! order of operations) must equal TensorFlow's float32 bits.

use pruning::schedule::{Polynomial, Schedule};

#[test]
fn polynomial_schedule_equals_tfmot() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/vectors/polynomial_decay.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = &v["params"];
    let s = Polynomial {
        initial: p["initial_sparsity"].as_f64().unwrap(),
        target: p["final_sparsity"].as_f64().unwrap(),
        begin: p["begin_step"].as_u64().unwrap() as usize,
        end: p["end_step"].as_u64().unwrap() as usize,
        power: p["power"].as_f64().unwrap(),
        frequency: p["frequency"].as_u64().unwrap() as usize,
    };
    let rows = v["values"].as_array().unwrap();
    assert_eq!(rows.len(), 23);
    for row in rows {
        let step = row["step"].as_u64().unwrap() as usize;
        assert_eq!(
            s.should_prune(step),
            row["should_prune"].as_bool().unwrap(),
            "step {step}"
        );
        let ours = s.sparsity(step);
        let closed = row["closed_form_f64"].as_f64().unwrap();
        assert!(
            (ours - closed).abs() < 1e-12,
            "step {step}: {ours} vs {closed}"
        );
        let tf_bits =
            u32::from_str_radix(row["sparsity_float32_hex"].as_str().unwrap(), 16).unwrap();
        let ours32 = s.sparsity_f32(step);
        assert_eq!(
            ours32.to_bits(),
            tf_bits,
            "step {step}: {ours32} ({:08x}) vs TF {tf_bits:08x}",
            ours32.to_bits()
        );
    }
}
