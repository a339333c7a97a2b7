//! `GET /api/schema/`: the OpenAPI 3.1 document of the API, generated from the route table, the
//! request field tables and the answer types.
//!
//! The paths and methods come from [`Endpoint`] (every path, every method), so the document
//! cannot drift from the router; each operation's request body is described from the field table
//! the endpoint reads (`domain/requests.rs`), and its answer from the type the handler returns
//! (`http/wire.rs`, whose schemas are derived). [`describe`] only says which table and which type
//! belong to an endpoint and method, and which error statuses it adds. The status codes are the
//! contract's (docs/api.md, per endpoint) plus the ones every operation can give: 401 for a bad
//! `Authorization: Bearer` header (checked on every route), 503 when storage does not answer,
//! and, where a body is read, 400 (unparseable body), 413 (too large) and 415 (another content
//! type).
//!
//! Each route is one operation, at its canonical path (with the trailing slash); the path
//! without the slash answers the same and is listed in the path item's `x-aliases`, so generated
//! clients get one method per route.

use std::borrow::Cow;

use axum::http::Method;
use axum::Json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required, Response, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::fields::{Field, FieldKind};
use crate::domain::requests;
use crate::http::endpoints::Endpoint;
use crate::http::wire;

/// The name of the security scheme (an access token as `Authorization: Bearer <jwt>`).
pub const BEARER: &str = "bearer";

/// The path item extension that lists the other spellings of its path (without the trailing
/// slash), which answer exactly as the canonical one.
pub const ALIASES: &str = "x-aliases";

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";
pub const MULTIPART: &str = "multipart/form-data";
/// Every operation that reads a body accepts each of these, as the old service did.
pub const BODY_CONTENT_TYPES: [&str; 3] = [JSON, FORM, MULTIPART];

/// What one operation (an endpoint and a method) takes and answers.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    pub summary: &'static str,
    /// The fields of the request body (the table the endpoint reads); `None` when it reads no body.
    pub body: Option<&'static [Field]>,
    /// The success status and the type of its body.
    pub ok: (u16, Body),
    /// The answers of this operation beyond the ones every operation can give (see [`statuses`]).
    pub errors: &'static [u16],
}

/// The type of a success body: its schema's name, and how it (with the schemas it uses) joins
/// `components/schemas`.
#[derive(Debug, Clone, Copy)]
pub struct Body {
    name: fn() -> Cow<'static, str>,
    add: fn(ComponentsBuilder) -> ComponentsBuilder,
}

fn body<T: ToSchema>() -> Body {
    Body { name: T::name, add: add_schema::<T> }
}

/// The "body" of a 204 answer: none.
const NO_CONTENT: Body = Body { name: || Cow::Borrowed(""), add: |components| components };

/// `T`'s schema and the ones it refers to.
fn add_schema<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut used = Vec::new();
    T::schemas(&mut used);
    components.schema_from::<T>().schemas_from_iter(used)
}

