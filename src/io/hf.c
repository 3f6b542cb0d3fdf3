/* hf.c — Hugging Face model directories: config.json ↔ nx_model_config and
 * safetensors ↔ the f32 parameter buffer of an nx_model.
 *
 * Reading is strict because a config we misread gives a model that runs and
 * produces garbage. Every key is type-checked (a string where a number is
 * expected is an error naming the key), and anything the model module
 * cannot run exactly — longrope and other rope types, partial rotary
 * factors, an activation other than SiLU, MLP biases, sliding layers that
 * are not the last ones — is refused with the key and value. Defaults
 * follow transformers' (5.x) config classes when a key is absent:
 *
 *   key                       llama    qwen2    qwen3    mistral
 *   num_key_value_heads       heads    32       32       8
 *   max_position_embeddings   2048     32768    32768    131072
 *   head_dim                  C / NH   C / NH   128      C / NH
 *   rms_norm_eps, rope_theta  1e-6, 10000 for all; tie_word_embeddings false
 *
 * Biases: llama, mistral and qwen3 take attention_bias for q, k, v and o
 * alike; qwen2 always has q/k/v biases and never an o bias. Qwen3 has
 * per-head q/k norms.
 *
 * Rope: rope_parameters (v5) or rope_scaling (v4) with rope_type (or
 * type) default, linear, dynamic, yarn or llama3 and their keys
 * (ops.h: nx_rope_scaling); a v4 rope_scaling without a type is refused.
 *
 * Sliding windows, as the v5 config classes apply them: mistral slides
 * every layer by sliding_window (absent: 4096, null: no window); qwen2
 * and qwen3 only when use_sliding_window is true, then the layers from
 * max_window_layers on (absent: 28), or those layer_types names
 * "sliding_attention" when it is given (they must be the last ones).
 *
 * Writing (nx_hf_save_model) emits keys both transformers 4 and 5 load:
 * rope_theta at the top level (what v4 reads; v5 folds it into
 * rope_parameters) and rope_parameters {rope_theta, rope_type, ...} (what
 * v5 writes; v4 ignores the unknown key) and, for a scaled rope, the same
 * object as rope_scaling (what v4 reads), and both dtype (v5) and
 * torch_dtype (v4). Tensors are written sorted by name, as the Hugging Face
 * safetensors library orders them, so that saving a bf16 checkpoint we
 * loaded gives back the same bytes. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/json.h"
#include "nexus/qstore.h"
#include "nexus/safetensors.h"

static const cJSON *get(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

const char *nx_hf_dtype_name(nx_dtype t) {
    return t == NX_BF16 ? "bfloat16" : t == NX_F16 ? "float16" : "float32";
}

/* Positive int at key; absent or null → def (def < 0: required). */
static int get_int(const cJSON *o, const char *key, int def, int *out, const char *file, nx_err *err) {
    const cJSON *x = get(o, key);
    if (!x || cJSON_IsNull(x)) {
        if (def < 0) return nx_fail(err, "%s: missing required key '%s'", file, key);
        *out = def;
        return NX_OK;
    }
    if (!cJSON_IsNumber(x))
        return nx_fail(err, "%s: key '%s' must be an integer (got %s)", file, key, nx_json_kind(x));
    double d = x->valuedouble;
    if (d != floor(d) || d < 0 || d > 2147483647.0)
        return nx_fail(err, "%s: key '%s' must be a non-negative integer (got %g)", file, key, d);
    *out = (int)d;
    return NX_OK;
}

static int get_num(const cJSON *o, const char *key, double def, double *out, const char *file, nx_err *err) {
    const cJSON *x = get(o, key);
    if (!x || cJSON_IsNull(x)) {
        *out = def;
        return NX_OK;
    }
    if (!cJSON_IsNumber(x)) return nx_fail(err, "%s: key '%s' must be a number (got %s)", file, key, nx_json_kind(x));
    *out = x->valuedouble;
    return NX_OK;
}

static int get_bool(const cJSON *o, const char *key, bool def, bool *out, const char *file, nx_err *err) {
    const cJSON *x = get(o, key);
    if (!x || cJSON_IsNull(x)) {
        *out = def;
        return NX_OK;
    }
    if (!cJSON_IsBool(x)) return nx_fail(err, "%s: key '%s' must be true or false (got %s)", file, key, nx_json_kind(x));
    *out = cJSON_IsTrue(x);
    return NX_OK;
}

