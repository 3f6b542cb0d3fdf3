/* chat.c — a model's chat conventions, read from its directory:
 * tokenizer_config.json's chat_template (a string, or a list of {name,
 * template} from which "default" is taken) with its bos_token and
 * eos_token (strings or {"content": ...}), and the end tokens of
 * generation_config.json's eos_token_id (one id or a list; Llama 3 and
 * Qwen2 instruct models end a turn with a token other than the
 * tokenizer's EOS).
 *
 * A request's messages become prompt text as transformers'
 * apply_chat_template(messages, add_generation_prompt=True) makes it; the
 * text is then tokenized without adding special tokens (the template
 * writes them). When the model has no template, or it does not parse,
 * or it fails to render for a reason other than raise_exception, the
 * fallback (serve.h) is used and the first such event is logged. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "serve_impl.h"

char *serve_detok(void *ctx, const int32_t *ids, int n) {
    char *text = NULL;
    nx_err e;
    return nx_tokenizer_decode(ctx, ids, (size_t)n, true, &text, &e) ? NULL : text;
}

static char *token_text(const cJSON *x) {
    if (cJSON_IsString(x)) return strdup(x->valuestring);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
    return cJSON_IsString(c) ? strdup(c->valuestring) : NULL;
}

static void add_eos(chat *c, int32_t id) {
    if (id < 0 || c->neos >= NX_GEN_MAX_EOS + 1) return;
    for (int i = 0; i < c->neos; i++)
        if (c->eos_ids[i] == id) return;
    c->eos_ids[c->neos++] = id;
}

int chat_load(chat *c, const char *dir, const nx_tokenizer *tok, int32_t cfg_eos, nx_err *err) {
    memset(c, 0, sizeof *c);
    add_eos(c, nx_tokenizer_eos_id(tok) >= 0 ? nx_tokenizer_eos_id(tok) : cfg_eos);
    char *path = nx_path_join(dir, "tokenizer_config.json");
    char *text = nx_read_file(path, 64 << 20, NULL, NULL);
    if (text) {
        cJSON *o = cJSON_Parse(text);
        if (!o) {
            nx_fail(err, "%s: not valid JSON", path);
            free(text), free(path);
            return NX_ERR;
        }
        c->bos = token_text(cJSON_GetObjectItemCaseSensitive(o, "bos_token"));
        c->eos = token_text(cJSON_GetObjectItemCaseSensitive(o, "eos_token"));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "chat_template");
        if (cJSON_IsArray(t)) {
            const cJSON *x, *pick = NULL;
            cJSON_ArrayForEach(x, t) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(x, "name");
                if (cJSON_IsString(name) && !strcmp(name->valuestring, "default")) pick = x;
            }
            t = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
        }
        if (cJSON_IsString(t)) c->source = strdup(t->valuestring);
        cJSON_Delete(o);
        free(text);
    }
    free(path);
    path = nx_path_join(dir, "generation_config.json");
    text = nx_read_file(path, 1 << 20, NULL, NULL);
    if (text) {
        cJSON *o = cJSON_Parse(text);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id"), *x;
        if (cJSON_IsNumber(e)) add_eos(c, (int32_t)e->valuedouble);
        else if (cJSON_IsArray(e))
            cJSON_ArrayForEach(x, e) if (cJSON_IsNumber(x)) add_eos(c, (int32_t)x->valuedouble);
        cJSON_Delete(o);
        free(text);
    }
    free(path);
    if (!c->bos && nx_tokenizer_bos_id(tok) >= 0) {
        const char *b = nx_tokenizer_id_to_token(tok, nx_tokenizer_bos_id(tok));
        if (b) c->bos = strdup(b);
    }
    if (!c->eos && nx_tokenizer_eos_id(tok) >= 0) {
        const char *b = nx_tokenizer_id_to_token(tok, nx_tokenizer_eos_id(tok));
        if (b) c->eos = strdup(b);
    }
    if (c->source) {
        nx_err perr;
        if (nx_chat_template_parse(&c->tpl, c->source, &perr)) {
            fprintf(stderr, "nexus serve: the model's chat template cannot be used (%s); chat requests use the "
                            "fallback format (docs/SERVE.md)\n", perr.msg);
            c->tpl = NULL;
        }
    } else {
        fprintf(stderr, "nexus serve: %s/tokenizer_config.json has no chat_template; chat requests use the fallback "
                        "format (docs/SERVE.md)\n", dir);
    }
    return NX_OK;
}

void chat_free(chat *c) {
    nx_chat_template_free(c->tpl);
    free(c->source), free(c->bos), free(c->eos);
    memset(c, 0, sizeof *c);
}

char *chat_prompt(chat *c, const nx_serve_request *r, nx_api_error *e) {
    if (c->tpl) {
        cJSON *ctx = cJSON_CreateObject();
        cJSON_AddItemToObject(ctx, "messages", cJSON_Parse(r->messages_json));
        cJSON_AddTrueToObject(ctx, "add_generation_prompt");
        cJSON_AddStringToObject(ctx, "bos_token", c->bos ? c->bos : "");
        cJSON_AddStringToObject(ctx, "eos_token", c->eos ? c->eos : "");
        char *js = cJSON_PrintUnformatted(ctx);
        cJSON_Delete(ctx);
        char *out = NULL;
        nx_err err;
        nx_render_status st = js ? nx_chat_template_render(c->tpl, js, &out, &err) : NX_RENDER_FAILED;
        free(js);
        if (st == NX_RENDER_OK) return out;
        if (st == NX_RENDER_RAISED) {
            nx_api_fail(e, 400, NULL, "invalid_messages", "messages", "The model's chat template refused the messages: %s",
                        err.msg);
            return NULL;
        }
        if (!c->warned) {
            fprintf(stderr, "nexus serve: the chat template failed to render (%s); using the fallback format\n",
                    err.msg);
            c->warned = true;
        }
    }
    return nx_chat_fallback(r->messages, r->nmessages, true);
}
