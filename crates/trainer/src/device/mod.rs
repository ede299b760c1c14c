//! Choosing the Burn device. The only file that names backends, so a Burn release that renames
//! them changes one place. Devices are always built explicitly: `Device::default()` would pick a
//! GPU as soon as one is compiled in.

use burn::tensor::Device;

use crate::config::BackendKind;

/// A backend that this build cannot provide.
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
}

/// The (non-autodiff) device for `kind`.
pub fn make_device(kind: BackendKind) -> Result<Device, DeviceError> {
    match kind {
        // Burn 0.22 deprecates ndarray in favour of Flex, but ndarray is faster on our training
        // step (README, "CPU backends"), so it stays the default while it is.
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok(Device::ndarray()),
        BackendKind::Flex => flex(),
    }
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
