/* golden_gguf.c — GGUF against ../shared:
 *   - the reference teacher-19m GGUF (written by llama.cpp's converter)
 *     reads as the safetensors teacher: the same config, every tensor the
 *     same bit for bit once q/k are un-permuted, the same logits (≤ 1e-6
 *     relative; in fact equal), and its tokenizer metadata gives the ids of
 *     the Hugging Face tokenizer on the validation corpus;
 *   - nexus's BF16 export of the safetensors teacher carries exactly the
 *     reference's tensors (names, shapes, types, offsets and bytes) and
 *     tokenizer metadata, and loads back to the same logits;
 *   - the three tokenizer styles of ../shared/tokenizers survive a trip
 *     through GGUF metadata: their golden encodings come out unchanged.
 * A missing ../shared file is a failure. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/dataset.h"
#include "nexus/fsutil.h"
#include "nexus/gguf.h"
#include "nexus/hf.h"
#include "nexus/model.h"
#include "nexus/modelfile.h"
#include "nexus/tokenizer.h"
#include "nxtest.h"

#define MODEL "../shared/models/teacher-19m"
#define GGUF "../shared/models/teacher-19m-gguf/teacher-19m-bf16.gguf"
#define VALID "../shared/data/corpus/validation.jsonl"

/* Logits of a B × T forward of random ids (seeded) into a malloc'd array. */
static float *logits_of(const nx_model *m, int B, int T) {
    int32_t *ids = nx_xmalloc(sizeof *ids * (size_t)B * T);
    nx_rng r;
    nx_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)nx_rng_below(&r, m->cfg.V);
    nx_acts a;
    NX_ASSERT(nx_acts_init(&a, m, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(m, &a, ids, B, T, true);
    size_t n = (size_t)B * T * m->cfg.V;
    float *out = nx_xmalloc(sizeof *out * n);
    memcpy(out, a.logits, sizeof *out * n);
    nx_acts_free(&a);
    free(ids);
    return out;
}

static bool same_config(const nx_model_config *a, const nx_model_config *b) {
    return a->arch == b->arch && a->V == b->V && a->C == b->C && a->L == b->L && a->NH == b->NH &&
           a->KVH == b->KVH && a->HS == b->HS && a->F == b->F && a->max_pos == b->max_pos && a->eps == b->eps &&
           a->rope_theta == b->rope_theta && a->tied == b->tied && a->qkv_bias == b->qkv_bias &&
           a->o_bias == b->o_bias && a->bos_id == b->bos_id && a->eos_id == b->eos_id;
}

/* Every tensor of a and b equal bit for bit (widened to f32). */
static int tensors_differ(const nx_model *a, const nx_model *b) {
    int bad = 0;
    for (int i = 0; i < a->ntab; i++) {
        size_t n = a->tab[i].numel;
        float *x = nx_xmalloc(sizeof *x * n), *y = nx_xmalloc(sizeof *y * n);
        nx_model_get(a, i, x);
        nx_model_get(b, nx_model_find(b, a->tab[i].name), y);
        if (memcmp(x, y, sizeof *x * n)) {
            fprintf(stderr, "  tensor %s differs\n", a->tab[i].name);
            bad++;
        }
        free(x), free(y);
    }
    return bad;
}

TEST(reference_gguf_reads_as_the_safetensors_teacher) {
    if (!NEED(MODEL "/model.safetensors", GGUF)) return;
    nx_err err;
    nx_gguf g;
    if (nx_gguf_open(&g, GGUF, &err)) { CHECKF(0, "%s", err.msg); return; }
    CHECK(g.version == 3 && g.nt == 75 && g.nkv == 25 && g.alignment == 32);
    nx_model_config hc, gc;
    CHECKF(nx_hf_load_config(MODEL, &hc, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_gguf_model_config(&g, &gc, &err) == NX_OK, "%s", err.msg);
    CHECK(same_config(&hc, &gc));
    nx_gguf_close(&g);
    for (int k = 0; k < 2; k++) {
        nx_dtype hold = k ? NX_BF16 : NX_F32;
        nx_model hm, gm;
        nx_tokenizer *tok = NULL;
        CHECKF(nx_hf_load_model_as(MODEL, &hm, hold, &err) == NX_OK, "%s", err.msg);
        CHECKF(nx_modelfile_load(GGUF, hold, nx_backend_cpu(), &gm, &tok, &err) == NX_OK, "%s", err.msg);
        if (!gm.data || !hm.data) return;
        CHECK(tensors_differ(&hm, &gm) == 0);
        enum { B = 2, T = 64 };
        float *a = logits_of(&hm, B, T), *b = logits_of(&gm, B, T);
        double e = nxt_rel_err(b, a, (long)B * T * hc.V);
        CHECKF(e <= 1e-6, "relative logit error %.3g", e);
        printf("  held in %s: GGUF vs safetensors logits, relative error %.3g (%s)\n", nx_dtype_name(hold), e,
               memcmp(a, b, sizeof *a * B * T * hc.V) ? "not bit-identical" : "bit-identical");
        free(a), free(b);
        nx_tokenizer_free(tok);
        nx_model_free(&hm);
        nx_model_free(&gm);
    }
}

TEST(reference_gguf_tokenizer_matches_hf_on_the_validation_corpus) {
    if (!NEED(MODEL "/tokenizer.json", GGUF, VALID)) return;
    nx_err err;
    nx_tokenizer *ht = NULL, *gt = NULL;
    CHECKF(nx_tokenizer_load(&ht, MODEL, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_modelfile_tokenizer(GGUF, &gt, &err) == NX_OK, "%s", err.msg);
    if (!ht || !gt) return;
    CHECK(nx_tokenizer_bos_id(gt) == 0 && nx_tokenizer_eos_id(gt) == 0);
    size_t len;
    char *txt = nx_read_file(VALID, 1u << 30, &len, &err);
    CHECKF(txt, "%s", err.msg);
    int docs = 0, differ = 0;
    size_t tokens = 0;
    for (char *line = txt, *next; txt && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(o, "text");
        if (cJSON_IsString(t)) {
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            const char *s = t->valuestring;
            CHECK(nx_tokenizer_encode(ht, s, strlen(s), false, &a, &na, &err) == NX_OK);
            CHECK(nx_tokenizer_encode(gt, s, strlen(s), false, &b, &nb, &err) == NX_OK);
            docs++;
            tokens += na;
            if (na != nb || memcmp(a, b, sizeof *a * na)) differ++;
            free(a), free(b);
        }
        cJSON_Delete(o);
    }
    printf("  %d documents, %zu tokens: %d encode differently from tokenizer.json\n", docs, tokens, differ);
    CHECK(docs == 150 && differ == 0);
    free(txt);
    nx_tokenizer_free(ht);
    nx_tokenizer_free(gt);
}

/* The tensor infos and data of a and b compared; the tokenizer.* pairs of
 * the reference must be in the export with the same values. */
static void compare_files(const nx_gguf *ref, const nx_gguf *out) {
    CHECK(out->nt == ref->nt && out->data_start <= ref->data_start + 4096);
    int bad = 0;
    for (int i = 0; i < ref->nt && i < out->nt; i++) {
        const nx_gguf_tensor *a = &ref->t[i], *b = &out->t[i];
        bool same = !strcmp(a->name, b->name) && a->ndim == b->ndim && a->type == b->type &&
                    a->offset == b->offset && a->nbytes == b->nbytes && !memcmp(a->ne, b->ne, sizeof a->ne) &&
                    !memcmp(a->data, b->data, a->nbytes);
        if (!same) fprintf(stderr, "  tensor %d (%s / %s) differs\n", i, a->name, b->name), bad++;
    }
    CHECKF(bad == 0, "%d tensors differ from the reference", bad);
    for (int i = 0; i < ref->nkv; i++) {
        const nx_gguf_kv *a = &ref->kv[i];
        if (strncmp(a->key, "tokenizer.", 10)) continue;
        const nx_gguf_kv *b = nx_gguf_find(out, a->key);
        bool same = b && a->v.type == b->v.type && a->v.elem == b->v.elem && a->v.n == b->v.n;
        for (uint64_t k = 0; same && k < a->v.n; k++) {
            if (a->v.elem == NX_GGUF_STRING)
                same = a->v.str[k].len == b->v.str[k].len && !memcmp(a->v.str[k].s, b->v.str[k].s, a->v.str[k].len);
            else same = nx_gguf_value_f64(&a->v, k) == nx_gguf_value_f64(&b->v, k);
        }
        CHECKF(same, "key %s differs from the reference", a->key);
    }
}

TEST(bf16_export_carries_the_reference_tensors_and_tokenizer) {
    if (!NEED(MODEL "/model.safetensors", GGUF)) return;
    nxt_tmp_make("gguf");
    nx_err err;
    nx_model m;
    nx_tokenizer *tok = NULL;
    CHECKF(nx_modelfile_load(MODEL, NX_BF16, nx_backend_cpu(), &m, &tok, &err) == NX_OK, "%s", err.msg);
    if (!tok) return;
    char *cfg = nx_read_file(MODEL "/tokenizer_config.json", 1u << 30, NULL, &err);
    nx_gguf_export o = {.dtype = NX_BF16, .name = "Teacher 19m", .tok = tok, .tok_config = cfg};
    const char *path = nxt_tpath("teacher.gguf");
    CHECKF(nx_gguf_save_model(path, &m, &o, &err) == NX_OK, "%s", err.msg);
    nx_gguf ref, out;
    CHECKF(nx_gguf_open(&ref, GGUF, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_gguf_open(&out, path, &err) == NX_OK, "%s", err.msg);
    compare_files(&ref, &out);
    printf("  export: %zu bytes (reference %zu), %d keys (reference %d)\n", out.size, ref.size, out.nkv, ref.nkv);
    nx_gguf_close(&ref);
    nx_gguf_close(&out);
    nx_model back;
    CHECKF(nx_modelfile_load(path, NX_BF16, nx_backend_cpu(), &back, NULL, &err) == NX_OK, "%s", err.msg);
    CHECK(tensors_differ(&m, &back) == 0);
    float *a = logits_of(&m, 1, 32), *b = logits_of(&back, 1, 32);
    CHECK(memcmp(a, b, sizeof *a * 32 * m.cfg.V) == 0);
    free(a), free(b);
    nx_model_free(&back);
    nx_model_free(&m);
    nx_tokenizer_free(tok);
    free(cfg);
    nxt_tmp_remove();
}

/* A tokenizer through GGUF metadata and back. */
static nx_tokenizer *through_gguf(const nx_tokenizer *t, nx_err *err) {
    nx_gguf_writer *w = nx_gguf_writer_new();
    nx_gguf_set_str(w, "general.architecture", "llama");
    nx_tokenizer *back = NULL;
    nx_gguf g;
    if (nx_gguf_put_tokenizer(w, t, nx_tokenizer_vocab_size(t), NULL, err) == NX_OK &&
        nx_gguf_write(w, nxt_tpath("tok.gguf"), err) == NX_OK && nx_gguf_open(&g, nxt_tpath("tok.gguf"), err) == NX_OK) {
        nx_gguf_load_tokenizer(&g, &back, err);
        nx_gguf_close(&g);
    }
    nx_gguf_writer_free(w);
    return back;
}

TEST(shared_tokenizers_survive_gguf_metadata) {
    const char *styles[] = {"bytelevel-gpt2", "bytelevel-llama3", "sentencepiece-llama2"};
    nxt_tmp_make("ggtok");
    for (int s = 0; s < 3; s++) {
        char dir[256], gold[300];
        snprintf(dir, sizeof dir, "../shared/tokenizers/%s", styles[s]);
        snprintf(gold, sizeof gold, "%s/golden_encodings.json", dir);
        if (!NEED(gold)) continue;
        nx_err err;
        nx_tokenizer *t = NULL, *b = NULL;
        CHECKF(nx_tokenizer_load(&t, dir, &err) == NX_OK, "%s", err.msg);
        if (t && !(b = through_gguf(t, &err))) CHECKF(0, "%s: %s", styles[s], err.msg);
        char *js = nx_read_file(gold, 1u << 30, NULL, &err);
        cJSON *g = js ? cJSON_Parse(js) : NULL, *c, *cases_arr = b ? g : NULL;
        int cases = 0, bad = 0, bad_dec = 0;
        cJSON_ArrayForEach(c, cases_arr) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            const cJSON *want = cJSON_GetObjectItem(c, "ids");
            int32_t *ids = NULL;
            size_t n = 0;
            cases++;
            if (nx_tokenizer_encode(b, text, strlen(text), false, &ids, &n, &err)) { bad++; continue; }
            bool same = (int)n == cJSON_GetArraySize(want);
            for (size_t i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
            if (!same) {
                bad++;
                fprintf(stderr, "  %s: \"%.50s\" encodes differently after GGUF\n", styles[s], text);
            }
            char *dec = NULL;
            if (nx_tokenizer_decode(b, ids, n, false, &dec, &err) ||
                strcmp(dec, cJSON_GetObjectItem(c, "decoded")->valuestring))
                bad_dec++;
            free(dec);
            free(ids);
        }
        printf("  %s: %d golden cases, %d encode and %d decode differently after GGUF\n", styles[s], cases, bad,
               bad_dec);
        CHECK(cases > 0 && bad == 0 && bad_dec == 0);
        cJSON_Delete(g);
        free(js);
        nx_tokenizer_free(t);
        nx_tokenizer_free(b);
    }
    nxt_tmp_remove();
}
