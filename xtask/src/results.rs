//! `cargo xtask results`: the Fashion-MNIST table of docs/results.md. One `trainer sweep` per method
//! config in `configs/results/` (each sweep resumable, so a stopped run continues), then one
//! table: methods down, target sparsities across, test accuracy as mean ± sample sd over seeds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Method configs in table order, with the names the table gives them.
const METHODS: [(&str, &str); 5] = [
    ("oneshot", "one-shot global magnitude + fine-tune"),
    ("gradual", "gradual magnitude (per layer)"),
    ("lottery", "lottery ticket (rewind to init)"),
    ("rigl", "RigL (ERK)"),
    ("random", "random + fine-tune (control)"),
];

/// One finished run (or lottery level) as the table needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Row label.
    pub method: String,
    /// Target sparsity (0 for dense).
    pub target: f64,
    /// Sparsity the run's masks really have.
    pub measured: f64,
    /// Final test accuracy.
    pub accuracy: f64,
    /// The seed.
    pub seed: u64,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Target sparsities as table keys: thousandths, so 0.95 and 0.9500001 are one column.
fn key(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// The Markdown table: one row per method (first-appearance order), one column per target
/// sparsity; a cell whose runs' measured sparsity is off its target by more than 0.5 point
/// says so.
pub fn table(cells: &[Cell]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    let mut targets: Vec<i64> = Vec::new();
    let mut groups: BTreeMap<(usize, i64), Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        let m = match methods.iter().position(|m| *m == c.method) {
            Some(i) => i,
            None => {
                methods.push(&c.method);
                methods.len() - 1
            }
        };
        if !targets.contains(&key(c.target)) {
            targets.push(key(c.target));
        }
        groups.entry((m, key(c.target))).or_default().push(c);
    }
    targets.sort_unstable();
    // A cell with fewer runs than the most any cell has says so.
    let full = groups.values().map(Vec::len).max().unwrap_or(0);
    let head: Vec<String> = targets
        .iter()
        .map(|t| {
            if *t == 0 {
                "dense".to_string()
            } else {
                format!("{} %", *t as f64 / 10.0)
            }
        })
        .collect();
    let mut out = format!(
        "| method | {} |\n|---|{}\n",
        head.join(" | "),
        "---:|".repeat(targets.len())
    );
    for (i, m) in methods.iter().enumerate() {
        let row: Vec<String> = targets
            .iter()
            .map(|t| match groups.get(&(i, *t)) {
                None => String::new(),
                Some(g) => {
                    let acc: Vec<f64> = g.iter().map(|c| c.accuracy).collect();
                    let (mean, sd) = mean_sd(&acc);
                    let (measured, _) = mean_sd(&g.iter().map(|c| c.measured).collect::<Vec<_>>());
                    let mut cell = format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * sd);
                    if (measured - *t as f64 / 1000.0).abs() > 0.005 {
                        cell += &format!(" (at {:.1} %)", 100.0 * measured);
                    }
                    if g.len() != full {
                        cell += &format!(" (n = {})", g.len());
                    }
                    cell
                }
            })
            .collect();
        out += &format!("| {m} | {} |\n", row.join(" | "));
    }
    out
}

