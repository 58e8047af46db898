//! The AI gateway's endpoints in OpenAI's wire format, as Keygate reads them.
//!
//! Keygate reads a few fields of a request — `model`, to pick a provider, and what bounds the
//! answer, to reserve its worst case against the key's budgets before the request is sent —
//! and forwards the body to the provider otherwise as it is; the provider checks the rest.
//! So the request schemas constrain exactly what Keygate checks and describe the rest of
//! OpenAI's format in words, and every other field is allowed. Answers are the provider's,
//! passed through, except `GET /v1/models`, which Keygate writes.
//!
//! The request schemas are written as JSON (some constrain a field only when it has a given
//! type, which no derive can say) and attached to the Rust types, which clients may use to
//! build requests.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{Object, Schema, SchemaType};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    /// OpenAI's messages (`role`, `content`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Value>,
    #[serde(flatten)]
    pub bounds: OutputBounds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Every other field, forwarded as it is.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string, an array of strings, an array of token ids or an array of token-id arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    #[serde(flatten)]
    pub bounds: OutputBounds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Every other field, forwarded as it is.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    /// What to embed: a string, an array of strings, of token ids or of token-id arrays.
    pub input: Value,
    /// Every other field, forwarded as it is.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// What bounds the size of an answer (chat and completions), each at least 1 when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<u64>,
}

// Fields in the order the server has always written them (alphabetical).
/// Every model the configured providers serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"data": [{"created": 0, "id": "gpt-4o-mini", "object": "model", "owned_by": "openai"}], "object": "list"}))]
pub struct ModelList {
    pub data: Vec<Model>,
    pub object: ListObject,
}

/// One model, named as a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    /// Always 0: Keygate does not know when a provider made the model.
    #[schema(minimum = 0, maximum = 0)]
    pub created: u64,
    pub id: String,
    pub object: ModelObject,
    /// The first configured provider that serves it.
    pub owned_by: String,
}

/// `"list"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListObject {
    List,
}

/// `"model"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelObject {
    Model,
}

/// A schema written as the JSON it is in the document. It is kept as raw keywords, so
/// anything JSON Schema says survives, including keywords utoipa's model has no field for.
fn raw(value: Value) -> RefOr<Schema> {
    let mut object = Object::with_type(SchemaType::AnyValue);
    if let Value::Object(keywords) = value {
        let extensions = object.extensions.get_or_insert_with(Default::default);
        extensions.extend(keywords);
    }
    RefOr::T(Schema::Object(object))
}

const MODEL: &str = "The model to call: one `GET /v1/models` lists, or one the key's routing rule maps. Any other is refused with 404 `model_not_found`.";

/// `max_tokens` and the others: a whole number of at least 1, or `null` for "not set".
/// (`1.0` is refused too, which JSON Schema cannot tell from `1`.)
fn bound(description: &str) -> Value {
    json!({
        "description": description,
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": u64::MAX
    })
}

fn bounds() -> Map<String, Value> {
    let reserved = "It bounds the answer, whose worst case is reserved against the key's budgets before the request is sent; `null` means not set.";
    let mut map = Map::new();
    map.insert(
        "max_tokens".into(),
        bound(&format!("The most tokens an answer may hold. {reserved} Without it or `max_completion_tokens`, Keygate sends its default as `max_tokens`.")),
    );
    map.insert(
        "max_completion_tokens".into(),
        bound(&format!(
            "As `max_tokens` (with both, the larger is reserved). {reserved}"
        )),
    );
    map.insert(
        "n".into(),
        bound(&format!("How many answers to generate. {reserved}")),
    );
    map.insert(
        "best_of".into(),
        bound(&format!(
            "How many answers the provider generates to pick from. {reserved}"
        )),
    );
    map
}

fn stream() -> Value {
    json!({
        "description": "`true` streams the answer as server-sent events. Keygate asks the provider for the usage chunk and passes it on only if `stream_options.include_usage` asked for it.",
        "example": false
    })
}

fn chat_completion_request() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "model".into(),
        json!({"type": "string", "description": MODEL}),
    );
    properties.insert(
        "messages".into(),
        json!({
            "description": "The conversation, in OpenAI's format (each message an object with `role` and `content`); the provider checks it. Keygate checks content parts only: where a message's `content` is an array, every part is an object whose `type` is `text`, `image_url` or `refusal` (other parts, such as audio or files, cannot be bounded before the request is sent).",
            "items": {"properties": {"content": {"items": {"$ref": "#/components/schemas/ContentPart"}}}}
        }),
    );
    properties.extend(bounds());
    properties.insert("stream".into(), stream());
    json!({
        "type": "object",
        "description": "OpenAI's chat completion request. Keygate checks the fields described here and forwards the body as it is.",
        "required": ["model"],
        "properties": properties,
        "example": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 100
        }
    })
}

fn content_part() -> Value {
    json!({
        "type": "object",
        "description": "A part of a chat message's content; Keygate reads only its `type`. An `image_url` part reserves 4,000 input tokens.",
        "required": ["type"],
        "properties": {"type": {"type": "string", "enum": ["text", "image_url", "refusal"]}},
        "example": {"type": "text", "text": "What is in this image?"}
    })
}

