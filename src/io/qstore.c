/* qstore.c — quantized model directories (qstore.h): safetensors with
 * raw blocks as U8 tensors, and quantization.json saying what they are.
 *
 * Saving builds the whole directory beside its destination (DIR.partial-
 * PID) and renames it into place, so DIR is either absent, or complete.
 * Loading trusts nothing: quantization.json is checked key by key, every
 * matrix of the model must be listed with a weight type whose block
 * divides its rows, stacked matrices (q/k/v, gate/up) must agree, and each
 * tensor's dtype, shape and byte count must be what its type implies. */
#define _XOPEN_SOURCE 700
#include <cJSON.h>
#include <errno.h>
#include <ftw.h>
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

static const char *ACT_NAMES[] = {"block", "row", "static"};

bool nx_qstore_is(const char *dir) {
    char *p = nx_path_join(dir, "quantization.json");
    bool yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

/* ---- saving ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}
static void remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int by_name(const void *a, const void *b) {
    return strcmp(((const nx_st_entry *)a)->name, ((const nx_st_entry *)b)->name);
}

static char *quant_json(const nx_model *m, const nx_quant_meta *q) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "format", "nexus-quantized");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddStringToObject(r, "type", q->type);
    cJSON_AddStringToObject(r, "method", q->method);
    if (q->calib_file[0]) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "file", q->calib_file);
        cJSON_AddStringToObject(c, "hash", q->calib_hash);
        cJSON_AddNumberToObject(c, "tokens", (double)q->calib_tokens);
        cJSON_AddItemToObject(r, "calibration", c);
    } else {
        cJSON_AddNullToObject(r, "calibration");
    }
    cJSON_AddStringToObject(r, "source", q->source);
    cJSON_AddNumberToObject(r, "keep_sensitive", q->keep_sensitive);
    cJSON *t = cJSON_CreateObject();
    for (int i = 0; i < m->ntab; i++) {
        int g = nx_model_group(&m->cfg, m->tab[i].name);
        if (g < 0) continue;
        nx_group_type gt = nx_model_group_type(m, g);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", nx_dtype_name(m->tab[i].type));
        if (nx_type(m->tab[i].type)->block > 1) {
            cJSON_AddStringToObject(o, "act", ACT_NAMES[gt.act]);
            if (gt.act == NX_ACT_STATIC) cJSON_AddItemToObject(o, "act_scale", nx_json_float(gt.act_scale, false));
        }
        cJSON_AddItemToObject(t, m->tab[i].name, o);
    }
    cJSON_AddItemToObject(r, "tensors", t);
    if (q->report) {
        cJSON *rep = cJSON_Parse(q->report);
        if (rep) cJSON_AddItemToObject(r, "report", rep);
    }
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    NX_ASSERTM(s, "out of memory");
    return s;
}

static int write_text(const char *dir, const char *file, const char *text, nx_err *err) {
    char *p = nx_path_join(dir, file);
    size_t n = strlen(text);
    const void *parts[2] = {text, "\n"};
    size_t lens[2] = {n, 1};
    int rc = nx_write_atomic(p, parts, lens, 2, err);
    free(p);
    return rc;
}

int nx_qstore_save(const char *dir, const nx_model *m, const nx_quant_meta *q, const char *tok_dir, nx_err *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return nx_fail(err, "%s: exists and is not a directory", dir);
        if (rmdir(dir) != 0 && errno != ENOENT)
            return nx_fail(err, "%s: exists and is not empty; choose a new output directory or remove it", dir);
    }
    char *tmp = nx_xmalloc(strlen(dir) + 32);
    sprintf(tmp, "%s.partial-%d", dir, (int)getpid());
    remove_tree(tmp);
    if (nx_mkdirs(tmp, err)) {
        free(tmp);
        return NX_ERR;
    }
    int rc = NX_ERR;
    nx_st_entry *e = nx_xcalloc(m->ntab, sizeof *e);
    char *host = NULL;
    if (!m->be->host_memory) {
        host = nx_xmalloc(m->nbytes);
        nx_backend_download(m->be, host, m->data, m->nbytes);
    }
    const char *base = host ? host : m->data;
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        e[i].name = p->name;
        e[i].data = base + p->off;
        if (nx_type(p->type)->block > 1) {
            e[i].dtype = NX_U8;
            e[i].ndim = 2;
            e[i].shape[0] = p->shape[0];
            e[i].shape[1] = (int64_t)(p->nbytes / (size_t)p->shape[0]);
        } else {
            e[i].dtype = p->type;
            e[i].ndim = p->ndim;
            e[i].shape[0] = p->shape[0];
            e[i].shape[1] = p->shape[1];
        }
    }
    qsort(e, m->ntab, sizeof *e, by_name);
    char *st = nx_path_join(tmp, "model.safetensors");
    char *cfg = nx_hf_config_json(&m->cfg, m->cfg.dtype), *qj = quant_json(m, q);
    if (nx_st_write(st, e, m->ntab, err) || write_text(tmp, "config.json", cfg, err) ||
        write_text(tmp, "quantization.json", qj, err) || (tok_dir && nx_hf_copy_tokenizer(tok_dir, tmp, err)))
        goto done;
    if (rename(tmp, dir) != 0) {
        nx_fail(err, "%s: cannot move the finished directory into place: %s", dir, strerror(errno));
        goto done;
    }
    rc = NX_OK;
done:
    if (rc) remove_tree(tmp);
    free(st), free(cfg), free(qj), free(tmp), free(e), free(host);
    return rc;
}

/* ---- loading ---- */

static int read_json(const char *path, cJSON **out, nx_err *err) {
    size_t len;
    char *txt = nx_read_file(path, 64u << 20, &len, err);
    if (!txt) return NX_ERR;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!*out) {
        size_t at = end && end >= txt && end <= txt + len ? (size_t)(end - txt) : 0;
        free(txt);
        return nx_fail(err, "%s: not valid JSON (error at byte %zu)", path, at);
    }
    free(txt);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        return nx_fail(err, "%s: must hold a JSON object", path);
    }
    return NX_OK;
}

