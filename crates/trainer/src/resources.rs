//! How much memory a run will need, estimated before anything is allocated: a network or a
//! synthetic data set that cannot fit is a config error saying how much it needs, not an abort
//! of the allocator halfway through.

/// Bytes the machine can give now: `MemAvailable` of /proc/meminfo, or less where a container's
/// memory limit (cgroup v2 `memory.max` less `memory.current`) says so; `None` where unknown.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let machine = kib.saturating_mul(1024);
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    // `memory.max` reads "max" when there is no limit, which does not parse: no limit.
    let container =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    Some(container.map_or(machine, |c| c.min(machine)))
}

/// Bytes to train a dense network of `widths` (input first) at `batch` samples a step: the
/// parameters, their gradients and Adam's two moments (four copies), one more copy while the
/// optimizer writes the new values, and each layer's activations and their gradients for a
/// batch. Saturates instead of overflowing, so an absurd width gives an absurd number, not a
/// wrap-around.
pub fn network_bytes(widths: &[usize], batch: usize) -> u64 {
    let params: u64 = widths
        .windows(2)
        .map(|w| {
            (w[0] as u64)
                .saturating_mul(w[1] as u64)
                .saturating_add(w[1] as u64)
        })
        .fold(0, u64::saturating_add);
    let per_sample: u64 = widths
        .iter()
        .map(|&w| w as u64)
        .fold(0, u64::saturating_add);
    training_bytes(params, per_sample, batch)
}

/// Bytes to train a network of `params` parameters whose layers output `per_sample` values per
/// sample in all, at `batch`: parameters, gradients and Adam's two moments (×5 with the
/// update's temporaries), activations and their gradients (×2).
pub fn training_bytes(params: u64, per_sample: u64, batch: usize) -> u64 {
    let activations = per_sample.saturating_mul(batch as u64);
    params
        .saturating_mul(5)
        .saturating_add(activations.saturating_mul(2))
        .saturating_mul(4)
}

/// `bytes` for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match b {
        b if b >= 1024f64.powi(4) => format!("{:.1} TiB", b / 1024f64.powi(4)),
        b if b >= 1024f64.powi(3) => format!("{:.1} GiB", b / 1024f64.powi(3)),
        b if b >= 1024f64.powi(2) => format!("{:.1} MiB", b / 1024f64.powi(2)),
        _ => format!("{:.1} KiB", b / 1024.0),
    }
}

/// An error message when `needed` bytes exceed what is available, `None` when they fit (or the
/// machine does not say).
pub fn too_big(what: &str, needed: u64) -> Option<String> {
    let available = available_bytes()?;
    (needed > available).then(|| {
        format!(
            "{what} needs about {} of memory, but {} is available; make it smaller",
            human(needed),
            human(available)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_parameters_moments_and_activations() {
        // 784-300-100-10: 266,610 parameters × 5 copies, plus 2 × 128 × 1194 activations.
        assert_eq!(
            network_bytes(&[784, 300, 100, 10], 128),
            4 * (266_610 * 5 + 2 * 128 * 1194)
        );
        assert_eq!(network_bytes(&[2, usize::MAX, 1], 5), u64::MAX);
        assert_eq!(human(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
