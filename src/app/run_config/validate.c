/* validate.c — what no single key can check: the keys against each other,
 * and the defaults derived from others (steps from a token budget, output
 * paths under output.dir). Runs after conversion, on the struct, and
 * locates each error at the key the user should change (cfg_fail_at). The
 * checks that need the teacher's shape wait for it: student_shape.c. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "nexus/prune.h"

/* The keys of the prune and load inits: each only with its kind, and what
 * each kind needs of the shape keys. */
static int check_init(cfg_ctx *c, const nx_run_config *rc) {
    const struct nx_run_student *s = &rc->student;
    nx_init_kind kind = s->init.kind;
    const cfg_field *init = cfg_field_find(CFG_STUDENT, "init");
    const char *kname = cfg_enum_name(cfg_field_find(init->kids, "kind"), kind);
    if (s->init.path[0] && kind != NX_INIT_LOAD)
        return cfg_fail_at(c, "student.init.path", "given but student.init.kind is %s; path is for kind load", kname);
    const struct { const char *key; bool given; } pk[] = {
        {"method", s->init.method >= 0}, {"sparsity", s->init.sparsity > 0}, {"pattern", s->init.pattern[0] != 0},
        {"scope", s->init.scope >= 0}, {"target_params", s->init.target_params > 0}, {"axes", s->init.axes != 0},
        {"multiple", s->init.multiple > 0}, {"layer_metric", s->init.layer_metric >= 0}};
    enum { NPK = sizeof pk / sizeof pk[0] };
    char path[64];
    if (kind != NX_INIT_PRUNE)
        for (int i = 0; i < NPK; i++)
            if (pk[i].given) {
                snprintf(path, sizeof path, "student.init.%s", pk[i].key);
                return cfg_fail_at(c, path, "given but student.init.kind is %s; it is a key of kind prune", kname);
            }
    /* shape keys other than the widths a prune targets */
    const struct { const char *key; bool given; } other[] = {
        {"preset", s->preset >= 0}, {"arch", s->arch >= 0}, {"vocab_size", s->vocab_size > 0},
        {"head_dim", s->head_dim > 0}, {"max_position_embeddings", s->max_position_embeddings > 0},
        {"rope_theta", s->rope_theta > 0}, {"rms_norm_eps", s->rms_norm_eps > 0},
        {"tie_word_embeddings", s->tie_word_embeddings >= 0}};
    const struct { const char *key; bool given; } width[] = {
        {"hidden_size", s->hidden_size > 0}, {"intermediate_size", s->intermediate_size > 0},
        {"num_heads", s->num_heads > 0}, {"num_kv_heads", s->num_kv_heads > 0}, {"num_layers", s->num_layers > 0}};
    if (kind == NX_INIT_LOAD) {
        if (!s->init.path[0])
            return cfg_fail_at(c, "student.init.path", "missing: init kind load needs the model directory to start from");
        if (s->from_teacher)
            return cfg_fail_at(c, "student.from_teacher", "init kind load takes the shape of %s; drop from_teacher",
                               s->init.path);
        for (int i = 0; i < 8; i++)
            if (other[i].given) {
                snprintf(path, sizeof path, "student.%s", other[i].key);
                return cfg_fail_at(c, path, "init kind load takes the shape of %s; drop this key", s->init.path);
            }
        for (int i = 0; i < 5; i++)
            if (width[i].given) {
                snprintf(path, sizeof path, "student.%s", width[i].key);
                return cfg_fail_at(c, path, "init kind load takes the shape of %s; drop this key", s->init.path);
            }
        return NX_OK;
    }
    if (kind != NX_INIT_PRUNE) return NX_OK;
    if (!s->from_teacher)
        return cfg_fail_at(c, "student.from_teacher", "missing: init kind prune starts from the teacher's shape; "
                                                      "set from_teacher: true");
    for (int i = 0; i < 8; i++)
        if (other[i].given) {
            snprintf(path, sizeof path, "student.%s", other[i].key);
            return cfg_fail_at(c, path, "a pruned student keeps the teacher's %s; drop this key", other[i].key);
        }
    bool widths = false;
    for (int i = 0; i < 5; i++) widths = widths || width[i].given;
    int method = s->init.method < 0 ? NX_PRUNE_MINITRON : s->init.method;
    if (method == NX_PRUNE_MINITRON) {
        for (int i = 1; i < 4; i++)
            if (pk[i].given) {
                snprintf(path, sizeof path, "student.init.%s", pk[i].key);
                return cfg_fail_at(c, path, "is for unstructured pruning (method magnitude or wanda), not minitron");
            }
        if (s->init.target_params && widths)
            return cfg_fail_at(c, "student.init.target_params", "give the target as shape keys (hidden_size, "
                               "intermediate_size, num_heads, num_kv_heads, num_layers) or as target_params, not both");
        if (!s->init.target_params && !widths)
            return cfg_fail_at(c, "student.init", "init kind prune with method minitron needs a target: the shape keys "
                               "(hidden_size, intermediate_size, num_heads, num_kv_heads, num_layers) or target_params");
        if (!s->init.target_params && (s->init.axes || s->init.multiple))
            return cfg_fail_at(c, s->init.axes ? "student.init.axes" : "student.init.multiple",
                               "is for fitting target_params; the shape keys give the target directly");
        return NX_OK;
    }
    for (int i = 4; i < NPK; i++)
        if (pk[i].given) {
            snprintf(path, sizeof path, "student.init.%s", pk[i].key);
            return cfg_fail_at(c, path, "is for structured pruning (method minitron), not %s",
                               nx_prune_method_name((nx_prune_method)method));
        }
    for (int i = 0; i < 5; i++)
        if (width[i].given) {
            snprintf(path, sizeof path, "student.%s", width[i].key);
            return cfg_fail_at(c, path, "unstructured pruning (method %s) keeps the teacher's shape; drop this key",
                               nx_prune_method_name((nx_prune_method)method));
        }
    nx_sparse_opts so;
    nx_err e;
    if (!s->init.sparsity && !s->init.pattern[0])
        return cfg_fail_at(c, "student.init.sparsity", "missing: method %s needs sparsity (e.g. 0.5) or pattern "
                           "(e.g. \"2:4\")", nx_prune_method_name((nx_prune_method)method));
    if (s->init.sparsity && s->init.pattern[0])
        return cfg_fail_at(c, "student.init.pattern", "give sparsity or an N:M pattern, not both");
    if (nx_run_config_sparse_opts(rc, &so, &e))
        return cfg_fail_at(c, s->init.pattern[0] ? "student.init.pattern" : "student.init.scope", "%s", e.msg);
    return NX_OK;
}

