//! Inference of 784-300-100-10 (ReLU) after pruning: dense rows, CSR and the compacted network,
//! at batch 1 and 256, for unstructured magnitude sparsity of 0/50/80/90/95/98% (per layer) and
//! for a neuron-pruned network (75% of each hidden layer's units removed). Burn's own dense
//! forward passes (ndarray and Flex) are measured alongside as the library baselines;
//! `cargo xtask bench` tabulates every format against the fastest dense kernel.

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pruning::Rng;
use trainer::config::{ActivationKind, ModelConfig};
use trainer::inference::{CsrMlp, HostMlp, compact};
use trainer::model::Net;

fn device() -> Device {
    #[allow(deprecated)]
    Device::ndarray()
}

/// Burn's CPU backends in this build, by the name the benchmark ids use.
fn burn_devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut d = vec![("burn_ndarray", device())];
    #[cfg(feature = "flex")]
    d.push(("burn_flex", Device::flex()));
    d
}

fn dense_model() -> HostMlp {
    let cfg = ModelConfig {
        hidden: Some(vec![300, 100]),
        activation: Some(ActivationKind::Relu),
        ..ModelConfig::default()
    };
    HostMlp::from_mlp(&Net::new(&cfg, 784, 10, 0, &device()))
}

/// Each layer's smallest-magnitude `sparsity` fraction set to zero.
fn unstructured(sparsity: f64) -> HostMlp {
    let mut m = dense_model();
    for l in &mut m.layers {
        let k = (sparsity * l.w.len() as f64).round() as usize;
        let mut order: Vec<usize> = (0..l.w.len()).collect();
        order.sort_by(|&a, &b| l.w[a].abs().total_cmp(&l.w[b].abs()));
        for &i in &order[..k] {
            l.w[i] = 0.0;
        }
    }
    m
}

/// 75% of each hidden layer's units removed (their incoming and outgoing weights zeroed).
fn neuron_pruned() -> HostMlp {
    let mut m = dense_model();
    for li in 0..m.layers.len() - 1 {
        let (left, right) = m.layers.split_at_mut(li + 1);
        let (cur, next) = (&mut left[li], &mut right[0]);
        for j in (0..cur.n_out).filter(|j| j % 4 != 0) {
            cur.w[j * cur.n_in..(j + 1) * cur.n_in].fill(0.0);
            cur.b[j] = 0.0;
            for o in 0..next.n_out {
                next.w[o * next.n_in + j] = 0.0;
            }
        }
    }
    m
}

fn bench(c: &mut Criterion) {
    // As the trainer's `main` does (LOPPER_POOL_APART=1: the thread outside the pool, as before).
    trainer::heap::keep_freed_memory();
    trainer::threads::join_thread_pool_unless_apart();
    let mut rng = Rng::new(0);
    let x: Vec<f32> = (0..256 * 784).map(|_| rng.next_f64() as f32).collect();
    let mut cases: Vec<(String, HostMlp)> = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98]
        .iter()
        .map(|&s| {
            (
                format!("unstructured_{:02}", (s * 100.0) as u32),
                unstructured(s),
            )
        })
        .collect();
    cases.push(("neurons_75".into(), neuron_pruned()));
    for batch in [1usize, 256] {
        let mut group = c.benchmark_group(format!("inference_784-300-100-10_b{batch}"));
        let xb = &x[..batch * 784];
        for (name, m) in &cases {
            let csr = CsrMlp::from_host(m);
            let small = compact(m).model;
            eprintln!(
                "{name}: nnz {}, compacted {:?} ({} MACs of {})",
                csr.layers.iter().map(|l| l.nnz()).sum::<usize>(),
                small.widths(),
                small.macs(),
                m.macs()
            );
            group.bench_with_input(BenchmarkId::new("dense", name), xb, |b, xb| {
                b.iter(|| m.forward(xb, batch))
            });
            group.bench_with_input(BenchmarkId::new("csr", name), xb, |b, xb| {
                b.iter(|| csr.forward(xb, batch))
            });
            group.bench_with_input(BenchmarkId::new("compact", name), xb, |b, xb| {
                b.iter(|| small.forward(xb, batch))
            });
            if name == "unstructured_00" || name == "neurons_75" {
                for (id, dev) in burn_devices() {
                    let burn = m.to_mlp(&dev);
                    group.bench_with_input(BenchmarkId::new(id, name), xb, |b, xb| {
                        b.iter(|| {
                            let t = Tensor::<2>::from_data(
                                TensorData::new(xb.to_vec(), [batch, 784]),
                                &dev,
                            );
                            burn.forward(t).into_data()
                        })
                    });
                }
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
