//! Query strings parsed into our own errors: unknown or repeated parameters and bad values are
//! answered 400 `bad_request` as problem details, never with axum's plain-text rejection.

use axum::extract::Query;
use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiError;

/// Items a list page holds unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most items a list page holds.
pub const MAX_LIMIT: i64 = 200;

/// The parameters of one request's query string.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses the query string of `uri`, refusing names not in `allowed` and names given twice.
    pub fn parse(uri: &Uri, allowed: &[&str]) -> Result<Params, ApiError> {
        if !uri.query().is_none_or(percent_decodes_to_utf8) {
            return Err(ApiError::BadRequest(
                "the query string does not decode to UTF-8".into(),
            ));
        }
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
        for (i, (name, value)) in pairs.iter().enumerate() {
            // Postgres text cannot hold NUL; no parameter has a use for it.
            if name.contains('\0') || value.contains('\0') {
                return Err(ApiError::BadRequest(
                    "query parameters may not contain NUL".into(),
                ));
            }
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{name}`; known: {}",
                    allowed.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `{name}` is given more than once"
                )));
            }
        }
        Ok(Params(pairs))
    }

    /// The value of `name`; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// `true` or `false`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(ApiError::BadRequest(format!(
                    "`{name}` must be true or false, not {other:?}"
                ))),
            })
            .transpose()
    }

    /// A value that must be one of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        self.get(name)
            .map(|v| {
                if allowed.contains(&v) {
                    Ok(v.to_owned())
                } else {
                    Err(ApiError::BadRequest(format!(
                        "`{name}` must be one of {}, not {v:?}",
                        allowed.join(", ")
                    )))
                }
            })
            .transpose()
    }

    /// A time as unix seconds or RFC 3339.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .or_else(|| gridsync_core::time::parse_rfc3339(v))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`{name}` must be unix seconds or an RFC 3339 time, not {v:?}"
                        ))
                    })
            })
            .transpose()
    }

    /// `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}, not {v:?}"
                    ))
                }),
        }
    }
}

/// Whether `query` percent-decodes to UTF-8. The query parser decodes lossily, which would turn
/// bytes that are no text into U+FFFD and, say, search for that.
fn percent_decodes_to_utf8(query: &str) -> bool {
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                decoded.extend(u8::try_from(high * 16 + low).ok());
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// An opaque list cursor: `parts` joined by newlines, base64url. Newlines cannot occur in ids.
pub fn encode_cursor(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

/// The parts of a cursor made by [`encode_cursor`] with `count` parts.
pub fn decode_cursor(cursor: &str, count: usize) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::BadRequest("`cursor` is not a cursor this list gave out".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if parts.len() == count && !text.contains('\0') {
        Ok(parts)
    } else {
        Err(bad())
    }
}