/* bos_token_id / eos_token_id: integer, null (→ -1) or a list (first). */
static int get_token(const cJSON *o, const char *key, int *out, const char *file, nx_err *err) {
    const cJSON *x = get(o, key);
    *out = -1;
    if (cJSON_IsArray(x)) x = x->child;
    if (!x || cJSON_IsNull(x)) return NX_OK;
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
        x->valuedouble > 2147483647.0)
        return nx_fail(err, "%s: key '%s' must be a token id, a list of them, or null (got %s)", file, key,
                       nx_json_kind(x));
    *out = (int)x->valuedouble;
    return NX_OK;
}

/* A positive number at o[key] into *out; absent or null keeps *out (def:
 * whether absence is allowed). */
static int rope_num(const cJSON *o, const char *obj, const char *key, bool required, double *out, const char *file,
                    nx_err *err) {
    const cJSON *x = get(o, key);
    if (!x || cJSON_IsNull(x)) {
        if (required) return nx_fail(err, "%s: key '%s.%s' is missing; this rope_type needs it", file, obj, key);
        return NX_OK;
    }
    if (!cJSON_IsNumber(x)) return nx_fail(err, "%s: key '%s.%s' must be a number (got %s)", file, obj, key, nx_json_kind(x));
    *out = x->valuedouble;
    return NX_OK;
}

/* rope_parameters (v5) or rope_scaling (v4): the rope type and its keys. */
static int parse_rope(const cJSON *root, const char *file, nx_model_config *c, nx_err *err) {
    const char *key = "rope_parameters";
    const cJSON *x = get(root, key);
    if (!x || cJSON_IsNull(x)) x = get(root, key = "rope_scaling");
    c->rope = (nx_rope_scaling){0};
    double prf = 1.0;
    if (rope_num(root, "", "partial_rotary_factor", false, &prf, file, err) ||
        (cJSON_IsObject(x) && rope_num(x, key, "partial_rotary_factor", false, &prf, file, err)))
        return NX_ERR;
    if (prf != 1.0)
        return nx_fail(err, "%s: partial_rotary_factor is %g; only rotary embeddings over the whole head (1.0) are "
                            "supported", file, prf);
    if (!x || cJSON_IsNull(x)) return NX_OK;
    if (!cJSON_IsObject(x)) return nx_fail(err, "%s: key '%s' must be an object (got %s)", file, key, nx_json_kind(x));
    const cJSON *t = get(x, "rope_type");
    const char *tkey = "rope_type";
    if (!t || cJSON_IsNull(t)) t = get(x, tkey = "type");
    if (!t || cJSON_IsNull(t)) {
        if (!strcmp(key, "rope_scaling") && x->child) /* a v4 rope_scaling object without a type still scales something */
            return nx_fail(err, "%s: key 'rope_scaling' has no 'rope_type': say which scaling it is (linear, dynamic, "
                                "yarn, llama3) or set it to null", file);
        return NX_OK;
    }
    if (!cJSON_IsString(t))
        return nx_fail(err, "%s: key '%s.%s' must be a string (got %s)", file, key, tkey, nx_json_kind(t));
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3"};
    int k = 0;
    while (k < 5 && strcmp(t->valuestring, names[k])) k++;
    if (k == 5)
        return nx_fail(err, "%s: key '%s.%s' is '%.60s', which nexus cannot run (supported: default, linear, "
                            "dynamic, yarn, llama3)", file, key, tkey, t->valuestring);
    nx_rope_scaling *r = &c->rope;
    r->type = (nx_rope_type)k;
    double omp = 0, omp_top = 0;
    if (r->type == NX_ROPE_DEFAULT) return NX_OK;
    /* factor: required, except for yarn (then max_position_embeddings / original) */
    if (rope_num(x, key, "factor", r->type != NX_ROPE_YARN, &r->factor, file, err)) return NX_ERR;
    if (rope_num(root, "", "original_max_position_embeddings", false, &omp_top, file, err) ||
        rope_num(x, key, "original_max_position_embeddings", false, &omp, file, err))
        return NX_ERR;
    if (!(omp > 0)) omp = omp_top > 0 ? omp_top : c->max_pos; /* standardize_rope_params' default */
    if (r->type == NX_ROPE_LLAMA3 || r->type == NX_ROPE_YARN) r->original_max_pos = (int)omp;
    if (r->type == NX_ROPE_DYNAMIC) r->max_pos = c->max_pos;
    if (r->type == NX_ROPE_LLAMA3 &&
        (rope_num(x, key, "low_freq_factor", true, &r->low_freq_factor, file, err) ||
         rope_num(x, key, "high_freq_factor", true, &r->high_freq_factor, file, err)))
        return NX_ERR;
    if (r->type == NX_ROPE_YARN) {
        if (!(r->factor > 0)) r->factor = (double)c->max_pos / r->original_max_pos;
        if (rope_num(x, key, "attention_factor", false, &r->attention_factor, file, err) ||
            rope_num(x, key, "beta_fast", false, &r->beta_fast, file, err) ||
            rope_num(x, key, "beta_slow", false, &r->beta_slow, file, err) ||
            rope_num(x, key, "mscale", false, &r->mscale, file, err) ||
            rope_num(x, key, "mscale_all_dim", false, &r->mscale_all_dim, file, err))
            return NX_ERR;
        const cJSON *tr = get(x, "truncate");
        if (tr && !cJSON_IsNull(tr) && !cJSON_IsBool(tr))
            return nx_fail(err, "%s: key '%s.truncate' must be true or false (got %s)", file, key, nx_json_kind(tr));
        r->no_truncate = cJSON_IsFalse(tr);
    }
    return NX_OK;
}

