//! Choosing the Burn device. The only place that names backends, so a Burn release that renames
//! them changes one module. Devices are always built explicitly: `Device::default()` would pick a
//! GPU as soon as one is compiled in.

#[cfg(feature = "wgpu")]
mod gpu;

use burn::tensor::Device;
use serde::Serialize;

use crate::config::BackendKind;

/// The variable Burn reads for `Device::default()`.
const BURN_DEVICE: &str = "BURN_DEVICE";

/// Points Burn's `Device::default()` at the host (ndarray) unless the user set `BURN_DEVICE`.
///
/// We never ask for the default device, but Burn does: loading an optimizer's state
/// (`ModuleOptimizer::from_bytes`, used by resume and by `pruning::zero_masked_state` at every
/// RigL/SET update) puts the state on `Device::default()` and migrates it to the parameter's
/// device at the next step. In a build with wgpu the default is the GPU, so a CPU run would
/// bring up a GPU to hold state for a moment, and a run on adapter N would also bring up the
/// default adapter (a process may register each wgpu device only once, which is how the
/// wgpu tests caught it). On the host the round trip is a copy. Call first thing in `main`,
/// before any thread exists; `.cargo/config.toml` sets the same for `cargo test`.
pub fn host_default_device() {
    if std::env::var_os(BURN_DEVICE).is_none() {
        // SAFETY: called at the top of `main`, while the process has one thread.
        unsafe { std::env::set_var(BURN_DEVICE, "ndarray") };
    }
}

/// A backend or adapter that this build or machine cannot provide.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The backend's cargo feature is off.
    #[error(
        "backend `{backend}` is not in this build; rebuild with `cargo run -p trainer --release --features {feature} -- ...`"
    )]
    NotBuilt {
        /// Backend asked for.
        backend: BackendKind,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// An adapter index was given for a backend that has exactly one device.
    #[error(
        "`device = {index}` picks a GPU adapter, but backend `{backend}` has one device; drop `device` (or `--device`) or use `backend = \"wgpu\"`"
    )]
    NotSelectable {
        /// Backend asked for.
        backend: BackendKind,
        /// The index given.
        index: usize,
    },
    /// wgpu found no adapter, or not the one asked for.
    #[error("{0}")]
    Adapter(String),
}

/// What a run ran on: recorded in `summary.json` and printed with the summary.
pub use report::DeviceInfo;

/// The record of a CPU backend.
fn cpu_info(backend: BackendKind) -> DeviceInfo {
    DeviceInfo {
        backend: backend.to_string(),
        name: "cpu".into(),
        api: String::new(),
        driver: String::new(),
        device_type: "cpu".into(),
    }
}

/// One adapter wgpu can reach, as `trainer devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterEntry {
    /// What `--device` takes.
    pub index: usize,
    /// Its description.
    pub info: DeviceInfo,
}

/// The (non-autodiff) device for `kind`.
pub fn make_device(kind: BackendKind) -> Result<Device, DeviceError> {
    select_device(kind, None).map(|(device, _)| device)
}

/// The device for `kind`, on adapter `index` of [`adapters`] where given (wgpu only), and what it is.
pub fn select_device(
    kind: BackendKind,
    index: Option<usize>,
) -> Result<(Device, DeviceInfo), DeviceError> {
    if let (Some(index), BackendKind::Ndarray | BackendKind::Flex) = (index, kind) {
        return Err(DeviceError::NotSelectable {
            backend: kind,
            index,
        });
    }
    match kind {
        // Burn 0.22 deprecates ndarray in favour of Flex (our default, the faster of the two:
        // docs/performance.md); the design names ndarray, so it stays available.
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok((Device::ndarray(), cpu_info(kind))),
        BackendKind::Flex => flex().map(|d| (d, cpu_info(kind))),
        BackendKind::Wgpu => wgpu(index),
    }
}

/// Every adapter wgpu reaches on this machine, numbered as `--device` takes them.
pub fn adapters() -> Result<Vec<AdapterEntry>, DeviceError> {
    #[cfg(feature = "wgpu")]
    {
        Ok(gpu::adapters())
    }
    #[cfg(not(feature = "wgpu"))]
    Err(DeviceError::NotBuilt {
        backend: BackendKind::Wgpu,
        feature: "wgpu",
    })
}

#[cfg(feature = "flex")]
fn flex() -> Result<Device, DeviceError> {
    Ok(Device::flex())
}

#[cfg(not(feature = "flex"))]
fn flex() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        backend: BackendKind::Flex,
        feature: "flex",
    })
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Result<(Device, DeviceInfo), DeviceError> {
    gpu::device(index)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: Option<usize>) -> Result<(Device, DeviceInfo), DeviceError> {
    Err(DeviceError::NotBuilt {
        backend: BackendKind::Wgpu,
        feature: "wgpu",
    })
}
