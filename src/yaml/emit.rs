//! YAML output for manifests and normalised compose files.

use serde::Serialize;

/// Serialises a value as block-style YAML with 2-space indentation.
///
/// Map key order is the value's own (our objects are built in a fixed order,
/// JSON maps are sorted), so the same input always gives the same bytes.
pub fn to_yaml_string<T: Serialize>(value: &T) -> String {
    match serde_saphyr::to_string(value) {
        Ok(s) => s,
        // Serialising plain data (JSON values, k8s structs) cannot fail; if it
        // ever does, show it in the output instead of panicking.
        Err(e) => format!("# error: cannot render YAML: {e}\n"),
    }
}
