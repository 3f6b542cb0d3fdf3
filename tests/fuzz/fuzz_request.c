/* fuzz_request.c — libFuzzer entry for what `nexus serve` reads from the
 * network: a request body into a validated request (serve.h), and the
 * chat template engine that renders a request's messages.
 *
 * The first byte picks the mode, the rest is the input:
 *   0  a /v1/completions body
 *   1  a /v1/chat/completions body; when it parses, its messages are
 *      rendered with a Qwen2.5-style template and with the fallback
 *   2  a chat template source, rendered against fixed messages
 * Any crash, leak, hang or UB report from ASan/UBSan is a bug; a clean
 * error (an API error, a parse error, a failed render) is fine. Checked
 * invariants: an error has a 4xx/5xx status and a message; a parsed
 * request respects the limits. Build and run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *QWEN =
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + "
    "message.content + '<|im_end|>' + '\\n' }}{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = "
    "tool_call.function %}{%- endif %}{{- tool_call.arguments | tojson }}{%- endfor %}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

static nx_chat_template *qwen;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    nx_err err;
    if (mode == 2) {
        char *src = malloc(len + 1);
        memcpy(src, body, len);
        src[len] = 0;
        nx_chat_template *t;
        if (nx_chat_template_parse(&t, src, &err) == NX_OK) {
            char *out = NULL;
            nx_chat_template_render(t,
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
                                    "\"content\":\"yo\"}],\"add_generation_prompt\":true,\"bos_token\":\"<s>\"}",
                                    &out, &err);
            free(out);
            nx_chat_template_free(t);
        }
        free(src);
        return 0;
    }
    nx_req_limits lim = nx_req_limits_default();
    lim.max_tokens = 4096, lim.max_messages = 64, lim.max_prompt_ids = 2048;
    nx_serve_request r;
    nx_api_error e;
    if (nx_serve_parse_request(body, len, mode ? NX_REQ_CHAT : NX_REQ_COMPLETION, &lim, &r, &e) != NX_OK) {
        NX_ASSERT(e.status >= 400 && e.status < 600 && e.message[0]);
        return 0;
    }
    NX_ASSERT(r.model && r.max_tokens <= lim.max_tokens && r.nstops <= NX_REQ_MAX_STOPS);
    NX_ASSERT(r.temperature >= 0 && r.temperature <= 2 && r.top_p > 0 && r.top_p <= 1);
    if (mode == 0) NX_ASSERT((r.prompt != NULL) != (r.prompt_ids != NULL) && r.nprompt_ids <= lim.max_prompt_ids);
    if (mode == 1) {
        NX_ASSERT(r.nmessages >= 1 && r.nmessages <= lim.max_messages && r.messages_json);
        if (!qwen) NX_ASSERT(nx_chat_template_parse(&qwen, QWEN, &err) == NX_OK);
        size_t n = strlen(r.messages_json);
        char *ctx = malloc(n + 64);
        memcpy(ctx, "{\"messages\":", 12);
        memcpy(ctx + 12, r.messages_json, n);
        memcpy(ctx + 12 + n, ",\"add_generation_prompt\":true}", 31);
        char *out = NULL;
        nx_chat_template_render(qwen, ctx, &out, &err);
        free(out), free(ctx);
        free(nx_chat_fallback(r.messages, r.nmessages, true));
    }
    nx_serve_request_free(&r);
    return 0;
}