/// THE description of each operation; `None` for a method the endpoint does not answer.
/// (Exhaustive over [`Endpoint`]: a new endpoint does not compile until it is described.)
pub fn describe(endpoint: Endpoint, method: &Method) -> Option<Description> {
    use Endpoint as E;
    let d = |summary, body, ok, errors| Some(Description { summary, body, ok, errors });
    let get = *method == Method::GET;
    let put = *method == Method::PUT;
    let patch = *method == Method::PATCH;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    match endpoint {
        E::Registration if post => {
            d("Create an account and log in (one new session)", Some(requests::registration::FIELDS), (201, body::<wire::Login>()), &[400, 429])
        }
        E::Login if post => {
            d("Log in: a new session and its token pair", Some(requests::login::FIELDS), (200, body::<wire::Login>()), &[400, 429])
        }
        E::Refresh if post => {
            d(
            "Rotate a refresh token: a new pair of the same session",
            Some(requests::refresh::FIELDS),
            (200, body::<wire::TokenPair>()),
            &[400, 401],
        )
        }
        E::TokenRefresh if post => d(
            "Rotate a refresh token (the library route, with expiration timestamps)",
            Some(requests::refresh::FIELDS),
            (200, body::<wire::TokenPairWithExpiration>()),
            &[400, 401],
        ),
        E::TokenVerify if post => {
            d("Check an access or refresh token", Some(requests::token_verify::FIELDS), (200, body::<wire::Verified>()), &[400, 401])
        }
        E::Logout if post => {
            d("End the session of a refresh token", Some(requests::logout::FIELDS), (200, body::<wire::Message>()), &[400, 401])
        }
        E::UserDetails if get => d("The caller's account details", None, (200, body::<wire::UserDetails>()), &[]),
        E::UserDetails if put => {
            d("Replace the caller's account details", Some(requests::user_details::FIELDS), (200, body::<wire::UserDetails>()), &[400])
        }
        E::UserDetails if patch => {
            d(
            "Change some of the caller's account details",
            Some(requests::user_details::PARTIAL_FIELDS),
            (200, body::<wire::UserDetails>()),
            &[400],
        )
        }
        E::AccountDeletion if delete => d(
            "Delete the caller's account with everything kept of it (sessions, avatar); the current password \
             confirms it, and a wrong one counts as a failed login",
            Some(requests::account_deletion::FIELDS),
            (204, NO_CONTENT),
            &[400, 429],
        ),
        E::Profile if get => d("The caller's profile", None, (200, body::<wire::Profile>()), &[]),
        E::Profile if put || patch => d(
            "Change the caller's profile (PUT is PATCH); a multipart `avatar` file part sets the avatar",
            Some(requests::profile::FIELDS),
            (200, body::<wire::Profile>()),
            &[400],
        ),
        E::AvatarUpload if post => {
            d(
                "A URL to upload an avatar file of `size` bytes to directly (PUT exactly that many bytes, with every header of `headers`)",
                Some(requests::avatar_upload::FIELDS),
                (200, body::<wire::DirectUpload>()),
                &[400],
            )
        }
        E::AvatarConfirm if post => d(
            "Check and process a directly uploaded avatar and make it the caller's",
            Some(requests::avatar_confirm::FIELDS),
            (200, body::<wire::Profile>()),
            &[400],
        ),
        E::PasswordChange if post => d(
            "Change the caller's password (ends the caller's other sessions); a wrong old password counts as a failed login",
            Some(requests::password_change::FIELDS),
            (200, body::<wire::Message>()),
            &[400, 429],
        ),
        E::Sessions if get => d(
            "The caller's sessions (signed-in devices), most recently used first",
            None,
            (200, body::<wire::Sessions>()),
            &[],
        ),
        E::Sessions if delete => d("End every session of the caller's but this one (log out other devices)", None, (204, NO_CONTENT), &[]),
        E::Session if delete => d(
            "End one of the caller's sessions: its tokens are refused at once (another user's or an unknown id: 404)",
            None,
            (204, NO_CONTENT),
            &[404],
        ),
        E::PasswordReset if post => d(
            "E-mail a password reset link (the same answer whether or not the address is known)",
            Some(requests::password_reset::FIELDS),
            (200, body::<wire::Message>()),
            &[400, 429],
        ),
        E::PasswordResetConfirm if post => d(
            "Set a new password with a reset link's uid and token (ends every session)",
            Some(requests::password_reset_confirm::FIELDS),
            (200, body::<wire::Message>()),
            &[400],
        ),
        E::PasswordResetLink if get => {
            d("The target of the reset e-mail's link: echoes uid and token", None, (200, body::<wire::ResetLink>()), &[404])
        }
        E::Jwks if get => {
            d("The public keys that verify the tokens (empty with HS256)", None, (200, body::<JwkSet>()), &[])
        }
        E::Schema if get => d("This OpenAPI document", None, (200, body::<OpenApiDocument>()), &[]),
        _ => None,
    }
}

