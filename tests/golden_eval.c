/* golden_eval.c — nx_eval on teacher-19m: the validation stream has
 * PROTOCOLS.md's 180,547 tokens, and the model agrees with itself (agreement
 * 1, KL 0) on the first 64 windows. The full-set perplexity (transformers:
 * 103.155) is checked through the CLI by golden_benchmark.sh. */
#include "nexus/dataset.h"
#include "nexus/eval.h"
#include "nexus/hf.h"
#include "nxtest.h"

#define MODEL "../shared/models/teacher-19m"

TEST(teacher19m_eval_against_itself) {
    const char *paths[] = {"../shared/data/corpus/validation.jsonl"};
    if (!NEED(MODEL "/config.json", MODEL "/model.safetensors", MODEL "/tokenizer.json", paths[0])) return;
    nx_model m;
    nx_tokenizer *tok;
    nx_err e;
    if (nx_hf_load_model(MODEL, &m, &e) != NX_OK) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    if (nx_tokenizer_load(&tok, MODEL, &e) != NX_OK) {
        CHECKF(0, "%s", e.msg);
        nx_model_free(&m);
        return;
    }
    nx_docs_opts o = {.eos_id = nx_tokenizer_eos_id(tok)};
    nx_token_stream s = {0};
    CHECKF(nx_dataset_tokenize(tok, paths, 1, &o, &s, NULL, &e) == NX_OK, "%s", e.msg);
    CHECK(s.n == 180547);
    nx_eval_result r;
    double t0 = nx_now();
    CHECKF(nx_eval(&m, &m, nx_stream_tokens(&s), 256, 16, 64, &r, NULL, &e) == NX_OK, "%s", e.msg);
    printf("  ppl %.4f over %lld windows (%.1f s); agreement with itself %.4f, KL %.2g\n", r.perplexity,
           (long long)r.windows, nx_now() - t0, r.agreement, r.kl);
    CHECK(r.perplexity > 50 && r.perplexity < 200);
    CHECK(r.windows == 64 && r.positions == 64 * 255 && r.agreement == 1.0 && fabs(r.kl) < 1e-6);
    nx_token_stream_free(&s);
    nx_tokenizer_free(tok);
    nx_model_free(&m);
}
