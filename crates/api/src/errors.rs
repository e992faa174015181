//! Extractor error handlers and the catch-all that turns any other error response
//! (unknown route, wrong method, oversize payload, …) into problem+json.

use actix_cors::CorsError;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{ResponseError, web};
use chat_domain::FieldErrors;

use crate::{ApiError, MAX_BODY_BYTES};

/// The field a serde "data" error is about, from its message ("missing field `x`",
/// "unknown field `x`"), or `body` when it names none.
fn serde_field(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body")
        .to_owned()
}

/// Maps a serde_json failure: broken JSON is 400, well-formed JSON of the wrong
/// shape is 422 with the offending field.
pub(crate) fn json_error(err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {err}"),
        ),
        Category::Data => {
            let message = err.to_string();
            let mut errors = FieldErrors::new();
            // Drop serde's " at line 1 column 9" suffix: noise for API clients.
            let text = message.split(" at line ").next().unwrap_or(&message);
            errors.add(&serde_field(text), text);
            ApiError::validation(errors)
        }
    }
}

/// Parses a JSON body: syntax is checked before shape, so a truncated body is a 400
/// even when its first value already has the wrong type.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(syntax) if err.is_data() => json_error(&syntax),
            _ => json_error(&err),
        }
    })
}

/// Raw bodies (the dual JSON/form login): 64 KiB at most.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY_BYTES)
}

/// Query strings that do not parse are a 422 naming the query.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let mut errors = FieldErrors::new();
        errors.add("query", err.to_string());
        ApiError::validation(errors).into()
    })
}

/// A path segment of the wrong type (`/users/abc`) names nothing: 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::not_found(format!("no such resource: {err}")).into()
    })
}

/// Rewrites error responses that are not already problem+json (actix's own plain
/// 404/405/413/500s, refused CORS preflights) into problem+json, keeping their other
/// headers (the `Allow` of a 405, CORS headers).
pub fn error_handlers<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(problemize)
}

fn problemize<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    // A refused CORS preflight says why (the browser shows it in its console).
    let error = match res
        .response()
        .error()
        .and_then(|e| e.as_error::<CorsError>())
    {
        Some(refusal) => ApiError::new(status, "cors_refused", refusal.to_string()),
        None => ApiError::from_status(status),
    };
    let (req, original) = res.into_parts();
    let mut response = error.error_response();
    // Only the body changes: what other layers said stays (the `Allow` of a 405, CORS
    // headers a cross-origin client needs to read the problem, `Vary`).
    let own: Vec<_> = response.headers().keys().cloned().collect();
    for (name, value) in original.headers() {
        if !own.contains(name) && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(serde_field("missing field `password`"), "password");
        assert_eq!(
            serde_field("invalid type: integer `3`, expected a string"),
            "body"
        );
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422() {
        let syntax = serde_json::from_str::<serde_json::Value>("{nope").err();
        assert_eq!(
            syntax.map(|e| json_error(&e).status_code()),
            Some(StatusCode::BAD_REQUEST)
        );
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code, reason = "only deserialized")]
        struct Need {
            x: String,
        }
        let data = serde_json::from_str::<Need>("{}").err();
        assert_eq!(
            data.map(|e| json_error(&e).status_code()),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
    }
}
