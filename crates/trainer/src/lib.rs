//! Lopper's trainer: config-driven dense networks on Burn, with a training loop that pruning
//! (the `pruning` crate) plugs into through hooks.
//!
//! This crate owns everything that touches the outside world — config files, data files,
//! terminals, run folders; the `pruning` crate owns none of it.
#![warn(missing_docs)]
// No panic reachable from input: `unwrap` and `expect` only where an invariant checked before
// makes them unreachable, each such function marked with an `allow` that says so.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod atomic;
pub mod checkpoint;
pub mod compact_net;
pub mod config;
pub mod counts;
pub mod data;
pub mod denormals;
pub mod device;
pub mod dynamic;
pub mod early_stop;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod folder;
pub mod fused;
pub mod head;
pub mod heap;
pub mod hooks;
pub mod host_net;
pub mod inference;
pub mod interrupt;
pub mod lottery;
pub mod metrics_log;
pub mod model;
pub mod norm;
pub mod optim;
pub mod phases;
pub mod plots;
pub mod prune;
pub mod prune_file;
pub mod resources;
pub mod rounds;
pub mod run_dir;
pub mod runner;
pub mod search;
pub mod seeds;
pub mod sensitivity;
pub mod slurm;
pub mod sweep;
pub mod threads;
pub mod train;
