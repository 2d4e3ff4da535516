//! Replay files as people write them: JSON lines (one object per line), one
//! JSON array (on one line or spread over many), or one pretty-printed JSON
//! object spanning many lines.

use std::fmt;
use std::ops::Range;

use allot_core::ChangeEvent;

use crate::error::DecodeError;
use crate::{decode, Format};

/// How a replay file is laid out, as [`layout`] detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One JSON value per non-blank line (a line may hold an array batch).
    Lines,
    /// One JSON array: its first non-blank character is `[`.
    Array,
    /// One JSON value over several lines (a pretty-printed object).
    Object,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Lines => "JSON lines",
            Shape::Array => "a JSON array",
            Shape::Object => "one JSON object over several lines",
        })
    }
}

/// One piece of a replay file that is decoded on its own: a line, an array
/// element, or the whole object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// 1-based line the piece starts on.
    pub line: usize,
    /// 1-based column (in bytes) the piece starts at.
    pub column: usize,
    /// Index of the element, when the piece is an element of the file's array.
    pub index: Option<usize>,
    /// Byte range of the piece in the text given to [`layout`].
    pub range: Range<usize>,
}

/// Where (1-based line and column) and why a file's array is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in bytes.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

/// A replay file cut into pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The shape found (or, for a file that does not parse, assumed).
    pub shape: Shape,
    /// Why that shape, in a few words.
    pub reason: &'static str,
    /// The pieces, in file order.
    pub pieces: Vec<Piece>,
    /// Where an array stops being an array (unterminated, trailing text).
    pub broken: Option<Broken>,
}

/// Cuts `text` into pieces. A leading UTF-8 BOM is skipped.
///
/// * First non-whitespace character `[`: [`Shape::Array`], one piece per
///   element (found by tracking strings and nesting; each is parsed later on its
///   own). An array that fits on its first line stays one piece; when further
///   lines follow it, the file is JSON lines of arrays.
/// * Text over several lines that parses as one JSON value: [`Shape::Object`],
///   one piece.
/// * A first line that is a complete JSON value: [`Shape::Lines`], one piece
///   per non-blank line.
/// * Otherwise a first `{` line that is not complete, followed by lines that
///   look like the inside of an object (`"key": …`, `}`), is taken for a broken
///   [`Shape::Object`]; anything else is [`Shape::Lines`].
pub fn layout(text: &str) -> Layout {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let body = &text[bom..];
    let non_blank: Vec<(usize, usize, &str)> = line_spans(body)
        .filter(|(_, _, l)| !l.trim().is_empty())
        .collect();
    let Some(&(_, first_start, first)) = non_blank.first() else {
        return Layout {
            shape: Shape::Lines,
            reason: "no content",
            pieces: Vec::new(),
            broken: None,
        };
    };
    let complete = |s: &str| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok();
    let first_complete = complete(first);
    let several = non_blank.len() > 1;
    let lead = first.len() - first.trim_start().len();
    let start = first_start + lead;
    let whole = |shape, reason| {
        let (line, column) = position(body, start);
        Layout {
            shape,
            reason,
            pieces: vec![Piece {
                line,
                column,
                index: None,
                range: bom + start..bom + body.trim_end().len(),
            }],
            broken: None,
        }
    };
    let lines = |reason| Layout {
        shape: Shape::Lines,
        reason,
        pieces: non_blank
            .iter()
            .map(|&(i, at, l)| Piece {
                line: i + 1,
                column: l.len() - l.trim_start().len() + 1,
                index: None,
                range: bom + at + (l.len() - l.trim_start().len())..bom + at + l.trim_end().len(),
            })
            .collect(),
        broken: None,
    };
    if first.trim_start().starts_with('[') {
        if first_complete && several {
            return lines("each line is a complete JSON value");
        }
        if first_complete {
            return whole(Shape::Array, "it starts with `[`");
        }
        let (elements, broken) = split_array(body);
        return Layout {
            shape: Shape::Array,
            reason: "it starts with `[`",
            pieces: elements
                .into_iter()
                .enumerate()
                .map(|(index, (s, e))| {
                    let (line, column) = position(body, s);
                    Piece {
                        line,
                        column,
                        index: Some(index),
                        range: bom + s..bom + e,
                    }
                })
                .collect(),
            broken: broken.map(|(at, message)| {
                let (line, column) = position(body, at);
                Broken {
                    line,
                    column,
                    message: message.to_string(),
                }
            }),
        };
    }
    if several && complete(body) {
        return whole(Shape::Object, "it parses as one JSON value");
    }
    if first_complete {
        return lines("its first line is a complete JSON value");
    }
    let inside_object = |l: &str| {
        let l = l.trim_start();
        l.starts_with('"') || l.starts_with('}')
    };
    if several
        && first.trim_start().starts_with('{')
        && non_blank[1..].iter().any(|p| inside_object(p.2))
    {
        return whole(
            Shape::Object,
            "its first line is not a complete JSON value and the next look like the inside of an object",
        );
    }
    lines("it does not parse as one JSON value")
}