fn completion_request() -> Value {
    let numbers = json!({"type": "array", "items": {"type": "number"}});
    let mut properties = Map::new();
    properties.insert(
        "model".into(),
        json!({"type": "string", "description": MODEL}),
    );
    properties.insert(
        "prompt".into(),
        json!({
            "description": "A string, an array of strings, an array of token ids or an array of token-id arrays: each prompt is answered (and reserved for) separately. Absent or `null`, the provider's default prompt.",
            "anyOf": [
                {"type": "null"},
                {"type": "string"},
                numbers,
                {"type": "array", "items": {"anyOf": [{"type": "string"}, numbers]}}
            ]
        }),
    );
    properties.extend(bounds());
    properties.insert("stream".into(), stream());
    json!({
        "type": "object",
        "description": "OpenAI's (legacy) completion request. Keygate checks the fields described here and forwards the body as it is.",
        "required": ["model"],
        "properties": properties,
        "example": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello.", "max_tokens": 16}
    })
}

fn embedding_request() -> Value {
    json!({
        "type": "object",
        "description": "OpenAI's embedding request. Keygate reads only `model` and forwards the body as it is.",
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "description": MODEL},
            "input": {"description": "What to embed, in OpenAI's format (a string, or an array of strings, of token ids or of token-id arrays); the provider checks it."}
        },
        "example": {"model": "text-embedding-3-small", "input": "Say hello."}
    })
}

fn provider_answer() -> Value {
    json!({
        "type": "object",
        "description": "The provider's answer, passed through as it is (OpenAI's format: a completion, an embedding list, or an error)."
    })
}

fn gateway_error() -> Value {
    json!({
        "description": "Keygate's own refusal (`ErrorResponse`), or, when the provider answered with this status, the provider's error passed through as it is.",
        "anyOf": [{"$ref": "#/components/schemas/ErrorResponse"}, {"type": "object"}]
    })
}

/// The provider's answer, passed through (a JSON object).
pub struct ProviderAnswer;

/// A refusal by Keygate (`ErrorResponse`) or by the provider (its own body).
pub struct GatewayError;

/// A content part of a chat message.
pub struct ContentPart;

macro_rules! written {
    ($type:ty, $name:literal, $json:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                raw($json)
            }
        }
        impl ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
    ($type:ty, $name:literal, $json:expr, $($dependency:ty),+) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                raw($json)
            }
        }
        impl ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $(
                    schemas.push((
                        <$dependency as ToSchema>::name().into_owned(),
                        <$dependency as utoipa::PartialSchema>::schema(),
                    ));
                    <$dependency as ToSchema>::schemas(schemas);
                )+
            }
        }
    };
}

written!(
    ChatCompletionRequest,
    "ChatCompletionRequest",
    chat_completion_request(),
    ContentPart
);
written!(ContentPart, "ContentPart", content_part());
written!(CompletionRequest, "CompletionRequest", completion_request());
written!(EmbeddingRequest, "EmbeddingRequest", embedding_request());
written!(ProviderAnswer, "ProviderAnswer", provider_answer());
written!(
    GatewayError,
    "GatewayError",
    gateway_error(),
    crate::error::ErrorResponse
);

/// The JSON of each schema here, by name, for tests.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("ChatCompletionRequest", chat_completion_request()),
        ("ContentPart", content_part()),
        ("CompletionRequest", completion_request()),
        ("EmbeddingRequest", embedding_request()),
        ("ProviderAnswer", provider_answer()),
        ("GatewayError", gateway_error()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn every_schema_is_in_the_document_as_written() {
        let schemas = [
            ChatCompletionRequest::schema(),
            ContentPart::schema(),
            CompletionRequest::schema(),
            EmbeddingRequest::schema(),
            ProviderAnswer::schema(),
            GatewayError::schema(),
        ];
        for ((name, written), schema) in documents().into_iter().zip(schemas) {
            let back = serde_json::to_value(&schema).expect("serialise");
            assert_eq!(back, written, "{name}");
        }
    }

    #[test]
    fn examples_read_as_the_rust_types() {
        let chat: ChatCompletionRequest =
            serde_json::from_value(chat_completion_request()["example"].clone()).expect("chat");
        assert_eq!(chat.bounds.max_tokens, Some(100));
        let completion: CompletionRequest =
            serde_json::from_value(completion_request()["example"].clone()).expect("completion");
        assert_eq!(completion.prompt, Some(json!("Say hello.")));
        let embedding: EmbeddingRequest =
            serde_json::from_value(embedding_request()["example"].clone()).expect("embedding");
        assert_eq!(embedding.input, json!("Say hello."));
        let models: ModelList = serde_json::from_value(json!({
            "data": [{"created": 0, "id": "m", "object": "model", "owned_by": "p"}],
            "object": "list"
        }))
        .expect("models");
        assert_eq!(models.object, ListObject::List);
    }

    #[test]
    fn unknown_fields_are_kept_to_forward() {
        let chat: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "temperature": 0.2, "max_tokens": 5
        }))
        .expect("chat");
        assert_eq!(chat.other.get("temperature"), Some(&json!(0.2)));
        assert_eq!(chat.bounds.max_tokens, Some(5));
        assert!(!chat.other.contains_key("max_tokens"));
    }
}
