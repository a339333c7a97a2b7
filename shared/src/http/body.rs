//! Request bodies: JSON, form-encoded and multipart are all read into one field map, as the old
//! service (DRF's parsers) did; anything else is a 415.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde_json::Value;

use crate::domain::fields::{Data, NON_FIELD};
use crate::error::Error;

/// A file part of a multipart body.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub field: String,
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// The parsed request body.
#[derive(Debug, Default, Clone)]
pub struct Payload {
    pub data: Data,
    pub files: Vec<UploadedFile>,
    /// Form-encoded or multipart: an HTML-style form, where an empty value of a nullable field
    /// means null (DRF reads `avatar=` that way).
    pub is_form: bool,
}

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let content_type = req.headers().get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let essence = content_type.as_deref().map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        // Only a multipart body is parsed again as a request: keep its head (a copy of every
        // header and extension, not worth making for the JSON bodies of most requests).
        let (parts, body) = req.into_parts();
        let multipart_head = (essence.as_deref() == Some("multipart/form-data")).then(|| parts.clone());
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::ParseError(rejection.body_text())
            }
        })?;
        // DRF: no content type, or no body, means no data (not an error).
        let (Some(content_type), Some(essence)) = (content_type, essence) else { return Ok(Payload::default()) };
        if bytes.is_empty() {
            return Ok(Payload::default());
        }
        match (essence.as_str(), multipart_head) {
            ("application/json", _) => parse_json(&bytes),
            ("application/x-www-form-urlencoded", _) => parse_form(&bytes),
            ("multipart/form-data", Some(head)) => {
                parse_multipart(Request::from_parts(head, Body::from(bytes)), state).await
            }
            _ => Err(Error::UnsupportedMediaType(content_type)),
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Payload, Error> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| Error::ParseError(format!("JSON parse error - {e}")))?;
    let kind = match value {
        Value::Object(data) => return Ok(Payload { data, ..Payload::default() }),
        Value::Null => return Err(Error::non_field("No data provided")),
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(ref n) if n.is_f64() => "float",
        Value::Number(_) => "int",
    };
    Err(Error::field(NON_FIELD, format!("Invalid data. Expected a dictionary, but got {kind}.")))
}

fn parse_form(bytes: &[u8]) -> Result<Payload, Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|e| Error::ParseError(format!("Form parse error - {e}")))?;
    // Like Django's QueryDict, the last value of a repeated key wins.
    let data = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Ok(Payload { data, files: Vec::new(), is_form: true })
}

async fn parse_multipart<S: Send + Sync>(req: Request, state: &S) -> Result<Payload, Error> {
    let parse_error = |e: String| Error::ParseError(format!("Multipart form parse error - {e}"));
    let mut multipart = Multipart::from_request(req, state).await.map_err(|e| parse_error(e.body_text()))?;
    let mut payload = Payload { is_form: true, ..Payload::default() };
    while let Some(field) = multipart.next_field().await.map_err(|e| parse_error(e.body_text()))? {
        let Some(name) = field.name().map(str::to_string) else { continue };
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| parse_error(e.body_text()))?;
        match file_name {
            Some(file_name) => payload.files.push(UploadedFile { field: name, file_name, content_type, bytes }),
            None => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| parse_error(format!("field {name:?} is not UTF-8")))?;
                payload.data.insert(name, Value::String(text));
            }
        }
    }
    Ok(payload)
}