static int check_student(cfg_ctx *c, nx_run_config *rc, bool init_kind_given) {
    const struct nx_run_student *s = &rc->student;
    bool preset = s->preset >= 0, from_t = s->from_teacher;
    nx_layer_list *cl = &rc->student.init.copy_layers;
    if (!init_kind_given && cl->n) rc->student.init.kind = NX_INIT_COPY_LAYERS;
    nx_init_kind kind = s->init.kind;
    if (check_init(c, rc)) return NX_ERR;
    if (preset && from_t)
        return cfg_fail_at(c, "student.from_teacher", "give either student.preset or student.from_teacher, not both");
    if (from_t && !s->num_layers && kind != NX_INIT_PRUNE)
        return cfg_fail_at(c, "student.num_layers", "missing: from_teacher needs num_layers (how many layers the student keeps)");
    if (!preset && !from_t && kind != NX_INIT_LOAD) {
        const char *miss[4];
        int nm = 0;
        if (!s->hidden_size) miss[nm++] = "hidden_size";
        if (!s->num_layers) miss[nm++] = "num_layers";
        if (!s->num_heads) miss[nm++] = "num_heads";
        if (!s->intermediate_size) miss[nm++] = "intermediate_size";
        if (nm) {
            char list[128] = "";
            for (int i = 0; i < nm; i++) {
                size_t u = strlen(list);
                snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", miss[i]);
            }
            return cfg_fail_at(c, "student", "missing %s; give student.preset (nano, standard), "
                                             "student.from_teacher: true with num_layers, or the full shape", list);
        }
    }
    int L = nx_run_config_student_layers(rc);
    NX_ASSERT(L > 0 || kind == NX_INIT_PRUNE || kind == NX_INIT_LOAD);

    if (s->init.kind == NX_INIT_COPY_LAYERS) {
        if (!cl->n) return cfg_fail_at(c, "student.init.copy_layers", "missing: init kind copy_layers needs the list of teacher layers to copy");
        if (cl->n != L)
            return cfg_fail_at(c, "student.init.copy_layers", "lists %d layers but the student has %d; give one teacher layer per student layer", cl->n, L);
    } else if (cl->n) {
        const cfg_field *init = cfg_field_find(CFG_STUDENT, "init");
        return cfg_fail_at(c, "student.init.copy_layers", "given but student.init.kind is %s; drop one of them",
                           cfg_enum_name(cfg_field_find(init->kids, "kind"), s->init.kind));
    }

    /* the shape's sanity where it does not need the teacher */
    if (kind == NX_INIT_LOAD || kind == NX_INIT_PRUNE) {
        nx_model_config sh;
        nx_err e;
        if (kind == NX_INIT_LOAD && nx_run_config_student_shape(rc, NULL, &sh, &e))
            return cfg_fail_at(c, "student.init.path", "%s", e.msg);
    } else if (!from_t) {
        nx_model_config sh;
        nx_err e;
        if (nx_run_config_student_shape(rc, NULL, &sh, &e)) return cfg_fail_at(c, "student", "%s", e.msg);
    } else {
        if (s->num_heads && s->num_kv_heads && s->num_heads % s->num_kv_heads)
            return cfg_fail_at(c, "student.num_kv_heads", "num_heads (%d) must be a multiple of num_kv_heads (%d)",
                               s->num_heads, s->num_kv_heads);
        if (s->head_dim % 2) return cfg_fail_at(c, "student.head_dim", "must be even for rotary embeddings");
    }
    return NX_OK;
}

