//! Compose loader (load stage, pure given file contents).

pub mod envfile;
pub mod interpolate;
