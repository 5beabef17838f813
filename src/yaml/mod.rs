//! Spanned YAML documents (load stage helper, pure).
//!
//! Every loader in Kompox needs three things the common YAML crates do not
//! give together: a source position for every node (so an error or an
//! unknown-key warning names file:line:col), the local tags compose uses
//! (`!reset`, `!override`), and hard budgets so that an anchor bomb or a
//! deeply nested document is rejected quickly instead of exhausting memory.
//! So we build a small tree of our own from `saphyr-parser` events; alias
//! expansion and `<<` merge keys are done here under those budgets.

mod build;
mod emit;
mod node;

pub use build::{Limits, YamlError, parse_documents};
pub use emit::to_yaml_string;
pub use node::{Node, Span, Value};
