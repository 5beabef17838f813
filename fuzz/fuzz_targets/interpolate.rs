//! Fuzzes compose interpolation: any string must interpolate or fail with an
//! offset inside it; a string without `$` must come back unchanged.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let vars: BTreeMap<String, String> = [("A", "a"), ("EMPTY", ""), ("D", "$A ${A}")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match kompox::compose::interpolate::interpolate_str(input, &vars) {
        Ok(out) => {
            if !input.contains('$') {
                assert_eq!(out, input);
            }
        }
        Err(e) => assert!(e.offset <= input.len()),
    }
    let escaped = input.replace('$', "$$");
    assert_eq!(
        kompox::compose::interpolate::interpolate_str(&escaped, &vars).as_deref(),
        Ok(input)
    );
});
