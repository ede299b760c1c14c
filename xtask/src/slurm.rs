//! `cargo xtask slurm-up` / `slurm-down`: a real single-node Slurm on this machine, for the
//! sweep executor's tests and for trying it (docs/sweeps.md, "On a Slurm cluster").
//!
//! Debian's `slurm-wlm` and `munge`, started without systemd (containers and CI have none):
//! munged as the `munge` user, then slurmctld and slurmd as root, one node described by
//! `slurmd -C` (its CPUs and memory), one default partition, `select/cons_tres`. No cgroups
//! (`proctrack/linuxproc`, `task/none`) and no accounting database: finished tasks stay visible
//! to `scontrol` for an hour (`MinJobAge`), which is what the sweep executor asks.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::output as run;

const CONF: &str = "/etc/slurm/slurm.conf";
/// Written into the config we generate: a slurm.conf without it is someone else's, never
/// overwritten.
const MARK: &str = "# written by cargo xtask slurm-up";

fn installed(cmd: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(cmd).is_file())
}

/// Whether a process named `name` runs (not counting zombies: a daemon that forked away and
/// exited stays one until its parent, here often no init at all, reaps it).
fn running(name: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        // `pid (comm) state …`
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let comm = head.split_once(" (").map(|(_, c)| c);
        comm == Some(name) && !rest.starts_with('Z')
    })
}

fn node_state() -> Option<String> {
    let out = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn install() -> Result<()> {
    if ["sbatch", "slurmctld", "slurmd", "munged"]
        .iter()
        .all(|c| installed(c))
    {
        return Ok(());
    }
    eprintln!("slurm-up: installing slurm-wlm and munge (Debian packages)");
    let sudo = if run("id", &["-u"])?.trim() == "0" {
        vec![]
    } else {
        vec!["sudo"]
    };
    let apt = |args: &[&str]| -> Result<()> {
        let mut all: Vec<&str> = sudo.clone();
        all.extend(args);
        let status = Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot start apt-get")?;
        if !status.success() {
            bail!("`{}` failed ({status})", all.join(" "));
        }
        Ok(())
    };
    apt(&["apt-get", "update", "-qq"])?;
    apt(&[
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "slurm-wlm",
        "munge",
    ])
}

fn start_munge() -> Result<()> {
    if running("munged") {
        return Ok(());
    }
    for d in ["/run/munge", "/var/log/munge", "/var/lib/munge"] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {d}"))?;
        run("chown", &["munge:munge", d])?;
    }
    if !Path::new("/etc/munge/munge.key").is_file() {
        run("mungekey", &["--create"])?;
        run("chown", &["munge:munge", "/etc/munge/munge.key"])?;
    }
    run("runuser", &["-u", "munge", "--", "/usr/sbin/munged"])?;
    Ok(())
}

fn write_conf() -> Result<()> {
    if let Ok(old) = std::fs::read_to_string(CONF)
        && !old.contains(MARK)
    {
        eprintln!("slurm-up: keeping {CONF} (not written by slurm-up)");
        return Ok(());
    }
    let host = run("hostname", &["-s"])?.trim().to_string();
    let node = run("slurmd", &["-C"])?;
    let node = node
        .lines()
        .find(|l| l.starts_with("NodeName="))
        .context("`slurmd -C` printed no NodeName line")?;
    for d in [
        "/var/spool/slurmctld",
        "/var/spool/slurmd",
        "/var/log/slurm",
    ] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {d}"))?;
    }
    let conf = format!(
        "{MARK}\n\
         ClusterName=lopper\n\
         SlurmctldHost={host}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         AuthType=auth/munge\n\
         StateSaveLocation=/var/spool/slurmctld\n\
         SlurmdSpoolDir=/var/spool/slurmd\n\
         SlurmctldPidFile=/run/slurmctld.pid\n\
         SlurmdPidFile=/run/slurmd.pid\n\
         SlurmctldLogFile=/var/log/slurm/slurmctld.log\n\
         SlurmdLogFile=/var/log/slurm/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core\n\
         SchedulerType=sched/backfill\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         JobCompType=jobcomp/none\n\
         MinJobAge=3600\n\
         ReturnToService=2\n\
         MpiDefault=none\n\
         {node} State=UNKNOWN\n\
         PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
    );
    std::fs::create_dir_all("/etc/slurm").context("cannot create /etc/slurm")?;
    std::fs::write(CONF, conf).with_context(|| format!("cannot write {CONF}"))
}

/// Installs (when missing), configures and starts a one-node Slurm; returns once the node is
/// idle. Does nothing to a Slurm that is up already.
pub fn up() -> Result<()> {
    if node_state().is_some_and(|s| s == "idle" || s == "mixed" || s == "allocated") {
        eprintln!(
            "slurm-up: Slurm is up ({})",
            node_state().unwrap_or_default()
        );
        return Ok(());
    }
    install()?;
    start_munge()?;
    write_conf()?;
    if !running("slurmctld") {
        run("slurmctld", &[])?;
    }
    if !running("slurmd") {
        run("slurmd", &[])?;
    }
    let start = Instant::now();
    loop {
        match node_state().as_deref() {
            Some("idle") => break,
            // A node left down by an earlier stop: bring it back.
            Some(s) if s.starts_with("down") || s.starts_with("drain") => {
                let host = run("hostname", &["-s"])?.trim().to_string();
                run(
                    "scontrol",
                    &["update", &format!("nodename={host}"), "state=resume"],
                )?;
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "the Slurm node did not become idle within 60 s (sinfo says {:?}); see /var/log/slurm/",
                node_state()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("slurm-up: one node idle: {}", run("sinfo", &[])?.trim());
    Ok(())
}

/// Stops slurmctld, slurmd and munged.
pub fn down() -> Result<()> {
    if running("slurmctld") {
        // Stops the controller and every slurmd.
        let _ = run("scontrol", &["shutdown"]);
    }
    let start = Instant::now();
    while (running("slurmctld") || running("slurmd")) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in ["slurmd", "slurmctld", "munged"] {
        if running(name) {
            let _ = Command::new("pkill").args(["-x", name]).status();
        }
    }
    eprintln!("slurm-down: stopped");
    Ok(())
}
