//! Request fields the way the old service (Django REST framework) reads them, with its messages.
//!
//! A request body becomes a [`Data`] map, whatever its encoding (JSON, form, multipart); each
//! endpoint reads its fields through the [`Field`]s of its table in `domain/requests.rs` (which
//! the OpenAPI document describes too) and gathers every failure in [`FieldErrors`], so all
//! failing fields are reported together.

use serde_json::{Map, Value};

/// The fields of a request body.
pub type Data = Map<String, Value>;

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const INVALID_EMAIL: &str = "Enter a valid email address.";
pub const NON_FIELD: &str = "non_field_errors";

/// Field name → messages, in the order they were found (the JSON error body of a 400).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_string()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(message.into()));
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing failed.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn to_map(&self) -> Map<String, Value> {
        self.0.clone()
    }

    pub fn messages(&self, field: &str) -> Vec<&str> {
        match self.0.get(field) {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A DRF `CharField`: a string (a number is taken as its text), trimmed.
    Text,
    /// A DRF `IntegerField` of at least `min` (its upper bound is a setting, known at run time).
    Integer { min: i64 },
    /// A file part of a multipart body; `null` in JSON and an empty value in a form clear it.
    File,
}

/// A field of a request body: its name, kind, and the bounds the endpoint checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    pub allow_blank: bool,
    pub max_length: Option<usize>,
}

impl Field {
    /// A required text field.
    pub const fn required(name: &'static str) -> Self {
        Self { name, kind: FieldKind::Text, required: true, allow_blank: false, max_length: None }
    }

    /// An optional text field (blank allowed, as DRF's `required=False, allow_blank=True`).
    pub const fn optional(name: &'static str) -> Self {
        Self { name, kind: FieldKind::Text, required: false, allow_blank: true, max_length: None }
    }

    /// A required whole number of at least `min`.
    pub const fn integer(name: &'static str, min: i64) -> Self {
        Self { kind: FieldKind::Integer { min }, ..Self::required(name) }
    }

    /// An optional file.
    pub const fn file(name: &'static str) -> Self {
        Self { kind: FieldKind::File, ..Self::optional(name) }
    }

    pub const fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    pub const fn allow_blank(mut self, allow: bool) -> Self {
        self.allow_blank = allow;
        self
    }

    /// The same field where it may be left out (DRF's `partial=True`: a PATCH).
    pub const fn partial(mut self) -> Self {
        self.required = false;
        self
    }

    /// A text field's cleaned value, as DRF's `CharField` reads it; `None` when it is absent or
    /// invalid (the failure is in `errors`).
    pub fn read(&self, data: &Data, errors: &mut FieldErrors) -> Option<String> {
        debug_assert_eq!(self.kind, FieldKind::Text, "{} is not a text field", self.name);
        let text = match data.get(self.name) {
            None => {
                if self.required {
                    errors.add(self.name, REQUIRED);
                }
                return None;
            }
            Some(Value::Null) => {
                errors.add(self.name, NULL);
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                errors.add(self.name, NOT_A_STRING);
                return None;
            }
        };
        // DRF trims surrounding white space before anything else (passwords included).
        let text = text.trim().to_string();
        if text.is_empty() && !self.allow_blank {
            errors.add(self.name, BLANK);
            return None;
        }
        if let Some(max) = self.max_length {
            if text.chars().count() > max {
                errors.add(self.name, format!("Ensure this field has no more than {max} characters."));
                return None;
            }
        }
        Some(text)
    }
}

/// Django's `EmailValidator`, close enough for the contract: a dot-atom local part and a domain
/// of dot-separated labels ending in a TLD (or `localhost`), 320 characters at most.
pub fn is_valid_email(email: &str) -> bool {
    if email.chars().count() > 320 || !email_address::EmailAddress::is_valid(email) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty() && local.split('.').all(|part| !part.is_empty() && part.chars().all(atom));
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let domain_ok = domain == "localhost"
        || (domain.contains('.') && domain.split('.').all(label_ok) && {
            let tld = domain.rsplit('.').next().unwrap_or("");
            tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit())
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Data {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn text_fields_read_like_drf_char_fields() {
        let d = data(json!({"a": "  x  ", "n": 12, "b": true, "z": null, "e": " ", "l": "你好世界"}));
        let mut errors = FieldErrors::new();
        assert_eq!(Field::required("a").read(&d, &mut errors).as_deref(), Some("x"));
        assert_eq!(Field::required("n").read(&d, &mut errors).as_deref(), Some("12"));
        assert_eq!(Field::required("b").read(&d, &mut errors), None);
        assert_eq!(Field::required("z").read(&d, &mut errors), None);
        assert_eq!(Field::required("e").read(&d, &mut errors), None);
        assert_eq!(Field::optional("e").read(&d, &mut errors).as_deref(), Some(""));
        assert_eq!(Field::required("missing").read(&d, &mut errors), None);
        assert_eq!(Field::optional("gone").read(&d, &mut errors), None);
        assert_eq!(Field::optional("l").max_length(3).read(&d, &mut errors), None);
        assert_eq!(Field::optional("l").max_length(4).read(&d, &mut errors).as_deref(), Some("你好世界"));
        assert_eq!(
            errors.to_json(),
            json!({
                "b": [NOT_A_STRING], "z": [NULL], "e": [BLANK], "missing": [REQUIRED],
                "l": ["Ensure this field has no more than 3 characters."]
            })
        );
    }

    #[test]
    fn emails_like_django() {
        for ok in ["a@b.co", "P.One@Example.COM", "x+tag@sub.example.org", "a@localhost", "yonghu@例子.广告"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in ["a@b", "bad", "@x.com", "a@.com", "a..b@x.com", "a@x.1", "a b@x.com", "a@-x.com", ""] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