/// One decoded piece of a replay file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// 1-based line the piece starts on.
    pub line: usize,
    /// Where the entry is, or where it broke: 1-based line and column in the
    /// file (for a JSON syntax error, the position of the error).
    pub at: (usize, usize),
    /// The array element the entry is about: the element of the file's array,
    /// or of a batch on one line.
    pub index: Option<usize>,
    /// What the piece decoded to.
    pub result: Result<Vec<ChangeEvent>, DecodeError>,
}

/// A replay file decoded piece by piece.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFile {
    /// The shape found (or assumed).
    pub shape: Shape,
    /// Why that shape.
    pub reason: &'static str,
    /// Events and errors in file order: for a piece that partly failed, what
    /// decoded first, then one entry per error.
    pub entries: Vec<Entry>,
}

/// Decodes a replay file of any [`Shape`] so every bad piece can be reported
/// as `file:line:column` and skipped.
pub fn decode_file(text: &str, format: Format) -> DecodedFile {
    let layout = layout(text);
    let mut entries = Vec::new();
    for p in &layout.pieces {
        let decoded = decode(&text.as_bytes()[p.range.clone()], format);
        if !decoded.events.is_empty() || decoded.errors.is_empty() {
            entries.push(Entry {
                line: p.line,
                at: (p.line, p.column),
                index: p.index,
                result: Ok(decoded.events),
            });
        }
        for e in decoded.errors {
            let at = match &e {
                DecodeError::Json { line, column, .. } if *line == 1 => {
                    (p.line, p.column + column - 1)
                }
                DecodeError::Json { line, column, .. } => (p.line + line - 1, *column),
                _ => (p.line, p.column),
            };
            let index = p.index.or_else(|| e.event().and_then(|r| r.index));
            entries.push(Entry {
                line: p.line,
                at,
                index,
                result: Err(e),
            });
        }
    }
    if let Some(b) = layout.broken {
        entries.push(Entry {
            line: b.line,
            at: (b.line, b.column),
            index: None,
            result: Err(DecodeError::Json {
                line: b.line,
                column: b.column,
                message: b.message,
            }),
        });
    }
    DecodedFile {
        shape: layout.shape,
        reason: layout.reason,
        entries,
    }
}

/// Decodes a replay file so a bad entry can be reported as `file:line` and skipped.
///
/// Returns `(line, result)` pairs in file order, `line` being 1-based (see
/// [`decode_file`] for the shapes, columns and element indexes):
///
/// * JSON lines: one pair per non-blank line. A line holding an array that partly
///   failed gives `Ok(events)` for what decoded (when anything did) and then one
///   `Err` per bad element, all with the same line number. JSON positions in
///   errors are within the line.
/// * One JSON array over many lines: one pair per element, with the line the
///   element starts on, JSON positions in the file. Each element is decoded on
///   its own (with `Auto`, its format is detected per element).
/// * One JSON object over many lines: one pair, JSON positions in the file.
pub fn decode_lines(text: &str, format: Format) -> Vec<LineResult> {
    let file = decode_file(text, format);
    file.entries
        .into_iter()
        .map(|mut e| {
            if file.shape != Shape::Lines {
                if let Err(DecodeError::Json { line, column, .. }) = &mut e.result {
                    (*line, *column) = e.at;
                }
            }
            (e.line, e.result)
        })
        .collect()
}

/// One entry of [`decode_lines`]: 1-based line number and what that line (or
/// array element) decoded to.
pub type LineResult = (usize, Result<Vec<ChangeEvent>, DecodeError>);

/// `(index, byte offset, line)` of every line, without its `\n` (nor `\r`).
fn line_spans(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut at = 0;
    text.split_inclusive('\n').enumerate().map(move |(i, l)| {
        let start = at;
        at += l.len();
        let l = l.strip_suffix('\n').unwrap_or(l);
        (i, start, l.strip_suffix('\r').unwrap_or(l))
    })
}

