//! Request bodies the way DRF reads them: JSON, form-encoded or multipart, fields checked one by
//! one with DRF's messages, every problem reported at once.
use poem::{
    Request, RequestBody,
    http::{StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaMediaType, MetaRequest, Registry},
    types::Type,
};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use super::error::{ApiError, Code};
use crate::{domain::FieldErrors, state::AppState};

const REQUIRED: &str = "This field is required.";

/// Declares a request body once: each field with its type, how it is read from a JSON or form
/// body (`|f| f.required("name")`) and its value in the OpenAPI example. Expands to the struct
/// (its schema), its `Example` and its `FromFields`.
macro_rules! request_body {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                pub $field:ident : $ty:ty = |$f:ident| $read:expr, example: $example:expr;
            )*
        }
    ) => {
        #[derive(poem_openapi::Object)]
        $(#[$attr])*
        pub struct $name {
            $( $(#[$field_attr])* pub $field: $ty, )*
        }

        impl poem_openapi::types::Example for $name {
            fn example() -> Self {
                Self { $( $field: $example, )* }
            }
        }

        impl $crate::http::body::FromFields for $name {
            fn read(fields: &mut $crate::http::body::Fields) -> Self {
                Self { $( $field: { let $f = &mut *fields; $read }, )* }
            }
        }
    };
}

/// A request body type: its OpenAPI schema comes from `Type`, its parsing from `read`.
pub trait FromFields: Type + Sized {
    fn read(fields: &mut Fields) -> Self;
}

/// Extracts `T` from a JSON or form-encoded body, answering DRF-shaped 400/415 errors.
pub struct Body<T>(pub T);

/// The body's fields, and the errors found while reading them.
pub struct Fields {
    map: Map<String, Value>,
    errors: FieldErrors,
    login_field: &'static str,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: FieldErrors::new(),
            login_field: "username",
        }
    }

    /// The name of the field users log in with (`username` or `email`).
    pub fn login_field(&self) -> &'static str {
        self.login_field
    }

    /// A required, non-blank string, trimmed like DRF's CharField.
    pub fn required(&mut self, name: &str) -> String {
        self.string(name, true, false).unwrap_or_default()
    }

    /// A required string that keeps surrounding spaces (DRF's obtain_auth_token password).
    pub fn required_untrimmed(&mut self, name: &str) -> String {
        match self.map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {
                let s = s.clone();
                self.check_nul(name, &s);
                s
            }
            _ => self.string(name, true, false).unwrap_or_default(),
        }
    }

    /// A required email address, checked like DRF's EmailField.
    pub fn email(&mut self, name: &str) -> String {
        let email = self.required(name);
        for problem in crate::domain::validation::email_errors(&email) {
            self.error::<()>(name, &problem);
        }
        email
    }

    /// An optional string; `None` when absent.
    pub fn optional(&mut self, name: &str, allow_blank: bool) -> Option<String> {
        self.string(name, false, allow_blank)
    }

    fn string(&mut self, name: &str, required: bool, allow_blank: bool) -> Option<String> {
        let text = match self.map.get(name) {
            None => {
                if required {
                    self.error::<()>(name, REQUIRED);
                }
                return None;
            }
            Some(Value::Null) => return self.error(name, "This field may not be null."),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return self.error(name, "Not a valid string."),
        };
        if text.is_empty() && !allow_blank {
            return self.error(name, "This field may not be blank.");
        }
        self.check_nul(name, &text);
        Some(text)
    }

    fn check_nul(&mut self, name: &str, text: &str) {
        if text.contains('\0') {
            self.error::<()>(name, "Null characters are not allowed.");
        }
    }

    fn error<T>(&mut self, name: &str, message: &str) -> Option<T> {
        self.errors
            .entry(name.to_owned())
            .or_default()
            .push(message.to_owned());
        None
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(self.errors))
        }
    }
}

/// Whether `content_type`, without its parameters, is `media` (ASCII case ignored).
fn is_media(content_type: &str, media: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(media)
}

/// Parses a body like DRF's JSONParser / FormParser / MultiPartParser would.
pub async fn parse_body(
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Result<Map<String, Value>, ApiError> {
    match content_type {
        Some(raw) if !bytes.is_empty() && is_media(raw, "multipart/form-data") => {
            // Boxed: its parser's state (2 KB) would otherwise be part of every body's future.
            Box::pin(parse_multipart(raw, bytes)).await
        }
        _ => parse_object(content_type, &bytes),
    }
}

/// The parts of a `multipart/form-data` body (already bounded by the body limit). A file part
/// is kept as a non-string value, so a field expecting text reports "Not a valid string.".
async fn parse_multipart(
    content_type: &str,
    bytes: Vec<u8>,
) -> Result<Map<String, Value>, ApiError> {
    let bad =
        |e: multer::Error| ApiError::parse_error(&format!("Multipart form parse error - {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let stream = futures_util::stream::once(async move {
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes))
    });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut map = Map::new();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        let value = match field.file_name() {
            Some(file) => serde_json::json!({ "file": file }),
            None => Value::String(field.text().await.map_err(bad)?),
        };
        // Like Django's QueryDict.get: the last value of a repeated key wins.
        map.insert(name, value);
    }
    Ok(map)
}

