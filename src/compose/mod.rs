//! Compose loader (load stage, pure given file contents).
//!
//! `load` reads one compose document into [`crate::model::compose`];
//! `envfile` and `interpolate` implement the env file formats and `${VAR}`
//! interpolation; `keys` says what happens to each compose key.

pub mod envfile;
pub mod interpolate;
pub mod keys;
mod load;
pub mod units;

pub(crate) use load::memory_quantity;
pub use load::{Loaded, load_compose};
