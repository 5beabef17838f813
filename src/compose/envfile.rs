//! env_file parsing (reference §4.6).