/// Builds the trainer, runs every method's sweep, writes `runs/results/table.md`.
pub fn run() -> Result<()> {
    crate::cargo(&["build", "-p", "trainer", "--release", "--locked"])?;
    let exe = crate::target_dir().join("release/trainer");
    let root = Path::new("runs/results");
    let started = Instant::now();
    let mut cells = Vec::new();
    let mut dense: Vec<(String, u64, f64)> = Vec::new();
    let (mut run_seconds, mut n_runs) = (0.0, 0);
    for (name, label) in METHODS {
        let out = root.join(name);
        let config = format!("configs/results/{name}.toml");
        let mut cmd = Command::new(&exe);
        cmd.args(["sweep", "--config", &config])
            .arg("--out")
            .arg(&out);
        eprintln!("$ {cmd:?}");
        if !cmd.status()?.success() {
            bail!(
                "the {name} sweep failed; rerun `cargo xtask results` to retry its failed points"
            );
        }
        let csv = out.join("results.csv");
        let (_, rows) = report::results::read(&csv)?;
        for r in rows {
            run_seconds += r.wall_s;
            n_runs += 1;
            let accuracy = r
                .accuracy
                .with_context(|| format!("{}: {} has no accuracy", csv.display(), r.run_dir))?;
            if r.method == "dense" {
                dense.push((name.to_string(), r.seed, accuracy));
                continue;
            }
            if name == "lottery" {
                let path = out.join(&r.run_dir).join("pruning.json");
                let p: report::PruningReport = report::load(&path)?;
                let levels = p
                    .levels()
                    .with_context(|| format!("{}: not a lottery run", path.display()))?;
                for level in levels.iter().skip(1) {
                    let sides = [
                        (label, Some(&level.ticket)),
                        ("lottery reinit control", level.control.as_ref()),
                    ];
                    for (row, side) in sides {
                        let accuracy = side
                            .and_then(|s| s.final_evals.accuracy("test"))
                            .with_context(|| {
                                format!(
                                    "{}: level {} has no {row} test accuracy",
                                    path.display(),
                                    level.level
                                )
                            })?;
                        cells.push(Cell {
                            method: row.to_string(),
                            target: nearest_target(level.sparsity),
                            measured: level.sparsity,
                            accuracy,
                            seed: r.seed,
                        });
                    }
                }
            } else {
                let target = r
                    .value("pruning.sparsity")
                    .and_then(|v| v.parse().ok())
                    .with_context(|| {
                        format!("{}: a pruned point without pruning.sparsity", csv.display())
                    })?;
                cells.push(Cell {
                    method: label.to_string(),
                    target,
                    measured: r.sparsity,
                    accuracy,
                    seed: r.seed,
                });
            }
        }
    }
    let mut dense_cells = dense_row(dense)?;
    dense_cells.extend(cells);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let text = format!(
        "{}\nTest accuracy (%) of Fashion-MNIST 784-300-100-10, mean ± sample sd over seeds 0, 1, 2; \
         10 epochs of training per network (configs/results/). {} runs (one per sweep point; a lottery run trains every level); their wall times add up to {:.0} s; this invocation took {:.0} s on {cores} cores ({cpu}), 2 runs at a time.\n",
        table(&dense_cells),
        n_runs,
        run_seconds,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(root.join("table.md"), &text)?;
    print!("{text}");
    Ok(())
}

/// The dense row from every sweep's dense runs `(sweep, seed, accuracy)`. Every sweep trains
/// its own dense baseline; the same seed must give the same number, so the first sweep's stand.
fn dense_row(dense: Vec<(String, u64, f64)>) -> Result<Vec<Cell>> {
    let mut row: Vec<Cell> = Vec::new();
    for (from, seed, accuracy) in dense {
        match row.iter().find(|c| c.seed == seed) {
            Some(c) if c.accuracy != accuracy => bail!(
                "dense seed {seed}: the first sweep gave {} but {from} gave {accuracy}: training is not deterministic",
                c.accuracy
            ),
            Some(_) => {}
            None => row.push(Cell {
                method: "dense".into(),
                target: 0.0,
                measured: 0.0,
                accuracy,
                seed,
            }),
        }
    }
    Ok(row)
}

/// The table column a lottery level belongs to (levels are configured at the columns'
/// sparsities; per-layer rounding moves the measured value a little).
fn nearest_target(s: f64) -> f64 {
    (s * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(method: &str, target: f64, measured: f64, accuracy: f64, seed: u64) -> Cell {
        Cell {
            method: method.into(),
            target,
            measured,
            accuracy,
            seed,
        }
    }

    #[test]
    fn table_has_one_row_per_method_and_mean_sd_per_target() {
        let cells = vec![
            cell("dense", 0.0, 0.0, 0.88, 0),
            cell("dense", 0.0, 0.0, 0.90, 1),
            cell("dense", 0.0, 0.0, 0.89, 2),
            cell("gmp", 0.5, 0.5, 0.87, 0),
            cell("gmp", 0.5, 0.5, 0.87, 1),
            cell("gmp", 0.5, 0.5, 0.87, 2),
            cell("gmp", 0.9, 0.85, 0.80, 0),
            cell("gmp", 0.9, 0.85, 0.82, 1),
        ];
        let t = table(&cells);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| method | dense | 50 % | 90 % |");
        // 88, 90, 89: mean 89, sample sd 1.
        assert_eq!(lines[2], "| dense | 89.00 ± 1.00 |  |  |");
        // Off-target sparsity and a missing seed are said, not hidden.
        assert_eq!(
            lines[3],
            "| gmp |  | 87.00 ± 0.00 | 81.00 ± 1.41 (at 85.0 %) (n = 2) |"
        );
    }

    #[test]
    fn the_dense_row_is_one_per_seed_and_sweeps_must_agree() {
        let d = |sweep: &str, seed, acc| (sweep.to_string(), seed, acc);
        let row = dense_row(vec![
            d("a", 0, 0.8),
            d("a", 1, 0.9),
            d("b", 0, 0.8),
            d("b", 1, 0.9),
        ])
        .unwrap();
        assert_eq!(row.iter().map(|c| c.seed).collect::<Vec<_>>(), [0, 1]);
        let e = dense_row(vec![d("a", 0, 0.8), d("b", 0, 0.81)]).unwrap_err();
        assert!(e.to_string().contains("b gave 0.81"), "{e}");
    }

    #[test]
    fn lottery_levels_land_in_their_columns() {
        assert_eq!(nearest_target(0.949_98), 0.95);
        assert_eq!(nearest_target(0.980_4), 0.98);
    }
}
