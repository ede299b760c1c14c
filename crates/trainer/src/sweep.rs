//! Sweeps: one config run over a grid of values and several seeds, each point in its own
//! process and run folder, then aggregated into `results.csv`, a table of mean ± sample standard
//! deviation, and accuracy against sparsity with error bars.
//!
//! Points run as child processes of the `trainer` binary (a crash or an out-of-memory kill costs
//! one point, and `--jobs` runs several at once). A point whose folder holds a `summary.json`
//! with status `ok` is finished and skipped, so a stopped sweep continues where it stopped; a
//! point stopped half-way continues from its checkpoint when the config writes them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::config::{ConfigError, LoadedConfig, load_config};
use crate::run_dir::finished;
use report::table::{Align, markdown};
use report::{PruningReport, ResultRow, Summary};

/// Everything a sweep can fail on, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A grid value or seed makes an invalid config.
    #[error("sweep point {point}: {cause}")]
    Point {
        /// The point's overrides.
        point: String,
        /// What the config loader said.
        cause: ConfigError,
    },
    /// The request itself makes no sense.
    #[error("{0}")]
    Plan(String),
    /// Reading or writing a file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A finished run's report cannot be read.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// The sweep folder or a point's folder is in use, or not Lopper's.
    #[error(transparent)]
    Folder(#[from] crate::folder::FolderError),
    /// The cluster scheduler refused, or cannot be reached.
    #[error("{0}")]
    Scheduler(String),
    /// Points failed; the others are aggregated.
    #[error(
        "{failed} of {total} sweep points failed (their run folders keep what they wrote; rerun the same command to retry them): {}",
        first.display()
    )]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many there are.
        total: usize,
        /// The log of the first failure.
        first: PathBuf,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SweepError + '_ {
    move |cause| SweepError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// What to sweep, after the `[sweep]` table and the command line are merged.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepSpec {
    /// `--set` path → TOML literals, in the order given.
    pub grid: Vec<(String, Vec<String>)>,
    /// Seeds each point runs with.
    pub seeds: Vec<u64>,
    /// Random and magnitude (layer-wise, global) baselines at every point.
    pub baselines: bool,
    /// Processes at once.
    pub jobs: usize,
}

impl SweepSpec {
    /// The config's `[sweep]` table, with each flag given replacing its part.
    pub fn merge(
        loaded: &LoadedConfig,
        grid: &[String],
        seeds: Option<Vec<u64>>,
        baselines: bool,
        jobs: Option<usize>,
    ) -> Result<Self, SweepError> {
        let table = loaded.config.sweep.clone().unwrap_or_default();
        let grid = if grid.is_empty() {
            table
                .grid
                .iter()
                .map(|(k, vs)| {
                    (
                        k.clone(),
                        vs.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                    )
                })
                .collect()
        } else {
            grid.iter()
                .map(|g| {
                    let (k, vs) = g.split_once('=').ok_or_else(|| {
                        SweepError::Plan(format!(
                            "--grid {g}: expected KEY=V1,V2,… such as pruning.sparsity=0.5,0.9"
                        ))
                    })?;
                    Ok((
                        k.trim().to_string(),
                        vs.split(',').map(|v| v.trim().to_string()).collect(),
                    ))
                })
                .collect::<Result<Vec<_>, SweepError>>()?
        };
        if let Some((k, _)) = grid
            .iter()
            .find(|(_, vs)| vs.is_empty() || vs.contains(&String::new()))
        {
            return Err(SweepError::Plan(format!("grid key {k} has an empty value")));
        }
        let seeds = seeds
            .or_else(|| (!table.seeds.is_empty()).then(|| table.seeds.clone()))
            .unwrap_or_else(|| vec![loaded.config.seed]);
        // A value given twice would run one folder twice and count it as two seeds.
        if let Some(s) = first_repeat(&seeds) {
            return Err(SweepError::Plan(format!(
                "seed {s} is given twice; each seed runs once"
            )));
        }
        if grid.iter().any(|(k, _)| k == "seed") {
            return Err(SweepError::Plan(
                "seed is not a grid key: give the seeds with --seeds (or [sweep] seeds)".into(),
            ));
        }
        if let Some(k) = first_repeat(&grid.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()) {
            return Err(SweepError::Plan(format!(
                "grid key {k} is given twice; list all its values in one --grid {k}=V1,V2"
            )));
        }
        for (k, vs) in &grid {
            if let Some(v) = first_repeat(vs) {
                return Err(SweepError::Plan(format!(
                    "grid key {k} lists the value {v} twice; each value runs once"
                )));
            }
        }
        let jobs = jobs.unwrap_or(table.jobs);
        if jobs == 0 {
            return Err(SweepError::Plan("--jobs must be ≥ 1".into()));
        }
        Ok(Self {
            grid,
            seeds,
            baselines: baselines || table.baselines,
            jobs,
        })
    }
}