/* Sliding windows (see the top of this file) into c->window, c->window_from. */
static int parse_window(const cJSON *root, const char *file, nx_model_config *c, nx_err *err) {
    c->window = 0;
    c->window_from = c->L;
    const cJSON *sw = get(root, "sliding_window");
    int win = 4096;
    if (sw && cJSON_IsNull(sw)) win = 0;
    else if (get_int(root, "sliding_window", 4096, &win, file, err)) return NX_ERR;
    const cJSON *lt = get(root, "layer_types");
    int first_sliding = -1, n = 0;
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt)) return nx_fail(err, "%s: key 'layer_types' must be a list (got %s)", file, nx_json_kind(lt));
        for (const cJSON *x = lt->child; x; x = x->next, n++) {
            bool full = cJSON_IsString(x) && !strcmp(x->valuestring, "full_attention");
            bool slide = cJSON_IsString(x) && !strcmp(x->valuestring, "sliding_attention");
            if (!full && !slide)
                return nx_fail(err, "%s: key 'layer_types' holds %s%.60s%s; only \"full_attention\" and "
                                    "\"sliding_attention\" layers are supported", file, cJSON_IsString(x) ? "'" : "",
                               cJSON_IsString(x) ? x->valuestring : nx_json_kind(x), cJSON_IsString(x) ? "'" : "");
            if (slide && first_sliding < 0) first_sliding = n;
            if (full && first_sliding >= 0)
                return nx_fail(err, "%s: key 'layer_types' has a full-attention layer (%d) after a sliding one (%d); "
                                    "nexus runs sliding layers only as the last ones", file, n, first_sliding);
        }
        if (n != c->L)
            return nx_fail(err, "%s: key 'layer_types' lists %d layers but num_hidden_layers is %d", file, n, c->L);
    }
    if (c->arch == NX_ARCH_MISTRAL) { /* every layer (MistralAttention ignores layer_types) */
        c->window = win;
        c->window_from = 0;
    } else if (c->arch == NX_ARCH_QWEN2 || c->arch == NX_ARCH_QWEN3) {
        bool use = false;
        int mwl = 28;
        if (get_bool(root, "use_sliding_window", false, &use, file, err) ||
            get_int(root, "max_window_layers", 28, &mwl, file, err))
            return NX_ERR;
        if (use && win > 0) {
            c->window = win;
            c->window_from = n ? (first_sliding < 0 ? c->L : first_sliding) : (mwl < c->L ? mwl : c->L);
        }
    } else if (first_sliding >= 0) {
        return nx_fail(err, "%s: key 'layer_types' names sliding layers, which a %s model does not have", file,
                       nx_arch_name(c->arch));
    }
    if (c->window_from >= c->L) c->window = 0, c->window_from = 0;
    if (!c->window) c->window_from = 0;
    return NX_OK;
}

