//! The model file: `model.safetensors` in PyTorch's layout.
//!
//! Burn's `Linear` stores weights as `[d_input, d_output]`; PyTorch's `nn.Linear` as
//! `[out_features, in_features]`. We write PyTorch's layout (names `layers.N.weight`,
//! `layers.N.bias`) so that `safetensors.torch.load_file` or numpy read the file as-is, and
//! record the layout in the file's metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::ActivationKind;
use crate::host_net::transpose;
use crate::inference::{HostLayer, HostMlp};
use crate::model::Net;

/// Errors reading or writing a model file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// File system failure.
    #[error("cannot access {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// Not a usable safetensors file.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A layer's weights in PyTorch's layout: `[out, in]` row-major, and the bias. For MLPs
/// (`Net::is_mlp`): a layer list's convolutions are not among them.
pub fn layer_tensors(model: &Net) -> Vec<(Vec<f32>, [usize; 2], Vec<f32>)> {
    debug_assert!(model.is_mlp(), "layer_tensors of a layer-list network");
    model
        .layers
        .iter()
        .map(|l| {
            let [n_in, n_out] = l.weight.shape().dims();
            let w = pruning::host_values(l.weight.val());
            let mut t = vec![0f32; w.len()];
            for i in 0..n_in {
                for o in 0..n_out {
                    // Masking multiplies negative weights by 0, giving -0.0; files hold +0.0 so
                    // that a bitwise nonzero count agrees with `w != 0`.
                    let v = w[i * n_out + o];
                    t[o * n_in + i] = if v == 0.0 { 0.0 } else { v };
                }
            }
            let b = match &l.bias {
                Some(b) => pruning::host_values(b.val()),
                None => vec![0.0; n_out],
            };
            (t, [n_out, n_in], b)
        })
        .collect()
}

fn read_file(path: &Path) -> Result<Vec<u8>, ExportError> {
    std::fs::read(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

fn format_error(path: &Path) -> impl Fn(String) -> ExportError + '_ {
    move |message| ExportError::Format {
        path: path.to_path_buf(),
        message,
    }
}

/// Little-endian bytes, with −0.0 written as +0.0: a negative weight times a zero mask is −0.0
/// on some backends (wgpu) and not others, and a pruned entry should read as all-zero bytes in
/// the file whatever ran it. (−0.0 and +0.0 compute the same.)
fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| if x == 0.0 { 0f32 } else { x }.to_le_bytes())
        .collect()
}

/// A safetensors file's bytes with its header's keys in sorted order. The safetensors crate
/// takes metadata as a `HashMap`, whose order changes from process to process: without this,
/// the same weights would give different files, and "same config, same seed, same bytes" —
/// what a resumed run is checked against — would not hold.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn safetensors_bytes<'a>(
    views: impl IntoIterator<Item = (String, TensorView<'a>)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let raw = safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
    let n = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&raw[8..8 + n]).map_err(|e| e.to_string())?;
    let sorted: BTreeMap<String, serde_json::Value> = header
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Object(m) => {
                    serde_json::to_value(m.into_iter().collect::<BTreeMap<_, _>>())
                        .expect("a map of JSON values")
                }
                other => other,
            };
            (k, v)
        })
        .collect();
    let mut text = serde_json::to_vec(&sorted).map_err(|e| e.to_string())?;
    // The data that follows starts 8-aligned, as the format asks (padded with spaces).
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + raw.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&raw[8 + n..]);
    Ok(out)
}

/// [`safetensors_bytes`] written to `path`.
pub fn write_safetensors<'a>(
    views: impl IntoIterator<Item = (String, TensorView<'a>)>,
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<(), String> {
    let bytes = safetensors_bytes(views, metadata)?;
    crate::atomic::write(path, bytes).map_err(|e| e.to_string())
}

/// Writes `model` to `path` in PyTorch's layout: an MLP as `layers.N.weight` `[out, in]` and
/// `layers.N.bias`; a layer list as every parameter by its path (convolution kernels
/// `[out, in, kh, kw]`, batch norms' γ, β and running statistics, dense weights `[out, in]`).
pub fn save_model(model: &Net, path: &Path) -> Result<(), ExportError> {
    if model.is_mlp() {
        save_layers(&layer_tensors(model), model.activation, path)
    } else {
        save_params(model, path)
    }
}

/// Every float parameter of `model` by path, dense weights transposed to `[out, in]`.
fn pytorch_params(model: &Net) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let infos = pruning::param_infos(model);
    let ids: Vec<_> = infos.iter().map(|p| p.id).collect();
    let mut values = pruning::read_params(model, &ids);
    infos
        .into_iter()
        .map(|p| {
            let v = values.remove(&p.id).unwrap_or_default();
            match (p.owner.as_str(), p.shape.as_slice()) {
                ("Linear", [n_in, n_out]) => {
                    let t = transpose(&v, *n_in, *n_out);
                    (p.path, vec![*n_out, *n_in], t)
                }
                _ => (p.path, p.shape, v),
            }
        })
        .collect()
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
fn save_params(model: &Net, path: &Path) -> Result<(), ExportError> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = pytorch_params(model)
        .into_iter()
        .map(|(name, shape, v)| (name, shape, le_bytes(&v)))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match");
            (name.clone(), view)
        })
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), NET_FORMAT.to_string()),
        (
            "layout".to_string(),
            "pytorch: conv [out, in, kh, kw], dense [out_features, in_features]".to_string(),
        ),
    ]);
    write_safetensors(views, metadata, path).map_err(format_error(path))
}

