/* generate.c — `nexus generate MODEL --prompt TEXT`: text generation with
 * the KV-cache engine, streamed to stdout as tokens come.
 *
 * The prompt is encoded without special tokens (as a continuation), unless
 * --bos prepends the BOS id. Generation stops at max tokens, the EOS id
 * (unless --ignore-eos), a stop string (checked on the decoded text; the
 * stop string itself is not printed), or the end of the model's context
 * (max_position_embeddings): a prompt that does not leave room for one new
 * token is an error, as is an empty prompt without --bos.
 *
 * Streaming prints only text that is final: the whole generated sequence is
 * decoded after each token and only bytes past what was printed, short of
 * an incomplete UTF-8 character (which the decoder renders as a trailing
 * U+FFFD until its last byte arrives) or a tail that may yet become a stop
 * string, are written. --json prints one object at the end instead. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/infer.h"
#include "nexus/tokenizer.h"

/* Hold back trailing U+FFFD (EF BF BD): an incomplete character so far. */
static size_t hold_replacement(const char *t, size_t safe) {
    while (safe >= 3 && memcmp(t + safe - 3, "\xEF\xBF\xBD", 3) == 0) safe -= 3;
    return safe;
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL, *prompt_file = NULL;
    long max_tokens = 128, top_k = 0, seed = 0, threads = 0;
    double temperature = 0, top_p = 1, min_p = 0, rep = 1;
    bool bos = false, json = false, ignore_eos = false;
    cli_multi stops = {0};
    const cli_opt opts[] = {
        {"--prompt", OPT_STR, &prompt, "prompt text"},
        {"--prompt-file", OPT_STR, &prompt_file, "read the prompt from a file"},
        {"--max-tokens", OPT_INT, &max_tokens, "new tokens at most (default 128)"},
        {"--temperature", OPT_FLOAT, &temperature, "sampling temperature; 0 = greedy (default 0)"},
        {"--top-k", OPT_INT, &top_k, "keep the k most likely tokens (0 = off)"},
        {"--top-p", OPT_FLOAT, &top_p, "nucleus sampling mass (1 = off)"},
        {"--min-p", OPT_FLOAT, &min_p, "drop tokens below min-p × the top probability (0 = off)"},
        {"--repetition-penalty", OPT_FLOAT, &rep, "penalise tokens already seen (1 = off)"},
        {"--stop", OPT_MULTI, &stops, "stop when the text contains this string (repeatable)"},
        {"--seed", OPT_INT, &seed, "random seed for sampling (default 0)"},
        {"--threads", OPT_INT, &threads, "threads (default: all cores)"},
        {"--bos", OPT_FLAG, &bos, "prepend the BOS token to the prompt"},
        {"--ignore-eos", OPT_FLAG, &ignore_eos, "keep generating after the EOS token"},
        {"--json", OPT_FLAG, &json, "print one JSON object (ids, text, timings) instead of streaming"},
    };
    const cli_spec spec = {
        "generate", "MODEL_DIR (--prompt TEXT | --prompt-file F) [options]",
        "Generate text with a Hugging Face model directory (config.json, model.safetensors, "
        "tokenizer.json), streaming it to stdout. The prompt is encoded without special tokens "
        "unless --bos. Prompt plus new tokens are bounded by the model's context "
        "(max_position_embeddings): a prompt that fills it is an error.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (!prompt == !prompt_file) {
        fprintf(stderr, "nexus generate: give exactly one of --prompt and --prompt-file\n");
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if (max_tokens < 1) {
        fprintf(stderr, "nexus generate: --max-tokens must be at least 1\n");
        return EXIT_USAGE;
    }
    const char *dir = pos[0];
    nx_err err;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "nexus generate: %s not found: generate needs the model's tokenizer (copy "
                        "tokenizer.json from the model it was trained or distilled from)\n", path);
        return EXIT_RUNTIME;
    }
    nx_sample_opts so = {.temperature = (float)temperature, .top_k = (int)top_k, .top_p = (float)top_p,
                         .min_p = (float)min_p, .repetition_penalty = (float)rep};
    nx_sampler sampler;
    if (nx_sampler_init(&sampler, &so, 1, (uint64_t)seed, &err)) {
        fprintf(stderr, "nexus generate: %s\n", err.msg);
        return EXIT_USAGE;
    }
    nx_sampler_free(&sampler);
    nx_set_threads((int)threads);

    char *owned = NULL;
    if (prompt_file && !(prompt = owned = nx_read_file(prompt_file, 0, NULL, &err))) return cli_error("generate", err.msg);
    nx_tokenizer *tok = NULL;
    nx_model m = {0};
    int32_t *pids = NULL, *hist = NULL, *gen = NULL;
    char *text = NULL;
    int status = EXIT_RUNTIME;
    nx_infer s = {0};
    bool have_sampler = false, have_infer = false;
    if (nx_tokenizer_load(&tok, dir, &err)) goto done;
    size_t np = 0;
    if (nx_tokenizer_encode(tok, prompt, strlen(prompt), false, &pids, &np, &err)) {
        nx_fail_prefix(&err, "%s", prompt_file ? prompt_file : "--prompt");
        goto done;
    }
    if (nx_hf_load_model(dir, &m, &err)) goto done;
    const nx_model_config *c = &m.cfg;
    int32_t bos_id = nx_tokenizer_bos_id(tok) >= 0 ? nx_tokenizer_bos_id(tok) : c->bos_id;
    int32_t eos_id = nx_tokenizer_eos_id(tok) >= 0 ? nx_tokenizer_eos_id(tok) : c->eos_id;
    if (bos && bos_id < 0) {
        nx_fail(&err, "--bos: the tokenizer and config.json name no BOS token");
        goto done;
    }
    int P = (int)np + (bos ? 1 : 0);
    if (P == 0) {
        nx_fail(&err, "the prompt is empty (no tokens): give some text, or --bos to start from the BOS token");
        goto done;
    }
    if (P >= c->max_pos) {
        nx_fail(&err, "the prompt is %d tokens but the model's context is %d tokens "
                      "(max_position_embeddings), leaving no room to generate: shorten the prompt",
                P, c->max_pos);
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        if (pids[i] >= c->V) {
            nx_fail(&err, "prompt token %zu has id %d, beyond the model's vocabulary of %d: the "
                          "tokenizer does not match the model", i, pids[i], c->V);
            goto done;
        }
    int T = P + (int)max_tokens < c->max_pos ? P + (int)max_tokens : c->max_pos;
    hist = nx_xmalloc(sizeof(int32_t) * T);
    if (bos) hist[0] = bos_id;
    if (np) memcpy(hist + (bos ? 1 : 0), pids, sizeof(int32_t) * np);
    gen = hist + P;
    if (nx_infer_init(&s, &m, 1, T, P < 512 ? P : 512, &err)) goto done;
    have_infer = true;
    if (nx_sampler_init(&sampler, &so, c->V, (uint64_t)seed, &err)) goto done;
    have_sampler = true;

    const char *const *stopv = (const char *const *)stops.v;
    double t0 = nx_now();
    nx_infer_prefill(&s, 0, hist, P);
    double t_pre = nx_now();
    int ngen = 0;
    size_t printed = 0;
    long stop_at = -1;
    const char *reason = "length";
    double t_first = 0;
    for (;;) {
        int32_t t = nx_sampler_sample(&sampler, s.logits, hist, P + ngen);
        if (ngen == 0) t_first = nx_now();
        gen[ngen++] = t;
        bool is_eos = t == eos_id && !ignore_eos;
        free(text);
        text = NULL;
        if (nx_tokenizer_decode(tok, gen, ngen, true, &text, &err)) goto done;
        size_t len = strlen(text), safe;
        stop_at = nx_stop_scan(text, len, stopv, stops.n, &safe);
        bool last = stop_at >= 0 || is_eos || ngen == max_tokens || P + ngen >= T;
        if (!last) safe = hold_replacement(text, safe);
        else if (stop_at < 0) safe = len;
        if (!json && safe > printed) {
            fwrite(text + printed, 1, safe - printed, stdout);
            fflush(stdout);
            printed = safe;
        }
        if (stop_at >= 0) { reason = "stop"; break; }
        if (is_eos) { reason = "eos"; break; }
        if (ngen == max_tokens) { reason = "length"; break; }
        if (P + ngen >= T) { reason = "context"; break; }
        nx_infer_decode(&s, &gen[ngen - 1], 1);
    }
    double t_end = nx_now();
    if (stop_at >= 0) text[stop_at] = '\0';
    double ttft = (t_first - t0) * 1e3, dec_s = t_end - t_first;
    double dec_tps = ngen > 1 && dec_s > 0 ? (ngen - 1) / dec_s : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "prompt_tokens", P);
        cJSON_AddItemToObject(o, "prompt_ids", cJSON_CreateIntArray((const int *)hist, P));
        cJSON_AddItemToObject(o, "token_ids", cJSON_CreateIntArray((const int *)gen, ngen));
        cJSON_AddStringToObject(o, "text", text ? text : "");
        cJSON_AddNumberToObject(o, "generated_tokens", ngen);
        cJSON_AddStringToObject(o, "stop_reason", reason);
        cJSON_AddNumberToObject(o, "ttft_ms", ttft);
        cJSON_AddNumberToObject(o, "prefill_tokens_per_s", P / (t_pre - t0));
        cJSON_AddNumberToObject(o, "decode_tokens_per_s", dec_tps);
        cJSON_AddNumberToObject(o, "total_ms", (t_end - t0) * 1e3);
        cJSON_AddNumberToObject(o, "threads", nx_threads());
        char *js = cJSON_Print(o);
        printf("%s\n", js);
        free(js);
        cJSON_Delete(o);
    } else {
        printf("\n");
        fprintf(stderr, "[%d prompt tokens, %d generated (%s); first token %.1f ms, decode %.1f tokens/s]\n",
                P, ngen, reason, ttft, dec_tps);
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) cli_error("generate", err.msg);
    if (have_sampler) nx_sampler_free(&sampler);
    if (have_infer) nx_infer_free(&s);
    if (m.params) nx_model_free(&m);
    nx_tokenizer_free(tok);
    free(pids), free(hist), free(text), free(owned);
    return status;
}
