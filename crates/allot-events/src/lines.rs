//! Replay files: JSON lines, or one JSON array spread over many lines.

use allot_core::ChangeEvent;

use crate::error::DecodeError;
use crate::{decode, Decoded, Format};

/// Decodes a replay file so a bad entry can be reported as `file:line` and skipped.
///
/// Returns `(line, result)` pairs in file order, `line` being 1-based:
///
/// * JSON lines: one pair per non-blank line. A line holding an array that partly
///   failed gives `Ok(events)` for what decoded (when anything did) and then one
///   `Err` per bad element, all with the same line number.
/// * If the first non-blank line starts with `[` and is not a complete JSON value by
///   itself, the whole text is one JSON array: one pair per element, with the line
///   the element starts on. Each element is decoded on its own (with `Auto`, its
///   format is detected per element).
pub fn decode_lines(text: &str, format: Format) -> Vec<LineResult> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    if let Some(first) = first {
        if first.starts_with('[') && serde_json::from_str::<serde::de::IgnoredAny>(first).is_err() {
            return whole_array(text, format);
        }
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.is_empty() {
            push(&mut out, i + 1, decode(line.as_bytes(), format));
        }
    }
    out
}

/// One entry of [`decode_lines`]: 1-based line number and what that line (or
/// array element) decoded to.
pub type LineResult = (usize, Result<Vec<ChangeEvent>, DecodeError>);

type Entries = Vec<LineResult>;

/// Where (byte offset) and why an array is broken.
type Broken = Option<(usize, &'static str)>;

fn push(out: &mut Entries, line: usize, decoded: Decoded) {
    if !decoded.events.is_empty() || decoded.errors.is_empty() {
        out.push((line, Ok(decoded.events)));
    }
    out.extend(decoded.errors.into_iter().map(|e| (line, Err(e))));
}

fn whole_array(text: &str, format: Format) -> Entries {
    let (elements, broken) = split_array(text);
    let mut out = Vec::new();
    for (start, end) in elements {
        let (line, column) = position(text, start);
        let mut decoded = decode(&text.as_bytes()[start..end], format);
        for e in &mut decoded.errors {
            // Make JSON positions relative to the file, not the element.
            if let DecodeError::Json {
                line: l, column: c, ..
            } = e
            {
                if *l == 1 {
                    *c += column - 1;
                }
                *l += line - 1;
            }
        }
        push(&mut out, line, decoded);
    }
    if let Some((at, message)) = broken {
        let (line, column) = position(text, at);
        out.push((
            line,
            Err(DecodeError::Json {
                line,
                column,
                message: message.to_string(),
            }),
        ));
    }
    out
}

/// 1-based line and column (in bytes) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// Byte ranges of the top-level elements of a JSON array, found by tracking
/// strings and nesting only (each element is parsed later on its own), and where
/// and why the array is broken, if it is.
fn split_array(text: &str) -> (Vec<(usize, usize)>, Broken) {
    let bytes = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut elements = Vec::new();
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'[') {
        return (elements, Some((i, "expected `[`")));
    }
    i = skip_ws(i + 1);
    if bytes.get(i) == Some(&b']') {
        return (elements, trailing(bytes, skip_ws(i + 1)));
    }
    loop {
        let start = i;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let end = text[..i].trim_end().len().max(start);
        elements.push((start, end));
        match bytes.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(_) => return (elements, trailing(bytes, skip_ws(i + 1))),
            None => {
                return (
                    elements,
                    Some((i, "EOF while parsing a list (missing `]`)")),
                )
            }
        }
    }
}

fn trailing(bytes: &[u8], i: usize) -> Broken {
    (i < bytes.len()).then_some((i, "trailing characters after the array"))
}