/// The metadata `format` of a layer-list network's file.
const NET_FORMAT: &str = "lopper-net";

/// `model` (built from the run's config) with the values of the file `path` that
/// [`save_model`] wrote for such a network: every parameter by path and shape, ids kept.
pub fn load_params(model: Net, path: &Path) -> Result<Net, ExportError> {
    let bytes = read_file(path)?;
    let fmt = format_error(path);
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(e.to_string()))?;
    let mut by_id = std::collections::BTreeMap::new();
    let infos = pruning::param_infos(&model);
    for (info, (name, shape, _)) in infos.iter().zip(pytorch_params(&model)) {
        let t = st.tensor(&name).map_err(|_| {
            fmt(format!(
                "no `{name}`: the file is not of the network this config builds"
            ))
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
            return Err(fmt(format!(
                "`{name}` is {:?} of shape {:?}, but this config's network has {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let v = match (info.owner.as_str(), info.shape.as_slice()) {
            ("Linear", [n_in, n_out]) => transpose(&v, *n_out, *n_in),
            _ => v,
        };
        by_id.insert(info.id, v);
    }
    Ok(pruning::Snapshot::from_values(0, by_id).restore(model))
}

/// Writes layers given in PyTorch's layout (`[out, in]` weights and biases), e.g. a compacted
/// network, in the same format as [`save_model`].
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn save_layers(
    layers: &[(Vec<f32>, [usize; 2], Vec<f32>)],
    activation: ActivationKind,
    path: &Path,
) -> Result<(), ExportError> {
    let mut buffers = Vec::new();
    for (i, (w, shape, b)) in layers.iter().enumerate() {
        buffers.push((format!("layers.{i}.weight"), shape.to_vec(), le_bytes(w)));
        buffers.push((format!("layers.{i}.bias"), vec![b.len()], le_bytes(b)));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match");
            (name.clone(), view)
        })
        .collect();
    let activation = serde_json::to_value(activation).expect("serializable");
    let metadata = HashMap::from([
        ("format".to_string(), "lopper-mlp".to_string()),
        (
            "layout".to_string(),
            "pytorch [out_features, in_features]".to_string(),
        ),
        (
            "activation".to_string(),
            activation.as_str().unwrap_or_default().to_string(),
        ),
    ]);
    write_safetensors(views, metadata, path).map_err(format_error(path))
}

/// Whether the model file at `path` holds a layer-list network (every parameter by path)
/// rather than an MLP's `layers.N`.
pub fn holds_layer_list(path: &Path) -> Result<bool, ExportError> {
    let bytes = read_file(path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| format_error(path)(e.to_string()))?;
    Ok(meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("format"))
        .map(String::as_str)
        == Some(NET_FORMAT))
}

/// The nonlinearity an MLP's file records; an error for a layer-list network's file.
fn mlp_activation(bytes: &[u8]) -> Result<ActivationKind, String> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let meta = meta.metadata().as_ref();
    if meta.and_then(|m| m.get("format")).map(String::as_str) == Some(NET_FORMAT) {
        return Err(
            "holds a layer-list network (convolutions, batch norms, dropout or mixed activations), which only the network its run's config builds can read: give the run folder to `trainer infer`, `compact` or `sensitivity`, or the folder to a training config's --from".into(),
        );
    }
    meta.and_then(|m| m.get("activation"))
        .and_then(|a| serde_json::from_value(serde_json::Value::String(a.clone())).ok())
        .ok_or_else(|| "no `activation` in the metadata; not written by Lopper".into())
}