/// Every status an operation answers, the success one first: its own, plus 401 and 503 (the
/// authentication layer checks a sent Bearer token everywhere, against storage), plus 400, 413
/// and 415 where it reads a body.
pub fn statuses(description: &Description) -> Vec<u16> {
    let mut statuses = vec![description.ok.0, 401, 503];
    if description.body.is_some() {
        statuses.extend([400, 413, 415]);
    }
    statuses.extend(description.errors);
    statuses.sort_unstable();
    statuses.dedup();
    let ok = description.ok.0;
    statuses.retain(|s| *s != ok);
    statuses.insert(0, ok);
    statuses
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut bodies = Vec::new();
    // Web pages are HTML for people, not operations of the API.
    for endpoint in Endpoint::ALL.iter().filter(|e| !e.needs().static_page) {
        let path = endpoint.path();
        let mut item: Option<PathItem> = None;
        for method in endpoint.methods() {
            let Some(description) = describe(*endpoint, method) else { continue };
            bodies.push(description.ok.1);
            let operation_id = format!("{}-{}", endpoint.function(), method.as_str().to_ascii_lowercase());
            let operation = operation(*endpoint, path, &description, operation_id);
            let http_method = http_method(method);
            match item.as_mut() {
                Some(item) => item.merge_operations(PathItem::new(http_method, operation)),
                None => item = Some(PathItem::new(http_method, operation)),
            }
        }
        let Some(mut item) = item else { continue };
        let aliases: Vec<&str> = endpoint.paths().into_iter().filter(|p| *p != path).collect();
        if !aliases.is_empty() {
            item.extensions = Some(ExtensionsBuilder::new().add(ALIASES, aliases).build());
        }
        paths = paths.path(path, item);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("accounts")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The account API: registration, JWT login with rotating refresh tokens, profile with avatar, \
                     password change and reset. Request bodies may be JSON, form-encoded or multipart on every \
                     operation that takes one; every answer is JSON. Every path that ends in `/` also answers \
                     without it, exactly the same (listed under `x-aliases`).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components(&bodies)))
        .build()
}

pub async fn schema() -> Json<OpenApi> {
    Json(document())
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::GET => HttpMethod::Get,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => HttpMethod::Post,
    }
}

fn operation(
    endpoint: Endpoint,
    path: &str,
    description: &Description,
    operation_id: String,
) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .operation_id(Some(operation_id))
        .summary(Some(description.summary))
        .tag(endpoint.function());
    for name in path_parameters(path) {
        builder = builder.parameter(
            ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(
                string().pattern(Some(match name {
                    "uid" => "^[0-9A-Za-z]+$",
                    _ => "^[-:_0-9A-Za-z]+$",
                })),
            )),
        );
    }
    if let Some(fields) = description.body {
        let mut body = RequestBodyBuilder::new().required(Some(if fields.iter().any(|f| f.required) {
            Required::True
        } else {
            Required::False
        }));
        for content_type in BODY_CONTENT_TYPES {
            body = body.content(
                content_type,
                ContentBuilder::new().schema(Some(request_schema(fields, content_type))).build(),
            );
        }
        builder = builder.request_body(Some(body.build()));
    }
    builder = if endpoint.requires_auth() {
        builder.security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
    } else {
        // Anonymous, or with a token (which must then be valid).
        builder
            .securities(Some([SecurityRequirement::default(), SecurityRequirement::new(BEARER, Vec::<String>::new())]))
    };
    let mut responses = ResponsesBuilder::new();
    for status in statuses(description) {
        let response: RefOr<Response> = if status == 204 {
            ResponseBuilder::new().description(success_description(status)).build().into()
        } else if status == description.ok.0 {
            ResponseBuilder::new()
                .description(success_description(status))
                .content(JSON, ContentBuilder::new().schema(Some(schema_ref(&(description.ok.1.name)()))).build())
                .build()
                .into()
        } else {
            Ref::from_response_name(error_response_name(status)).into()
        };
        responses = responses.response(status.to_string(), response);
    }
    builder.responses(responses.build()).build()
}

/// The `{name}` segments of a path.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn success_description(status: u16) -> &'static str {
    match status {
        201 => "Created",
        204 => "No Content",
        _ => "OK",
    }
}

/// The name (under `components/responses`) of each error answer.
fn error_response_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        404 => "NotFound",
        413 => "PayloadTooLarge",
        415 => "UnsupportedMediaType",
        429 => "Throttled",
        503 => "Unavailable",
        other => panic!("no error response is described for status {other}"),
    }
}

