//! Any text as tributary.toml: a config or diagnostics, never a panic. The project folder
//! has the events schema and a job folder, so valid-looking input reaches validation.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn project() -> &'static (PathBuf, tokio::runtime::Runtime) {
    static P: OnceLock<(PathBuf, tokio::runtime::Runtime)> = OnceLock::new();
    P.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("tributary-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        std::fs::write(
            dir.join("schemas/events.toml"),
            include_str!("../../bench/schemas/events.toml"),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (dir.join("tributary.toml"), rt)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, rt) = project();
    let _ = rt.block_on(tributary::config::Config::parse(path, text, None));
});