/// One training run of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `config` (as written), `dense`, `random`, `magnitude-layer` or `magnitude-global`.
    pub method: String,
    /// Grid values, in grid order (empty for the dense baseline).
    pub values: Vec<(String, String)>,
    /// The seed.
    pub seed: u64,
    /// Its run folder.
    pub dir: PathBuf,
}

impl Point {
    /// The `--set` arguments that make this point from the config.
    pub fn overrides(&self) -> Vec<String> {
        let mut o: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        o.extend(
            baseline_overrides(&self.method)
                .iter()
                .map(ToString::to_string),
        );
        o.push(format!("seed={}", self.seed));
        o
    }

    /// Where the run's output goes: `…/seed-1.log` beside its folder.
    pub fn log(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    /// The point for people: `magnitude-global pruning.sparsity=0.9 seed 1`.
    pub fn label(&self) -> String {
        let mut parts = vec![self.method.clone()];
        parts.extend(self.values.iter().map(|(k, v)| format!("{k}={v}")));
        parts.push(format!("seed {}", self.seed));
        parts.join(" ")
    }
}

fn baseline_overrides(method: &str) -> &'static [&'static str] {
    match method {
        "random" => &["pruning.criterion=\"random\""],
        "magnitude-layer" => &["pruning.criterion=\"l1\"", "pruning.scope=\"layer\""],
        "magnitude-global" => &["pruning.criterion=\"l1\"", "pruning.scope=\"global\""],
        _ => &[],
    }
}

/// The first value that appears twice in `v`.
fn first_repeat<T: PartialEq + Clone>(v: &[T]) -> Option<T> {
    v.iter()
        .enumerate()
        .find(|(i, x)| v[..*i].contains(x))
        .map(|(_, x)| x.clone())
}

/// Longest folder name a grid point gets (file systems allow 255 bytes).
const MAX_SLUG: usize = 120;

/// A folder name for a grid point: `pruning.sparsity=0.9` → `sparsity-0.9`. Keys and values come
/// from the user, so only `[A-Za-z0-9._-]` survive (no separator, no `..`, never absolute), the
/// name never starts with a dot, and a long one is cut and given a hash of the whole so that it
/// stays distinct.
fn slug(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return "base".into();
    }
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = values
        .iter()
        .map(|(k, v)| {
            let key = k.rsplit('.').next().unwrap_or(k);
            format!("{}-{}", clean(key), clean(v))
        })
        .collect::<Vec<_>>()
        .join(",");
    let name = if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    };
    if name.len() <= MAX_SLUG {
        return name;
    }
    let whole: String = values.iter().map(|(k, v)| format!("{k}={v};")).collect();
    format!(
        "{}-{}",
        &name[..MAX_SLUG - 9],
        crate::run_dir::short_hash(&whole)
    )
}

