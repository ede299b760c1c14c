//! Sparse training that pays: a masked dense layer's product over its kept weights only.
//!
//! Masks make a pruned network's weights zero, but a dense product still multiplies by every
//! zero: PyTorch, tfmot and NNI train a 90 %-sparse network at dense cost. Here a 2-D weight
//! with a sparse enough mask multiplies as a sparse product on the host backends, forward and
//! backward (a custom autodiff operation): the loss and the kept weights' gradients are those
//! of the masked dense product (to rounding), the pruned weights' gradients are zero, which is
//! what holding the mask makes them anyway. Where a hook needs pruned weights' gradients too
//! (RigL's growth, gradient criteria) it says so ([`crate::TrainHook::needs_dense_gradients`])
//! and that step runs dense.

mod keep;
mod kernels;
mod op;
mod pattern;

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::ParamId;
use burn::tensor::{Device, Tensor};

pub use op::Layout;
pub use pattern::Pattern;

/// The patterns a training step may multiply sparsely, by weight.
pub type Patterns = BTreeMap<ParamId, Arc<Pattern>>;

/// The densest mask for which the sparse product is expected to beat the dense one. Measured
/// with `cargo bench -p trainer --bench sparse_step` (docs/performance.md, "Sparse training")
/// on 784-300-100-10 at batch 128 with every layer masked: at 80 % sparsity the sparse step won
/// on Flex and ndarray in every sitting; at 75 % it won on ndarray in both sittings and on Flex
/// in one of two (1.62 against 2.41 ms; then 2.47 against 2.33 ms); at 70 % it lost on Flex.
pub const MAX_DENSITY: f64 = 0.25;

/// Whether `device` keeps tensors in host memory (ndarray, Flex; with or without autodiff):
/// where the sparse product runs, and where a pass over a tensor's host buffer beats a chain of
/// tensor operations (the trainer's fused optimizers ask the same).
pub fn host_backend(device: &Device) -> bool {
    let d = device.clone().without_autodiff();
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    #[cfg(feature = "flex")]
    if d == Device::flex() {
        return true;
    }
    d == ndarray
}

/// `x · w` (`x` `[batch, rows]`, `w` `[rows, cols]`) over the kept weights of `pattern`, as a
/// sparse product where the device runs one ([`host_backend`]), else as the dense product of `w`
/// (whose pruned weights the mask holds at zero).
pub fn matmul(x: Tensor<2>, w: Tensor<2>, pattern: &Arc<Pattern>) -> Tensor<2> {
    linear(x, w, None, pattern, Layout::default())
}

/// A dense layer, `x · w + b`, over the kept weights of `pattern`, with `x` and the result laid
/// out as `layout` says (`[features, batch]` where transposed: [`Layout`] says why). A sparse
/// product where the device runs one ([`host_backend`]), the bias added and its gradient summed
/// inside it with the bits of a separate addition (whose output gradient arrives in row-major
/// memory, as in the trainer's networks: Burn sums a strided one in another order); elsewhere
/// the dense product and addition, transposed as asked.
pub fn linear(
    x: Tensor<2>,
    w: Tensor<2>,
    b: Option<Tensor<1>>,
    pattern: &Arc<Pattern>,
    layout: Layout,
) -> Tensor<2> {
    // An empty operand has nothing to skip (and the host loops take rows of at least one).
    let empty = x.dims().contains(&0) || pattern.shape().contains(&0);
    if empty || !host_backend(&x.device()) {
        let y = plus_bias(transposed_if(x, layout.input_transposed).matmul(w), b);
        return transposed_if(y, layout.output_transposed);
    }
    type Ops = burn::backend::Dispatch;
    let (x, w) = (x.into_dispatch(), w.into_dispatch());
    let p = pattern.clone();
    Tensor::from_dispatch(match b {
        Some(b) => <Ops as op::SparseOps>::sparse_linear(x, w, b.into_dispatch(), p, layout),
        None => <Ops as op::SparseOps>::sparse_matmul(x, w, p, layout),
    })
}

/// `t` transposed where `yes`: how a side of a [`Layout`] is entered or left.
fn transposed_if(t: Tensor<2>, yes: bool) -> Tensor<2> {
    if yes { t.transpose() } else { t }
}

/// `y` (`[batch, cols]`) plus the bias where there is one: Burn's broadcast addition, whose bits
/// (and gradient's) the sparse operation reproduces.
fn plus_bias(y: Tensor<2>, b: Option<Tensor<1>>) -> Tensor<2> {
    match b {
        Some(b) => y + b.unsqueeze(),
        None => y,
    }
}

