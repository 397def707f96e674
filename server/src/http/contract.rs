//! What the operations of the OpenAPI document share, added after the routes are collected:
//! the answers any of them can give (so no handler's annotation can forget one), and the
//! constraints of the parameters several of them take, from the constants their parsing uses.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
use utoipa::openapi::{
    Content, ObjectBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use serde_json::json;

use super::error::PROBLEM_JSON;
use super::org::MAX_ID_LEN;
use super::query::{DEFAULT_LIMIT, MAX_LIMIT};
use super::reports::REVIEW_STATES;
use crate::stats::Group;
use crate::store::HeldState;

/// A status the server can answer to many operations, and when it applies.
struct Shared {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    applies: fn(&Operation) -> bool,
}

const SHARED: [Shared; 5] = [
    Shared {
        status: "400",
        name: "BadRequest",
        description: "a malformed parameter, path or body (`bad_request`)",
        applies: |op| {
            op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty())
        },
    },
    Shared {
        status: "401",
        name: "Unauthenticated",
        description: "no bearer token, or one that is expired, forged, of an ended session, of a \
                      revoked device or of a disabled account (`code` tells which)",
        applies: |op| op.security.as_ref().is_some_and(|s| !s.is_empty()),
    },
    Shared {
        status: "413",
        name: "PayloadTooLarge",
        description: "the body is over the limit of this operation (`payload_too_large`)",
        applies: |op| op.request_body.is_some(),
    },
    Shared {
        status: "415",
        name: "UnsupportedMediaType",
        description: "a body of another media type than documented, or with a `Content-Encoding` \
                      (`unsupported_media_type`, `unsupported_encoding`)",
        applies: |op| op.request_body.is_some(),
    },
    Shared {
        status: "503",
        name: "Unavailable",
        description: "the database is out of reach, read-only or full, or the write collided \
                      with another (`database_unavailable`, `storage_read_only`, \
                      `storage_full`, `write_conflict`, ...); retry after `Retry-After` seconds",
        applies: |_| true,
    },
];

/// Adds the shared answers to every operation that lacks them, as references to one response
/// each under `components.responses`, and the constraints of shared parameters. `kinds` are
/// the report kinds the server knows.
pub fn complete(doc: &mut OpenApi, kinds: &[&str]) {
    let components = doc.components.get_or_insert_with(Default::default);
    for shared in &SHARED {
        components
            .responses
            .insert(shared.name.to_owned(), RefOr::T(problem(shared)));
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let applying: Vec<&Shared> = SHARED.iter().filter(|s| (s.applies)(op)).collect();
            for shared in applying {
                op.responses
                    .responses
                    .entry(shared.status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(shared.name)));
            }
            for param in op.parameters.iter_mut().flatten() {
                let is_string = matches!(&param.schema,
                    Some(RefOr::T(Schema::Object(o))) if o.schema_type == Type::String.into());
                if let Some(schema) = parameter_schema(&param.name, is_string, kinds) {
                    param.schema = Some(schema);
                }
            }
        }
    }
}

/// The schema of a parameter that several operations take under the same name, when its
/// values are constrained. `from` and `to` are dates where they are strings (statistics,
/// ledgers) and Unix seconds elsewhere (the audit log).
fn parameter_schema(name: &str, is_string: bool, kinds: &[&str]) -> Option<RefOr<Schema>> {
    let schema = match name {
        "kind" => json!({ "type": "string", "enum": kinds, "examples": ["dispute_check"] }),
        "org" => json!({
            "type": "string",
            "pattern": format!("^[a-z0-9-]{{1,{MAX_ID_LEN}}}$"),
            "description": "org unit id",
            "examples": ["qingshan"],
        }),
        "limit" => json!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
            "examples": [DEFAULT_LIMIT],
        }),
        "cursor" => json!({ "type": "string", "minLength": 1 }),
        "from" | "to" if is_string => {
            json!({ "type": "string", "format": "date", "examples": ["2026-11-01"] })
        }
        "sha256" => json!({
            "type": "string",
            "pattern": "^[0-9a-fA-F]{64}$",
            "examples": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        }),
        "format" => json!({ "type": "string", "enum": ["xlsx", "csv"], "default": "xlsx" }),
        "lang" => json!({ "type": "string", "enum": ["zh", "en"], "default": "zh" }),
        "part" => json!({ "type": "string", "enum": ["reports", "log"], "default": "reports" }),
        "group" => json!({ "type": "string", "enum": Group::NAMES }),
        "state" => json!({ "type": "string", "enum": HeldState::NAMES, "default": "held" }),
        "review_state" => json!({ "type": "string", "enum": REVIEW_STATES }),
        _ => return None,
    };
    serde_json::from_value(schema).ok()
}

fn problem(shared: &Shared) -> Response {
    let mut response = ResponseBuilder::new()
        .description(shared.description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        );
    if shared.status == "503" {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("seconds to wait before retrying"))
                .build(),
        );
    }
    response.build()
}

/// Opaque bytes in a body, a sync frame, an attachment or a thumbnail, as the OpenAPI document
/// names them: a binary string, not an array of integers. Handlers take and give `Bytes`.
pub enum Binary {}

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}
