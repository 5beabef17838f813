//! Fuzzes the spanned YAML reader (and interpolation over its trees): any
//! text must give documents or an error within the limits, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let limits = kompox::yaml::Limits::default();
    if let Ok(docs) = kompox::yaml::parse_documents(text, &limits) {
        let vars = BTreeMap::from([("A".to_string(), "a".to_string())]);
        for mut doc in docs {
            let _ = kompox::compose::interpolate::interpolate_tree(&mut doc, &vars, "fuzz.yml");
            let _ = doc.to_json();
        }
    }
});
