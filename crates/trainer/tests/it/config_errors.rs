//! Golden config-error messages: what a user sees for each kind of mistake.

use trainer::config::{ConfigError, find_config_in, parse_config};

use std::path::Path;

fn err(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    parse_config(text, Path::new("exp.toml"), &o)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn unknown_key_shows_file_line_caret_and_valid_keys() {
    let e = err(
        "[data]\nname = \"xor\"\n[train]\nepochs = 10\nlearning_rate = 0.1\n",
        &[],
    );
    assert_eq!(
        e,
        "in exp.toml: TOML parse error at line 5, column 1\n  |\n5 | learning_rate = 0.1\n  | ^^^^^^^^^^^^^\nunknown field `learning_rate`, expected one of `epochs`, `batch_size`, `shuffle`, `optimizer`, `lr`, `momentum`, `nesterov`, `beta1`, `beta2`, `epsilon`, `weight_decay`, `l1`, `l1_gamma`, `lr_schedule`, `lr_step_epochs`, `lr_gamma`, `lr_min`, `eval_every`, `early_stopping`, `checkpoint_every`, `sparse_products`"
    );
    // Unknown keys are rejected in every table, including the top level and nested tables.
    assert!(err("sed = 1\n[data]\nname = \"xor\"\n", &[]).contains("unknown field `sed`"));
    assert!(
        err(
            "[data]\nname = \"moons\"\nvalidation_fraction = 0.2\n[train.early_stopping]\npatience = 3\npatiance = 4\n",
            &[]
        )
        .contains("unknown field `patiance`, expected `patience` or `min_delta`")
    );
}

#[test]
fn wrong_type_and_unknown_variant_point_at_the_value() {
    let e = err("[data]\nname = \"xor\"\n[train]\nepochs = \"ten\"\n", &[]);
    assert_eq!(
        e,
        "in exp.toml: TOML parse error at line 4, column 10\n  |\n4 | epochs = \"ten\"\n  |          ^^^^^\ninvalid type: string \"ten\", expected usize"
    );
    let e = err(
        "[data]\nname = \"xor\"\n[model]\nactivation = \"gelu\"\n",
        &[],
    );
    assert!(
        e.ends_with("unknown variant `gelu`, expected one of `sigmoid`, `relu`, `tanh`"),
        "{e}"
    );
}

#[test]
fn bad_values_name_the_key_and_its_line() {
    let e = err("[data]\nname = \"xor\"\n\n[train]\nlr = -1\n", &[]);
    assert_eq!(
        e,
        "in exp.toml, line 5, column 1: `train.lr` must be a positive number (got -1)"
    );
    let e = err("[data]\nname = \"moons\"\nclasses = 3\n", &[]);
    assert_eq!(
        e,
        "in exp.toml, line 3, column 1: `data.classes` does not apply to data.name = \"moons\" (its keys: n, noise); remove it"
    );
    let e = err("[data]\nname = \"moons\"\nvalidation_fraction = 1.5\n", &[]);
    assert!(
        e.contains("`data.validation_fraction` must be in [0, 1) (got 1.5)"),
        "{e}"
    );
    let e = err(
        "[data]\nname = \"moons\"\n[train]\n[train.early_stopping]\npatience = 2\n",
        &[],
    );
    assert!(e.contains("needs a validation split"), "{e}");
}

#[test]
fn lottery_levels_are_checked() {
    let lottery = "[data]\nname = \"xor\"\n[pruning]\nmode = \"lottery\"\n";
    let e = err(&format!("{lottery}levels = [0.5, 0.5]\n"), &[]);
    assert!(
        e.contains("`pruning.levels` must rise strictly, each in (0, 1)"),
        "{e}"
    );
    let e = err(&format!("{lottery}levels = [0.5, 1.0]\n"), &[]);
    assert!(e.contains("`pruning.levels` must rise strictly"), "{e}");
    let e = err(&format!("{lottery}levels = [0.5]\nsparsity = 0.2\n"), &[]);
    assert!(
        e.contains("`pruning.levels` gives each level's sparsity: remove pruning.sparsity"),
        "{e}"
    );
    let e = err(
        "[data]\nname = \"xor\"\n[pruning]\nmode = \"static\"\nsparsity = 0.5\nlevels = [0.5]\n",
        &[],
    );
    assert!(
        e.contains("`pruning.levels` does not apply to mode = \"static\""),
        "{e}"
    );
}

#[test]
fn pruning_keys_are_each_modes_own() {
    let gradual = "[data]\nname = \"xor\"\n\n[pruning]\nmode = \"gradual\"\nsparsity = 0.5\nend_epoch = 3\nevery_steps = 2\n";
    // A key no mode has: the error names the key's line and lists the mode's keys.
    let e = err(&format!("{gradual}evry_steps = 3\n"), &[]);
    assert!(
        e.starts_with("in exp.toml, line 9, column 1: `pruning.evry_steps` is not a key of [pruning] with mode = \"gradual\"; its keys are mode, criterion, granularity,"),
        "{e}"
    );
    assert!(
        e.contains("layer_factor, schedule, initial_sparsity, power, begin_epoch")
            && !e.contains("fine_tune_epochs"),
        "{e}"
    );
    // Another mode's key: the modes it belongs to.
    let e = err(&format!("{gradual}drop_fraction = 0.2\n"), &[]);
    assert!(
        e.contains("line 9, column 1: `pruning.drop_fraction` does not apply to mode = \"gradual\" (it is for mode \"rigl\" or \"set\"); remove it"),
        "{e}"
    );
    // Values are parsed into the pruning crate's types where the key is written.
    let e = err(&format!("{gradual}criterion = \"l3\"\n"), &[]);
    assert!(
        e.contains(
            "line 9, column 1: `pruning.criterion` unknown variant `l3`, expected one of `l1`, `l2`"
        ),
        "{e}"
    );
    let e = err(&format!("{gradual}granularity = \"4:2\"\n"), &[]);
    assert!(
        e.contains("`pruning.granularity` `4:2` is not one of"),
        "{e}"
    );
    let e = err(
        "[data]\nname = \"xor\"\n[pruning]\nmode = \"sometimes\"\n",
        &[],
    );
    assert!(
        e.contains("`pruning.mode` \"sometimes\" is not one of \"static\", \"at-init\""),
        "{e}"
    );
    // A run folder's config.toml from before modes had keys of their own echoes static's
    // defaults in every mode: it still loads.
    let old = format!("{gradual}rounds = 1\nfine_tune_epochs = 0\n");
    let loaded = parse_config(&old, Path::new("config.toml"), &[]).unwrap();
    let p = loaded.config.pruning.as_ref().unwrap();
    assert_eq!(p.mode(), trainer::config::PruningMode::Gradual);
    // The defaults every published number was measured with.
    let r = &p.rule;
    assert_eq!(
        (r.calibration_batches, r.granularity),
        (10, pruning::Granularity::Weight)
    );
    assert_eq!(
        (r.criterion, r.scope),
        (pruning::Criterion::L1, pruning::ScopeKind::Layer)
    );
    assert_eq!(r.count_over, pruning::CountOver::Remaining);
    // Written back, a config holds its mode's keys only, and reads back the same.
    let text = trainer::experiment::resolved_toml(&loaded.config);
    assert!(
        text.contains("mode = \"gradual\"") && !text.contains("rounds"),
        "{text}"
    );
    let again = parse_config(&text, Path::new("config.toml"), &[]).unwrap();
    assert_eq!(again.config, loaded.config);
    let e = err(&format!("{gradual}rounds = 2\n"), &[]);
    assert!(
        e.contains("`pruning.rounds` does not apply to mode = \"gradual\""),
        "{e}"
    );
}

#[test]
fn overrides_apply_and_their_errors_say_so() {
    let ok = parse_config(
        "[data]\nname = \"xor\"\n",
        Path::new("exp.toml"),
        &[
            "train.lr=0.5".into(),
            "model.hidden=[4, 4]".into(),
            "model.activation=relu".into(),
        ],
    )
    .unwrap();
    assert_eq!(ok.config.train.lr, 0.5);
    assert_eq!(ok.config.model.hidden(), [4, 4]);
    let e = err("[data]\nname = \"xor\"\n", &["train.lr=-2"]);
    assert_eq!(
        e,
        "in exp.toml: `train.lr` must be a positive number (got -2) (set by --set)"
    );
    let e = err("[data]\nname = \"xor\"\n", &["train.lrr=2"]);
    assert!(
        e.starts_with("in --set train.lrr=2: unknown field `lrr`"),
        "{e}"
    );
    let e = err("[data]\nname = \"xor\"\n", &["train.lr"]);
    assert!(e.contains("expected table.key=value"), "{e}");
}

#[test]
fn bare_names_are_found_in_configs() {
    let root = crate::repo();
    let found = find_config_in(&root, Path::new("xor.toml")).unwrap();
    let found_no_ext = find_config_in(&root, Path::new("xor")).unwrap();
    assert_eq!(found, root.join("configs/xor.toml"));
    assert_eq!(found_no_ext, root.join("configs/xor.toml"));
    let missing = find_config_in(&root, Path::new("no-such-config.toml"));
    let ConfigError::NotFound { tried, .. } = missing.unwrap_err() else {
        panic!("expected NotFound");
    };
    assert_eq!(tried.len(), 2);
}

#[test]
fn every_shipped_config_parses_and_validates() {
    let mut n = 0;
    // configs/ and its folders (configs/results/: docs/results.md's methods).
    let mut dirs = vec![crate::repo().join("configs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                trainer::config::load_config(&path, &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 20, "found only {n} configs");
}