/// Every combination of the grid's values, in the grid's key order.
fn combinations(grid: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (k, vs) in grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vs.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// The points, seed by seed: the dense baseline (when the config prunes), then every method at
/// every combination.
fn points_of(spec: &SweepSpec, prunes: bool, dir: &Path) -> Vec<Point> {
    let combos = combinations(&spec.grid);
    let mut methods = vec!["config"];
    if spec.baselines {
        methods.extend(["random", "magnitude-layer", "magnitude-global"]);
    }
    let mut points = Vec::new();
    for &seed in &spec.seeds {
        if prunes {
            // The dense baseline: the config without its [pruning] table, once per seed.
            points.push(Point {
                method: "dense".into(),
                values: Vec::new(),
                seed,
                dir: dir.join("dense").join(format!("seed-{seed}")),
            });
        }
        for method in &methods {
            for values in &combos {
                points.push(Point {
                    method: method.to_string(),
                    values: values.clone(),
                    seed,
                    dir: dir
                        .join(method)
                        .join(slug(values))
                        .join(format!("seed-{seed}")),
                });
            }
        }
    }
    points
}

/// Every point of the sweep, each checked by loading its config (a bad grid key or value is an
/// error before anything runs).
pub fn plan(loaded: &LoadedConfig, spec: &SweepSpec, dir: &Path) -> Result<Vec<Point>, SweepError> {
    let prunes = loaded.config.pruning.is_some();
    if spec.baselines && !prunes {
        return Err(SweepError::Plan(format!(
            "--baselines varies the pruning criterion and scope, but {} has no [pruning] table",
            loaded.path.display()
        )));
    }
    let points = points_of(spec, prunes, dir);
    let mut resolved: Vec<String> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        // Distinct grid values can clean to one folder name (`a/b` and `a_b`): refuse, rather
        // than run two points in one folder.
        if let Some(q) = points[..i].iter().find(|q| q.dir == p.dir) {
            return Err(SweepError::Plan(format!(
                "points `{}` and `{}` would share the folder {}; make the grid values differ in letters, digits, '.' or '-'",
                q.label(),
                p.label(),
                p.dir.display()
            )));
        }
        let config =
            load_config(&loaded.path, &p.overrides()).map_err(|cause| SweepError::Point {
                point: p.label(),
                cause,
            })?;
        resolved.push(crate::experiment::resolved_toml(&config.config));
        // Values written differently (0.5 and 5e-1) are one point: it would run twice and count
        // twice in the means.
        if let Some(q) =
            (0..i).find(|&j| points[j].method == p.method && resolved[j] == resolved[i])
        {
            return Err(SweepError::Plan(format!(
                "points `{}` and `{}` are the same experiment; give each value once",
                points[q].label(),
                p.label()
            )));
        }
    }
    Ok(points)
}

/// How the sweep went.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// Points run now.
    pub ran: usize,
    /// Points already finished before (skipped).
    pub skipped: usize,
    /// The aggregated rows.
    pub rows: Vec<ResultRow>,
}

/// The sweep's record in its folder (`sweep.json`): the config and what is swept, so that a
/// point (`trainer sweep-point`, run by a scheduler) and `--collect` plan the same points.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SweepRecord {
    /// The config file, absolute.
    config: PathBuf,
    /// What is swept.
    spec: SweepSpec,
}

const RECORD: &str = "sweep.json";

/// Plans the points and takes the sweep folder (held while the lock lives), recording the
/// sweep in it.
pub fn prepare(
    loaded: &LoadedConfig,
    spec: &SweepSpec,
    dir: &Path,
) -> Result<(Vec<Point>, crate::folder::FolderLock), SweepError> {
    let points = plan(loaded, spec, dir)?;
    let lock = claim(loaded, dir)?;
    let record = SweepRecord {
        config: std::fs::canonicalize(&loaded.path).map_err(io(&loaded.path))?,
        spec: spec.clone(),
    };
    let path = dir.join(RECORD);
    let json =
        serde_json::to_string_pretty(&record).map_err(|e| SweepError::Plan(e.to_string()))?;
    crate::atomic::write(&path, json).map_err(io(&path))?;
    Ok((points, lock))
}

/// The sweep recorded in `dir`: its config, what it sweeps and its points.
pub fn reopen(dir: &Path) -> Result<(LoadedConfig, SweepSpec, Vec<Point>), SweepError> {
    let path = dir.join(RECORD);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let record: SweepRecord = serde_json::from_str(&text)
        .map_err(|e| SweepError::Plan(format!("{}: {e}", path.display())))?;
    // Points still to run must be the ones planned: the config may not change under them.
    let stamp = dir.join("config.toml");
    let now = std::fs::read_to_string(&record.config).map_err(io(&record.config))?;
    if std::fs::read_to_string(&stamp).map_err(io(&stamp))? != now {
        return Err(SweepError::Plan(format!(
            "{} changed since the sweep in {} was started: put it back, or start a new sweep folder",
            record.config.display(),
            dir.display()
        )));
    }
    let loaded = load_config(&record.config, &[]).map_err(|cause| SweepError::Point {
        point: "the sweep's config".into(),
        cause,
    })?;
    let points = plan(&loaded, &record.spec, dir)?;
    Ok((loaded, record.spec, points))
}

