//! Kompox: run Docker Compose applications with ReadWriteOnce disks on
//! managed Kubernetes.
//!
//! The crate is laid out by pipeline stage (see `DESIGN.md`): `source` reads
//! a file tree, `kom` and `compose` load it into a `model`, `convert` turns
//! the model into desired Kubernetes objects and disk intents, `plan`
//! compares them with `live` state and `report` renders the plan. Only
//! `source` and `cli` do I/O; the rest are pure functions of values.

// Diagnostics are returned by value on the (cold) error path of every
// loader; boxing them would add noise at each call for no measurable gain.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod cluster;
pub mod compose;
pub mod convert;
pub mod desired;
pub mod diag;
pub mod forge;
pub mod hash;
pub mod kom;
pub mod lease;
pub mod live;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod pr;
pub mod provider;
pub mod reconcile;
pub mod report;
pub mod review;
pub mod server;
pub mod source;
pub mod webhook;
pub mod yaml;