/// `w` (`[rows, cols]`, the pattern's shape) with every weight outside `pattern` zero, not
/// tracked by autodiff: on the host backends with f32 values, +0.0 at every pruned position, in
/// the tensor's own buffer on Flex (`keep.rs` says why); elsewhere the product by the pattern's
/// mask (-0.0 for a negative pruned weight, NaN for a NaN one), built on every call.
pub fn keep(w: Tensor<2>, pattern: &Arc<Pattern>) -> Tensor<2> {
    if !host_backend(&w.device()) || w.dtype() != burn::tensor::DType::F32 {
        let keep: Vec<f32> = {
            let [rows, cols] = pattern.shape();
            let mut m = vec![1.0f32; rows * cols];
            keep::keep_in(pattern, &mut m);
            m
        };
        let m = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(keep, pattern.shape()),
            &w.device(),
        );
        return (w * m).detach();
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as keep::KeepOps>::keep_pattern(
        w.into_dispatch(),
        pattern.clone(),
    ))
}

/// The host backends in this build (ndarray, and Flex where built): where [`host_backend`]
/// holds, for code and tests that run on each.
#[allow(deprecated, unused_mut)]
pub fn host_devices() -> Vec<Device> {
    let mut d = vec![Device::ndarray()];
    #[cfg(feature = "flex")]
    d.push(Device::flex());
    d
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::{Mask, Rng};

    use crate::sparse::host_devices as devices;

    fn random(rng: &mut Rng, shape: [usize; 2], device: &Device) -> Tensor<2> {
        let v: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rng.normal() as f32)
            .collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// Loss and gradients of `sum(r ⊙ (x · w))` through `product`.
    fn run(
        device: &Device,
        (x, w, r): (&Tensor<2>, &Tensor<2>, &Tensor<2>),
        product: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
    ) -> (f32, Vec<f32>, Vec<f32>) {
        let x = Tensor::<2>::from_data(x.to_data(), device).require_grad();
        let w = Tensor::<2>::from_data(w.to_data(), device).require_grad();
        let loss = (product(x.clone(), w.clone()) * r.clone()).sum();
        let grads = loss.backward();
        let gx = x.grad(&grads).unwrap();
        let gw = w.grad(&grads).unwrap();
        (loss.into_scalar::<f32>(), values(gx), values(gw))
    }

    #[test]
    fn loss_and_kept_gradients_equal_the_masked_dense_product() {
        for device in devices() {
            let ad = device.clone().autodiff();
            for (batch, rows, cols) in [(37, 50, 23), (130, 70, 9), (300, 20, 7)] {
                let mut rng = Rng::new(batch as u64);
                let keep: Vec<bool> = (0..rows * cols).map(|_| rng.next_f64() < 0.2).collect();
                let mask = Mask {
                    shape: vec![rows, cols],
                    keep: keep.clone(),
                };
                let m: Vec<f32> = keep.iter().map(|&k| f32::from(u8::from(k))).collect();
                let m = Tensor::<2>::from_data(TensorData::new(m, [rows, cols]), &ad);
                let pattern = Arc::new(Pattern::from_mask("w", &mask).unwrap());
                let x = random(&mut rng, [batch, rows], &ad);
                // A weight the mask holds: zero where pruned.
                let w = random(&mut rng, [rows, cols], &ad) * m.clone();
                let r = random(&mut rng, [batch, cols], &ad);
                let dense = run(&ad, (&x, &w, &r), |x, w| x.matmul(w));
                let sparse = run(&ad, (&x, &w, &r), |x, w| matmul(x, w, &pattern));
                assert!(
                    (dense.0 - sparse.0).abs() <= 1e-5 * dense.0.abs().max(1.0),
                    "loss {} vs {} on {device:?}",
                    dense.0,
                    sparse.0
                );
                for (a, b) in dense.1.iter().zip(&sparse.1) {
                    assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "dx {a} vs {b}");
                }
                for (k, (a, b)) in dense.2.iter().zip(&sparse.2).enumerate() {
                    if keep[k] {
                        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "dw {a} vs {b}");
                    } else {
                        assert_eq!(*b, 0.0, "a pruned weight's gradient");
                    }
                }
                // With an input that needs no gradient (the first layer's, the data), the
                // backward pass takes the other path: the same loss and weight gradients.
                let xd = Tensor::<2>::from_data(x.to_data(), &ad);
                let wd = Tensor::<2>::from_data(w.to_data(), &ad).require_grad();
                let loss = (matmul(xd, wd.clone(), &pattern) * r.clone()).sum();
                let g = values(wd.grad(&loss.backward()).unwrap());
                assert_eq!(loss.into_scalar::<f32>().to_bits(), sparse.0.to_bits());
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&g), bits(&sparse.2), "dw without an input gradient");
                // Without autodiff the product is the same.
                let plain = matmul(
                    Tensor::from_data(x.to_data(), &device),
                    Tensor::from_data(w.to_data(), &device),
                    &pattern,
                );
                let y = values(x.clone().matmul(w.clone()));
                for (a, b) in y.iter().zip(values(plain)) {
                    assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0));
                }
            }
        }
    }

    /// Bits of a tensor's values, in logical order.
    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
        let v: Vec<f32> = t.into_data().convert::<f32>().try_into_vec().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A layer's operands: input, weight, bias, and the output's gradient (`r` in
    /// `sum(r ⊙ y)`).
    struct Operands {
        x: Tensor<2>,
        w: Tensor<2>,
        b: Tensor<1>,
        r: Tensor<2>,
    }

    /// The bits of `layer`'s output and of its input, weight and (where `bias`) bias gradients
    /// under `sum(r ⊙ y)`, from fresh tracked copies of the operands.
    fn layer_bits(
        o: &Operands,
        bias: bool,
        layer: impl Fn(Tensor<2>, Tensor<2>, Option<Tensor<1>>) -> Tensor<2>,
    ) -> Vec<Vec<u32>> {
        let device = o.x.device();
        let x = Tensor::<2>::from_data(o.x.to_data(), &device).require_grad();
        let w = Tensor::<2>::from_data(o.w.to_data(), &device).require_grad();
        let b = Tensor::<1>::from_data(o.b.to_data(), &device).require_grad();
        let y = layer(x.clone(), w.clone(), bias.then(|| b.clone()));
        let g = (y.clone() * o.r.clone()).sum().backward();
        let mut out = vec![
            bits(y),
            bits(x.grad(&g).unwrap()),
            bits(w.grad(&g).unwrap()),
        ];
        if bias {
            out.push(bits(b.grad(&g).unwrap()));
        }
        out
    }

    /// `linear` in `layout`, given and giving `[batch, features]` (transposed around it).
    fn in_layout(
        x: Tensor<2>,
        w: Tensor<2>,
        b: Option<Tensor<1>>,
        pattern: &Arc<Pattern>,
        layout: Layout,
    ) -> Tensor<2> {
        let [batch, cols] = [x.dims()[0], pattern.shape()[1]];
        let y = linear(
            transposed_if(x, layout.input_transposed),
            w,
            b,
            pattern,
            layout,
        );
        let y = transposed_if(y, layout.output_transposed);
        assert_eq!(y.dims(), [batch, cols], "{layout:?}");
        y
    }

    #[test]
    fn a_layer_in_every_layout_gives_the_bits_of_the_product_then_the_bias() {
        let layouts = [(false, false), (false, true), (true, false), (true, true)].map(
            |(input_transposed, output_transposed)| Layout {
                input_transposed,
                output_transposed,
            },
        );
        for device in devices() {
            let ad = device.clone().autodiff();
            // One block, several with a ragged last one, a batch under a vector's width, one
            // sample (where the bias's gradient is the output's, not a sum).
            for (batch, rows, cols) in [(128, 40, 23), (300, 30, 17), (5, 19, 33), (1, 21, 18)] {
                let mut rng = Rng::new(batch as u64 + 7);
                let mask = Mask {
                    shape: vec![rows, cols],
                    keep: (0..rows * cols).map(|_| rng.next_f64() < 0.2).collect(),
                };
                let pattern = Arc::new(Pattern::from_mask("w", &mask).unwrap());
                let x = random(&mut rng, [batch, rows], &ad);
                let w = random(&mut rng, [rows, cols], &ad);
                let b: Tensor<1> = random(&mut rng, [1, cols], &ad).reshape([cols]);
                // A -0.0 in the output's gradient: a sum from zero would make it +0.0.
                let mut r = values(random(&mut rng, [batch, cols], &ad));
                r[0] = -0.0;
                let r = Tensor::<2>::from_data(TensorData::new(r, [batch, cols]), &ad);
                let o = Operands { x, w, b, r };
                for bias in [true, false] {
                    // What a layer did before the layouts: the product, then the bias added.
                    let want = layer_bits(&o, bias, |x, w, b| plus_bias(matmul(x, w, &pattern), b));
                    for layout in layouts {
                        let got =
                            layer_bits(&o, bias, |x, w, b| in_layout(x, w, b, &pattern, layout));
                        for (k, what) in ["output", "dx", "dw", "db"]
                            .iter()
                            .enumerate()
                            .take(got.len())
                        {
                            assert!(
                                got[k] == want[k],
                                "{what} on {device:?}, batch {batch}, bias {bias}, {layout:?}"
                            );
                        }
                    }
                }
                // Without autodiff, the same output.
                let plain = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &device);
                let b = || Tensor::<1>::from_data(o.b.to_data(), &device);
                let want = bits(plus_bias(
                    matmul(plain(&o.x), plain(&o.w), &pattern),
                    Some(b()),
                ));
                for layout in layouts {
                    let y = in_layout(plain(&o.x), plain(&o.w), Some(b()), &pattern, layout);
                    assert!(bits(y) == want, "inference on {device:?}, {layout:?}");
                }
            }
        }
    }
}
