//! KOM loader (load stage, pure given a `FileTree`).
