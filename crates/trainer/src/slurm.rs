//! Sweeps on a Slurm cluster: the points planned as for a local sweep, run as one job array.
//!
//! `trainer sweep --executor slurm` takes the sweep folder (which every node must see: a
//! shared file system), records the sweep in it, and submits one array whose task i runs point
//! i (`trainer sweep-point DIR i`, the same process a local sweep starts). Only unfinished
//! points are submitted, so re-running the command retries failed or cancelled points, and a
//! point with a checkpoint resumes from it. `--wait` follows the array with `squeue` and then
//! aggregates exactly as a local sweep does; `trainer sweep --collect DIR` aggregates later.
//! The cluster's scheduler does the scheduling: Lopper only submits and reads states.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::LoadedConfig;
use crate::run_dir::finished;
use crate::sweep::{Point, SweepError, SweepSpec, point_command, prepare, reopen};

/// The folder of the sweep's Slurm files: the array script, job ids, task outputs.
const SLURM_DIR: &str = "slurm";
/// Job ids of the arrays submitted for the sweep, one per line.
const JOBS: &str = "jobs";

fn io(path: &Path) -> impl Fn(std::io::Error) -> SweepError + '_ {
    move |cause| SweepError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Runs a Slurm command; its absence and its refusals are errors saying so.
fn slurm(cmd: &str, args: &[String]) -> Result<String, SweepError> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        SweepError::Scheduler(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{cmd}` is not on PATH: --executor slurm runs where Slurm's commands are (a login node of the cluster); or start a local one with `cargo xtask slurm-up`"
            )
        } else {
            format!("cannot run `{cmd}`: {e}")
        })
    })?;
    if !out.status.success() {
        return Err(SweepError::Scheduler(format!(
            "`{cmd} {}` was refused ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether job `id` still has tasks queued or running. An id Slurm no longer knows is an
/// error to squeue: not active. Any other failure (a controller that did not answer in time)
/// counts as active, to be asked again: a sweep is never taken for finished by a hiccup.
pub fn active(id: &str) -> Result<bool, SweepError> {
    let args = ["-h", "-j", id, "-o", "%i"].map(String::from);
    match slurm("squeue", &args) {
        Ok(out) => Ok(!out.trim().is_empty()),
        Err(SweepError::Scheduler(m)) if m.contains("Invalid job id") => Ok(false),
        Err(SweepError::Scheduler(m)) if m.contains("is not on PATH") => {
            Err(SweepError::Scheduler(m))
        }
        Err(_) => Ok(true),
    }
}

/// Refuses while an array submitted for the sweep in `dir` is still queued or running: its
/// tasks write into the folder.
pub fn refuse_if_active(dir: &Path) -> Result<(), SweepError> {
    for job in submitted_jobs(dir) {
        if active(&job)? {
            return Err(SweepError::Scheduler(format!(
                "array {job} of this sweep is still queued or running: wait for it (`trainer sweep --collect {}` afterwards), or `scancel {job}`",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The job ids of arrays submitted for the sweep in `dir`.
fn submitted_jobs(dir: &Path) -> Vec<String> {
    let path = dir.join(SLURM_DIR).join(JOBS);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `path` as one shell word.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The array's job id (none when every point had finished).
    pub job: Option<String>,
    /// Points submitted.
    pub submitted: usize,
    /// Points in the sweep.
    pub total: usize,
}

/// Submits the unfinished points of the sweep as one job array, `spec.jobs` tasks at once,
/// with `slurm_args` passed to `sbatch` (partition, time, CPUs, account, GPUs).
pub fn submit(
    exe: &Path,
    loaded: &LoadedConfig,
    spec: &SweepSpec,
    dir: &Path,
    slurm_args: &[String],
) -> Result<Submitted, SweepError> {
    let (points, _lock) = prepare(loaded, spec, dir)?;
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    refuse_if_active(&dir)?;
    let todo: Vec<String> = (points.iter().enumerate())
        .filter(|(_, p)| !finished(&p.dir))
        .map(|(i, _)| i.to_string())
        .collect();
    let total = points.len();
    if todo.is_empty() {
        return Ok(Submitted {
            job: None,
            submitted: 0,
            total,
        });
    }
    let slurm_dir = dir.join(SLURM_DIR);
    std::fs::create_dir_all(&slurm_dir).map_err(io(&slurm_dir))?;
    let script = slurm_dir.join("array.sh");
    let text = format!(
        "#!/bin/sh\n# Task i of the array runs point i of the sweep in this folder (written by trainer sweep).\nexec {} sweep-point {} \"$SLURM_ARRAY_TASK_ID\"\n",
        sh_quote(exe),
        sh_quote(&dir)
    );
    crate::atomic::write(&script, text).map_err(io(&script))?;
    let name = format!("lopper-{}", loaded.stem());
    let mut args = vec![
        "--parsable".to_string(),
        format!("--array={}%{}", todo.join(","), spec.jobs),
        format!("--job-name={name}"),
        format!("--output={}", slurm_dir.join("%A_%a.out").display()),
    ];
    args.extend(slurm_args.iter().cloned());
    args.push(script.display().to_string());
    let out = slurm("sbatch", &args)?;
    // `--parsable`: `id` or `id;cluster`.
    let job = out.trim().split(';').next().unwrap_or_default().to_string();
    let jobs = slurm_dir.join(JOBS);
    let mut all = submitted_jobs(&dir);
    all.push(job.clone());
    crate::atomic::write(&jobs, all.join("\n") + "\n").map_err(io(&jobs))?;
    Ok(Submitted {
        job: Some(job),
        submitted: todo.len(),
        total,
    })
}

/// Runs point `index` of the sweep in `dir` (an array task's work) as a local sweep would,
/// and returns its exit code.
pub fn run_point(exe: &Path, dir: &Path, index: usize) -> Result<i32, SweepError> {
    if !dir.join("sweep.json").is_file() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        return Err(SweepError::Scheduler(format!(
            "the sweep folder {} is not visible on this node ({}): put it on a file system every node mounts (a shared home or scratch), and the trainer binary too",
            dir.display(),
            host.trim()
        )));
    }
    let (loaded, _, points) = reopen(dir)?;
    let Some(point) = points.get(index) else {
        return Err(SweepError::Plan(format!(
            "the sweep in {} has {} points; there is no point {index}",
            dir.display(),
            points.len()
        )));
    };
    let config = std::fs::canonicalize(&loaded.path).map_err(io(&loaded.path))?;
    let status = point_command(exe, &config, point)?
        .status()
        .map_err(io(exe))?;
    Ok(status.code().unwrap_or(1))
}

/// Follows array `job` until no task is queued or running; `progress` hears the finished
/// points and their number.
pub fn wait(
    dir: &Path,
    job: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<(), SweepError> {
    let (_, _, points) = reopen(dir)?;
    loop {
        let done = points.iter().filter(|p| finished(&p.dir)).count();
        progress(done, points.len());
        if !active(job)? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The Slurm state of each task of `job` (`scontrol` keeps finished tasks for `MinJobAge`), as
/// `(job, task, state)`.
fn task_states(job: &str) -> Vec<(String, usize, String)> {
    let args = ["-o", "show", "job", job].map(String::from);
    let out = slurm("scontrol", &args).unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(k).map(str::to_string))
            };
            let task = field("ArrayTaskId=")?.parse().ok()?;
            Some((job.to_string(), task, field("JobState=")?))
        })
        .collect()
}

/// The points of the sweep in `dir` that did not finish, each with its task's Slurm state (of
/// the last array that ran it) and the end of its log.
pub fn unfinished(dir: &Path) -> Result<Vec<String>, SweepError> {
    let jobs = submitted_jobs(dir);
    if jobs.is_empty() {
        // A local sweep: its own error names the first failed point's log.
        return Ok(Vec::new());
    }
    let (_, _, points) = reopen(dir)?;
    let states: Vec<(String, usize, String)> = jobs.iter().flat_map(|j| task_states(j)).collect();
    Ok(points
        .iter()
        .enumerate()
        .filter(|(_, p)| !finished(&p.dir))
        .map(|(i, p)| describe(dir, (i, p), &states))
        .collect())
}

/// The last three lines of `path` (nothing when it cannot be read).
fn tail(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut last: Vec<String> = text.lines().rev().take(3).map(String::from).collect();
    last.reverse();
    last
}

/// A point that did not finish: its task's state in the last array that ran it, and the end of
/// the point's log and of the task's Slurm output (where a task that could not start the point
/// — a folder its node does not see, a time limit — says why).
fn describe(dir: &Path, (i, p): (usize, &Point), states: &[(String, usize, String)]) -> String {
    let last = states.iter().rev().find(|(_, t, _)| *t == i);
    let state = last.map_or("not run", |(_, _, s)| s.as_str());
    let mut lines = vec![format!("{} (task {i}): {state}", p.label())];
    let mut logs: Vec<PathBuf> = vec![p.log()];
    if let Some((job, _, _)) = last {
        logs.push(dir.join(SLURM_DIR).join(format!("{job}_{i}.out")));
    }
    for log in logs {
        let end = tail(&log);
        if !end.is_empty() {
            lines.push(format!("  {}:", log.display()));
            lines.extend(end.iter().map(|l| format!("    {l}")));
        }
    }
    lines.join("\n")
}
