//! `[model] layers = [...]` and `preset`: networks beyond the MLP shorthand — convolutions,
//! pools, batch norms, a flatten, dense layers and activations, in forward order — and the
//! shapes they produce, checked against the data before anything trains.
//!
//! An entry is a table with a `type` and that type's own keys:
//! `{ type = "conv2d", channels = 6, kernel = 5, padding = 2 }`. The output layer is not
//! written: it is a dense layer as wide as the data needs (as with `hidden`).

use serde::{Deserialize, Serialize};

use super::{Invalid, bad};

/// What a layer-list entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    /// A 2-D convolution (`channels`, `kernel`, `stride` 1, `padding` 0 by default).
    Conv2d,
    /// Max pooling over `kernel`×`kernel` windows (`stride` defaults to `kernel`).
    MaxPool,
    /// Average pooling over `kernel`×`kernel` windows (`stride` defaults to `kernel`).
    AvgPool,
    /// Batch normalisation of each channel of the convolution before it.
    BatchNorm,
    /// Images `[c, h, w]` to vectors of c·h·w (channel-major, as PyTorch's `flatten`).
    Flatten,
    /// Zeroes each value with probability `prob` during training (and scales the rest by
    /// 1/(1 − prob)); the identity in evaluation.
    Dropout,
    /// A dense layer of `units` outputs.
    Dense,
    /// max(0, x).
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl LayerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Conv2d => "conv2d",
            Self::MaxPool => "max-pool",
            Self::AvgPool => "avg-pool",
            Self::BatchNorm => "batch-norm",
            Self::Flatten => "flatten",
            Self::Dropout => "dropout",
            Self::Dense => "dense",
            Self::Relu => "relu",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
        }
    }

    /// Its keys for an error message: `channels, kernel, stride, padding`, or `none`.
    fn keys_text(self) -> String {
        if self.keys().is_empty() {
            "none".to_string()
        } else {
            self.keys().join(", ")
        }
    }

    /// The keys an entry of this type takes besides `type`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Conv2d => &["channels", "kernel", "stride", "padding"],
            Self::MaxPool | Self::AvgPool => &["kernel", "stride"],
            Self::Dense => &["units"],
            Self::Dropout => &["prob"],
            _ => &[],
        }
    }
}

/// One entry of `model.layers`. One struct with every key rather than a tagged enum, so that a
/// key of another type is reported by name (serde's tagged enums weaken unknown-key checks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerEntry {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: LayerKind,
    /// `conv2d`: output channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// `conv2d`, pools: the square window's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<usize>,
    /// `conv2d` (default 1), pools (default `kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// `conv2d`: zeros added on every side (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<usize>,
    /// `dense`: outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<usize>,
    /// `dropout`: the probability of zeroing a value, in [0, 1) (PyTorch's `p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prob: Option<f64>,
}

impl LayerEntry {
    /// An entry of `kind` with no keys set.
    pub fn of(kind: LayerKind) -> Self {
        Self {
            kind,
            channels: None,
            kernel: None,
            stride: None,
            padding: None,
            units: None,
            prob: None,
        }
    }
    fn conv(channels: usize, kernel: usize, padding: usize) -> Self {
        Self {
            channels: Some(channels),
            kernel: Some(kernel),
            padding: (padding > 0).then_some(padding),
            ..Self::of(LayerKind::Conv2d)
        }
    }
    fn max_pool(kernel: usize) -> Self {
        Self {
            kernel: Some(kernel),
            ..Self::of(LayerKind::MaxPool)
        }
    }
    fn dense(units: usize) -> Self {
        Self {
            units: Some(units),
            ..Self::of(LayerKind::Dense)
        }
    }
    fn relu() -> Self {
        Self::of(LayerKind::Relu)
    }

    /// The stride, with its default.
    pub fn stride_or_default(&self) -> usize {
        match self.kind {
            LayerKind::MaxPool | LayerKind::AvgPool => self.stride.or(self.kernel).unwrap_or(1),
            _ => self.stride.unwrap_or(1),
        }
    }
}

/// Named networks from the literature, expanded into `layers` (which the run's config.toml then
/// shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// LeNet-5 as in PyTorch tutorials: conv 6@5×5 (padding 2), max pool 2, conv 16@5×5, max
    /// pool 2, dense 120, 84; ReLU.
    Lenet5,
    /// Frankle & Carbin's Conv-2: conv 64, 64 (3×3, padding 1), max pool 2, dense 256, 256.
    Conv2,
    /// Conv-4: conv 64, 64, pool, 128, 128, pool, dense 256, 256.
    Conv4,
    /// Conv-6: conv 64, 64, pool, 128, 128, pool, 256, 256, pool, dense 256, 256.
    Conv6,
}