static void copy_str(char *dst, size_t n, const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(dst, n, "%s", cJSON_IsString(x) ? x->valuestring : "");
}

/* Group types from the "tensors" object: every matrix listed, stacked ones agreeing. */
static int group_types(const nx_model_config *c, const cJSON *tensors, const char *path, nx_group_type *gt, nx_err *err) {
    int ng = nx_model_ngroups(c), np = nx_model_params(c, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * np);
    nx_model_params(c, NX_F32, tab);
    bool *seen = nx_xcalloc(ng, 1);
    int rc = NX_ERR;
    for (int i = 0; i < np; i++) {
        int g = nx_model_group(c, tab[i].name);
        if (g < 0) continue;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(tensors, tab[i].name);
        if (!cJSON_IsObject(o)) {
            nx_fail(err, "%s: 'tensors' has no entry for '%s' (each matrix needs {\"type\": ...})", path, tab[i].name);
            goto done;
        }
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type"), *act = cJSON_GetObjectItemCaseSensitive(o, "act"),
                    *sc = cJSON_GetObjectItemCaseSensitive(o, "act_scale");
        nx_group_type t = {NX_F32, NX_ACT_BLOCK, 0};
        if (!cJSON_IsString(ty) || nx_dtype_from_name(ty->valuestring, &t.type) || !nx_type(t.type)->weight) {
            nx_fail(err, "%s: tensor '%s': 'type' must name a weight type (F32, F16, BF16, Q8_0, Q4_0, Q4_K), got %s%.40s",
                    path, tab[i].name, cJSON_IsString(ty) ? "" : nx_json_kind(ty), cJSON_IsString(ty) ? ty->valuestring : "");
            goto done;
        }
        if (act) {
            int a = 0;
            while (a < 3 && !(cJSON_IsString(act) && !strcmp(act->valuestring, ACT_NAMES[a]))) a++;
            if (a == 3) {
                nx_fail(err, "%s: tensor '%s': 'act' must be \"block\", \"row\" or \"static\"", path, tab[i].name);
                goto done;
            }
            t.act = (nx_act_quant)a;
        }
        if (t.act == NX_ACT_STATIC) {
            if (!cJSON_IsNumber(sc) || !(sc->valuedouble > 0) || sc->valuedouble > 1e30) {
                nx_fail(err, "%s: tensor '%s': static activations need a positive 'act_scale'", path, tab[i].name);
                goto done;
            }
            t.act_scale = (float)sc->valuedouble;
        }
        if (tab[i].shape[1] % nx_type(t.type)->block) {
            nx_fail(err, "%s: tensor '%s': rows of %lld elements cannot hold whole %s blocks of %d", path, tab[i].name,
                    (long long)tab[i].shape[1], nx_dtype_name(t.type), nx_type(t.type)->block);
            goto done;
        }
        if (seen[g] && (gt[g].type != t.type || gt[g].act != t.act || gt[g].act_scale != t.act_scale)) {
            nx_fail(err, "%s: tensor '%s' is %s but the matrices stacked with it are %s: q/k/v and gate/up must "
                         "share a type", path, tab[i].name, nx_dtype_name(t.type), nx_dtype_name(gt[g].type));
            goto done;
        }
        gt[g] = t;
        seen[g] = true;
    }
    if (c->tied) gt[ng - 1] = gt[0];
    rc = NX_OK;
done:
    free(tab), free(seen);
    return rc;
}