static int parse_config(const cJSON *root, const char *file, nx_model_config *c, nx_err *err) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root)) return nx_fail(err, "%s: must hold a JSON object (got %s)", file, nx_json_kind(root));
    const cJSON *mt = get(root, "model_type");
    if (!mt) return nx_fail(err, "%s: missing required key 'model_type' (supported: %s)", file, nx_arch_list());
    if (!cJSON_IsString(mt)) return nx_fail(err, "%s: key 'model_type' must be a string (got %s)", file, nx_json_kind(mt));
    if (nx_arch_parse(mt->valuestring, &c->arch))
        return nx_fail(err, "%s: key 'model_type' is '%.60s', which nexus cannot run (supported: %s)", file,
                       mt->valuestring, nx_arch_list());
    /* transformers' defaults (table at the top of this file); kv 0: the head count */
    static const struct { int kv, pos, hs; } DEF[NX_ARCH_COUNT] = {
        [NX_ARCH_LLAMA] = {0, 2048, 0}, [NX_ARCH_QWEN2] = {32, 32768, 0}, [NX_ARCH_MISTRAL] = {8, 131072, 0},
        [NX_ARCH_QWEN3] = {32, 32768, 128}};
    int kv_def = DEF[c->arch].kv, pos_def = DEF[c->arch].pos;
    if (get_int(root, "vocab_size", -1, &c->V, file, err) || get_int(root, "hidden_size", -1, &c->C, file, err) ||
        get_int(root, "num_hidden_layers", -1, &c->L, file, err) ||
        get_int(root, "num_attention_heads", -1, &c->NH, file, err) ||
        get_int(root, "intermediate_size", -1, &c->F, file, err) ||
        get_int(root, "num_key_value_heads", kv_def ? kv_def : c->NH, &c->KVH, file, err) ||
        get_int(root, "max_position_embeddings", pos_def, &c->max_pos, file, err))
        return NX_ERR;
    if (c->NH <= 0) return nx_fail(err, "%s: key 'num_attention_heads' must be positive", file);
    if (get(root, "head_dim") && !cJSON_IsNull(get(root, "head_dim"))) {
        if (get_int(root, "head_dim", -1, &c->HS, file, err)) return NX_ERR;
    } else if (DEF[c->arch].hs) {
        c->HS = DEF[c->arch].hs;
    } else {
        if (c->C % c->NH)
            return nx_fail(err, "%s: hidden_size %d is not a multiple of num_attention_heads %d; set 'head_dim'",
                           file, c->C, c->NH);
        c->HS = c->C / c->NH;
    }
    double eps = 0, theta = 0;
    if (get_num(root, "rms_norm_eps", 1e-6, &eps, file, err)) return NX_ERR;
    c->eps = (float)eps;
    /* rope: transformers 5 nests it in rope_parameters, 4 has it top level. */
    const cJSON *rp = get(root, "rope_parameters");
    if (parse_rope(root, file, c, err)) return NX_ERR;
    if (get_num(root, "rope_theta", 10000.0, &theta, file, err)) return NX_ERR;
    if (cJSON_IsObject(rp) && get(rp, "rope_theta")) {
        const cJSON *t = get(rp, "rope_theta");
        if (!cJSON_IsNumber(t))
            return nx_fail(err, "%s: key 'rope_parameters.rope_theta' must be a number (got %s)", file, nx_json_kind(t));
        theta = t->valuedouble;
    }
    c->rope_theta = (float)theta;
    const cJSON *act = get(root, "hidden_act");
    if (act && !cJSON_IsNull(act)) {
        if (!cJSON_IsString(act)) return nx_fail(err, "%s: key 'hidden_act' must be a string (got %s)", file, nx_json_kind(act));
        if (strcmp(act->valuestring, "silu") != 0)
            return nx_fail(err, "%s: key 'hidden_act' is '%.60s'; only \"silu\" is supported", file, act->valuestring);
    }
    bool mlp_bias = false, attn_bias = false;
    if (get_bool(root, "mlp_bias", false, &mlp_bias, file, err)) return NX_ERR;
    if (mlp_bias) return nx_fail(err, "%s: key 'mlp_bias' is true; MLP biases are not supported", file);
    if (get_bool(root, "attention_bias", false, &attn_bias, file, err)) return NX_ERR;
    if (c->arch == NX_ARCH_QWEN2) c->qkv_bias = true, c->o_bias = false;
    else c->qkv_bias = c->o_bias = attn_bias;
    c->qk_norm = c->arch == NX_ARCH_QWEN3;
    if (get_bool(root, "tie_word_embeddings", false, &c->tied, file, err)) return NX_ERR;
    if (parse_window(root, file, c, err)) return NX_ERR;
    if (get_token(root, "bos_token_id", &c->bos_id, file, err) || get_token(root, "eos_token_id", &c->eos_id, file, err))
        return NX_ERR;
    c->dtype = NX_F32;
    const char *dkeys[2] = {"dtype", "torch_dtype"};
    for (int i = 0; i < 2; i++) {
        const cJSON *d = get(root, dkeys[i]);
        if (!d || cJSON_IsNull(d)) continue;
        if (!cJSON_IsString(d)) return nx_fail(err, "%s: key '%s' must be a string (got %s)", file, dkeys[i], nx_json_kind(d));
        static const nx_dtype known[3] = {NX_F32, NX_BF16, NX_F16};
        int k = 0;
        while (k < 3 && strcmp(d->valuestring, nx_hf_dtype_name(known[k]))) k++;
        if (k == 3)
            return nx_fail(err, "%s: key '%s' is '%.40s' (supported: float32, bfloat16, float16)", file, dkeys[i],
                           d->valuestring);
        c->dtype = known[k];
        break;
    }
    if (nx_model_config_check(c, err)) return nx_fail_prefix(err, "%s", file);
    return NX_OK;
}

