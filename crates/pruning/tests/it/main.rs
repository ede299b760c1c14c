//! Integration tests of the pruning crate: agreement with PyTorch's pruning utilities on the
//! shared vectors, and properties of selection on random inputs.

mod any_module;
mod conv;
mod conv_vectors;
mod dynamic;
mod properties;
mod pytorch_vectors;
mod tfmot_schedule;
