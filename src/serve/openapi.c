/* openapi.c — the OpenAPI 3.1 document GET /openapi.json serves: every
 * endpoint, the request fields the server reads (with their ranges), the
 * response and stream-chunk shapes, and the error object. Kept beside the
 * code that implements it; tests/serve_test.py checks that each path the
 * server answers is in it. */
#include "serve_impl.h"

#define S(...) #__VA_ARGS__

static const char DOC[] = S({
    "openapi": "3.1.0",
    "info": {"title": "nexus serve", "version": "0.1.0",
             "description": "OpenAI-compatible text generation over one model. Errors are {\"error\": {\"message\", \"type\", \"param\", \"code\"}}. When the server has an API key, /v1/* and /metrics need the header Authorization: Bearer KEY."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "properties": {
                "message": {"type": "string"}, "type": {"type": "string"},
                "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
            "Stop": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}}, {"type": "null"}]},
            "Sampling": {"type": "object", "properties": {
                "model": {"type": "string", "description": "the id of GET /v1/models"},
                "max_tokens": {"type": ["integer", "null"], "minimum": 1, "description": "completions default to 16; chat to the rest of the context (both capped by the server's --max-tokens)"},
                "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
                "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2, "default": 1},
                "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "default": 1},
                "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2, "default": 0},
                "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2, "default": 0},
                "seed": {"type": ["integer", "null"]},
                "n": {"type": ["integer", "null"], "enum": [1, null]},
                "stop": {"$ref": "#/components/schemas/Stop"},
                "stream": {"type": ["boolean", "null"], "default": false},
                "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
                "user": {"type": "string"},
                "ignore_eos": {"type": ["boolean", "null"], "default": false, "description": "an extension (as vLLM names it): keep generating past the model's end tokens"}}},
            "CompletionRequest": {"allOf": [{"$ref": "#/components/schemas/Sampling"}, {"type": "object", "required": ["model", "prompt"], "properties": {
                "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 1}, {"type": "array", "items": {"type": "integer", "minimum": 0}}, {"type": "array", "maxItems": 1, "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}}]}}}]},
            "Message": {"type": "object", "required": ["role"], "properties": {
                "role": {"enum": ["system", "user", "assistant", "tool", "developer", "function"]},
                "content": {"oneOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": {"type": "object", "required": ["type", "text"], "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}}]},
                "name": {"type": "string"}}},
            "ChatRequest": {"allOf": [{"$ref": "#/components/schemas/Sampling"}, {"type": "object", "required": ["model", "messages"], "properties": {
                "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}}}}]},
            "Usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}},
            "Completion": {"type": "object", "properties": {"id": {"type": "string"}, "object": {"const": "text_completion"}, "created": {"type": "integer"}, "model": {"type": "string"},
                "choices": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "text": {"type": "string"}, "logprobs": {"type": "null"}, "finish_reason": {"enum": ["stop", "length"]}}}},
                "usage": {"$ref": "#/components/schemas/Usage"}}},
            "ChatCompletion": {"type": "object", "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"}, "model": {"type": "string"},
                "choices": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "message": {"type": "object", "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}}, "finish_reason": {"enum": ["stop", "length"]}}}},
                "usage": {"$ref": "#/components/schemas/Usage"}}},
            "ChatChunk": {"type": "object", "description": "one server-sent event 'data: {...}'; the stream ends with 'data: [DONE]'", "properties": {"object": {"const": "chat.completion.chunk"},
                "choices": {"type": "array", "items": {"type": "object", "properties": {"delta": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}}, "finish_reason": {"enum": ["stop", "length", null]}}}},
                "usage": {"oneOf": [{"$ref": "#/components/schemas/Usage"}, {"type": "null"}]}}}
        },
        "responses": {"Error": {"description": "an OpenAI error object (400 bad request, 401 bad key, 404 unknown model or path, 405, 408 request too slow, 413 body too large, 429 queue full, 503 shutting down)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
    },
    "paths": {
        "/v1/completions": {"post": {"summary": "complete a prompt", "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CompletionRequest"}}}},
            "responses": {"200": {"description": "the completion, or with stream=true server-sent events of text_completion chunks ending with data: [DONE]", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Completion"}}, "text/event-stream": {"schema": {"type": "string"}}}}, "default": {"$ref": "#/components/responses/Error"}}}},
        "/v1/chat/completions": {"post": {"summary": "reply to a conversation (rendered with the model's chat template)", "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
            "responses": {"200": {"description": "the reply, or with stream=true server-sent events of chat.completion.chunk ending with data: [DONE]", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}}, "text/event-stream": {"schema": {"$ref": "#/components/schemas/ChatChunk"}}}}, "default": {"$ref": "#/components/responses/Error"}}}},
        "/v1/models": {"get": {"summary": "the model served", "security": [{"bearer": []}], "responses": {"200": {"description": "{object: list, data: [{id, object: model, created, owned_by}]}"}}}},
        "/v1/models/{model}": {"get": {"summary": "one model", "security": [{"bearer": []}], "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "{id, object: model, created, owned_by}"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/health": {"get": {"summary": "liveness: 200 {status: ok} while serving, 503 while shutting down", "responses": {"200": {"description": "ok"}, "503": {"description": "shutting down"}}}},
        "/metrics": {"get": {"summary": "Prometheus text format: requests, tokens, queue depth, slots busy, TTFT and per-token latency histograms", "security": [{"bearer": []}], "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
    }
});

const char *openapi_json(void) { return DOC; }