int nx_hf_parse_config(const char *txt, size_t len, const char *path, nx_model_config *cfg, nx_err *err) {
    size_t bad = nx_st_utf8_invalid_at(txt, len);
    if (bad < len) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += txt[i] == '\n';
        return nx_fail(err, "%s: not valid UTF-8 at byte %zu (line %d); JSON must be UTF-8", path, bad, line);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!root) {
        size_t at = end && end >= txt && end <= txt + len ? (size_t)(end - txt) : 0;
        int line = 1;
        for (size_t i = 0; i < at; i++) line += txt[i] == '\n';
        return nx_fail(err, "%s: not valid JSON (error at byte %zu, line %d)", path, at, line);
    }
    int rc = parse_config(root, path, cfg, err);
    cJSON_Delete(root);
    return rc;
}

int nx_hf_load_config_file(const char *path, nx_model_config *cfg, nx_err *err) {
    size_t len;
    char *txt = nx_read_file(path, NX_MAX_JSON_CONFIG, &len, err);
    if (!txt) return NX_ERR;
    int rc = nx_hf_parse_config(txt, len, path, cfg, err);
    free(txt);
    return rc;
}

int nx_hf_load_config(const char *dir, nx_model_config *cfg, nx_err *err) {
    char *p = nx_path_join(dir, "config.json");
    int rc = nx_hf_load_config_file(p, cfg, err);
    free(p);
    return rc;
}

static bool ignorable(const char *name) {
    const char *suf = ".rotary_emb.inv_freq";
    size_t n = strlen(name), k = strlen(suf);
    return n >= k && strcmp(name + n - k, suf) == 0;
}

static int check_shape(const nx_st_tensor *t, const nx_param *p, const char *file, nx_err *err) {
    bool ok = t->ndim == p->ndim;
    for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
    if (ok) return NX_OK;
    char got[96] = "[", want[96] = "[";
    for (int d = 0; d < t->ndim; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    for (int d = 0; d < p->ndim; d++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)p->shape[d]);
    strcat(got, "]");
    strcat(want, "]");
    return nx_fail(err, "%s: tensor '%s' has shape %s but config.json implies %s", file, t->name, got, want);
}

