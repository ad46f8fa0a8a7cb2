//! The OpenAPI 3 document served at `/openapi.json`, generated from the code: every handler
//! carries a `#[utoipa::path]` annotation next to its code, every request and response type
//! derives its schema, and [`ApiDoc`] lists the handlers, so the document follows the types the
//! handlers really take and answer. Only the multipart forms, which the handlers read field by
//! field, are described by types of their own, beside the handler that parses them.
//! `tests/http.rs` checks the document against the router's table in both directions.

use std::sync::OnceLock;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, Ref, RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::api::{collections, images, jobs, library, search, system};
use crate::assets;
use crate::error::ErrorBody;

pub const TAG_SEARCH: &str = "search";
pub const TAG_IMAGES: &str = "images";
pub const TAG_JOBS: &str = "jobs";
pub const TAG_VECTORS: &str = "vectors";
pub const TAG_SYSTEM: &str = "system";
pub const TAG_PAGE: &str = "page";

const DESCRIPTION: &str = "Search your own pictures by image or by words, and a raw vector API \
    in the spirit of Milvus. Every error is JSON: {\"error\":{\"code\",\"message\"}}. When the \
    server runs with a token, /api/* and /metrics need `Authorization: Bearer TOKEN` (401 \
    otherwise); a Host header that is not this server's gets 421, a cross-site write 403, and a \
    request over a limit 400 naming the configuration key (see SECURITY.md).";

const BEARER: &str = "The token `imgsearch serve` was started with (--token-file, \
    IMGSEARCH_TOKEN or `token`), or the local token it writes to DATA_DIR/server.json for the \
    other commands; not required when none was given, except to start or cancel jobs, which need \
    one of them whenever the server has one.";

/// The document. Every operation needs the bearer token when the server has one and nothing
/// when it has none (hence the empty requirement beside it); the page, its assets, `/healthz`
/// and this document never need it (`security(())` on their operations).
#[derive(OpenApi)]
#[openapi(
    servers((url = "/")),
    tags(
        (name = TAG_SEARCH),
        (name = TAG_IMAGES),
        (name = TAG_JOBS, description = "Background indexing of folders on the server, with \
            progress as Server-Sent Events. Starting and cancelling a job needs a token whenever \
            the server has one (the configured token, or the local one in \
            DATA_DIR/server.json)."),
        (name = TAG_VECTORS, description = "Raw vector API (collections, insert, search, get, \
            delete)."),
        (name = TAG_SYSTEM),
        (name = TAG_PAGE),
    ),
    paths(
        assets::index,
        system::healthz,
        system::metrics,
        system::openapi,
        system::status,
        search::search_get,
        search::search_post,
        images::upload,
        library::by_path,
        images::record,
        images::remove,
        images::thumbnail,
        images::original,
        library::dedup,
        library::page,
        jobs::list,
        jobs::submit_index,
        jobs::get,
        jobs::cancel,
        jobs::events,
        jobs::rescan,
        collections::list,
        collections::create,
        collections::info,
        collections::drop_collection,
        collections::insert,
        collections::search,
        collections::delete_points,
        collections::get_points,
    ),
    components(
        schemas(ErrorBody),
        responses(E400, E401, E403, E404, E409, E413, E415, E422, E500, E503),
    ),
    modifiers(&InfoAndSecurity, &StaticAssets),
    security(("bearer" = []), ()),
)]
pub struct ApiDoc;

/// The document as JSON text, built once: it depends on nothing but the code.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// Title, version and licence of this crate, and the bearer token scheme.
struct InfoAndSecurity;

impl Modify for InfoAndSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info = InfoBuilder::new()
            .title("imgsearch")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(DESCRIPTION))
            .license(Some(
                LicenseBuilder::new()
                    .name(env!("CARGO_PKG_LICENSE"))
                    .build(),
            ))
            .build();
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(BEARER))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The page's static files, one route each, from the same table the router serves them from.
struct StaticAssets;

impl Modify for StaticAssets {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for asset in assets::ASSETS {
            let mime = asset.mime.split(';').next().unwrap_or(asset.mime).trim();
            let text = ObjectBuilder::new().schema_type(Type::String).build();
            let ok = ResponseBuilder::new()
                .description("OK")
                .content(mime, ContentBuilder::new().schema(Some(text)).build())
                .build();
            let op = OperationBuilder::new()
                .tag(TAG_PAGE)
                .summary(Some(asset.summary))
                .operation_id(Some(asset.operation_id))
                .response("200", ok)
                .security(SecurityRequirement::default())
                .build();
            doc.paths
                .add_path_operation(asset.path, vec![HttpMethod::Get], op);
        }
    }
}

/// A string that is one of `values`, with a description and a default.
pub fn string_enum(values: &[&str], description: &str, default: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .default(default.map(Into::into))
        .into()
}

/// Raw bytes (an image), for responses that are files.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// Declares the shared error responses: each a unit type whose `ToResponse` is a JSON
/// [`ErrorBody`] with the given description, referenced by handlers as `response = E400`.
macro_rules! error_responses {
    ($($name:ident: $description:literal,)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let body = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(<ErrorBody as ToSchema>::name())))
                    .build();
                let response = ResponseBuilder::new()
                    .description($description)
                    .content("application/json", body)
                    .build();
                (stringify!($name), response.into())
            }
        }
    )*};
}

error_responses! {
    E400: "Malformed request (bad parameter, bad JSON, wrong dimension, bad multipart).",
    E401: "The server requires a token and the request did not carry it.",
    E403: "The image index's collection is read-only through the vector API.",
    E404: "Unknown image id, collection or file.",
    E409: "Conflict (collection exists).",
    E413: "Body larger than the server's upload limit.",
    E415: "Wrong content type, or an upload that is not an image.",
    E422: "An image that cannot be decoded.",
    E500: "Server fault (details in the server log).",
    E503: "The vector store is unreachable.",
}
