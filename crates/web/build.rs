//! Embeds `assets/` in the crate: writes `$OUT_DIR/assets.rs`, a table of every file
//! under it (`include_bytes!`, so rustc itself rebuilds the crate when a file changes).
//! `rerun-if-changed` on the folder catches files added or removed.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        {
            files.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("assets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    // Sorted: the table, and so the version hash over it, does not depend on the
    // order the file system lists entries in.
    files.sort();
    let mut table =
        String::from("/// Every file under `assets/`: (path relative to it, contents).\n");
    table.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&root)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        // `{:?}` of a str is a valid Rust string literal, escapes included.
        writeln!(
            table,
            "    ({relative:?}, include_bytes!({:?})),",
            file.to_string_lossy()
        )?;
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("assets.rs");
    std::fs::write(out, table)?;
    Ok(())
}