static int check_training(cfg_ctx *c, nx_run_config *rc) {
    int L = nx_run_config_student_layers(rc);
    const nx_layer_map *lm = &rc->loss.hidden.layer_map;
    if ((rc->loss.hidden.weight > 0 || rc->loss.attention > 0) && !lm->n)
        return cfg_fail_at(c, "loss.hidden.layer_map", "missing: hidden-state and attention losses need "
                                                       "[student_layer, teacher_layer] pairs");
    if (rc->recompute && rc->loss.attention > 0)
        return cfg_fail_at(c, "recompute", "cannot be combined with loss.attention: attention transfer reads every "
                                           "layer's attention maps after the forward; set one of them off");
    for (int i = 0; i < lm->n && L > 0; i++)
        if (lm->pair[i][0] >= L)
            return cfg_fail_at(c, "loss.hidden.layer_map", "student layer %d out of range (the student has %d layers)",
                               lm->pair[i][0], L);

    if ((int64_t)rc->data.batch_size * rc->data.seq_len > 2147483647)
        return cfg_fail_at(c, "data.batch_size", "%d rows of data.seq_len %d tokens is more than one micro-batch can "
                                                 "hold (2^31 - 1 tokens); lower one of them",
                           rc->data.batch_size, rc->data.seq_len);
    if (rc->optimizer.steps && rc->optimizer.tokens)
        return cfg_fail_at(c, "optimizer.tokens", "give optimizer.steps or optimizer.tokens, not both");
    if (!rc->optimizer.steps && !rc->optimizer.tokens)
        return cfg_fail_at(c, "optimizer.steps", "missing: give optimizer.steps (or a token budget, optimizer.tokens)");
    if (rc->optimizer.tokens) {
        int64_t per = (int64_t)rc->data.batch_size * rc->data.seq_len * rc->data.grad_accum;
        rc->optimizer.steps = (rc->optimizer.tokens + per - 1) / per;
    }
    if (rc->optimizer.min_lr > rc->optimizer.lr)
        return cfg_fail_at(c, "optimizer.min_lr", "%g is above optimizer.lr (%g)", rc->optimizer.min_lr, rc->optimizer.lr);
    if (rc->optimizer.warmup_steps > rc->optimizer.steps)
        return cfg_fail_at(c, "optimizer.warmup_steps", "%d is more than the %lld steps of the run",
                           rc->optimizer.warmup_steps, (long long)rc->optimizer.steps);

    if (rc->eval.batches && rc->eval.tokens)
        return cfg_fail_at(c, "eval.tokens", "give eval.batches or eval.tokens, not both");
    if (!rc->eval.metrics) return cfg_fail_at(c, "eval.metrics", "name at least one of ppl, agreement, kl");
    if (rc->eval.every > 0 && !rc->data.validation[0])
        return cfg_fail_at(c, "eval.every", "evaluating every %d steps needs data.validation (it defaults to the "
                           "val.bin beside a prepare-data data.train)", rc->eval.every);
    return NX_OK;
}