/// Where (byte offset) and why an array is broken.
type BrokenAt = Option<(usize, &'static str)>;

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
fn split_array(text: &str) -> (Vec<(usize, usize)>, BrokenAt) {
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

fn trailing(bytes: &[u8], i: usize) -> BrokenAt {
    (i < bytes.len()).then_some((i, "trailing characters after the array"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HS: &str = r#"{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 9}"#;

    /// `(shape, [(line, column, index, ok)])` of a decoded file.
    type Summary = (Shape, Vec<(usize, usize, Option<usize>, bool)>);

    fn summary(text: &str) -> Summary {
        let f = decode_file(text, Format::Auto);
        let entries = f
            .entries
            .iter()
            .map(|e| (e.at.0, e.at.1, e.index, e.result.is_ok()))
            .collect();
        (f.shape, entries)
    }

    #[test]
    fn the_three_shapes_are_told_apart() {
        let pretty = "{\n  \"eventId\": 1,\n  \"subscriptionType\": \"contact.creation\",\n  \"objectId\": 9\n}\n";
        let cases: Vec<(String, Summary)> = vec![
            // JSON lines, a bad line in the middle positioned in the file.
            (
                format!("{HS}\n  {{\"eventId\": oops\n{HS}\n"),
                (
                    Shape::Lines,
                    vec![(1, 1, None, true), (2, 15, None, false), (3, 1, None, true)],
                ),
            ),
            // One pretty-printed object, after blank lines, with CRLF and a BOM.
            (
                format!("\u{feff}\r\n{}", pretty.replace('\n', "\r\n")),
                (Shape::Object, vec![(2, 1, None, true)]),
            ),
            (pretty.to_string(), (Shape::Object, vec![(1, 1, None, true)])),
            // A broken pretty-printed object: refused where it broke.
            (
                pretty.replace("1,", "1"),
                (Shape::Object, vec![(3, 3, None, false)]),
            ),
            // A broken first line of JSON lines does not make it an object.
            (
                format!("{{\"eventId\": \n{HS}\n{HS}\n"),
                (
                    Shape::Lines,
                    vec![(1, 11, None, false), (2, 1, None, true), (3, 1, None, true)],
                ),
            ),
            // An array of pretty-printed elements: each element by index.
            (
                format!("[\n{},\n  {{\"eventId\": 2, \"subscriptionType\": \"contact.creation\"}},\n  {HS}\n]\n", pretty.trim_end()),
                (
                    Shape::Array,
                    vec![(2, 1, Some(0), true), (7, 3, Some(1), false), (8, 3, Some(2), true)],
                ),
            ),
            // Broken inside an element, then unterminated.
            (
                format!("[ {HS},\n  {{\"eventId\": ]\n"),
                (
                    Shape::Array,
                    vec![(1, 3, Some(0), true), (2, 15, Some(1), false), (3, 1, None, false)],
                ),
            ),
            // An array on one line stays one batch; its bad element is named.
            (
                format!("[{HS}, {{\"eventId\": 2, \"subscriptionType\": \"contact.creation\"}}]"),
                (Shape::Array, vec![(1, 1, None, true), (1, 1, Some(1), false)]),
            ),
            // Arrays on several lines are JSON lines of batches.
            (
                format!("[{HS}]\n[{HS}]\n"),
                (Shape::Lines, vec![(1, 1, None, true), (2, 1, None, true)]),
            ),
            (" \n\t\n".into(), (Shape::Lines, vec![])),
        ];
        for (text, want) in cases {
            assert_eq!(summary(&text), want, "{text}");
        }
    }

    #[test]
    fn pieces_are_the_bytes_of_each_entry() {
        let text = format!("\u{feff}[\n  {HS},\n  {HS}\n]");
        let l = layout(&text);
        assert_eq!(l.shape, Shape::Array);
        assert_eq!(l.pieces.len(), 2);
        for p in &l.pieces {
            assert_eq!(&text[p.range.clone()], HS);
        }
        assert_eq!(l.broken, None);

        let text = format!("{HS}\r\n\r\n  {HS}  \r\n");
        let l = layout(&text);
        let got: Vec<(usize, usize, &str)> = l
            .pieces
            .iter()
            .map(|p| (p.line, p.column, &text[p.range.clone()]))
            .collect();
        assert_eq!(got, vec![(1, 1, HS), (3, 3, HS)]);
    }

    #[test]
    fn a_trailing_text_after_the_array_is_named() {
        let f = decode_file(&format!("[\n{HS}\n] x\n"), Format::Auto);
        let last = f.entries.last().unwrap();
        assert_eq!(last.at, (3, 3));
        let e = last.result.as_ref().unwrap_err().to_string();
        assert!(e.contains("trailing characters after the array"), "{e}");
    }
}
