//! Tests of the KOM loader.