/* data.validation left out: the val.bin that `nexus prepare-data
 * --val-fraction` writes beside train.bin, when data.train names a shard
 * directory (a last component without a dot) or a train.bin. Lexical, like
 * every path here: opening it says what is missing. */
static void default_validation(nx_run_config *rc) {
    const char *t = rc->data.train, *last = strrchr(t, '/');
    last = last ? last + 1 : t;
    size_t n = strlen(t);
    if (rc->data.validation[0] || !n) return;
    if (!strcmp(last, "train.bin")) {
        if ((size_t)(last - t) + 8 < sizeof rc->data.validation) {
            memcpy(rc->data.validation, t, (size_t)(last - t));
            strcpy(rc->data.validation + (last - t), "val.bin");
        }
    } else if (!strchr(last, '.')) {
        cfg_copy_str(rc->data.validation, sizeof rc->data.validation, t);
    }
}

int cfg_validate(cfg_ctx *c, nx_run_config *rc, bool init_kind_given, const char *stem) {
    if (!rc->teacher.path[0])
        return cfg_fail_at(c, "teacher.path", "missing required key (the teacher's model directory or GGUF file)");
    if (!rc->data.train[0])
        return cfg_fail_at(c, "data.train", "missing required key (training data: a prepare-data shard or .jsonl[.gz])");
    default_validation(rc);
    if (check_student(c, rc, init_kind_given) || check_training(c, rc)) return NX_ERR;

    /* derived defaults */
    if (!rc->output.dir[0]) {
        char buf[3 * NX_RUN_PATH_MAX];
        snprintf(buf, sizeof buf, "%s/runs/%s", c->cwd, stem);
        if (strlen(buf) >= NX_RUN_PATH_MAX) return cfg_fail_at(c, "output.dir", "default path too long; set output.dir");
        cfg_normalise(buf);
        cfg_copy_str(rc->output.dir, sizeof rc->output.dir, buf);
    }
    if (!rc->checkpoint.dir[0] && cfg_join(rc->checkpoint.dir, rc->output.dir, "checkpoints"))
        return cfg_fail_at(c, "checkpoint.dir", "default path too long; set it");
    if (!rc->log.metrics_file[0] && cfg_join(rc->log.metrics_file, rc->output.dir, "metrics.jsonl"))
        return cfg_fail_at(c, "log.metrics_file", "default path too long; set it");
    return NX_OK;
}
