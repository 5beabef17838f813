//! The KOM loader on an arbitrary app file (single-app mode).
#![no_main]

use kompox::kom::{ProjectEnv, load_project};
use kompox::source::FileTree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tree = FileTree::from_files([
        (".kompox/config.yml", b"version: 1\n".to_vec()),
        ("kompoxapp.yml", data.to_vec()),
    ]);
    let _ = load_project(&tree, &ProjectEnv::default());
});