/// The error answers: (status, description, body schema, headers).
const ERROR_RESPONSES: &[(u16, &str, &str, &[&str])] = &[
    (400, "Invalid input: a field-error map, or `detail` for an unparseable body", "BadRequest", &[]),
    (
        401,
        "Missing or refused credentials: no or a bad Bearer token where one is needed (a bad one is refused \
         everywhere), or an invalid, expired or blacklisted token in the body",
        "Detail",
        &["WWW-Authenticate"],
    ),
    (404, "Not found", "Detail", &[]),
    (413, "The request body is larger than `MAX_BODY_BYTES`", "Detail", &[]),
    (415, "The body is neither JSON, form-encoded nor multipart", "Detail", &[]),
    (429, "Over a throttling limit", "Detail", &["Retry-After"]),
    (503, "Storage did not answer, or too many password checks are waiting; retry", "Detail", &["Retry-After"]),
];

/// The security scheme, the error answers, and the schemas of every body.
fn components(bodies: &[Body]) -> utoipa::openapi::Components {
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("An access token from login, registration or refresh"))
                .build(),
        ),
    );
    for (status, description, schema, headers) in ERROR_RESPONSES {
        let mut response = ResponseBuilder::new()
            .description(*description)
            .content(JSON, ContentBuilder::new().schema(Some(schema_ref(schema))).build());
        for header in *headers {
            let schema: RefOr<Schema> = if *header == "Retry-After" {
                ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).into()
            } else {
                string().into()
            };
            response = response.header(*header, HeaderBuilder::new().schema(Some(schema)).build());
        }
        components = components.response(error_response_name(*status), response.build());
    }
    components = add_schema::<wire::FieldErrors>(add_schema::<wire::Detail>(components)).schema(
        "BadRequest",
        AnyOfBuilder::new().item(schema_ref(&wire::FieldErrors::name())).item(schema_ref(&wire::Detail::name())),
    );
    for body in bodies {
        components = (body.add)(components);
    }
    let mut components = components.build();
    // An answer is exactly the keys of its type: objects that do not say otherwise are closed.
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::Object(object)) = schema {
            if object.additional_properties.is_none() && object.schema_type == Type::Object.into() {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    components
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// The body schema of a request with these fields, as sent with `content_type`.
fn request_schema(fields: &[Field], content_type: &str) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for field in fields {
        let schema: RefOr<Schema> = match (field.kind, content_type) {
            (FieldKind::Text, _) if field.allow_blank => string().max_length(field.max_length).into(),
            // Surrounding white space is trimmed first, so blank means "no visible character".
            (FieldKind::Text, _) => {
                string().max_length(field.max_length).min_length(Some(1)).pattern(Some("\\S")).into()
            }
            (FieldKind::Integer { min }, _) => {
                integer().minimum(Some(min)).description(Some("The upper bound is a server setting")).into()
            }
            (FieldKind::File, JSON) => ObjectBuilder::new()
                .schema_type(Type::Null)
                .description(Some("`null` clears the avatar (a string is refused)"))
                .into(),
            // A file part (`format: binary` is what most tools recognise, `contentMediaType` is 3.1's way).
            (FieldKind::File, MULTIPART) => string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .content_media_type("application/octet-stream")
                .description(Some("A PNG, JPEG, GIF or WebP file part"))
                .into(),
            (FieldKind::File, _) => string().max_length(Some(0)).description(Some("Empty: clears the avatar")).into(),
        };
        object = object.property(field.name, schema);
        if field.required {
            object = object.required(field.name);
        }
    }
    object.into()
}

/// The JWKS body: jsonwebtoken's `JwkSet` (RFC 7517), a type of another crate, described here.
struct JwkSet;

impl PartialSchema for JwkSet {
    fn schema() -> RefOr<Schema> {
        let key = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("kty", string())
            .required("kty")
            .property("crv", string())
            .property("x", string())
            .property("alg", string())
            .property("kid", string())
            .property("use", string());
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("keys", ArrayBuilder::new().items(key))
            .required("keys")
            .into()
    }
}

impl ToSchema for JwkSet {}

/// This document's own body (utoipa's `OpenApi`): only its required top-level keys are promised.
struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("openapi", string().pattern(Some("^3\\.1\\.")))
            .required("openapi")
            .property("info", ObjectBuilder::new().schema_type(Type::Object))
            .required("info")
            .property("paths", ObjectBuilder::new().schema_type(Type::Object))
            .required("paths")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for OpenApiDocument {}