int nx_hf_check_tensors(const nx_model_config *cfg, const nx_safetensors *st, nx_err *err) {
    int np = nx_model_params(cfg, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * np);
    nx_model_params(cfg, NX_F32, tab);
    const char *where = st->nfiles ? st->paths[0] : "(no file)";
    int rc = NX_ERR, missing = 0, first = -1;
    for (int i = 0; i < np; i++) {
        const nx_st_tensor *t = nx_st_find(st, tab[i].name);
        if (!t) {
            if (first < 0) first = i;
            missing++;
            continue;
        }
        if (check_shape(t, &tab[i], st->paths[t->file], err)) goto done;
        if (t->dtype != NX_F32 && t->dtype != NX_F16 && t->dtype != NX_BF16) {
            nx_fail(err, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", st->paths[t->file],
                    t->name, nx_dtype_name(t->dtype));
            goto done;
        }
    }
    if (missing) {
        nx_fail(err, "%s: missing tensor '%s'%s (%d of %d expected tensors missing; does config.json match the "
                     "weights?)", where, tab[first].name, missing > 1 ? " and others" : "", missing, np);
        goto done;
    }
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        bool known = false;
        for (int k = 0; k < np && !known; k++) known = strcmp(tab[k].name, nm) == 0;
        if (known || ignorable(nm)) continue;
        if (cfg->tied && strcmp(nm, "lm_head.weight") == 0) continue; /* compared on load */
        nx_fail(err, "%s: unexpected tensor '%s' for a %s model with this config.json", st->paths[st->t[i].file],
                nm, nx_arch_name(cfg->arch));
        goto done;
    }
    rc = NX_OK;
done:
    free(tab);
    return rc;
}

/* Widen a tensor to f32, via an aligned copy when the mapping leaves the
 * data misaligned for its element type (headers of odd length do that). */
static void widen(float *dst, const nx_st_tensor *t, size_t numel) {
    size_t es = nx_dtype_size(t->dtype);
    if ((uintptr_t)t->data % es == 0) {
        nx_convert_to_f32(dst, t->data, t->dtype, numel);
        return;
    }
    void *tmp = nx_xmalloc(t->nbytes ? t->nbytes : 1);
    memcpy(tmp, t->data, t->nbytes);
    nx_convert_to_f32(dst, tmp, t->dtype, numel);
    free(tmp);
}

/* A tensor into tensor i of m (converted to its type), via an aligned copy
 * when the mapping leaves the data misaligned for its element type. */
static void load_tensor(nx_model *m, int i, const nx_st_tensor *t) {
    if ((uintptr_t)t->data % nx_dtype_size(t->dtype) == 0) {
        nx_model_set(m, i, t->data, t->dtype);
        return;
    }
    void *tmp = nx_xmalloc(t->nbytes ? t->nbytes : 1);
    memcpy(tmp, t->data, t->nbytes);
    nx_model_set(m, i, tmp, t->dtype);
    free(tmp);
}

int nx_hf_load_model_on(const char *dir, nx_model *m, nx_dtype hold, nx_backend *be, nx_err *err) {
    memset(m, 0, sizeof *m);
    if (nx_qstore_is(dir)) return nx_qstore_load(dir, m, be, NULL, err); /* its stored types */
    nx_model_config cfg;
    if (nx_hf_load_config(dir, &cfg, err)) return NX_ERR;
    nx_safetensors st;
    if (nx_st_open_dir(&st, dir, err)) return NX_ERR;
    if (nx_hf_check_tensors(&cfg, &st, err) ||
        nx_model_init_on(m, &cfg, hold, be, err)) {
        nx_st_close(&st);
        return NX_ERR;
    }
    for (int i = 0; i < m->ntab; i++) load_tensor(m, i, nx_st_find(&st, m->tab[i].name));
    const nx_st_tensor *head = nx_st_find(&st, "lm_head.weight");
    if (cfg.tied && head) {
        /* transformers drops lm_head when tied; a copy is fine if it is one. */
        size_t n = (size_t)cfg.V * cfg.C;
        const nx_st_tensor *emb = nx_st_find(&st, "model.embed_tokens.weight");
        bool same = head->ndim == 2 && head->shape[0] == cfg.V && head->shape[1] == cfg.C &&
                    (head->dtype == NX_F32 || head->dtype == NX_F16 || head->dtype == NX_BF16);
        if (same) {
            float *a = nx_xmalloc(n * sizeof *a), *b = nx_xmalloc(n * sizeof *b);
            widen(a, head, n);
            widen(b, emb, n);
            same = memcmp(a, b, n * sizeof *a) == 0;
            free(a), free(b);
        }
        if (!same) {
            nx_fail(err, "%s: tensor 'lm_head.weight' differs from 'model.embed_tokens.weight' (%s) but "
                         "config.json sets tie_word_embeddings true; set it false or drop lm_head.weight",
                    st.paths[head->file], st.paths[emb->file]);
            nx_st_close(&st);
            nx_model_free(m);
            return NX_ERR;
        }
    }
    nx_st_close(&st);
    return NX_OK;
}

