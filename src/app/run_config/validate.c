/* validate.c — what no single key can check: the keys against each other,
 * and the defaults derived from others (steps from a token budget, output
 * paths under output.dir). Runs after conversion, on the struct, and
 * locates each error at the key the user should change (cfg_fail_at). The
 * checks that need the teacher's shape wait for it: student_shape.c. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int check_student(cfg_ctx *c, nx_run_config *rc, bool init_kind_given) {
    const struct nx_run_student *s = &rc->student;
    bool preset = s->preset >= 0, from_t = s->from_teacher;
    if (preset && from_t)
        return cfg_fail_at(c, "student.from_teacher", "give either student.preset or student.from_teacher, not both");
    if (from_t && !s->num_layers)
        return cfg_fail_at(c, "student.num_layers", "missing: from_teacher needs num_layers (how many layers the student keeps)");
    if (!preset && !from_t) {
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
    NX_ASSERT(L > 0);

    nx_layer_list *cl = &rc->student.init.copy_layers;
    if (!init_kind_given && cl->n) rc->student.init.kind = NX_INIT_COPY_LAYERS;
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
    if (!from_t) {
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
    for (int i = 0; i < lm->n; i++)
        if (lm->pair[i][0] >= L)
            return cfg_fail_at(c, "loss.hidden.layer_map", "student layer %d out of range (the student has %d layers)",
                               lm->pair[i][0], L);

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
