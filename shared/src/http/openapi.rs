//! `GET /api/schema/`: the OpenAPI 3.1 document of the API, generated from the route table.
//!
//! The paths and methods come from [`Endpoint`] (every spelling of every path, every method), so
//! the document cannot drift from the router; what each operation takes and answers is described
//! here, in [`describe`], one entry per endpoint and method. The status codes are the contract's
//! (docs/api.md, per endpoint) plus the ones every operation can give: 401 for a bad `Authorization: Bearer`
//! header (checked on every route), 503 when storage does not answer, and, where a body is read,
//! 400 (unparseable body), 413 (too large) and 415 (another content type).

use axum::http::Method;
use axum::Json;
use utoipa::openapi::content::ContentBuilder;
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

use crate::http::routes::Endpoint;

/// The name of the security scheme (an access token as `Authorization: Bearer <jwt>`).
pub const BEARER: &str = "bearer";

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";
pub const MULTIPART: &str = "multipart/form-data";
/// Every operation that reads a body accepts each of these, as the old service did.
pub const BODY_CONTENT_TYPES: [&str; 3] = [JSON, FORM, MULTIPART];

/// What one operation (an endpoint and a method) takes and answers.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    pub summary: &'static str,
    /// The fields of the request body; `None` when the operation reads no body.
    pub body: Option<&'static [Field]>,
    /// The success status and the name of its body's schema (under `components/schemas`).
    pub ok: (u16, &'static str),
    /// The answers of this operation beyond the ones every operation can give (see [`statuses`]).
    pub errors: &'static [u16],
}

/// A field of a request body.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub kind: FieldKind,
}

#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// A string, at most this many characters when bounded.
    Text(Option<usize>),
    /// A byte count (at least 1).
    Bytes,
    /// The profile's avatar: `null` in JSON and an empty value in a form clear it; a file part
    /// of a multipart body sets it.
    Avatar,
}

const fn text(name: &'static str, required: bool) -> Field {
    Field { name, required, kind: FieldKind::Text(None) }
}

const fn bounded(name: &'static str, required: bool, max: usize) -> Field {
    Field { name, required, kind: FieldKind::Text(Some(max)) }
}

const REGISTRATION: &[Field] = &[
    bounded("username", true, 150),
    text("email", false),
    text("password1", true),
    text("password2", true),
];
const LOGIN: &[Field] = &[text("username", false), text("email", false), text("password", true)];
const REFRESH: &[Field] = &[text("refresh", true)];
const VERIFY: &[Field] = &[text("token", true)];
const USER_DETAILS_PUT: &[Field] =
    &[bounded("username", true, 150), bounded("first_name", false, 150), bounded("last_name", false, 150)];
const USER_DETAILS_PATCH: &[Field] =
    &[bounded("username", false, 150), bounded("first_name", false, 150), bounded("last_name", false, 150)];
const PROFILE: &[Field] = &[
    bounded("nickname", false, 50),
    bounded("signature", false, 255),
    Field { name: "avatar", required: false, kind: FieldKind::Avatar },
];
const AVATAR_UPLOAD: &[Field] = &[Field { name: "size", required: true, kind: FieldKind::Bytes }];
const AVATAR_CONFIRM: &[Field] = &[text("upload_id", true)];
const PASSWORD_CHANGE: &[Field] = &[text("old_password", true), text("new_password1", true), text("new_password2", true)];
const PASSWORD_RESET: &[Field] = &[text("email", true)];
const PASSWORD_RESET_CONFIRM: &[Field] =
    &[text("uid", true), text("token", true), text("new_password1", true), text("new_password2", true)];

