//! Fuzzes env_file parsing: any bytes, under each format the extension
//! selects, must give pairs or a diagnostic, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 5] = ["app.env", ".env", "env.yml", "env.yaml", "env.json"];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let path = PATHS[usize::from(choice) % PATHS.len()];
    match kompox::compose::envfile::parse_env_file(path, bytes) {
        Ok(pairs) => {
            let _ = kompox::compose::envfile::merge_env(vec![pairs]);
        }
        Err(d) => {
            let span = d.span.expect("parse errors carry a span");
            assert!(span.line >= 1 && span.col >= 1);
            assert!(span.start as usize <= bytes.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = kompox::compose::envfile::parse_dotenv(".env", text);
    }
});
