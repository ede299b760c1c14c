//! Discovering a module's float parameters by path (`layers.0.weight`), on any Burn module.
//!
//! Paths are what users write in configs and what files store, so they are built the same way
//! Burn's records name parameters: the field and index names joined by dots.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// One float parameter of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Dotted path, e.g. `layers.0.weight`.
    pub path: String,
    /// Burn's identity of the parameter; stable across optimizer steps and mask application.
    pub id: ParamId,
    /// Shape as the module stores it (Burn's `Linear` weight is `[d_input, d_output]`).
    pub shape: Vec<usize>,
    /// Type of the innermost module holding it, e.g. `Linear`.
    pub owner: String,
}

impl ParamInfo {
    /// Number of scalars in the parameter.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The last path component: `weight`, `bias`, ...
    pub fn field(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// The path of the module holding it: `layers.0` for `layers.0.weight`.
    pub fn module_path(&self) -> &str {
        self.path.rsplit_once('.').map_or("", |(m, _)| m)
    }

    /// Whether it is a layer's weight (a dense matrix or a convolution kernel: rank ≥ 2) rather
    /// than a per-unit vector (a bias, a norm's γ).
    pub fn is_weight(&self) -> bool {
        self.shape.len() >= 2
    }
}

/// Every float parameter of `module`, in the module's own visiting order (which is stable).
pub fn param_infos<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut visitor = PathVisitor::default();
    module.visit(&mut visitor);
    visitor.found
}

#[derive(Default)]
struct PathVisitor {
    path: Vec<String>,
    owners: Vec<String>,
    found: Vec<ParamInfo>,
}

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.owners.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.owners.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The innermost struct around the parameter names its owner ("Struct:Linear").
        let owner = self
            .owners
            .iter()
            .rev()
            .find_map(|c| c.strip_prefix("Struct:"))
            .unwrap_or("")
            .to_string();
        self.found.push(ParamInfo {
            path: self.path.join("."),
            id: param.id,
            shape: param.shape().to_vec(),
            owner,
        });
    }
}
