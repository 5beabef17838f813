//! Source stage: a read-only snapshot of a project's files (I/O at the edge).
