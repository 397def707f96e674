//! Attachments of a report: the metadata a report document holds about a photo, recording or
//! document whose bytes live outside it, content-addressed by sha256.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The media types an attachment may have; a schema's attachment field allows some of them.
pub const MEDIA_TYPES: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "audio/mpeg",
    "audio/mp4",
    "application/pdf",
];

/// Largest attachment any schema may allow, in bytes. Phones downscale photos before attaching
/// them; this bounds what one upload may hold in the server's database.
pub const MAX_SIZE: u64 = 20 * 1024 * 1024;

/// One attachment as the report document records it. In the document it is the map under
/// `attachments.<sha256>`; in the projection, one element of the `attachments` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    pub media_type: String,
    /// In bytes.
    pub size: u64,
    /// The file name shown to people, such as `IMG_2041.jpg`.
    pub name: String,
    /// The attachment field it belongs to: a top-level field, or, with `entry`, a log field.
    pub field: String,
    /// The id of the log entry it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// When the photo was taken or the document signed (RFC 3339).
    pub taken_at: String,
    /// Where, as a location field holds it: `{"lat", "lon", "accuracy_m"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Json>,
    /// The user who attached it; the document writes the editor's id here.
    pub attached_by: String,
}

/// Whether `s` is a sha256 the way attachments are keyed: 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