int nx_hf_load_model_as(const char *dir, nx_model *m, nx_dtype hold, nx_err *err) {
    return nx_hf_load_model_on(dir, m, hold, nx_backend_cpu(), err);
}

int nx_hf_load_model(const char *dir, nx_model *m, nx_err *err) { return nx_hf_load_model_as(dir, m, NX_F32, err); }

/* ---- saving ------------------------------------------------------------ */

/* One buffer to PATH, atomically (nx_write_atomic). */
static int write_atomic(const char *path, const void *data, size_t n, nx_err *err) {
    const void *parts[1] = {data};
    return nx_write_atomic(path, parts, &n, 1, err);
}


/* rope_parameters as transformers 5 writes them (keys sorted). */
static cJSON *rope_json(const nx_model_config *c) {
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3"};
    const nx_rope_scaling *s = &c->rope;
    cJSON *rp = cJSON_CreateObject();
    if (s->type == NX_ROPE_YARN && s->attention_factor > 0)
        cJSON_AddItemToObject(rp, "attention_factor", nx_json_float(s->attention_factor, true));
    if (s->type == NX_ROPE_YARN && s->beta_fast > 0) cJSON_AddItemToObject(rp, "beta_fast", nx_json_float(s->beta_fast, true));
    if (s->type == NX_ROPE_YARN && s->beta_slow > 0) cJSON_AddItemToObject(rp, "beta_slow", nx_json_float(s->beta_slow, true));
    if (s->type != NX_ROPE_DEFAULT) cJSON_AddItemToObject(rp, "factor", nx_json_float(s->factor, true));
    if (s->type == NX_ROPE_LLAMA3) {
        cJSON_AddItemToObject(rp, "high_freq_factor", nx_json_float(s->high_freq_factor, true));
        cJSON_AddItemToObject(rp, "low_freq_factor", nx_json_float(s->low_freq_factor, true));
    }
    if (s->type == NX_ROPE_YARN && s->mscale > 0) cJSON_AddItemToObject(rp, "mscale", nx_json_float(s->mscale, true));
    if (s->type == NX_ROPE_YARN && s->mscale_all_dim > 0)
        cJSON_AddItemToObject(rp, "mscale_all_dim", nx_json_float(s->mscale_all_dim, true));
    if (s->type == NX_ROPE_LLAMA3 || s->type == NX_ROPE_YARN)
        cJSON_AddNumberToObject(rp, "original_max_position_embeddings", s->original_max_pos);
    cJSON_AddItemToObject(rp, "rope_theta", nx_json_float(c->rope_theta, true));
    cJSON_AddStringToObject(rp, "rope_type", names[s->type]);
    if (s->type == NX_ROPE_YARN && s->no_truncate) cJSON_AddBoolToObject(rp, "truncate", false);
    return rp;
}

char *nx_hf_config_json(const nx_model_config *c, nx_dtype dtype) {
    cJSON *r = cJSON_CreateObject();
    /* keys in sorted order, as transformers writes them */
    cJSON *archs = cJSON_CreateArray();
    cJSON_AddItemToArray(archs, cJSON_CreateString(nx_arch_class(c->arch)));
    cJSON_AddItemToObject(r, "architectures", archs);
    if (c->arch != NX_ARCH_QWEN2) cJSON_AddBoolToObject(r, "attention_bias", c->qkv_bias);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_id);
    else cJSON_AddNullToObject(r, "bos_token_id");
    cJSON_AddStringToObject(r, "dtype", nx_hf_dtype_name(dtype));
    if (c->eos_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_id);
    else cJSON_AddNullToObject(r, "eos_token_id");
    cJSON_AddNumberToObject(r, "head_dim", c->HS);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", c->C);
    cJSON_AddNumberToObject(r, "intermediate_size", c->F);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_pos);
    if (c->arch == NX_ARCH_QWEN2 || c->arch == NX_ARCH_QWEN3)
        cJSON_AddNumberToObject(r, "max_window_layers", c->window ? c->window_from : c->L);
    if (c->arch == NX_ARCH_LLAMA) cJSON_AddBoolToObject(r, "mlp_bias", false);
    cJSON_AddStringToObject(r, "model_type", nx_arch_name(c->arch));
    cJSON_AddNumberToObject(r, "num_attention_heads", c->NH);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->L);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->KVH);
    cJSON_AddItemToObject(r, "rms_norm_eps", nx_json_float(c->eps, true));
    cJSON *rp = rope_json(c);
    if (c->rope.type != NX_ROPE_DEFAULT) cJSON_AddItemToObject(r, "rope_scaling", rope_json(c));
    cJSON_AddItemToObject(r, "rope_parameters", rp);
    cJSON_AddItemToObject(r, "rope_theta", nx_json_float(c->rope_theta, true));
    if (c->arch != NX_ARCH_LLAMA) {
        if (c->window) cJSON_AddNumberToObject(r, "sliding_window", c->window);
        else cJSON_AddNullToObject(r, "sliding_window");
    }
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tied);
    cJSON_AddStringToObject(r, "torch_dtype", nx_hf_dtype_name(dtype));
    if (c->arch == NX_ARCH_QWEN2 || c->arch == NX_ARCH_QWEN3)
        cJSON_AddBoolToObject(r, "use_sliding_window", c->window > 0);
    cJSON_AddNumberToObject(r, "vocab_size", c->V);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    NX_ASSERTM(s, "out of memory");
    return s;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const nx_st_entry *)a)->name, ((const nx_st_entry *)b)->name);
}

