/* golden_run_config.c — the bench configs against ../shared: their teacher
 * and data paths exist, and the students they describe, resolved against
 * teacher-19m's real config.json, have the parameter counts PROTOCOLS.md
 * states (teacher 18.9 M, L0246 12.6 M, S7M 7.15 M). Reads config.json with
 * cJSON directly so that this check does not depend on the HF loader. */
#include <cJSON.h>

#include "nexus/fsutil.h"
#include "nexus/run_config.h"
#include "nxtest.h"

static int num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static bool teacher_cfg(const char *dir, nx_model_config *t) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    nx_err e;
    char *txt = nx_read_file(path, 1u << 30, &n, &e);
    if (!txt) return fprintf(stderr, "  %s\n", e.msg), false;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    if (!j) return fprintf(stderr, "  %s: not valid JSON\n", path), false;
    memset(t, 0, sizeof *t);
    t->arch = NX_ARCH_LLAMA;
    t->V = num(j, "vocab_size");
    t->C = num(j, "hidden_size");
    t->L = num(j, "num_hidden_layers");
    t->NH = num(j, "num_attention_heads");
    t->KVH = num(j, "num_key_value_heads");
    t->HS = num(j, "head_dim");
    t->F = num(j, "intermediate_size");
    t->max_pos = num(j, "max_position_embeddings");
    t->eps = 1e-5f;
    t->rope_theta = 10000.0f;
    t->tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings"));
    t->bos_id = num(j, "bos_token_id");
    t->eos_id = num(j, "eos_token_id");
    cJSON_Delete(j);
    return true;
}

static void check(const char *file, size_t want) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    nx_model_config t, s;
    if (nx_run_config_load(rc, file, NULL, 0, &e) != NX_OK) {
        CHECKF(0, "%s", e.msg);
        free(rc);
        return;
    }
    if (!NEED(rc->teacher.path, rc->data.train, rc->data.validation) || !teacher_cfg(rc->teacher.path, &t)) {
        CHECKF(0, "%s: its teacher or data is missing or unreadable (see above)", file);
        free(rc);
        return;
    }
    CHECKF(nx_model_numel(&t) == 18880896, "teacher %zu", nx_model_numel(&t));
    CHECKF(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK, "%s: %s", file, e.msg);
    CHECKF(nx_model_numel(&s) == want, "%s: student has %zu parameters, want %zu", file, nx_model_numel(&s), want);
    free(rc);
}

TEST(bench_configs_against_shared) {
    check("bench/p0.yaml", 12586368);
    check("bench/p1-l0246.yaml", 12586368);
    check("bench/p1-s7m-kd.yaml", 7145728);
    check("bench/p1-s7m-scratch.yaml", 7145728);
}
