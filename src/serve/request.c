/* request.c — a request body into a validated nx_serve_request.
 *
 * The body comes from anyone who can reach the port, so nothing in it is
 * trusted: cJSON parses it (bounded nesting; trailing bytes after the value
 * are an error), then every field this server understands is checked for
 * its type and range, each failure an OpenAI-style error that names the
 * field ("param") as OpenAI's own API does: code "invalid_type" for a
 * wrong JSON type, "invalid_value" for a value out of range,
 * "missing_required_parameter", and "unsupported_parameter" for features
 * this server does not have (logprobs, echo, n > 1, JSON mode, a logit
 * bias), which are refused rather than silently ignored. Fields it does
 * not know are ignored, as clients add their own (user, metadata, ...).
 *
 * Strings in the result point into the parsed tree that the request keeps
 * (json_), so a request is one allocation tree freed by one call. Chat
 * messages are also written back out as a normalized JSON array (content
 * parts joined into one string) for the chat template's `messages`. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"

int nx_api_fail(nx_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) {
    if (!e) return NX_ERR;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type ? type : "invalid_request_error");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return NX_ERR;
}

nx_req_limits nx_req_limits_default(void) {
    return (nx_req_limits){.max_tokens = 1 << 20, .max_messages = 1024, .max_prompt_ids = 1 << 20};
}

static const char *kind_of(const cJSON *x) {
    if (cJSON_IsString(x)) return "a string";
    if (cJSON_IsNumber(x)) return "a number";
    if (cJSON_IsBool(x)) return "a boolean";
    if (cJSON_IsArray(x)) return "an array";
    if (cJSON_IsObject(x)) return "an object";
    if (cJSON_IsNull(x)) return "null";
    return "an invalid value";
}

static int bad_type(nx_api_error *e, const char *param, const char *want, const cJSON *got) {
    return nx_api_fail(e, 400, NULL, "invalid_type", param, "Invalid type for '%s': expected %s, but got %s instead.",
                       param, want, kind_of(got));
}

/* The field, or NULL when absent or null (JSON null means "default"). */
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    return x && !cJSON_IsNull(x) ? x : NULL;
}

static bool is_integer(const cJSON *x) {
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble == floor(x->valuedouble);
}

static int get_number(const cJSON *o, const char *name, double lo, double hi, float *out, nx_api_error *e) {
    const cJSON *x = field(o, name);
    if (!x) return NX_OK;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return bad_type(e, name, "a number", x);
    if (x->valuedouble < lo || x->valuedouble > hi)
        return nx_api_fail(e, 400, NULL, "invalid_value", name,
                           "Invalid '%s': expected a value between %g and %g, but got %g instead.", name, lo, hi,
                           x->valuedouble);
    *out = (float)x->valuedouble;
    return NX_OK;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, double *out, nx_api_error *e) {
    const cJSON *x = field(o, name);
    if (!x) return NX_OK;
    if (!is_integer(x)) return bad_type(e, name, "an integer", x);
    if (x->valuedouble < lo || x->valuedouble > hi)
        return nx_api_fail(e, 400, NULL, "invalid_value", name,
                           "Invalid '%s': expected an integer between %.0f and %.0f, but got %.0f instead.", name, lo,
                           hi, x->valuedouble);
    *out = x->valuedouble;
    return NX_OK;
}

static int get_bool(const cJSON *o, const char *name, bool *out, nx_api_error *e) {
    const cJSON *x = field(o, name);
    if (!x) return NX_OK;
    if (!cJSON_IsBool(x)) return bad_type(e, name, "a boolean", x);
    *out = cJSON_IsTrue(x);
    return NX_OK;
}

static int unsupported(nx_api_error *e, const char *param, const char *what) {
    return nx_api_fail(e, 400, NULL, "unsupported_parameter", param, "Unsupported parameter: '%s' %s.", param, what);
}