/// Aggregates the sweep in `dir` as it stands (its finished points), as a local sweep does at
/// its end; an error lists how many points did not finish.
pub fn collect(dir: &Path) -> Result<SweepOutcome, SweepError> {
    let (_, spec, points) = reopen(dir)?;
    let keys: Vec<String> = spec.grid.iter().map(|(k, _)| k.clone()).collect();
    let rows = aggregate(&points, &keys, dir)?;
    let unfinished: Vec<&Point> = points.iter().filter(|p| !finished(&p.dir)).collect();
    if let Some(first) = unfinished.first() {
        return Err(SweepError::Failed {
            failed: unfinished.len(),
            total: points.len(),
            first: first.log(),
        });
    }
    Ok(SweepOutcome {
        ran: 0,
        skipped: points.len(),
        rows,
    })
}

/// Takes the sweep folder: it follows `--out`'s rule (new, empty, or a sweep folder Lopper
/// made), one sweep process at a time, and belongs to one config.
fn claim(loaded: &LoadedConfig, dir: &Path) -> Result<crate::folder::FolderLock, SweepError> {
    let fresh = !dir.exists() || std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
    if !fresh && !crate::folder::is_ours(dir) {
        return Err(crate::folder::FolderError::NotOurs {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::folder::mark(dir)?;
    let lock = crate::folder::FolderLock::acquire(dir)?;
    // Finished points of another config would be mixed in.
    let text = std::fs::read_to_string(&loaded.path).map_err(io(&loaded.path))?;
    let stamp = dir.join("config.toml");
    match std::fs::read_to_string(&stamp) {
        Ok(old) if old != text => {
            return Err(SweepError::Plan(format!(
                "{} was made from a different {}: pass --out with a new folder, or delete it",
                dir.display(),
                loaded.path.display()
            )));
        }
        Ok(_) => {}
        Err(_) => crate::atomic::write(&stamp, &text).map_err(io(&stamp))?,
    }
    Ok(lock)
}

/// The process that runs point `p` (output to the point's log): a fresh run, or `--resume` of
/// a half-written folder with a checkpoint. The same for every executor.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn point_command(exe: &Path, config_path: &Path, p: &Point) -> Result<Command, SweepError> {
    // A half-written folder from an interrupted sweep continues from its checkpoint
    // (`train.checkpoint_every`), or starts afresh without one.
    let resume = p.dir.join(crate::checkpoint::FILE).is_file();
    if p.dir.exists() && !resume {
        crate::folder::remove_ours(&p.dir)?;
    }
    let parent = p.dir.parent().expect("point folders are nested");
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let log_path = p.log();
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let mut cmd = Command::new(exe);
    if resume {
        cmd.arg("--resume").arg(&p.dir);
    } else {
        cmd.arg("--config").arg(config_path);
        if p.method == "dense" {
            cmd.arg("--no-pruning");
        }
        for o in p.overrides() {
            cmd.arg("--set").arg(o);
        }
        cmd.arg("--out").arg(&p.dir);
    }
    die_with_parent(&mut cmd);
    // Its own process group: a terminal's Ctrl-C reaches the sweep alone, whose death then
    // stops each point at its epoch's end (SIGHUP), and each point ends with its status written
    // instead of dying at a second Ctrl-C.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("--quiet")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io(&log_path))?)
        .stderr(log);
    Ok(cmd)
}

/// Runs every unfinished point with `exe` (the trainer binary), `jobs` at once; then aggregates.
/// `report` hears one line per point as it finishes.
pub fn run_sweep(
    exe: &Path,
    loaded: &LoadedConfig,
    spec: &SweepSpec,
    dir: &Path,
    mut report: impl FnMut(usize, usize, &str),
) -> Result<SweepOutcome, SweepError> {
    let config_path = std::fs::canonicalize(&loaded.path).map_err(io(&loaded.path))?;
    let (points, _lock) = prepare(loaded, spec, dir)?;
    // A Slurm array of this sweep still running would run the same points.
    crate::slurm::refuse_if_active(dir)?;
    let todo: Vec<&Point> = points.iter().filter(|p| !finished(&p.dir)).collect();
    // A point still run by a process of an earlier sweep (stopped, its children orphaned) is
    // not started a second time.
    for p in &todo {
        if let Some(pid) = crate::folder::holder(&p.dir) {
            return Err(crate::folder::FolderError::Busy {
                dir: p.dir.clone(),
                pid: Some(pid),
            }
            .into());
        }
    }
    let skipped = points.len() - todo.len();
    let mut queue = todo.iter();
    let mut running: Vec<(&Point, Child)> = Vec::new();
    let mut failures: Vec<PathBuf> = Vec::new();
    let mut done = skipped;
    loop {
        while running.len() < spec.jobs {
            let Some(p) = queue.next() else { break };
            let mut cmd = point_command(exe, &config_path, p)?;
            share_cores(&mut cmd, spec.jobs);
            let child = cmd.spawn();
            running.push((p, child.map_err(io(exe))?));
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        let mut progressed = false;
        while i < running.len() {
            match running[i].1.try_wait().map_err(io(exe))? {
                Some(status) => {
                    let (p, _) = running.swap_remove(i);
                    done += 1;
                    progressed = true;
                    let ok = status.success() && finished(&p.dir);
                    if !ok {
                        failures.push(p.log());
                    }
                    let what = if ok {
                        summary_line(p)
                    } else {
                        format!("FAILED ({status})")
                    };
                    report(done, points.len(), &format!("{}: {what}", p.label()));
                }
                None => i += 1,
            }
        }
        if !progressed {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let keys: Vec<String> = spec.grid.iter().map(|(k, _)| k.clone()).collect();
    let rows = aggregate(&points, &keys, dir)?;
    if let Some(first) = failures.first() {
        return Err(SweepError::Failed {
            failed: failures.len(),
            total: points.len(),
            first: first.clone(),
        });
    }
    Ok(SweepOutcome {
        ran: points.len() - skipped,
        skipped,
        rows,
    })
}

/// Points that run several at once share the cores: their pools' workers sleep between
/// products instead of polling ([`crate::threads::KeepAwake`]), which would keep cores busy
/// that the other points need.
fn share_cores(cmd: &mut Command, jobs: usize) {
    if jobs > 1 {
        cmd.env(crate::threads::SLEEP_ENV, "1");
    }
}

/// A point's process ends when the sweep's does (`PR_SET_PDEATHSIG`), however the sweep ends —
/// Ctrl-C, SIGTERM or SIGKILL — so no orphan keeps writing into a folder a rerun will use. The
/// signal is SIGHUP, which a run takes as "stop at the epoch's end" however often it comes
/// ([`crate::interrupt`]): the kernel sends it whenever the thread that started the point ends
/// and again from each thread of the sweep that takes the point over, so a sweep with more
/// than one thread (rayon's pool) signals each point more than once. With SIGTERM the second
/// one stopped the point at once, without its summary.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The sweep may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() as u32 != parent {
                libc::_exit(129);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

fn summary_line(point: &Point) -> String {
    match read_run(point, Path::new("")) {
        Ok(r) => format!(
            "{} accuracy {}, sparsity {:.1}%, {:.1} s",
            r.split,
            r.accuracy
                .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
            100.0 * r.sparsity,
            r.wall_s
        ),
        Err(e) => format!("its report cannot be read: {e}"),
    }
}

/// The results.csv row of the finished run of `point` (its folder relative to `sweep_dir`),
/// read from its summary and pruning report.
fn read_run(point: &Point, sweep_dir: &Path) -> Result<ResultRow, SweepError> {
    let summary_path = point.dir.join("summary.json");
    let s: Summary = report::load(&summary_path)?;
    let Some(f) = s.finished() else {
        return Err(SweepError::Plan(format!(
            "{}: the run did not finish (status {})",
            summary_path.display(),
            s.status()
        )));
    };
    let pruning_path = point.dir.join("pruning.json");
    let p: Option<PruningReport> = if pruning_path.exists() {
        Some(report::load(&pruning_path)?)
    } else {
        None
    };
    let (split, eval) = f.final_evals.reported().ok_or_else(|| {
        SweepError::Plan(format!("{}: no split evaluated", summary_path.display()))
    })?;
    Ok(ResultRow {
        method: point.method.clone(),
        values: point.values.clone(),
        seed: point.seed,
        split: split.to_string(),
        accuracy: eval.accuracy,
        loss: eval.loss,
        sparsity: p.as_ref().map_or(0.0, |p| p.total.sparsity),
        accuracy_before_pruning: p
            .as_ref()
            .and_then(|p| p.before_pruning())
            .and_then(|b| b.accuracy(split)),
        units_removed: p.as_ref().map(PruningReport::units_removed),
        wall_s: f.wall_time_s,
        run_dir: point
            .dir
            .strip_prefix(sweep_dir)
            .unwrap_or(&point.dir)
            .display()
            .to_string(),
    })
}

/// Reads every finished point and writes `results.csv`, `results.md` and the plot.
pub fn aggregate(
    points: &[Point],
    keys: &[String],
    dir: &Path,
) -> Result<Vec<ResultRow>, SweepError> {
    let rows: Vec<ResultRow> = points
        .iter()
        .filter(|p| finished(&p.dir))
        .map(|p| read_run(p, dir))
        .collect::<Result<_, _>>()?;
    let csv_path = dir.join("results.csv");
    crate::atomic::write(&csv_path, report::results::to_csv(keys, &rows)).map_err(io(&csv_path))?;
    let groups = group(&rows);
    let md_path = dir.join("results.md");
    let md = format!("{}\n{}", table(&groups), per_run_table(&rows));
    crate::atomic::write(&md_path, md).map_err(io(&md_path))?;
    if let Err(e) = crate::plots::sweep_plot(dir, &groups) {
        // Numbers first: a plot that cannot be drawn (no fonts, say) costs only the picture.
        eprintln!("warning: {e}");
    }
    Ok(rows)
}

/// The runs of one method at one grid point, over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The method.
    pub method: String,
    /// The grid values.
    pub values: Vec<(String, String)>,
    /// Accuracies (fractions), one per seed that finished.
    pub accuracies: Vec<f64>,
    /// Measured sparsities.
    pub sparsities: Vec<f64>,
    /// The split.
    pub split: String,
}

/// Mean and sample standard deviation (n − 1; 0 for a single value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Rows of the same method and grid values, in the order they first appear.
fn group(rows: &[ResultRow]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let i = match groups
            .iter()
            .position(|g| g.method == r.method && g.values == r.values)
        {
            Some(i) => i,
            None => {
                groups.push(Group {
                    method: r.method.clone(),
                    values: r.values.clone(),
                    accuracies: Vec::new(),
                    sparsities: Vec::new(),
                    split: r.split.clone(),
                });
                groups.len() - 1
            }
        };
        groups[i].accuracies.extend(r.accuracy);
        groups[i].sparsities.push(r.sparsity);
    }
    groups
}

/// Every run on its own line: accuracy before and after pruning and the units removed, so
/// seed-to-seed differences (one seed losing a unit the others keep) are visible.
pub fn per_run_table(rows: &[ResultRow]) -> String {
    let split = rows.first().map_or("test", |r| r.split.as_str());
    let pct = |a: Option<f64>| a.map_or("–".to_string(), |a| format!("{:.2} %", 100.0 * a));
    let columns = [
        ("method", Align::Left),
        ("point", Align::Left),
        ("seed", Align::Right),
        ("accuracy before pruning", Align::Right),
        ("accuracy", Align::Right),
        ("sparsity", Align::Right),
        ("units removed", Align::Right),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.method.clone(),
                point_label(&r.values),
                r.seed.to_string(),
                pct(r.accuracy_before_pruning),
                pct(r.accuracy),
                format!("{:.1} %", 100.0 * r.sparsity),
                r.units_removed.map_or("–".to_string(), |u| u.to_string()),
            ]
        })
        .collect();
    format!("Per run ({split} split):\n\n{}", markdown(&columns, &cells))
}

fn point_label(values: &[(String, String)]) -> String {
    if values.is_empty() {
        "—".to_string()
    } else {
        values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The Markdown table: one row per method and grid point, accuracy as mean ± sample sd.
pub fn table(groups: &[Group]) -> String {
    let split = groups.first().map_or("test", |g| g.split.as_str());
    let accuracy = format!("{split} accuracy (mean ± sd)");
    let columns = [
        ("method", Align::Left),
        ("point", Align::Left),
        ("seeds", Align::Right),
        ("sparsity", Align::Right),
        (accuracy.as_str(), Align::Right),
    ];
    let cells: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let (s, _) = mean_sd(&g.sparsities);
            let acc = if g.accuracies.is_empty() {
                "—".to_string()
            } else {
                let (m, sd) = mean_sd(&g.accuracies);
                format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * sd)
            };
            vec![
                g.method.clone(),
                point_label(&g.values),
                g.sparsities.len().to_string(),
                format!("{:.1} %", 100.0 * s),
                acc,
            ]
        })
        .collect();
    markdown(&columns, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_run_together_let_their_workers_sleep_and_a_point_alone_keeps_them_polling() {
        let sleeps = |jobs| {
            let mut cmd = Command::new("true");
            share_cores(&mut cmd, jobs);
            cmd.get_envs()
                .any(|(k, v)| k == crate::threads::SLEEP_ENV && v.is_some())
        };
        assert!(sleeps(2) && sleeps(8));
        assert!(!sleeps(1));
    }
}
