/* test_serve.c — the parts of `nexus serve` that need no socket: request
 * bodies into validated requests (every field's type and range, the
 * OpenAI error each bad body gets), the chat-template engine against
 * jinja2's own renderings of real Llama-3, Qwen2, Qwen2.5 and Mistral
 * templates (tests/fixtures/chat_templates/expected.json, made by
 * make_chat_templates.py), the fallback format, templates outside the
 * subset, and the constant-time key comparison. The server itself is
 * tested over HTTP by tests/cli_serve.sh. */
#include <cJSON.h>

#include "nexus/fsutil.h"
#include "nexus/serve.h"
#include "nxtest.h"

static int parse(const char *body, nx_req_kind kind, nx_serve_request *r, nx_api_error *e) {
    nx_req_limits lim = nx_req_limits_default();
    lim.max_tokens = 1000, lim.max_messages = 4;
    return nx_serve_parse_request(body, strlen(body), kind, &lim, r, e);
}

/* body must fail with this status, code and param ("" for none) */
static void bad(const char *body, nx_req_kind kind, int status, const char *code, const char *param) {
    nx_serve_request r;
    nx_api_error e;
    int rc = parse(body, kind, &r, &e);
    CHECKF(rc == NX_ERR, "accepted: %s", body);
    if (rc != NX_ERR) {
        nx_serve_request_free(&r);
        return;
    }
    CHECKF(e.status == status && !strcmp(e.code, code) && !strcmp(e.param, param) && e.message[0] &&
               !strcmp(e.type, status == 400 ? "invalid_request_error" : e.type),
           "%s → %d %s %s (%s), want %d %s %s", body, e.status, e.code, e.param, e.message, status, code, param);
}

TEST(completion_requests_parse_with_defaults_and_every_field) {
    nx_serve_request r;
    nx_api_error e;
    CHECK(parse("{\"model\": \"m\", \"prompt\": \"Hi\"}", NX_REQ_COMPLETION, &r, &e) == NX_OK);
    CHECK(!strcmp(r.model, "m") && !strcmp(r.prompt, "Hi") && r.max_tokens == -1 && r.temperature == 1 &&
          r.top_p == 1 && !r.stream && !r.has_seed && r.nstops == 0);
    nx_serve_request_free(&r);
    const char *full = "{\"model\":\"m\",\"prompt\":[\"x\"],\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,"
                       "\"presence_penalty\":-1,\"frequency_penalty\":2,\"seed\":-3,\"n\":1,\"stop\":[\"a\",\"bc\"],"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"user\":\"u\",\"logprobs\":null,"
                       "\"echo\":false,\"logit_bias\":{},\"unknown_field\":[1,2],\"ignore_eos\":true}  \n";
    CHECKF(parse(full, NX_REQ_COMPLETION, &r, &e) == NX_OK, "%s", e.message);
    CHECK(!strcmp(r.prompt, "x") && r.max_tokens == 7 && r.temperature == 0.5f && fabsf(r.top_p - 0.9f) < 1e-6 &&
          r.presence_penalty == -1 && r.frequency_penalty == 2 && r.has_seed && r.seed == (uint64_t)-3 &&
          r.nstops == 2 && !strcmp(r.stops[1], "bc") && r.stream && r.include_usage && r.ignore_eos);
    nx_serve_request_free(&r);
    CHECK(parse("{\"model\":\"m\",\"prompt\":[5,0,7],\"top_p\":0,\"stop\":\"x\"}", NX_REQ_COMPLETION, &r, &e) == NX_OK);
    CHECK(r.prompt == NULL && r.nprompt_ids == 3 && r.prompt_ids[2] == 7 && r.temperature == 0 && r.nstops == 1);
    nx_serve_request_free(&r);
    CHECK(parse("{\"model\":\"m\",\"prompt\":[[1,2]],\"max_completion_tokens\":3}", NX_REQ_COMPLETION, &r, &e) == NX_OK);
    CHECK(r.nprompt_ids == 2 && r.max_tokens == 3);
    nx_serve_request_free(&r);
}

TEST(chat_requests_normalise_messages) {
    nx_serve_request r;
    nx_api_error e;
    const char *b = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\"}]}]}";
    CHECKF(parse(b, NX_REQ_CHAT, &r, &e) == NX_OK, "%s", e.message);
    CHECK(r.nmessages == 3 && !strcmp(r.messages[1].role, "user") && !strcmp(r.messages[1].content, "ab") &&
          !strcmp(r.messages[2].content, ""));
    cJSON *m = cJSON_Parse(r.messages_json);
    CHECK(cJSON_GetArraySize(m) == 3 &&
          !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring, "ab") &&
          cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "tool_calls"));
    cJSON_Delete(m);
    nx_serve_request_free(&r);
}