static int parse_stop(const cJSON *o, nx_serve_request *r, nx_api_error *e) {
    const cJSON *x = field(o, "stop");
    if (!x) return NX_OK;
    if (cJSON_IsString(x)) {
        if (!x->valuestring[0]) return nx_api_fail(e, 400, NULL, "invalid_value", "stop", "Invalid 'stop': an empty string.");
        r->stops[r->nstops++] = x->valuestring;
        return NX_OK;
    }
    if (!cJSON_IsArray(x)) return bad_type(e, "stop", "a string or an array of strings", x);
    int n = cJSON_GetArraySize(x);
    if (n > NX_REQ_MAX_STOPS)
        return nx_api_fail(e, 400, NULL, "invalid_value", "stop", "Invalid 'stop': at most %d stop sequences, got %d.",
                           NX_REQ_MAX_STOPS, n);
    const cJSON *s;
    cJSON_ArrayForEach(s, x) {
        if (!cJSON_IsString(s)) return bad_type(e, "stop", "an array of strings", s);
        if (!s->valuestring[0]) return nx_api_fail(e, 400, NULL, "invalid_value", "stop", "Invalid 'stop': an empty string.");
        r->stops[r->nstops++] = s->valuestring;
    }
    return NX_OK;
}

/* prompt: a string, [string], [int...] or [[int...]] */
static int parse_prompt(const cJSON *o, nx_serve_request *r, const nx_req_limits *lim, nx_api_error *e) {
    const cJSON *x = field(o, "prompt");
    if (!x) return nx_api_fail(e, 400, NULL, "missing_required_parameter", "prompt", "Missing required parameter: 'prompt'.");
    if (cJSON_IsString(x)) {
        r->prompt = x->valuestring;
        return NX_OK;
    }
    if (!cJSON_IsArray(x)) return bad_type(e, "prompt", "a string, an array of strings or an array of token ids", x);
    int n = cJSON_GetArraySize(x);
    if (n == 0) return nx_api_fail(e, 400, NULL, "invalid_value", "prompt", "Invalid 'prompt': an empty array.");
    const cJSON *first = x->child;
    if (cJSON_IsString(first) || cJSON_IsArray(first)) {
        if (n != 1) return unsupported(e, "prompt", "with more than one prompt (send one request per prompt)");
        if (cJSON_IsString(first)) {
            r->prompt = first->valuestring;
            return NX_OK;
        }
        x = first;
        n = cJSON_GetArraySize(x);
        if (n == 0) return nx_api_fail(e, 400, NULL, "invalid_value", "prompt", "Invalid 'prompt': an empty array.");
    }
    if (n > lim->max_prompt_ids)
        return nx_api_fail(e, 400, NULL, "context_length_exceeded", "prompt", "The prompt has %d token ids, at most %d.", n,
                           lim->max_prompt_ids);
    r->prompt_ids = malloc(sizeof(int32_t) * n);
    if (!r->prompt_ids) return nx_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, x) {
        if (!is_integer(t) || t->valuedouble < 0 || t->valuedouble > INT32_MAX)
            return bad_type(e, "prompt", "a string or an array of non-negative integer token ids", t);
        r->prompt_ids[r->nprompt_ids++] = (int32_t)t->valuedouble;
    }
    return NX_OK;
}

/* content: a string, null, or an array of {"type": "text", "text": ...}
 * parts, joined; into a new string item of out. */
static int message_content(const cJSON *m, int i, cJSON *out, nx_api_error *e) {
    char param[40];
    snprintf(param, sizeof param, "messages[%d].content", i);
    const cJSON *c = field(m, "content");
    if (!c) {
        cJSON_AddStringToObject(out, "content", "");
        return NX_OK;
    }
    if (cJSON_IsString(c)) {
        cJSON_AddStringToObject(out, "content", c->valuestring);
        return NX_OK;
    }
    if (!cJSON_IsArray(c)) return bad_type(e, param, "a string or an array of content parts", c);
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type"), *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsObject(p) || !cJSON_IsString(type)) return bad_type(e, param, "content parts with a 'type'", p);
        if (strcmp(type->valuestring, "text") != 0)
            return unsupported(e, param, "with parts other than text (this server reads text only)");
        if (!cJSON_IsString(text)) return bad_type(e, param, "a text part with a string 'text'", text ? text : p);
        len += strlen(text->valuestring);
    }
    char *s = malloc(len + 1), *w = s;
    if (!s) return nx_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    cJSON_ArrayForEach(p, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(w, t, n);
        w += n;
    }
    *w = 0;
    cJSON_AddStringToObject(out, "content", s);
    free(s);
    return NX_OK;
}

