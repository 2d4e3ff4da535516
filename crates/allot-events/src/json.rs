//! Small helpers to read JSON fields with errors that say where.

use allot_core::Value;
use serde_json::Value as J;

use crate::error::{DecodeError, EventRef};

/// A JSON object.
pub(crate) type Obj = serde_json::Map<String, J>;

/// Parses bytes as one JSON value (a leading UTF-8 BOM is ignored).
pub(crate) fn parse(bytes: &[u8]) -> Result<J, DecodeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| json_error(&e))
}

/// A serde_json error as [`DecodeError::Json`], without repeating the position.
pub(crate) fn json_error(e: &serde_json::Error) -> DecodeError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    DecodeError::Json {
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// "a string", "an object", ... for error messages.
pub(crate) fn describe(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

/// A JSON scalar as a [`Value`]; `None` for arrays and objects.
pub(crate) fn scalar(v: &J) -> Option<Value> {
    match v {
        J::Null => Some(Value::Null),
        J::Bool(b) => Some(Value::Bool(*b)),
        J::Number(n) => n.as_f64().map(Value::Num),
        J::String(s) => Some(Value::Str(s.clone())),
        J::Array(_) | J::Object(_) => None,
    }
}

/// An id given as a non-empty string or an integer, as text.
pub(crate) fn id_text(v: &J) -> Option<String> {
    match v {
        J::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        J::Number(n) => n
            .as_u64()
            .map(|u| u.to_string())
            .or_else(|| n.as_i64().map(|i| i.to_string())),
        _ => None,
    }
}

/// Reads fields of one event, naming the event and the field path in errors.
pub(crate) struct Reader {
    pub(crate) at: EventRef,
}

impl Reader {
    pub(crate) fn missing(&self, path: &str) -> DecodeError {
        DecodeError::MissingField {
            at: self.at.clone(),
            field: path.to_string(),
        }
    }

    pub(crate) fn invalid(&self, path: &str, problem: impl Into<String>) -> DecodeError {
        DecodeError::InvalidField {
            at: self.at.clone(),
            field: path.to_string(),
            problem: problem.into(),
        }
    }

    fn expected(&self, path: &str, what: &str, found: &J) -> DecodeError {
        self.invalid(path, format!("expected {what}, found {}", describe(found)))
    }

    /// The object itself, or a shape error.
    pub(crate) fn object<'a>(&self, v: &'a J) -> Result<&'a Obj, DecodeError> {
        v.as_object().ok_or_else(|| DecodeError::Shape {
            at: self.at.clone(),
            message: format!("expected a JSON object, found {}", describe(v)),
        })
    }

    /// An optional nested object (null counts as absent).
    pub(crate) fn opt_object<'a>(
        &self,
        o: &'a Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<&'a Obj>, DecodeError> {
        match o.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(J::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.expected(path, "an object", other)),
        }
    }

    /// An optional string (null counts as absent).
    pub(crate) fn opt_str<'a>(
        &self,
        o: &'a Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<&'a str>, DecodeError> {
        match o.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(J::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.expected(path, "a string", other)),
        }
    }

    /// A required string.
    pub(crate) fn req_str<'a>(
        &self,
        o: &'a Obj,
        key: &str,
        path: &str,
    ) -> Result<&'a str, DecodeError> {
        self.opt_str(o, key, path)?
            .ok_or_else(|| self.missing(path))
    }

    /// An optional integer; numeric strings are accepted (connectors stringify longs).
    pub(crate) fn opt_int(
        &self,
        o: &Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<i64>, DecodeError> {
        match o.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(v @ J::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| self.expected(path, "an integer", v)),
            Some(v @ J::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.expected(path, "an integer", v)),
            Some(other) => Err(self.expected(path, "an integer", other)),
        }
    }

    /// An optional id: a string or an integer, as text.
    pub(crate) fn opt_id(
        &self,
        o: &Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<String>, DecodeError> {
        match o.get(key) {
            None | Some(J::Null) => Ok(None),
            Some(v) => id_text(v)
                .map(Some)
                .ok_or_else(|| self.expected(path, "a non-empty string or an integer", v)),
        }
    }

    /// A required id: a string or an integer, as text.
    pub(crate) fn req_id(&self, o: &Obj, key: &str, path: &str) -> Result<String, DecodeError> {
        self.opt_id(o, key, path)?.ok_or_else(|| self.missing(path))
    }

    /// An optional array of strings (null counts as absent).
    pub(crate) fn opt_strings<'a>(
        &self,
        o: &'a Obj,
        key: &str,
        path: &str,
    ) -> Result<Option<Vec<&'a str>>, DecodeError> {
        let items = match o.get(key) {
            None | Some(J::Null) => return Ok(None),
            Some(J::Array(items)) => items,
            Some(other) => return Err(self.expected(path, "an array of strings", other)),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                J::String(s) => out.push(s.as_str()),
                other => return Err(self.expected(&format!("{path}[{i}]"), "a string", other)),
            }
        }
        Ok(Some(out))
    }
}