TEST(bad_bodies_get_openai_errors_naming_the_field) {
    nx_req_kind C = NX_REQ_COMPLETION, H = NX_REQ_CHAT;
    bad("", C, 400, "invalid_json", "");
    bad("{\"model\": \"m\", \"prompt\": \"x\"", C, 400, "invalid_json", "");
    bad("{\"model\": \"m\", \"prompt\": \"x\"} trailing", C, 400, "invalid_json", "");
    bad("[1, 2]", C, 400, "invalid_json", "");
    bad("{\"prompt\": \"x\"}", C, 400, "missing_required_parameter", "model");
    bad("{\"model\": 5, \"prompt\": \"x\"}", C, 400, "invalid_type", "model");
    bad("{\"model\": \"m\"}", C, 400, "missing_required_parameter", "prompt");
    bad("{\"model\": \"m\", \"prompt\": 5}", C, 400, "invalid_type", "prompt");
    bad("{\"model\": \"m\", \"prompt\": []}", C, 400, "invalid_value", "prompt");
    bad("{\"model\": \"m\", \"prompt\": [\"a\", \"b\"]}", C, 400, "unsupported_parameter", "prompt");
    bad("{\"model\": \"m\", \"prompt\": [1, -2]}", C, 400, "invalid_type", "prompt");
    bad("{\"model\": \"m\", \"prompt\": [1, 2.5]}", C, 400, "invalid_type", "prompt");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"max_tokens\": \"5\"}", C, 400, "invalid_type", "max_tokens");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"max_tokens\": 1.5}", C, 400, "invalid_type", "max_tokens");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"max_tokens\": 0}", C, 400, "invalid_value", "max_tokens");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"max_tokens\": 1001}", C, 400, "invalid_value", "max_tokens");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"temperature\": 2.5}", C, 400, "invalid_value", "temperature");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"temperature\": \"hot\"}", C, 400, "invalid_type", "temperature");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"top_p\": 1.5}", C, 400, "invalid_value", "top_p");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"presence_penalty\": -3}", C, 400, "invalid_value", "presence_penalty");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"frequency_penalty\": true}", C, 400, "invalid_type", "frequency_penalty");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"seed\": 1.5}", C, 400, "invalid_type", "seed");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"n\": 2}", C, 400, "unsupported_parameter", "n");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"stream\": \"yes\"}", C, 400, "invalid_type", "stream");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"stream_options\": 1}", C, 400, "invalid_type", "stream_options");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"stop\": \"\"}", C, 400, "invalid_value", "stop");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", C, 400, "invalid_value", "stop");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"stop\": [1]}", C, 400, "invalid_type", "stop");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"logprobs\": 3}", C, 400, "unsupported_parameter", "logprobs");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"echo\": true}", C, 400, "unsupported_parameter", "echo");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"logit_bias\": {\"1\": 5}}", C, 400, "unsupported_parameter", "logit_bias");
    bad("{\"model\": \"m\", \"prompt\": \"x\", \"suffix\": \"s\"}", C, 400, "unsupported_parameter", "suffix");
    bad("{\"model\": \"m\", \"messages\": []}", H, 400, "invalid_value", "messages");
    bad("{\"model\": \"m\", \"messages\": {}}", H, 400, "invalid_type", "messages");
    bad("{\"model\": \"m\"}", H, 400, "missing_required_parameter", "messages");
    bad("{\"model\": \"m\", \"messages\": [1]}", H, 400, "invalid_type", "messages[0]");
    bad("{\"model\": \"m\", \"messages\": [{\"content\": \"x\"}]}", H, 400, "missing_required_parameter", "messages[0].role");
    bad("{\"model\": \"m\", \"messages\": [{\"role\": \"king\", \"content\": \"x\"}]}", H, 400, "invalid_value", "messages[0].role");
    bad("{\"model\": \"m\", \"messages\": [{\"role\": \"user\"}]}", H, 400, "missing_required_parameter", "messages[0].content");
    bad("{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}", H, 400, "invalid_type", "messages[0].content");
    bad("{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", H, 400,
        "unsupported_parameter", "messages[0].content");
    bad("{\"model\": \"m\", \"messages\": [{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"a\"}]}",
        H, 400, "invalid_value", "messages");
    bad("{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": "
        "{\"type\": \"json_object\"}}", H, 400, "unsupported_parameter", "response_format");
    /* NUL bytes and deep nesting are errors, not crashes */
    const char nul[] = "{\"model\": \"m\", \"prompt\": \"x\"}\0{}";
    nx_serve_request r;
    nx_api_error e;
    CHECK(nx_serve_parse_request(nul, sizeof nul - 1, NX_REQ_COMPLETION, NULL, &r, &e) == NX_ERR && e.status == 400);
    char deep[5000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    bad(deep, C, 400, "invalid_json", "");
}

/* ---- chat templates --------------------------------------------------------- */