int nx_hf_save_model(const char *dir, const nx_model *m, nx_dtype dtype, nx_err *err) {
    if (dtype != NX_F32 && dtype != NX_BF16 && dtype != NX_F16)
        return nx_fail(err, "%s: cannot save weights as %s (use F32, BF16 or F16)", dir, nx_dtype_name(dtype));
    if (nx_mkdirs(dir, err)) return NX_ERR;
    const nx_model_config *c = &m->cfg;
    int np = m->ntab;
    const nx_param *tab = m->tab;
    nx_st_entry *e = nx_xcalloc(np, sizeof *e);
    /* an f32 model in host memory saved as f32 is written straight from its buffer */
    bool direct = m->be->host_memory && m->params && dtype == NX_F32;
    size_t total = 0, maxn = 1, o = 0;
    for (int i = 0; i < np; i++) {
        total += tab[i].numel * nx_dtype_size(dtype);
        maxn = tab[i].numel > maxn ? tab[i].numel : maxn;
    }
    char *out = direct ? NULL : nx_xmalloc(total);
    float *wide = direct ? NULL : nx_xmalloc(sizeof(float) * maxn);
    for (int i = 0; i < np; i++) {
        e[i].name = tab[i].name;
        e[i].dtype = dtype;
        e[i].ndim = tab[i].ndim;
        e[i].shape[0] = tab[i].shape[0];
        e[i].shape[1] = tab[i].shape[1];
        if (direct) {
            e[i].data = nx_param_f32(&tab[i], m->data);
            continue;
        }
        nx_model_get(m, i, wide);
        nx_convert(out + o, dtype, wide, NX_F32, (int64_t)tab[i].numel);
        e[i].data = out + o;
        o += tab[i].numel * nx_dtype_size(dtype);
    }
    qsort(e, np, sizeof *e, by_name);
    char *st_path = nx_path_join(dir, "model.safetensors"), *cfg_path = nx_path_join(dir, "config.json");
    int rc = nx_st_write(st_path, e, np, err);
    if (rc == NX_OK) {
        char *js = nx_hf_config_json(c, dtype);
        size_t n = strlen(js);
        js = realloc(js, n + 2);
        js[n] = '\n';
        rc = write_atomic(cfg_path, js, n + 1, err);
        free(js);
    }
    free(st_path);
    free(cfg_path);
    free(out);
    free(wide);
    free(e);
    return rc;
}

int nx_hf_copy_tokenizer(const char *src_dir, const char *dst_dir, nx_err *err) {
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "generation_config.json"};
    if (nx_mkdirs(dst_dir, err)) return NX_ERR;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *s = nx_path_join(src_dir, files[i]);
        if (access(s, F_OK) != 0) {
            free(s);
            continue;
        }
        size_t n;
        char *buf = nx_read_file(s, NX_MAX_TOKENIZER, &n, err);
        free(s);
        if (!buf) return NX_ERR;
        char *d = nx_path_join(dst_dir, files[i]);
        int rc = write_atomic(d, buf, n, err);
        free(d);
        free(buf);
        if (rc) return NX_ERR;
    }
    return NX_OK;
}