/// Parses a JSON or form-encoded body into a JSON object like DRF's JSONParser / FormParser.
pub fn parse_object(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    // DRF treats an empty body as empty data, whatever the content type says.
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    let raw = content_type.unwrap_or("");
    if is_media(raw, "application/json") {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::parse_error(&format!("JSON parse error - {e}")))?;
        match value {
            Value::Object(map) => Ok(map),
            Value::Null => Err(ApiError::field("non_field_errors", "No data provided")),
            other => Err(ApiError::field(
                "non_field_errors",
                &format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    python_type(&other)
                ),
            )),
        }
    } else if is_media(raw, "application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|_| ApiError::parse_error("Form parse error - invalid form data."))?;
        // Like Django's QueryDict.get: the last value of a repeated key wins.
        Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect())
    } else {
        Err(ApiError::detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            &format!("Unsupported media type \"{raw}\" in request."),
        ))
    }
}

fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

/// Reads at most `limit` bytes; a larger body (declared or streamed) is answered 413.
async fn read_limited(
    request: &Request,
    body: &mut RequestBody,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::payload_too_large;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let Ok(stream) = body.take() else {
        return Ok(Vec::new());
    };
    if declared.is_some() {
        // Bounded by the check above; hyper enforces the declared length.
        return stream
            .into_vec()
            .await
            .map_err(|_| ApiError::parse_error("The request body could not be read."));
    }
    let mut bytes = Vec::new();
    stream
        .into_async_read()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|_| ApiError::parse_error("The request body could not be read."))?;
    if bytes.len() > limit {
        Err(too_large())
    } else {
        Ok(bytes)
    }
}

impl<'a, T: FromFields> ApiExtractor<'a> for Body<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![
                MetaMediaType {
                    content_type: "application/json",
                    schema: T::schema_ref(),
                },
                MetaMediaType {
                    content_type: "application/x-www-form-urlencoded",
                    schema: T::schema_ref(),
                },
                MetaMediaType {
                    content_type: "multipart/form-data",
                    schema: T::schema_ref(),
                },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let limit = request
            .data::<AppState>()
            .map_or(usize::MAX, |s| s.settings.server.body_limit);
        let bytes = read_limited(request, body, limit).await?;
        let mut fields = Fields::new(parse_body(request.content_type(), bytes).await?);
        if let Some(state) = request.data::<AppState>() {
            fields.login_field = state.users.login_field().name();
        }
        let value = T::read(&mut fields);
        fields.finish()?;
        Ok(Body(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(map) => Fields::new(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn drf_messages_for_each_bad_value() {
        let mut f =
            fields(json!({"a": null, "b": "  ", "c": true, "d": 12, "e": " x ", "f": "a\u{0}b"}));
        assert_eq!(f.required("a"), "");
        f.required("b");
        f.required("c");
        assert_eq!(f.required("d"), "12");
        assert_eq!(f.required("e"), "x");
        f.required("f");
        f.required("missing");
        assert_eq!(f.optional("absent", false), None);
        let errors = f.finish().unwrap_err();
        assert_eq!(
            poem::error::ResponseError::status(&errors),
            StatusCode::BAD_REQUEST
        );
        let body: Value = serde_json::from_str(&errors.to_string()[4..]).unwrap();
        assert_eq!(
            body,
            json!({
                "a": ["This field may not be null."],
                "b": ["This field may not be blank."],
                "c": ["Not a valid string."],
                "f": ["Null characters are not allowed."],
                "missing": [REQUIRED],
            })
        );
    }

    #[test]
    fn bodies() {
        assert!(parse_object(Some("text/plain"), b"").unwrap().is_empty());
        let e = parse_object(Some("text/plain"), b"x").unwrap_err();
        assert_eq!(
            poem::error::ResponseError::status(&e),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let e = parse_object(Some("application/json"), b"[1]").unwrap_err();
        assert!(
            e.to_string()
                .contains("Expected a dictionary, but got list.")
        );
        let form = parse_object(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"a=1&b=x+y&a=2",
        )
        .unwrap();
        assert_eq!(form["a"], json!("2"));
        assert_eq!(form["b"], json!("x y"));
    }

    /// Media types are compared without parameters and ASCII case, as DRF's parsers match them;
    /// a type that only starts like a known one is not it.
    #[tokio::test]
    async fn media_types_ignore_case_and_parameters() {
        let json = parse_body(
            Some(" Application/JSON ; charset=UTF-8"),
            b"{\"a\": 1}".to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(json["a"], json!(1));
        let multipart =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--\r\n";
        let parts = parse_body(
            Some("MULTIPART/Form-Data; boundary=XyZ"),
            multipart.to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(parts["a"], json!("x"));
        let e = parse_body(Some("application/jsonx"), b"{}".to_vec())
            .await
            .unwrap_err();
        assert_eq!(
            poem::error::ResponseError::status(&e),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
