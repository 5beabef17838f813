//! Compose variable interpolation (DECISIONS 7).
