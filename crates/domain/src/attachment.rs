//! Attachments: what an uploaded file's name may be, and what its bytes are.
//!
//! The type is read from the bytes (magic numbers), never taken from the client: a file
//! called `cat.png` holding HTML is served as `application/octet-stream`, as an
//! attachment, never rendered.

/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Longest file name kept, in characters.
pub const FILE_NAME_MAX_CHARS: usize = 200;

/// An uploaded file's name, as shown and offered for download: the last path segment
/// of what the client sent, without control or invisible formatting characters (a
/// right-to-left override would make `invoice\u{202e}fdp.exe` read as `invoiceexe.pdf`),
/// at most 200 characters; `file` when nothing is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Cleans what a client sent (never refuses: a name is only a label).
    pub fn clean(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last
            .chars()
            .filter(|c| !c.is_control() && !is_format(*c))
            .take(FILE_NAME_MAX_CHARS)
            .collect();
        let trimmed = cleaned.trim().trim_start_matches('.');
        if trimmed.is_empty() {
            FileName("file".to_owned())
        } else {
            FileName(trimmed.to_owned())
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode format characters (category Cf) a name could hide or reorder text with:
/// bidirectional controls, zero-width characters, the byte-order mark and friends.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// What the bytes of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// Its media type.
    pub content_type: &'static str,
    /// A raster image a browser may show inline (PNG, JPEG, GIF, WebP); anything else is
    /// only ever downloaded.
    pub image: bool,
}

/// The type of `bytes` by their magic numbers: the common images, PDF, archives, audio
/// and video; text when it is valid UTF-8 without NUL; `application/octet-stream`
/// otherwise. SVG and HTML are text: a server must not hand a browser markup it would
/// run.
pub fn sniff(bytes: &[u8]) -> Sniffed {
    const IMAGES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
    ];
    const OTHERS: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"ID3", "audio/mpeg"),
        (b"OggS", "audio/ogg"),
        (b"fLaC", "audio/flac"),
        (b"\x1a\x45\xdf\xa3", "video/webm"),
    ];
    for (magic, content_type) in IMAGES {
        if bytes.starts_with(magic) {
            return Sniffed {
                content_type,
                image: true,
            };
        }
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" {
        match &bytes[8..12] {
            b"WEBP" => {
                return Sniffed {
                    content_type: "image/webp",
                    image: true,
                };
            }
            b"WAVE" => return other("audio/wav"),
            _ => {}
        }
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return other("video/mp4");
    }
    for (magic, content_type) in OTHERS {
        if bytes.starts_with(magic) {
            return other(content_type);
        }
    }
    if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        return other("text/plain; charset=utf-8");
    }
    other("application/octet-stream")
}

fn other(content_type: &'static str) -> Sniffed {
    Sniffed {
        content_type,
        image: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(FileName::clean("report.pdf").as_str(), "report.pdf");
        assert_eq!(FileName::clean("../../etc/passwd").as_str(), "passwd");
        assert_eq!(
            FileName::clean("C:\\Users\\me\\cat.png").as_str(),
            "cat.png"
        );
        assert_eq!(FileName::clean("a\r\nb\".txt").as_str(), "ab\".txt");
        assert_eq!(FileName::clean("").as_str(), "file");
        assert_eq!(FileName::clean("..").as_str(), "file");
        assert_eq!(FileName::clean(".htaccess").as_str(), "htaccess");
        assert_eq!(
            FileName::clean("invoice\u{202e}fdp.exe").as_str(),
            "invoicefdp.exe"
        );
        assert_eq!(FileName::clean("a\u{200b}b\u{feff}.txt").as_str(), "ab.txt");
        assert_eq!(
            FileName::clean(&"é".repeat(300)).as_str().chars().count(),
            200
        );
    }

    #[test]
    fn types_come_from_the_bytes() {
        let png = sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        assert_eq!((png.content_type, png.image), ("image/png", true));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0").content_type, "image/jpeg");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").content_type, "image/webp");
        let pdf = sniff(b"%PDF-1.7\n");
        assert_eq!((pdf.content_type, pdf.image), ("application/pdf", false));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42").content_type, "video/mp4");
        // Markup is text, never an image or a page.
        for markup in [&b"<svg onload=alert(1)>"[..], b"<html><script>"] {
            let text = sniff(markup);
            assert_eq!(
                (text.content_type, text.image),
                ("text/plain; charset=utf-8", false)
            );
        }
        assert_eq!(
            sniff(b"\0\x01\x02binary").content_type,
            "application/octet-stream"
        );
        assert_eq!(sniff(b"").content_type, "text/plain; charset=utf-8");
    }
}
