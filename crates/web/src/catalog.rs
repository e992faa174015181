//! The embedded files, their content types and validators, and the page that names them.

use std::collections::HashMap;
use std::sync::LazyLock;

use sha2::{Digest, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The page template; every other file is served under `/app/<version>/`.
const INDEX: &str = "index.html";

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Its bytes.
    pub(crate) body: &'static [u8],
    /// `Content-Type`.
    pub(crate) content_type: &'static str,
    /// A strong `ETag` (quoted), from the contents.
    pub(crate) etag: String,
}

/// The embedded client: files by path, the version naming them, and the rendered page.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// Hash of every file: the path segment that makes asset URLs change with them.
    pub(crate) version: String,
    /// Files by path relative to `assets/` (`js/main.js`), the page template excluded.
    pub(crate) files: HashMap<&'static str, Asset>,
    /// `index.html` with its placeholders filled in.
    pub(crate) index: Vec<u8>,
    /// `ETag` of [`Catalog::index`].
    pub(crate) index_etag: String,
}

impl Catalog {
    /// Where the files of this build are served: `/app/<version>`.
    pub(crate) fn base(&self) -> String {
        format!("/app/{}", self.version)
    }
}

/// The content type of a file by its extension, or `None` for an extension the
/// client does not use (a unit test keeps every embedded file known).
pub(crate) fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        // Module scripts must be served with a JavaScript MIME type (HTML spec).
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn digest_hex(parts: &[&[u8]], chars: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(chars)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
        .collect()
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", digest_hex(&[body], 32))
}

/// Fills the page template: `{{base}}` with the asset folder of this build and
/// `{{modulepreload}}` with a `<link rel="modulepreload">` per script, so the browser
/// fetches every module in parallel instead of discovering imports one level at a time.
fn render_index(template: &str, base: &str, files: &HashMap<&'static str, Asset>) -> String {
    let mut scripts: Vec<&str> = files
        .keys()
        .copied()
        .filter(|path| path.ends_with(".js"))
        .collect();
    scripts.sort_unstable();
    let preload: String = scripts
        .iter()
        .map(|path| format!("<link rel=\"modulepreload\" href=\"{base}/{path}\">\n"))
        .collect();
    template
        .replace("{{modulepreload}}\n", &preload)
        .replace("{{modulepreload}}", &preload)
        .replace("{{base}}", base)
}

fn build() -> Catalog {
    let mut parts: Vec<&[u8]> = Vec::new();
    for (path, body) in embedded::FILES {
        parts.push(path.as_bytes());
        parts.push(body);
    }
    let version = digest_hex(&parts, 12);
    let mut template = "";
    let mut files = HashMap::new();
    for &(path, body) in embedded::FILES {
        if path == INDEX {
            template = std::str::from_utf8(body).unwrap_or_default();
            continue;
        }
        files.insert(
            path,
            Asset {
                body,
                content_type: content_type(path).unwrap_or("application/octet-stream"),
                etag: etag_of(body),
            },
        );
    }
    let mut catalog = Catalog {
        version,
        files,
        index: Vec::new(),
        index_etag: String::new(),
    };
    catalog.index = render_index(template, &catalog.base(), &catalog.files).into_bytes();
    catalog.index_etag = etag_of(&catalog.index);
    catalog
}

/// The catalog of this build (built once, on first use).
pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: LazyLock<Catalog> = LazyLock::new(build);
    &CATALOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_content_type() {
        for (path, _) in embedded::FILES {
            assert!(content_type(path).is_some(), "{path}: unknown extension");
        }
    }

    #[test]
    fn the_page_names_every_script_under_the_versioned_base_and_no_placeholder() {
        let catalog = catalog();
        let page = String::from_utf8_lossy(&catalog.index);
        assert!(!page.contains("{{"), "{page}");
        assert!(page.contains(&format!("{}/js/main.js", catalog.base())));
        for path in catalog.files.keys().filter(|p| p.ends_with(".js")) {
            assert!(
                page.contains(&format!("href=\"{}/{path}\"", catalog.base())),
                "{path} is not preloaded"
            );
        }
    }

    #[test]
    fn scripts_and_styles_are_files_never_inline() {
        // The Content-Security-Policy allows scripts from the server's origin only.
        let page = String::from_utf8_lossy(&catalog().index).to_lowercase();
        assert!(!page.contains("<script>"), "inline script");
        assert!(
            !page
                .split(|c: char| c.is_whitespace())
                .any(|word| word.starts_with("on") && word.contains('=')),
            "inline event handler attribute"
        );
        assert!(!page.contains("<style"), "inline style element");
    }

    #[test]
    fn scripts_never_parse_strings_as_html_or_code() {
        // User text reaches the page through textContent and DOM nodes only.
        for (path, body) in embedded::FILES.iter().filter(|(p, _)| p.ends_with(".js")) {
            let text = String::from_utf8_lossy(body);
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!text.contains(sink), "{path} uses {sink}");
            }
        }
    }

    #[test]
    fn the_client_weighs_under_150_kb_compressed() -> std::io::Result<()> {
        use std::io::Write;
        // Every script and style sheet, each compressed as a server or proxy would send
        // it (gzip, one file at a time).
        let mut compressed = 0;
        let mut raw = 0;
        for (path, body) in embedded::FILES
            .iter()
            .filter(|(p, _)| p.ends_with(".js") || p.ends_with(".css"))
        {
            let mut gzip =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gzip.write_all(body)?;
            compressed += gzip.finish()?.len();
            raw += body.len();
            assert!(!body.is_empty(), "{path} is empty");
        }
        assert!(raw > 0, "no scripts or styles embedded");
        assert!(
            compressed < 150 * 1024,
            "JS + CSS weigh {compressed} bytes compressed ({raw} raw)"
        );
        Ok(())
    }

    #[test]
    fn versions_and_etags_follow_the_contents() {
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        assert_eq!(etag_of(b"a"), etag_of(b"a"));
        assert_eq!(catalog().version.len(), 12);
        assert_ne!(
            digest_hex(&[b"ab", b"c"], 12),
            digest_hex(&[b"a", b"bc"], 12)
        );
    }
}