static int parse_messages(const cJSON *o, nx_serve_request *r, const nx_req_limits *lim, nx_api_error *e) {
    const cJSON *x = field(o, "messages");
    if (!x) return nx_api_fail(e, 400, NULL, "missing_required_parameter", "messages", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(x)) return bad_type(e, "messages", "an array", x);
    int n = cJSON_GetArraySize(x);
    if (n == 0) return nx_api_fail(e, 400, NULL, "invalid_value", "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    if (n > lim->max_messages)
        return nx_api_fail(e, 400, NULL, "invalid_value", "messages", "Invalid 'messages': %d messages, at most %d.", n,
                           lim->max_messages);
    static const char *roles[] = {"system", "user", "assistant", "tool", "developer", "function"};
    cJSON *norm = cJSON_CreateArray();
    cJSON_AddItemToObject((cJSON *)r->json_, "\x01messages", norm); /* owned by the tree, freed with it */
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, x) {
        char param[40];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return bad_type(e, param, "an object", m);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!role) return nx_api_fail(e, 400, NULL, "missing_required_parameter", param, "Missing required parameter: '%s'.", param);
        if (!cJSON_IsString(role)) return bad_type(e, param, "a string", role);
        bool known = false;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) known = known || !strcmp(role->valuestring, roles[k]);
        if (!known)
            return nx_api_fail(e, 400, NULL, "invalid_value", param,
                               "Invalid value: '%.40s'. Supported values are: 'system', 'user', 'assistant', 'tool', "
                               "'developer' and 'function'.", role->valuestring);
        const cJSON *content = field(m, "content");
        if (!content && strcmp(role->valuestring, "assistant") != 0) {
            snprintf(param, sizeof param, "messages[%d].content", i);
            return nx_api_fail(e, 400, NULL, "missing_required_parameter", param, "Missing required parameter: '%s'.", param);
        }
        cJSON *out = cJSON_CreateObject();
        cJSON_AddItemToArray(norm, out);
        cJSON_AddStringToObject(out, "role", role->valuestring);
        if (message_content(m, i, out, e)) return NX_ERR;
        static const char *extra[] = {"name", "tool_calls", "tool_call_id"};
        for (size_t k = 0; k < 3; k++) {
            const cJSON *v = field(m, extra[k]);
            if (v) cJSON_AddItemToObject(out, extra[k], cJSON_Duplicate(v, true));
        }
        i++;
    }
    r->nmessages = n;
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) return nx_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    i = 0;
    cJSON_ArrayForEach(m, norm) {
        r->messages[i].role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        r->messages[i].content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        i++;
    }
    r->messages_json = cJSON_PrintUnformatted(norm);
    if (!r->messages_json) return nx_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return NX_OK;
}