impl Preset {
    /// The preset's layers (the output layer comes from the data).
    pub fn layers(self) -> Vec<LayerEntry> {
        use LayerEntry as L;
        let conv_relu = |c| [L::conv(c, 3, 1), L::relu()];
        let mut out = Vec::new();
        let stages: &[&[usize]] = match self {
            Self::Lenet5 => {
                return vec![
                    L::conv(6, 5, 2),
                    L::relu(),
                    L::max_pool(2),
                    L::conv(16, 5, 0),
                    L::relu(),
                    L::max_pool(2),
                    L::of(LayerKind::Flatten),
                    L::dense(120),
                    L::relu(),
                    L::dense(84),
                    L::relu(),
                ];
            }
            Self::Conv2 => &[&[64, 64]],
            Self::Conv4 => &[&[64, 64], &[128, 128]],
            Self::Conv6 => &[&[64, 64], &[128, 128], &[256, 256]],
        };
        for stage in stages {
            for &c in *stage {
                out.extend(conv_relu(c));
            }
            out.push(L::max_pool(2));
        }
        out.push(L::of(LayerKind::Flatten));
        for _ in 0..2 {
            out.extend([L::dense(256), L::relu()]);
        }
        out
    }
}

/// What flows between layers: images `[c, h, w]` or vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Channels, height, width.
    Image([usize; 3]),
    /// Features.
    Flat(usize),
}

