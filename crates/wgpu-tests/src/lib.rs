//! No code: this crate exists for its manifest. Its dependency on `trainer` with the `wgpu`
//! feature makes every workspace-wide build (`cargo test --workspace`, `cargo clippy
//! --workspace`) include the wgpu backend, so the README's test command runs the wgpu parity
//! tests too, and CI builds Burn's stack once instead of once without wgpu and once with it. The tests themselves stay beside the
//! code they test, in `crates/trainer/tests/it/wgpu.rs`. Without a GPU they run on lavapipe;
//! where no adapter exists at all they skip, unless `LOPPER_WGPU=1` (set by CI) makes that a
//! failure.
