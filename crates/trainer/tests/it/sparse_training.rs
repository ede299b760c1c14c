//! Sparse training through the trainer's network: a step with the patterns a mask hook holds
//! gives the masked dense step's loss and gradients.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use pruning::sparse::Patterns;
use pruning::{MaskHook, MaskSet, Prunable, Rng, TrainHook, param_infos};
use trainer::config::{ActivationKind, BackendKind, ModelConfig};
use trainer::device::make_device;
use trainer::head::Head;
use trainer::model::Net;

/// Loss and every parameter's gradient (by id order) of one step of `net` on a fixed batch.
fn step(net: &Net, sparse: &Patterns, device: &Device) -> (f32, Vec<Vec<f32>>) {
    let mut rng = Rng::new(5);
    let x: Vec<f32> = (0..70 * 24).map(|_| rng.normal() as f32).collect();
    let mut t = vec![0f32; 70 * 4];
    for r in 0..70 {
        t[r * 4 + rng.below(4)] = 1.0;
    }
    let x = Tensor::<2>::from_data(TensorData::new(x, [70, 24]), device);
    let t = Tensor::<2>::from_data(TensorData::new(t, [70, 4]), device);
    let loss = Head::Multiclass(4).loss(net.forward_step(x, None, sparse), t);
    let grads = GradientsParams::from_grads(loss.backward(), net);
    let mut out = Vec::new();
    for p in param_infos(net) {
        let g: Vec<f32> = match p.shape.len() {
            1 => grads
                .get::<1>(p.id)
                .unwrap()
                .into_data()
                .try_to_vec()
                .unwrap(),
            _ => grads
                .get::<2>(p.id)
                .unwrap()
                .into_data()
                .try_to_vec()
                .unwrap(),
        };
        out.push(g);
    }
    (loss.into_scalar::<f32>(), out)
}

#[test]
fn a_sparse_step_gives_the_masked_dense_steps_loss_and_kept_gradients() {
    for backend in [BackendKind::Ndarray, BackendKind::default()] {
        let device = make_device(backend).unwrap().autodiff();
        let cfg = ModelConfig {
            hidden: Some(vec![32, 16]),
            activation: Some(ActivationKind::Relu),
            ..ModelConfig::default()
        };
        let net = Net::new(&cfg, 24, 4, 3, &device);
        let params = Prunable::default().select(&net).unwrap();
        let mut masks = MaskSet::ones(params.iter().map(|p| (p.path.as_str(), p.shape.as_slice())));
        let mut rng = Rng::new(9);
        for m in masks.masks.values_mut().filter(|m| m.shape.len() == 2) {
            for k in &mut m.keep {
                *k = rng.next_f64() >= 0.85;
            }
        }
        let mut hold = MaskHook::new(&params, &masks).unwrap();
        let net = hold.apply(net);
        let patterns = TrainHook::<Net>::sparse_patterns(&hold).unwrap().clone();
        // Every dense layer is sparse enough; the first one has no input gradient to compute.
        assert_eq!(net.sparse_layers(&patterns).collect::<Vec<_>>(), [0, 1, 2]);
        let (dense_loss, dense) = step(&net, &Patterns::new(), &device);
        let (sparse_loss, sparse) = step(&net, &patterns, &device);
        assert!(
            (dense_loss - sparse_loss).abs() <= 1e-5 * dense_loss.abs(),
            "{backend}: loss {dense_loss} against {sparse_loss}"
        );
        for (p, (d, s)) in param_infos(&net).iter().zip(dense.iter().zip(&sparse)) {
            let keep = masks.masks.get(&p.path).map(|m| m.keep.clone());
            for (k, (a, b)) in d.iter().zip(s).enumerate() {
                match &keep {
                    Some(keep) if !keep[k] && p.shape.len() == 2 => {
                        assert_eq!(*b, 0.0, "{backend} {}: a pruned weight's gradient", p.path)
                    }
                    _ => assert!(
                        (a - b).abs() <= 1e-5 * a.abs().max(1e-2),
                        "{backend} {}[{k}]: {a} against {b}",
                        p.path
                    ),
                }
            }
        }
    }
}