impl From<usize> for Shape {
    /// Vectors of `n` features.
    fn from(n: usize) -> Self {
        Self::Flat(n)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Image([c, h, w]) => write!(f, "{c}×{h}×{w}"),
            Self::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// The shape after each layer of `layers` fed `input`; an error names the layer
/// (`model.layers[i]`), the shapes and the fix.
pub fn shapes(layers: &[LayerEntry], input: Shape) -> Result<Vec<Shape>, Invalid> {
    let mut cur = input;
    let mut out = Vec::with_capacity(layers.len());
    let mut after_conv = false;
    for (i, l) in layers.iter().enumerate() {
        let key = format!("model.layers[{i}]");
        check_keys(&key, l)?;
        cur = step(&key, l, cur, after_conv)?;
        match l.kind {
            LayerKind::Conv2d => after_conv = true,
            LayerKind::Flatten | LayerKind::Dense | LayerKind::BatchNorm | LayerKind::Dropout => {
                after_conv = false;
            }
            _ => {}
        }
        out.push(cur);
    }
    if let Shape::Image(_) = cur {
        return Err(bad(
            "model.layers",
            format!(
                "ends on images of {cur}; end it with {{ type = \"flatten\" }} (the output layer is dense)"
            ),
        ));
    }
    Ok(out)
}

/// Parameters of the network `layers` build on `input` with a dense output layer of
/// `n_outputs`, and the values its layers output per sample (what training holds in memory).
/// For a list that [`shapes`] accepted.
pub fn counts(layers: &[LayerEntry], input: Shape, n_outputs: usize) -> (u64, u64) {
    let size = |s: Shape| match s {
        Shape::Image([c, h, w]) => (c as u64).saturating_mul(h as u64).saturating_mul(w as u64),
        Shape::Flat(n) => n as u64,
    };
    let (mut params, mut values) = (0u64, 0u64);
    let mut cur = input;
    for (i, l) in layers.iter().enumerate() {
        let Ok(next) = step(&format!("model.layers[{i}]"), l, cur, true) else {
            break;
        };
        let c_in = match cur {
            Shape::Image([c, _, _]) => c as u64,
            Shape::Flat(n) => n as u64,
        };
        let added: u64 = match (l.kind, next) {
            (LayerKind::Conv2d, Shape::Image([c, _, _])) => {
                let k = l.kernel.unwrap_or(1) as u64;
                c_in.saturating_mul(c as u64)
                    .saturating_mul(k.saturating_mul(k))
                    .saturating_add(c as u64)
            }
            (LayerKind::BatchNorm, _) => c_in.saturating_mul(2),
            (LayerKind::Dense, Shape::Flat(n)) => {
                c_in.saturating_mul(n as u64).saturating_add(n as u64)
            }
            _ => 0,
        };
        params = params.saturating_add(added);
        values = values.saturating_add(size(next));
        cur = next;
    }
    let outputs = n_outputs as u64;
    (
        params.saturating_add(size(cur).saturating_mul(outputs).saturating_add(outputs)),
        values.saturating_add(outputs),
    )
}

/// Every key of another type is an error naming it; a missing required key too.
fn check_keys(key: &str, l: &LayerEntry) -> Result<(), Invalid> {
    let present = [
        ("channels", l.channels),
        ("kernel", l.kernel),
        ("stride", l.stride),
        ("padding", l.padding),
        ("units", l.units),
    ];
    let own = l.kind.keys();
    for (name, v) in present {
        if v.is_some() && !own.contains(&name) {
            return Err(bad(
                key,
                format!(
                    "`{name}` does not apply to type = \"{}\" (its keys: {})",
                    l.kind.name(),
                    l.kind.keys_text()
                ),
            ));
        }
        if v == Some(0) && name != "padding" {
            return Err(bad(key, format!("`{name}` must be ≥ 1")));
        }
    }
    check_prob(key, l)?;
    let required: &[(&str, Option<usize>)] = match l.kind {
        LayerKind::Conv2d => &[("channels", l.channels), ("kernel", l.kernel)],
        LayerKind::MaxPool | LayerKind::AvgPool => &[("kernel", l.kernel)],
        LayerKind::Dense => &[("units", l.units)],
        _ => &[],
    };
    for (name, v) in required {
        if v.is_none() {
            return Err(bad(
                key,
                format!("type = \"{}\" needs `{name}`", l.kind.name()),
            ));
        }
    }
    Ok(())
}

/// `prob` belongs to `dropout`, which needs it in [0, 1).
fn check_prob(key: &str, l: &LayerEntry) -> Result<(), Invalid> {
    match (l.kind, l.prob) {
        (LayerKind::Dropout, None) => Err(bad(key, "type = \"dropout\" needs `prob`")),
        // Kept as f32: a probability that rounds to 1 there would zero everything.
        (LayerKind::Dropout, Some(p)) if !(0.0..1.0).contains(&p) || p as f32 >= 1.0 => Err(bad(
            key,
            format!(
                "`prob` is {p}, but it is the probability of zeroing a value: give one in [0, 1)"
            ),
        )),
        (LayerKind::Dropout, Some(_)) | (_, None) => Ok(()),
        (kind, Some(_)) => Err(bad(
            key,
            format!(
                "`prob` does not apply to type = \"{}\" (its keys: {})",
                kind.name(),
                kind.keys_text()
            ),
        )),
    }
}

/// The shape after one layer.
fn step(key: &str, l: &LayerEntry, cur: Shape, after_conv: bool) -> Result<Shape, Invalid> {
    let image = |what: &str| match cur {
        Shape::Image(s) => Ok(s),
        Shape::Flat(_) => Err(bad(
            key,
            format!(
                "{what} needs images, but its input is a vector; put it before the flatten, and give the data an image shape (digits and fashion-mnist have one; csv takes data.shape = [c, h, w])"
            ),
        )),
    };
    let window = |[c, h, w]: [usize; 3], k: usize, s: usize, p: usize, out_c: usize| {
        let padded = |x: usize| p.checked_mul(2).and_then(|d| x.checked_add(d));
        let (Some(hp), Some(wp)) = (padded(h), padded(w)) else {
            return Err(bad(key, format!("padding {p} is beyond any image")));
        };
        if hp < k || wp < k {
            Err(bad(
                key,
                format!(
                    "a {k}×{k} window does not fit its input of {c}×{h}×{w} (padding {p}); use a smaller kernel, more padding, or fewer pools before it"
                ),
            ))
        } else {
            Ok(Shape::Image([out_c, (hp - k) / s + 1, (wp - k) / s + 1]))
        }
    };
    let (k, s) = (l.kernel.unwrap_or(1), l.stride_or_default());
    match l.kind {
        LayerKind::Conv2d => {
            let [c, h, w] = image("conv2d")?;
            window(
                [c, h, w],
                k,
                s,
                l.padding.unwrap_or(0),
                l.channels.unwrap_or(1),
            )
        }
        LayerKind::MaxPool | LayerKind::AvgPool => {
            let [c, h, w] = image(l.kind.name())?;
            window([c, h, w], k, s, 0, c)
        }
        LayerKind::BatchNorm => {
            image("batch-norm")?;
            if !after_conv {
                return Err(bad(
                    key,
                    "batch-norm normalises a convolution's channels: put one after a conv2d (before the flatten; at most one per conv2d)",
                ));
            }
            Ok(cur)
        }
        LayerKind::Flatten => {
            let [c, h, w] = image("flatten")?;
            Ok(Shape::Flat(c.saturating_mul(h).saturating_mul(w)))
        }
        LayerKind::Dense => match cur {
            Shape::Flat(_) => Ok(Shape::Flat(l.units.unwrap_or(1))),
            Shape::Image(_) => Err(bad(
                key,
                format!(
                    "dense takes vectors, but its input is images of {cur}; put {{ type = \"flatten\" }} before it"
                ),
            )),
        },
        LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh | LayerKind::Dropout => Ok(cur),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_gives_the_textbook_shapes_on_fashion_mnist() {
        let s = shapes(&Preset::Lenet5.layers(), Shape::Image([1, 28, 28])).unwrap();
        let text: Vec<String> = s.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "6×28×28",
                "6×28×28",
                "6×14×14",
                "16×10×10",
                "16×10×10",
                "16×5×5",
                "400",
                "120",
                "120",
                "84",
                "84"
            ]
        );
        // Conv-6 on 4×4 images runs out of pixels at its third pool.
        assert!(shapes(&Preset::Conv6.layers(), Shape::Image([1, 8, 8])).is_ok());
        let e = shapes(&Preset::Conv6.layers(), Shape::Image([1, 4, 4])).unwrap_err();
        assert_eq!(e.0, "model.layers[14]");
        assert!(
            e.1.contains("2×2 window does not fit its input of 256×1×1"),
            "{}",
            e.1
        );
        assert!(shapes(&Preset::Conv4.layers(), Shape::Image([1, 8, 8])).is_ok());
    }

    #[test]
    fn misplaced_layers_and_keys_are_named() {
        let conv = LayerEntry::conv(4, 3, 0);
        let cases: Vec<(Vec<LayerEntry>, Shape, &str, &str)> = vec![
            (
                vec![conv],
                Shape::Flat(64),
                "model.layers[0]",
                "conv2d needs images",
            ),
            (
                vec![conv, LayerEntry::dense(10)],
                Shape::Image([1, 8, 8]),
                "model.layers[1]",
                "put { type = \"flatten\" } before it",
            ),
            (
                vec![conv],
                Shape::Image([1, 8, 8]),
                "model.layers",
                "ends on images of 4×6×6",
            ),
            (
                vec![LayerEntry {
                    units: Some(3),
                    ..conv
                }],
                Shape::Image([1, 8, 8]),
                "model.layers[0]",
                "`units` does not apply to type = \"conv2d\" (its keys: channels, kernel, stride, padding)",
            ),
            (
                vec![LayerEntry::of(LayerKind::Conv2d)],
                Shape::Image([1, 8, 8]),
                "model.layers[0]",
                "needs `channels`",
            ),
            (
                vec![LayerEntry::of(LayerKind::BatchNorm)],
                Shape::Image([1, 8, 8]),
                "model.layers[0]",
                "put one after a conv2d",
            ),
        ];
        assert_named(cases);
    }

    #[test]
    fn dropout_needs_a_probability_below_one() {
        let conv = LayerEntry::conv(4, 3, 0);
        let cases: Vec<(Vec<LayerEntry>, Shape, &str, &str)> = vec![
            (
                vec![LayerEntry::of(LayerKind::Dropout)],
                Shape::Flat(64),
                "model.layers[0]",
                "type = \"dropout\" needs `prob`",
            ),
            (
                vec![LayerEntry {
                    prob: Some(1.0),
                    ..LayerEntry::of(LayerKind::Dropout)
                }],
                Shape::Flat(64),
                "model.layers[0]",
                "`prob` is 1, but it is the probability of zeroing a value: give one in [0, 1)",
            ),
            (
                vec![LayerEntry {
                    prob: Some(0.999_999_999),
                    ..LayerEntry::of(LayerKind::Dropout)
                }],
                Shape::Flat(64),
                "model.layers[0]",
                "give one in [0, 1)",
            ),
            (
                vec![LayerEntry {
                    prob: Some(0.5),
                    ..LayerEntry::dense(3)
                }],
                Shape::Flat(64),
                "model.layers[0]",
                "`prob` does not apply to type = \"dense\" (its keys: units)",
            ),
            (
                // A dropout between a convolution and its batch norm separates them.
                vec![
                    conv,
                    LayerEntry {
                        prob: Some(0.5),
                        ..LayerEntry::of(LayerKind::Dropout)
                    },
                    LayerEntry::of(LayerKind::BatchNorm),
                ],
                Shape::Image([1, 8, 8]),
                "model.layers[2]",
                "put one after a conv2d",
            ),
        ];
        assert_named(cases);
    }

    /// Each list fails on its input with an error naming `key` and containing `message`.
    fn assert_named(cases: Vec<(Vec<LayerEntry>, Shape, &str, &str)>) {
        for (layers, input, key, message) in cases {
            let (k, m) = shapes(&layers, input).unwrap_err();
            assert_eq!(k, key, "{m}");
            assert!(m.contains(message), "{m}");
        }
    }
}