TEST(templates_render_as_jinja2_does) {
    const char *path = "tests/fixtures/chat_templates/expected.json";
    if (!NEED(path)) return;
    char *text = nx_read_file(path, 1u << 30, NULL, NULL);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    CHECK(cJSON_GetArraySize(cases) >= 40);
    int compared = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "template")->valuestring;
        char tpath[512];
        snprintf(tpath, sizeof tpath, "tests/fixtures/chat_templates/%s", name);
        char *src = nx_read_file(tpath, 1u << 30, NULL, NULL);
        CHECKF(src, "%s", tpath);
        if (!src) continue;
        nx_chat_template *t;
        nx_err err;
        CHECKF(nx_chat_template_parse(&t, src, &err) == NX_OK, "%s: %s", name, err.msg);
        free(src);
        if (!t) continue;
        char *ctx = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "context"));
        char *out = NULL;
        nx_render_status st = nx_chat_template_render(t, ctx, &out, &err);
        const cJSON *want = cJSON_GetObjectItem(c, "output"), *raised = cJSON_GetObjectItem(c, "raised");
        if (want) {
            CHECKF(st == NX_RENDER_OK && !strcmp(out, want->valuestring), "%s with %s:\n--- got (%d)\n%s\n--- want\n%s", name,
                   ctx, st, out ? out : err.msg, want->valuestring);
            compared++;
        } else if (raised) {
            CHECKF(st == NX_RENDER_RAISED && !strcmp(err.msg, raised->valuestring), "%s raised '%s', want '%s'", name,
                   st == NX_RENDER_OK ? "nothing" : err.msg, raised->valuestring);
        } else {
            CHECKF(st != NX_RENDER_OK, "%s with %s rendered though jinja2 failed", name, ctx);
        }
        free(out), free(ctx);
        nx_chat_template_free(t);
    }
    CHECK(compared >= 35);
    cJSON_Delete(cases);
}

TEST(templates_outside_the_subset_fail_to_parse_naming_the_spot) {
    const char *bad[] = {"{% macro f() %}x{% endmacro %}", "{{ x", "{% if x %}y", "{% for %}", "{{ 'unterminated }}",
                         "{% set x %}block{% endset %}", "{{ (a, b) }}", "{% include 'x' %}", "{# open comment",
                         "{{ x | }}", "{{ 1 + }}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nx_chat_template *t = NULL;
        nx_err err;
        CHECKF(nx_chat_template_parse(&t, bad[i], &err) == NX_ERR && strstr(err.msg, "byte") && !t, "%s", bad[i]);
    }
    char deep[700];
    memset(deep, '(', 300);
    deep[300] = '1';
    memset(deep + 301, ')', 300);
    deep[601] = 0;
    nx_chat_template *t;
    nx_err err;
    char src[800];
    snprintf(src, sizeof src, "{{ %s }}", deep);
    CHECK(nx_chat_template_parse(&t, src, &err) == NX_ERR && strstr(err.msg, "nested"));
    CHECK(nx_chat_template_parse(&t, "{{ ''*80**8 }}|{{ 'ab' * 2 }}|{{ 1 ** 99999999 }} {{ (-1) ** 7 }} {{ 2 ** 62 }} "
                                     "{{ range(0, 9223372036854775807, 4611686018427387904) | length }}|"
                                     "{{ 'abc'[::4611686018427387904] }}", &err) == NX_OK); /* what the fuzzer found */
    char *o2 = NULL;
    CHECK(nx_chat_template_render(t, "{}", &o2, &err) == NX_RENDER_OK &&
          !strcmp(o2, "|abab|1 -1 4611686018427387904 2|a"));
    free(o2);
    nx_chat_template_free(t);
    /* renders that fail: an unknown filter, arithmetic on undefined, runaway loops */
    const char *fails[] = {"{{ x | frobnicate }}", "{{ nothing + 1 }}", "{{ nothing.attr }}",
                           "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                           "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                           "{{ 9223372036854775807 + 2 }}", "{{ 281474976710656 * 16777216 }}", "{{ 3 ** 64 }}",
                           "{{ -(-9223372036854775807 - 1) }}"};
    for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
        CHECKF(nx_chat_template_parse(&t, fails[i], &err) == NX_OK, "%s: %s", fails[i], err.msg);
        char *out = NULL;
        CHECKF(nx_chat_template_render(t, "{}", &out, &err) == NX_RENDER_FAILED && !out, "%s", fails[i]);
        nx_chat_template_free(t);
    }
}

TEST(fallback_format_and_key_comparison) {
    nx_chat_msg m[2] = {{"system", "Be nice."}, {"user", "Hi"}};
    char *s = nx_chat_fallback(m, 2, true);
    CHECKF(!strcmp(s, "System: Be nice.\n\nUser: Hi\n\nAssistant:"), "%s", s);
    free(s);
    s = nx_chat_fallback(m + 1, 1, false);
    CHECK(!strcmp(s, "User: Hi\n\n"));
    free(s);
    CHECK(nx_serve_key_equal("secret", 6, "secret"));
    CHECK(!nx_serve_key_equal("secreT", 6, "secret"));
    CHECK(!nx_serve_key_equal("secret2", 7, "secret"));
    CHECK(!nx_serve_key_equal("secre", 5, "secret"));
    CHECK(!nx_serve_key_equal("", 0, "secret"));
    char withnul[7] = "secret";
    CHECK(!nx_serve_key_equal(withnul, 7, "secret"));
}

