/* respond.c — the JSON bodies the server sends, shaped as OpenAI's API
 * sends them: error objects, whole completions (text_completion /
 * chat.completion with usage), stream chunks (text_completion /
 * chat.completion.chunk as server-sent events "data: {...}\n\n"), the
 * usage chunk of stream_options.include_usage, and the model list. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"

static char *print(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *resp_error(const nx_api_error *e) {
    cJSON *o = cJSON_CreateObject(), *x = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(x, "message", e->message);
    cJSON_AddStringToObject(x, "type", e->type);
    if (e->param[0]) cJSON_AddStringToObject(x, "param", e->param);
    else cJSON_AddNullToObject(x, "param");
    if (e->code[0]) cJSON_AddStringToObject(x, "code", e->code);
    else cJSON_AddNullToObject(x, "code");
    return print(o);
}

const char *resp_finish(nx_finish f) {
    return f == NX_FINISH_LENGTH || f == NX_FINISH_CONTEXT ? "length" : "stop";
}

static cJSON *head(const resp_meta *m, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "nexus-" NX_VERSION);
    return o;
}

static void usage(cJSON *o, int p, int c) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", p);
    cJSON_AddNumberToObject(u, "completion_tokens", c);
    cJSON_AddNumberToObject(u, "total_tokens", p + c);
}

char *resp_full(const resp_meta *m, const char *text, nx_finish f, int prompt_tokens, int completion_tokens) {
    cJSON *o = head(m, m->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (m->chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", text);
        cJSON_AddNullToObject(msg, "refusal");
    } else {
        cJSON_AddStringToObject(c, "text", text);
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", resp_finish(f));
    usage(o, prompt_tokens, completion_tokens);
    return print(o);
}

static char *sse(cJSON *o) {
    char *js = print(o);
    if (!js) return NULL;
    size_t n = strlen(js);
    char *ev = malloc(n + 9);
    if (ev) memcpy(ev, "data: ", 6), memcpy(ev + 6, js, n), memcpy(ev + 6 + n, "\n\n", 3);
    free(js);
    return ev;
}

char *resp_chunk(const resp_meta *m, const char *text, size_t len, bool role_chunk, nx_finish f, bool usage_null) {
    cJSON *o = head(m, m->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *t = malloc(len + 1);
    if (!t) {
        cJSON_Delete(o);
        return NULL;
    }
    memcpy(t, text, len), t[len] = 0;
    if (m->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role_chunk) {
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        } else if (len) {
            cJSON_AddStringToObject(d, "content", t);
        }
    } else {
        cJSON_AddStringToObject(c, "text", t);
    }
    free(t);
    cJSON_AddNullToObject(c, "logprobs");
    if (f != NX_FINISH_NONE) cJSON_AddStringToObject(c, "finish_reason", resp_finish(f));
    else cJSON_AddNullToObject(c, "finish_reason");
    if (usage_null) cJSON_AddNullToObject(o, "usage");
    return sse(o);
}

char *resp_usage_chunk(const resp_meta *m, int prompt_tokens, int completion_tokens) {
    cJSON *o = head(m, m->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    usage(o, prompt_tokens, completion_tokens);
    return sse(o);
}

char *resp_models(const char *model, long created) {
    cJSON *o = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(o, "object", "list");
    data = cJSON_AddArrayToObject(o, "data");
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "id", model);
    cJSON_AddStringToObject(x, "object", "model");
    cJSON_AddNumberToObject(x, "created", (double)created);
    cJSON_AddStringToObject(x, "owned_by", "nexus");
    cJSON_AddItemToArray(data, x);
    return print(o);
}