/// THE description of each operation; `None` for a method the endpoint does not answer.
/// (Exhaustive over [`Endpoint`]: a new endpoint does not compile until it is described.)
pub fn describe(endpoint: Endpoint, method: &Method) -> Option<Description> {
    use Endpoint as E;
    let d = |summary, body, ok, errors| Some(Description { summary, body, ok, errors });
    let get = *method == Method::GET;
    let put = *method == Method::PUT;
    let patch = *method == Method::PATCH;
    let post = *method == Method::POST;
    match endpoint {
        E::Registration if post => {
            d("Create an account and log in (one new session)", Some(REGISTRATION), (201, "Login"), &[400, 429])
        }
        E::Login if post => d("Log in: a new session and its token pair", Some(LOGIN), (200, "Login"), &[400, 429]),
        E::Refresh if post => {
            d("Rotate a refresh token: a new pair of the same session", Some(REFRESH), (200, "TokenPair"), &[400, 401])
        }
        E::TokenRefresh if post => d(
            "Rotate a refresh token (the library route, with expiration timestamps)",
            Some(REFRESH),
            (200, "TokenPairWithExpiration"),
            &[400, 401],
        ),
        E::TokenVerify if post => {
            d("Check an access or refresh token", Some(VERIFY), (200, "Verified"), &[400, 401])
        }
        E::Logout if post => d("End the session of a refresh token", Some(REFRESH), (200, "Message"), &[400, 401]),
        E::UserDetails if get => d("The caller's account details", None, (200, "UserDetails"), &[]),
        E::UserDetails if put => {
            d("Replace the caller's account details", Some(USER_DETAILS_PUT), (200, "UserDetails"), &[400])
        }
        E::UserDetails if patch => {
            d("Change some of the caller's account details", Some(USER_DETAILS_PATCH), (200, "UserDetails"), &[400])
        }
        E::Profile if get => d("The caller's profile", None, (200, "Profile"), &[]),
        E::Profile if put || patch => d(
            "Change the caller's profile (PUT is PATCH); a multipart `avatar` file part sets the avatar",
            Some(PROFILE),
            (200, "Profile"),
            &[400],
        ),
        E::AvatarUpload if post => {
            d(
                "A URL to upload an avatar file of `size` bytes to directly (PUT exactly that many bytes, with every header of `headers`)",
                Some(AVATAR_UPLOAD),
                (200, "DirectUpload"),
                &[400],
            )
        }
        E::AvatarConfirm if post => d(
            "Check and process a directly uploaded avatar and make it the caller's",
            Some(AVATAR_CONFIRM),
            (200, "Profile"),
            &[400],
        ),
        E::PasswordChange if post => d(
            "Change the caller's password (ends the caller's other sessions); a wrong old password counts as a failed login",
            Some(PASSWORD_CHANGE),
            (200, "Message"),
            &[400, 429],
        ),
        E::PasswordReset if post => d(
            "E-mail a password reset link (the same answer whether or not the address is known)",
            Some(PASSWORD_RESET),
            (200, "Message"),
            &[400, 429],
        ),
        E::PasswordResetConfirm if post => d(
            "Set a new password with a reset link's uid and token (ends every session)",
            Some(PASSWORD_RESET_CONFIRM),
            (200, "Message"),
            &[400],
        ),
        E::PasswordResetLink if get => {
            d("The target of the reset e-mail's link: echoes uid and token", None, (200, "ResetLink"), &[404])
        }
        E::Jwks if get => d("The public keys that verify the tokens (empty with HS256)", None, (200, "JwkSet"), &[]),
        E::Schema if get => d("This OpenAPI document", None, (200, "OpenApiDocument"), &[]),
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
    for endpoint in Endpoint::ALL {
        for (index, path) in endpoint.paths().into_iter().enumerate() {
            let mut item: Option<PathItem> = None;
            for method in endpoint.methods() {
                let Some(description) = describe(*endpoint, method) else { continue };
                let spelling = if index == 0 { "" } else { "-no-slash" };
                let operation_id = format!("{}-{}{spelling}", endpoint.function(), method.as_str().to_ascii_lowercase());
                let operation = operation(*endpoint, path, &description, operation_id);
                let http_method = http_method(method);
                match item.as_mut() {
                    Some(item) => item.merge_operations(PathItem::new(http_method, operation)),
                    None => item = Some(PathItem::new(http_method, operation)),
                }
            }
            if let Some(item) = item {
                paths = paths.path(path, item);
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("accounts")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The account API: registration, JWT login with rotating refresh tokens, profile with avatar, \
                     password change and reset. Request bodies may be JSON, form-encoded or multipart on every \
                     operation that takes one; every answer is JSON.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
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
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string().pattern(Some(match name {
                    "uid" => "^[0-9A-Za-z]+$",
                    _ => "^[-:_0-9A-Za-z]+$",
                })))),
        );
    }
    if let Some(fields) = description.body {
        let mut body = RequestBodyBuilder::new().required(Some(if fields.iter().any(|f| f.required) {
            Required::True
        } else {
            Required::False
        }));
        for content_type in BODY_CONTENT_TYPES {
            body = body.content(content_type, ContentBuilder::new().schema(Some(request_schema(fields, content_type))).build());
        }
        builder = builder.request_body(Some(body.build()));
    }
    builder = if endpoint.requires_auth() {
        builder.security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
    } else {
        // Anonymous, or with a token (which must then be valid).
        builder.securities(Some([SecurityRequirement::default(), SecurityRequirement::new(BEARER, Vec::<String>::new())]))
    };
    let mut responses = ResponsesBuilder::new();
    for status in statuses(description) {
        let response: RefOr<Response> = if status == description.ok.0 {
            ResponseBuilder::new()
                .description(success_description(status))
                .content(JSON, ContentBuilder::new().schema(Some(schema_ref(description.ok.1))).build())
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
    if status == 201 {
        "Created"
    } else {
        "OK"
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

fn components() -> utoipa::openapi::Components {
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
        let mut response =
            ResponseBuilder::new().description(*description).content(JSON, ContentBuilder::new().schema(Some(schema_ref(schema))).build());
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
    for (name, schema) in schemas() {
        components = components.schema(name, schema);
    }
    components.build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

fn jwt() -> ObjectBuilder {
    string().pattern(Some("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"))
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// An object with exactly these keys, all present.
fn exact(properties: Vec<(&str, RefOr<Schema>)>) -> Schema {
    let mut object = ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, schema) in properties {
        object = object.property(name, schema).required(name);
    }
    object.into()
}

/// The body schema of a request with these fields, as sent with `content_type`.
fn request_schema(fields: &[Field], content_type: &str) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for field in fields {
        let schema: RefOr<Schema> = match (field.kind, content_type) {
            (FieldKind::Text(max), _) => string().max_length(max).into(),
            (FieldKind::Bytes, _) => integer().minimum(Some(1)).into(),
            (FieldKind::Avatar, JSON) => ObjectBuilder::new()
                .schema_type(Type::Null)
                .description(Some("`null` clears the avatar (a string is refused)"))
                .into(),
            // A file part (`format: binary` is what most tools recognise, `contentMediaType` is 3.1's way).
            (FieldKind::Avatar, MULTIPART) => string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .content_media_type("application/octet-stream")
                .description(Some("A PNG, JPEG, GIF or WebP file part"))
                .into(),
            (FieldKind::Avatar, _) => string().max_length(Some(0)).description(Some("Empty: clears the avatar")).into(),
        };
        object = object.property(field.name, schema);
        if field.required {
            object = object.required(field.name);
        }
    }
    object.into()
}

/// The bodies of the answers, by name.
fn schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let s = |schema: Schema| RefOr::T(schema);
    let nullable_uri = ObjectBuilder::new()
        .schema_type([Type::String, Type::Null].into_iter().collect::<utoipa::openapi::schema::SchemaType>())
        .format(Some(SchemaFormat::Custom("uri".into())));
    let date_time = || string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    vec![
        (
            "Detail",
            s(ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("detail", string())
                .required("detail")
                .property("code", string())
                .property("messages", ArrayBuilder::new().items(schema_ref("TokenMessage")))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .description(Some("An error that is not about one field (simplejwt adds `code` and `messages`)"))
                .into()),
        ),
        (
            "TokenMessage",
            s(exact(vec![
                ("token_class", string().into()),
                ("token_type", string().into()),
                ("message", string().into()),
            ])),
        ),
        (
            "FieldErrors",
            s(ObjectBuilder::new()
                .schema_type(Type::Object)
                .min_properties(Some(1))
                .additional_properties(Some(ArrayBuilder::new().items(string()).min_items(Some(1))))
                .description(Some("Messages by field; errors of no one field under `non_field_errors`"))
                .into()),
        ),
        (
            "BadRequest",
            s(AnyOfBuilder::new().item(schema_ref("FieldErrors")).item(schema_ref("Detail")).into()),
        ),
        ("Message", s(exact(vec![("detail", string().into())]))),
        ("Verified", s(exact(vec![]))),
        ("TokenPair", s(exact(vec![("access", jwt().into()), ("refresh", jwt().into())]))),
        (
            "TokenPairWithExpiration",
            s(exact(vec![
                ("access", jwt().into()),
                ("refresh", jwt().into()),
                ("access_expiration", date_time().into()),
                ("refresh_expiration", date_time().into()),
            ])),
        ),
        (
            "UserDetails",
            s(exact(vec![
                ("pk", integer().minimum(Some(1)).into()),
                ("username", string().into()),
                ("email", string().into()),
                ("first_name", string().into()),
                ("last_name", string().into()),
            ])),
        ),
        (
            "Login",
            s(exact(vec![("access", jwt().into()), ("refresh", jwt().into()), ("user", schema_ref("UserDetails"))])),
        ),
        (
            "Profile",
            s(exact(vec![
                ("id", integer().minimum(Some(1)).into()),
                ("username", string().into()),
                ("email", string().into()),
                ("nickname", string().into()),
                ("signature", string().into()),
                ("avatar", nullable_uri.into()),
            ])),
        ),
        (
            "DirectUpload",
            s(exact(vec![
                ("upload_id", string().pattern(Some("^[0-9a-f]{32}$")).into()),
                ("upload_url", string().format(Some(SchemaFormat::Custom("uri".into()))).into()),
                ("method", string().into()),
                ("headers", ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(string())).into()),
                ("expires_in", integer().minimum(Some(1)).into()),
                ("max_bytes", integer().minimum(Some(1)).into()),
                ("size", integer().minimum(Some(1)).into()),
            ])),
        ),
        ("ResetLink", s(exact(vec![("uid", string().into()), ("token", string().into())]))),
        (
            "JwkSet",
            s(exact(vec![(
                "keys",
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .property("kty", string())
                            .required("kty")
                            .property("crv", string())
                            .property("x", string())
                            .property("alg", string())
                            .property("kid", string())
                            .property("use", string()),
                    )
                    .into(),
            )])),
        ),
        (
            "OpenApiDocument",
            s(ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("openapi", string().pattern(Some("^3\\.1\\.")))
                .required("openapi")
                .property("info", ObjectBuilder::new().schema_type(Type::Object))
                .required("info")
                .property("paths", ObjectBuilder::new().schema_type(Type::Object))
                .required("paths")
                .into()),
        ),
    ]
}