static int parse_fields(const cJSON *o, nx_req_kind kind, const nx_req_limits *lim, nx_serve_request *r, nx_api_error *e) {
    const cJSON *model = field(o, "model");
    if (!model) return nx_api_fail(e, 400, NULL, "missing_required_parameter", "model", "You must provide a model parameter.");
    if (!cJSON_IsString(model)) return bad_type(e, "model", "a string", model);
    r->model = model->valuestring;
    if (kind == NX_REQ_COMPLETION ? parse_prompt(o, r, lim, e) : parse_messages(o, r, lim, e)) return NX_ERR;
    double v = -1;
    if (get_int(o, "max_tokens", 1, lim->max_tokens, &v, e)) return NX_ERR;
    if (get_int(o, "max_completion_tokens", 1, lim->max_tokens, &v, e)) return NX_ERR;
    r->max_tokens = (int)v;
    if (get_number(o, "temperature", 0, 2, &r->temperature, e) || get_number(o, "top_p", 0, 1, &r->top_p, e) ||
        get_number(o, "presence_penalty", -2, 2, &r->presence_penalty, e) ||
        get_number(o, "frequency_penalty", -2, 2, &r->frequency_penalty, e))
        return NX_ERR;
    double seed = 0;
    if (field(o, "seed")) {
        if (get_int(o, "seed", -9223372036854775808.0, 18446744073709551615.0, &seed, e)) return NX_ERR;
        r->has_seed = true;
        r->seed = seed < 0 ? (uint64_t)(int64_t)seed : (uint64_t)seed;
    }
    double n = 1;
    if (get_int(o, "n", 1, 128, &n, e)) return NX_ERR;
    if (n != 1) return unsupported(e, "n", "above 1 (send one request per choice)");
    if (get_int(o, "best_of", 1, 128, &n, e)) return NX_ERR;
    if (n != 1) return unsupported(e, "best_of", "above 1");
    if (get_bool(o, "stream", &r->stream, e) || get_bool(o, "ignore_eos", &r->ignore_eos, e)) return NX_ERR;
    const cJSON *so = field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return bad_type(e, "stream_options", "an object", so);
        if (get_bool(so, "include_usage", &r->include_usage, e)) return NX_ERR;
    }
    if (parse_stop(o, r, e)) return NX_ERR;
    const cJSON *lp = field(o, "logprobs");
    if (lp && !(cJSON_IsFalse(lp) || (is_integer(lp) && lp->valuedouble == 0))) {
        if (!cJSON_IsBool(lp) && !cJSON_IsNumber(lp)) return bad_type(e, "logprobs", kind == NX_REQ_CHAT ? "a boolean" : "an integer", lp);
        return unsupported(e, "logprobs", "is not supported by this server");
    }
    bool echo = false;
    if (get_bool(o, "echo", &echo, e)) return NX_ERR;
    if (echo) return unsupported(e, "echo", "is not supported by this server");
    const cJSON *suffix = field(o, "suffix");
    if (suffix && !(cJSON_IsString(suffix) && !suffix->valuestring[0]))
        return cJSON_IsString(suffix) ? unsupported(e, "suffix", "is not supported by this server")
                                      : bad_type(e, "suffix", "a string", suffix);
    const cJSON *bias = field(o, "logit_bias");
    if (bias) {
        if (!cJSON_IsObject(bias)) return bad_type(e, "logit_bias", "an object", bias);
        if (bias->child) return unsupported(e, "logit_bias", "is not supported by this server");
    }
    const cJSON *rf = field(o, "response_format");
    if (rf) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(t)) return bad_type(e, "response_format", "an object with a string 'type'", rf);
        if (strcmp(t->valuestring, "text") != 0) return unsupported(e, "response_format", "other than {\"type\": \"text\"}");
    }
    const cJSON *user = field(o, "user");
    if (user && !cJSON_IsString(user)) return bad_type(e, "user", "a string", user);
    return NX_OK;
}

int nx_serve_parse_request(const char *body, size_t len, nx_req_kind kind, const nx_req_limits *lim,
                           nx_serve_request *req, nx_api_error *e) {
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->max_tokens = -1;
    req->temperature = 1, req->top_p = 1;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (o && end) /* nothing but whitespace after the value */
        for (const char *p = end; p < body + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(o);
                o = NULL;
                end = p;
                break;
            }
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        long off = end && end >= body && end <= body + len ? (long)(end - body)
                 : at && at >= body && at <= body + len ? (long)(at - body) : -1;
        return nx_api_fail(e, 400, NULL, "invalid_json", NULL,
                           "We could not parse the JSON body of your request (invalid JSON near byte %ld). The OpenAI "
                           "API expects a JSON payload.", off);
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return nx_api_fail(e, 400, NULL, "invalid_json", NULL, "The request body must be a JSON object.");
    }
    req->json_ = o;
    if (parse_fields(o, kind, lim ? lim : &(nx_req_limits){1 << 20, 1024, 1 << 20}, req, e)) {
        nx_serve_request_free(req);
        return NX_ERR;
    }
    if (req->top_p == 0) req->temperature = 0, req->top_p = 1; /* only the top token: greedy */
    return NX_OK;
}

void nx_serve_request_free(nx_serve_request *req) {
    free(req->prompt_ids);
    free(req->messages);
    free((char *)req->messages_json);
    cJSON_Delete(req->json_);
    memset(req, 0, sizeof *req);
}
