//! Request bodies that may be absent: `POST /functions/{id}/execute` without
//! a body means `{}`, and a trigger takes JSON or a form (an object of
//! strings), or nothing. poem-openapi's own `Json` requires a body and a
//! content type; these extractors document the same media types in the
//! OpenAPI document and parse with the same errors.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::Value;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// How a body is to be read.
enum Body {
    Json(Vec<u8>),
    Form(Vec<u8>),
}

/// The body, or `None` when it is empty. JSON needs no content type; a form
/// is read as one only where `form` is allowed (and `curl -d '{…}'`, which
/// labels JSON as a form, is read as the JSON it is); any other content type
/// is 415.
async fn read(request: &Request, body: &mut RequestBody, form: bool) -> poem::Result<Option<Body>> {
    let bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let media = request.content_type().map(crate::http::media_type);
    match media.as_deref() {
        None => Ok(Some(Body::Json(bytes))),
        Some(m) if m == JSON || (m.starts_with("application/") && m.ends_with("+json")) => {
            Ok(Some(Body::Json(bytes)))
        }
        Some(FORM) if form && bytes.trim_ascii_start().starts_with(b"{") => {
            Ok(Some(Body::Json(bytes)))
        }
        Some(FORM) if form => Ok(Some(Body::Form(bytes))),
        Some(_) => Err(ContentTypeError::NotSupported {
            content_type: request.content_type().unwrap_or_default().to_string(),
        }
        .into()),
    }
}

fn parse_json(bytes: &[u8]) -> poem::Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        ParseRequestPayloadError {
            reason: e.to_string(),
        }
        .into()
    })
}

/// A JSON body that may be omitted.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: JSON,
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let Some(Body::Json(bytes)) = read(request, body, false).await? else {
            return Ok(Self(None));
        };
        let value = parse_json(&bytes)?;
        T::parse_from_json(Some(value))
            .map(|parsed| Self(Some(parsed)))
            .map_err(|e| {
                ParseRequestPayloadError {
                    reason: e.into_message(),
                }
                .into()
            })
    }
}

/// A trigger's input: a JSON body, a form (as an object of strings), or
/// nothing (`None`, which runs as `{}`).
pub struct TriggerInput(pub Option<Value>);

impl<'a> ApiExtractor<'a> for TriggerInput {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        let object = |additional: MetaSchemaRef| {
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                additional_properties: Some(Box::new(additional)),
                ..MetaSchema::new("object")
            }))
        };
        Some(MetaRequest {
            description: Some(
                "The function's input: a JSON object, or a form (each field a string). Empty means {}.",
            ),
            content: vec![
                MetaMediaType {
                    content_type: JSON,
                    schema: object(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY))),
                },
                MetaMediaType {
                    content_type: FORM,
                    schema: object(MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))),
                },
            ],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match read(request, body, true).await? {
            None => Ok(Self(None)),
            Some(Body::Json(bytes)) => parse_json(&bytes).map(|v| Self(Some(v))),
            Some(Body::Form(bytes)) => {
                let fields: std::collections::BTreeMap<String, String> =
                    serde_urlencoded::from_bytes(&bytes).map_err(|e| ParseRequestPayloadError {
                        reason: format!("the form could not be read: {e}"),
                    })?;
                Ok(Self(Some(serde_json::to_value(fields).unwrap_or_default())))
            }
        }
    }
}
