//! The platform boundary (ARCHITECTURE.md): the engine and the store name no
//! chat platform, not even in comments, so a new platform is added without
//! touching them. Platforms live in `src/chat/` and are listed in `app.rs`.

use std::path::Path;

const PLATFORMS: &[&str] = &["slack", "discord"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn engine_and_store_name_no_platform() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src/engine", "src/store"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            if PLATFORMS.iter().any(|p| lower.contains(p)) {
                let shown = f.strip_prefix(root).unwrap_or(f).display();
                found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "platform names in the engine or store:\n{}",
        found.join("\n")
    );
}
