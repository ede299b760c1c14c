//! wgpu adapters: listing them, bringing one up, and saying what was probed when none answers.
//!
//! A wgpu runtime can be initialised once per adapter and process, and the Vulkan loader crashes
//! when instances are created on several threads at once, so every probe and initialisation here
//! runs under one lock and initialised devices are kept for reuse (tests train many models in
//! one process).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};

use burn::tensor::wgpu::{WgpuBackend, wgpu};
use burn::tensor::{Device, DeviceKind};

use super::{AdapterEntry, DeviceError, DeviceInfo};

/// The graphics APIs probed, in the order `trainer devices` lists their adapters: wgpu's name,
/// Burn's, and ours.
const APIS: [(wgpu::Backend, WgpuBackend, &str); 4] = [
    (wgpu::Backend::Vulkan, WgpuBackend::Vulkan, "Vulkan"),
    (wgpu::Backend::Metal, WgpuBackend::Metal, "Metal"),
    (wgpu::Backend::Dx12, WgpuBackend::Dx12, "DX12"),
    (wgpu::Backend::Gl, WgpuBackend::Gl, "OpenGL"),
];

/// The row of [`APIS`] for `b` (every adapter listed or brought up is on one of them).
fn api(b: wgpu::Backend) -> (WgpuBackend, &'static str) {
    APIS.iter()
        .find(|(w, _, _)| *w == b)
        .map_or((WgpuBackend::Auto, "other"), |&(_, burn, name)| {
            (burn, name)
        })
}

/// Devices brought up so far, by the `--device` index asked for (`None`: wgpu's choice).
static DEVICES: Mutex<Vec<(Option<usize>, Device, DeviceInfo)>> = Mutex::new(Vec::new());

pub(super) fn adapters() -> Vec<AdapterEntry> {
    let _guard = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    probe_all()
        .into_iter()
        .enumerate()
        .map(|(index, a)| AdapterEntry {
            index,
            info: info(&a),
        })
        .collect()
}

pub(super) fn device(index: Option<usize>) -> Result<(Device, DeviceInfo), DeviceError> {
    let mut devices = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d, i)) = devices.iter().find(|(k, _, _)| *k == index) {
        return Ok((d.clone(), i.clone()));
    }
    let options = match index {
        None => Device::wgpu_options(),
        Some(i) => {
            let all = probe_all();
            let Some(chosen) = all.get(i) else {
                return Err(DeviceError::Adapter(format!(
                    "there is no wgpu adapter {i}; this machine has {}. List them with `trainer devices`.",
                    listing(&all)
                )));
            };
            Device::wgpu_options()
                .graphics_api(api(chosen.backend).0)
                .device_kind(kind(&all, i)?)
        }
    };
    let (device, setup) = options.init_with_setup().map_err(|e| {
        DeviceError::Adapter(format!(
            "wgpu could not bring up an adapter ({e}). Probed {}: found {}. Install a Vulkan driver: on Debian/Ubuntu `apt install mesa-vulkan-drivers libvulkan1` (lavapipe runs Vulkan on the CPU; a GPU needs its vendor's driver), then check with `vulkaninfo --summary`.",
            APIS.map(|(_, _, name)| name).join(", "),
            listing(&probe_all()),
        ))
    })?;
    let info = info(&setup.adapter.get_info());
    devices.push((index, device.clone(), info.clone()));
    Ok((device, info))
}

/// Adapters of every API, in [`APIS`] order then the order each API enumerates them.
fn probe_all() -> Vec<wgpu::AdapterInfo> {
    APIS.iter()
        .flat_map(|&(api, _, _)| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: api.into(),
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            block_on(instance.enumerate_adapters(api.into()))
                .iter()
                .map(wgpu::Adapter::get_info)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How Burn names adapter `i` of `all`: wgpu counts adapters per API and per device type.
fn kind(all: &[wgpu::AdapterInfo], i: usize) -> Result<DeviceKind, DeviceError> {
    let a = &all[i];
    let nth = all[..i]
        .iter()
        .filter(|b| b.backend == a.backend && b.device_type == a.device_type)
        .count();
    Ok(match a.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(nth),
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(nth),
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(nth),
        wgpu::DeviceType::Cpu => DeviceKind::Cpu,
        wgpu::DeviceType::Other => {
            return Err(DeviceError::Adapter(format!(
                "adapter {i} ({}) reports its type as `other`, which Burn 0.22 cannot pin; leave out `device` to let wgpu choose",
                a.name
            )));
        }
    })
}

fn info(a: &wgpu::AdapterInfo) -> DeviceInfo {
    let device_type = match a.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    DeviceInfo {
        backend: "wgpu".into(),
        name: a.name.clone(),
        api: api(a.backend).1.into(),
        driver: format!("{} {}", a.driver, a.driver_info).trim().to_string(),
        device_type: device_type.into(),
    }
}

fn listing(all: &[wgpu::AdapterInfo]) -> String {
    if all.is_empty() {
        return "no adapters".into();
    }
    all.iter()
        .enumerate()
        .map(|(i, a)| format!("{i}: {}", info(a).describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs a future to completion on this thread (wgpu's adapter calls are async; natively they are
/// ready at once or after the driver answers).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}