/// Reads a model written by [`save_model`] back onto `device`.
pub fn load_model(path: &Path, device: &Device) -> Result<Net, ExportError> {
    let bytes = read_file(path)?;
    let fmt = format_error(path);
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(e.to_string()))?;
    let activation = mlp_activation(&bytes).map_err(&fmt)?;
    let read = |name: &str| -> Result<(Vec<f32>, Vec<usize>), ExportError> {
        let t = st.tensor(name).map_err(|e| fmt(e.to_string()))?;
        if t.dtype() != Dtype::F32 {
            return Err(fmt(format!("`{name}` is {:?}, expected F32", t.dtype())));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err(fmt(format!(
                "`{name}` holds {} at flat index {k}: a model with NaN or infinite values computes nothing meaningful",
                v[k]
            )));
        }
        Ok((v, t.shape().to_vec()))
    };
    let mut layers = Vec::new();
    for i in 0.. {
        let name = format!("layers.{i}.weight");
        if st.tensor(&name).is_err() {
            break;
        }
        let (w, shape) = read(&name)?;
        let [n_out, n_in] = <[usize; 2]>::try_from(shape.as_slice()).map_err(|_| {
            fmt(format!(
                "`{name}` has shape {shape:?}, expected 2 dimensions"
            ))
        })?;
        let bias = format!("layers.{i}.bias");
        let (b, b_shape) = read(&bias)?;
        if b_shape != [n_out] {
            return Err(fmt(format!(
                "`{bias}` has shape {b_shape:?} but `{name}` has {n_out} output units"
            )));
        }
        if let Some(prev) = layers.last().map(|l: &HostLayer| l.n_out)
            && prev != n_in
        {
            return Err(fmt(format!(
                "`{name}` takes {n_in} inputs but layers.{}.weight gives {prev} outputs: the layers do not form a chain",
                i - 1
            )));
        }
        layers.push(HostLayer { w, n_out, n_in, b });
    }
    if layers.is_empty() {
        return Err(fmt("no `layers.0.weight`; not a Lopper model".into()));
    }
    // A gap (layers.0, layers.2) would silently drop every layer after it.
    let n = layers.len();
    if let Some(extra) = st.names().into_iter().find(|t| {
        t.strip_prefix("layers.")
            .and_then(|r| r.split('.').next())
            .and_then(|k| k.parse::<usize>().ok())
            .is_some_and(|k| k >= n)
    }) {
        return Err(fmt(format!(
            "`{extra}` is present but `layers.{n}.weight` is missing: layers must be numbered 0, 1, 2, … without gaps"
        )));
    }
    Ok(HostMlp { layers, activation }.to_mlp(device))
}

/// Writes masks as `<name>_mask` (uint8, 1 = kept) in PyTorch's `[out, in]` layout: the names
/// and layout `torch.nn.utils.prune.custom_from_mask` expects.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "each expect names the invariant, checked before, that makes it unreachable"
)]
pub fn save_masks(masks: &pruning::MaskSet, path: &Path) -> Result<(), ExportError> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = masks
        .masks
        .iter()
        .map(|(name, m)| {
            let (shape, bytes) = match m.shape.as_slice() {
                [n_in, n_out] => {
                    let mut t = vec![0u8; m.keep.len()];
                    for i in 0..*n_in {
                        for o in 0..*n_out {
                            t[o * n_in + i] = u8::from(m.keep[i * n_out + o]);
                        }
                    }
                    (vec![*n_out, *n_in], t)
                }
                _ => (
                    m.shape.clone(),
                    m.keep.iter().map(|&k| u8::from(k)).collect(),
                ),
            };
            (format!("{name}_mask"), shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::U8, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let kernels = masks.masks.values().any(|m| m.shape.len() > 2);
    let layout = if kernels {
        "pytorch: conv [out, in, kh, kw], dense [out_features, in_features]"
    } else {
        "pytorch [out_features, in_features]"
    };
    let metadata = HashMap::from([("layout".to_string(), layout.to_string())]);
    write_safetensors(views, metadata, path).map_err(format_error(path))
}

/// Reads masks written by [`save_masks`] back into Burn's layout (`[in, out]` for matrices).
pub fn load_masks(path: &Path) -> Result<pruning::MaskSet, ExportError> {
    let bytes = read_file(path)?;
    let fmt = format_error(path);
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(e.to_string()))?;
    let mut set = pruning::MaskSet::default();
    for name in st.names() {
        let Some(param) = name.strip_suffix("_mask") else {
            continue;
        };
        let t = st.tensor(name).map_err(|e| fmt(e.to_string()))?;
        if t.dtype() != Dtype::U8 {
            return Err(fmt(format!("`{name}` is {:?}, expected U8", t.dtype())));
        }
        if let Some(&v) = t.data().iter().find(|&&v| v > 1) {
            return Err(fmt(format!("`{name}` holds {v}; masks hold only 0 and 1")));
        }
        let mask = match t.shape() {
            [n_out, n_in] => {
                let (n_out, n_in) = (*n_out, *n_in);
                let mut keep = vec![false; n_out * n_in];
                for o in 0..n_out {
                    for i in 0..n_in {
                        keep[i * n_out + o] = t.data()[o * n_in + i] == 1;
                    }
                }
                pruning::Mask {
                    shape: vec![n_in, n_out],
                    keep,
                }
            }
            shape => pruning::Mask {
                shape: shape.to_vec(),
                keep: t.data().iter().map(|&v| v == 1).collect(),
            },
        };
        set.masks.insert(param.to_string(), mask);
    }
    Ok(set)
}