int nx_qstore_load(const char *dir, nx_model *m, nx_backend *be, nx_quant_meta *meta, nx_err *err) {
    memset(m, 0, sizeof *m);
    nx_model_config cfg;
    if (nx_hf_load_config(dir, &cfg, err)) return NX_ERR;
    char *qpath = nx_path_join(dir, "quantization.json");
    cJSON *root = NULL;
    nx_safetensors st = {0};
    int ng = nx_model_ngroups(&cfg), rc = NX_ERR;
    nx_group_type *gt = nx_xcalloc(ng, sizeof *gt);
    if (read_json(qpath, &root, err)) goto done;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format"),
                *ver = cJSON_GetObjectItemCaseSensitive(root, "version"),
                *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "nexus-quantized") || !cJSON_IsNumber(ver) ||
        ver->valuedouble != 1) {
        nx_fail(err, "%s: not a nexus quantization file of version 1 (keys 'format' and 'version')", qpath);
        goto done;
    }
    if (!cJSON_IsObject(tensors)) {
        nx_fail(err, "%s: key 'tensors' must be an object", qpath);
        goto done;
    }
    if (group_types(&cfg, tensors, qpath, gt, err) || nx_st_open_dir(&st, dir, err) ||
        nx_model_init_typed(m, &cfg, gt, be, err))
        goto done;
    for (int i = 0; i < st.n; i++)
        if (nx_model_find(m, st.t[i].name) < 0) {
            nx_fail(err, "%s: unexpected tensor '%s' for a %s model with this config.json", st.paths[st.t[i].file],
                    st.t[i].name, nx_arch_name(cfg.arch));
            goto fail_model;
        }
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        const nx_st_tensor *t = nx_st_find(&st, p->name);
        const char *f = st.nfiles ? st.paths[0] : dir;
        if (!t) {
            nx_fail(err, "%s: missing tensor '%s'", f, p->name);
            goto fail_model;
        }
        f = st.paths[t->file];
        bool block = nx_type(p->type)->block > 1;
        int64_t want1 = block ? (int64_t)(p->nbytes / (size_t)p->shape[0]) : p->shape[1];
        bool ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == want1) &&
                  (block ? t->dtype == NX_U8 && t->nbytes == p->nbytes
                         : t->dtype == NX_F32 || t->dtype == NX_F16 || t->dtype == NX_BF16);
        if (!ok) {
            nx_fail(err, "%s: tensor '%s' is %s [%lld, %lld]; quantization.json and config.json imply %s [%lld, %lld]", f,
                    p->name, nx_dtype_name(t->dtype), (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                    block ? "U8" : nx_dtype_name(p->type), (long long)p->shape[0], (long long)(p->ndim > 1 ? want1 : 0));
            goto fail_model;
        }
        if (block || (uintptr_t)t->data % nx_dtype_size(t->dtype) == 0) {
            nx_model_set(m, i, t->data, block ? p->type : t->dtype);
        } else {
            void *tmp = nx_xmalloc(t->nbytes ? t->nbytes : 1);
            memcpy(tmp, t->data, t->nbytes);
            nx_model_set(m, i, tmp, t->dtype);
            free(tmp);
        }
    }
    if (meta) {
        memset(meta, 0, sizeof *meta);
        copy_str(meta->type, sizeof meta->type, root, "type");
        copy_str(meta->method, sizeof meta->method, root, "method");
        copy_str(meta->source, sizeof meta->source, root, "source");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "calibration"),
                    *k = cJSON_GetObjectItemCaseSensitive(root, "keep_sensitive");
        if (cJSON_IsObject(c)) {
            copy_str(meta->calib_file, sizeof meta->calib_file, c, "file");
            copy_str(meta->calib_hash, sizeof meta->calib_hash, c, "hash");
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "tokens");
            meta->calib_tokens = cJSON_IsNumber(n) ? (long long)n->valuedouble : 0;
        }
        meta->keep_sensitive = cJSON_IsNumber(k) ? k->valueint : 0;
    }
    rc = NX_OK;
    goto done;
fail_model:
    nx_model_free(m);
done:
    nx_st_close(&st);
    cJSON_Delete(root);
    free(qpath), free(gt);
    return rc;
}
