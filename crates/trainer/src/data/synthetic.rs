//! Small synthetic data sets: XOR, the write-up's seed data, and scikit-learn-style moons,
//! circles, spirals and blobs (deterministic for a seed).

use super::{Dataset, Targets};
use pruning::Rng;

fn classes(x: Vec<f32>, n_features: usize, labels: Vec<u32>, n_classes: usize) -> Dataset {
    Dataset {
        x,
        n_features,
        y: Targets::Classes { labels, n_classes },
    }
}

/// The four XOR points.
pub fn xor() -> Dataset {
    classes(
        vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        2,
        vec![0, 1, 1, 0],
        2,
    )
}

/// The write-up's five samples, as it gives them: x = [[1,0],[0,1],[1,1],[1,0],[0,1]],
/// y = [0,1,1,0,1]. (Not XOR: [1,1] is labelled 1 and [0,0] is absent.)
pub fn seed_xor() -> Dataset {
    classes(
        vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0],
        2,
        vec![0, 1, 1, 0, 1],
        2,
    )
}

fn linspace(a: f64, b: f64, n: usize, endpoint: bool) -> impl Iterator<Item = f64> {
    let div = if endpoint {
        n.saturating_sub(1).max(1)
    } else {
        n.max(1)
    };
    (0..n).map(move |i| a + (b - a) * i as f64 / div as f64)
}

/// Two interleaving half circles (as scikit-learn's `make_moons`).
pub fn moons(n: usize, noise: f64, rng: &mut Rng) -> Dataset {
    let n_out = n / 2;
    let n_in = n - n_out;
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for t in linspace(0.0, std::f64::consts::PI, n_out, true) {
        x.extend([t.cos(), t.sin()]);
        y.push(0);
    }
    for t in linspace(0.0, std::f64::consts::PI, n_in, true) {
        x.extend([1.0 - t.cos(), 1.0 - t.sin() - 0.5]);
        y.push(1);
    }
    let x = x
        .into_iter()
        .map(|v| (v + noise * rng.normal()) as f32)
        .collect();
    classes(x, 2, y, 2)
}

/// A small circle (radius 0.5) inside a large one (as scikit-learn's `make_circles`).
pub fn circles(n: usize, noise: f64, rng: &mut Rng) -> Dataset {
    let n_out = n / 2;
    let n_in = n - n_out;
    let tau = 2.0 * std::f64::consts::PI;
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for t in linspace(0.0, tau, n_out, false) {
        x.extend([t.cos(), t.sin()]);
        y.push(0);
    }
    for t in linspace(0.0, tau, n_in, false) {
        x.extend([0.5 * t.cos(), 0.5 * t.sin()]);
        y.push(1);
    }
    let x = x
        .into_iter()
        .map(|v| (v + noise * rng.normal()) as f32)
        .collect();
    classes(x, 2, y, 2)
}

/// `n_classes` spiral arms (the CS231n construction): radius grows along each arm, and `noise`
/// perturbs the angle.
pub fn spirals(n: usize, n_classes: usize, noise: f64, rng: &mut Rng) -> Dataset {
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for k in 0..n_classes {
        let m = n / n_classes + usize::from(k < n % n_classes);
        let radii: Vec<f64> = linspace(0.0, 1.0, m, true).collect();
        let angles = linspace(k as f64 * 4.0, (k + 1) as f64 * 4.0, m, true);
        for (r, t) in radii.into_iter().zip(angles) {
            let t = t + noise * rng.normal();
            x.extend([(r * t.sin()) as f32, (r * t.cos()) as f32]);
            y.push(k as u32);
        }
    }
    classes(x, 2, y, n_classes)
}

/// Gaussian clusters with standard deviation `std`, centres drawn uniformly in [-10, 10]^d.
pub fn blobs(n: usize, n_classes: usize, n_features: usize, std: f64, rng: &mut Rng) -> Dataset {
    let centres: Vec<Vec<f64>> = (0..n_classes)
        .map(|_| (0..n_features).map(|_| rng.uniform(-10.0, 10.0)).collect())
        .collect();
    let mut x = Vec::with_capacity(n * n_features);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % n_classes;
        for c in &centres[k] {
            x.push((c + std * rng.normal()) as f32);
        }
        y.push(k as u32);
    }
    classes(x, n_features, y, n_classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_sets_are_deterministic_and_balanced() {
        let a = moons(101, 0.1, &mut Rng::new(4));
        let b = moons(101, 0.1, &mut Rng::new(4));
        assert_eq!(a, b);
        assert_ne!(a, moons(101, 0.1, &mut Rng::new(5)));
        assert_eq!(a.len(), 101);
        let ones = a.labels().unwrap().iter().filter(|&&l| l == 1).count();
        assert_eq!(ones, 51);
        let s = spirals(100, 3, 0.2, &mut Rng::new(1));
        assert_eq!(s.len(), 100);
        assert_eq!(s.n_classes(), Some(3));
        let b = blobs(90, 3, 5, 1.0, &mut Rng::new(1));
        assert_eq!((b.len(), b.n_features), (90, 5));
        let c = circles(50, 0.0, &mut Rng::new(1));
        // Without noise, inner points lie on the radius-0.5 circle.
        let r = (c.x[2 * 49] as f64).hypot(c.x[2 * 49 + 1] as f64);
        assert!((r - 0.5).abs() < 1e-6);
    }
}
