/* student_shape.c — the student's final nx_model_config, resolved from its
 * one source of shape (a preset, the teacher's shape, or explicit keys) with
 * the shape keys as overrides on top.
 *
 * What the student cannot know better than the teacher (vocabulary, BOS and
 * EOS ids; for explicit shapes also max positions, RoPE base and norm eps)
 * comes from the teacher when there is one. The checks that need the
 * teacher's shape are here too, since this is the first place that has it:
 * run.c calls this after loading the teacher's config, and validate.c calls
 * it without a teacher to check the shape alone. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "nexus/hf.h"

int nx_run_config_student_layers(const nx_run_config *rc) {
    if (rc->student.init.kind == NX_INIT_LOAD) return 0;
    if (rc->student.num_layers > 0) return rc->student.num_layers;
    if (rc->student.preset >= 0 && rc->student.preset < CFG_NPRESETS) return CFG_PRESETS[rc->student.preset].shape.L;
    return 0;
}

/* The start of the shape: the teacher's, a preset's, or the defaults of an
 * explicit one. */
static int base_shape(const struct nx_run_student *s, const nx_model_config *t, nx_model_config *m, nx_err *err) {
    memset(m, 0, sizeof *m);
    if (s->init.kind == NX_INIT_LOAD) {
        if (nx_hf_load_config(s->init.path, m, err)) return NX_ERR;
        return NX_OK;
    } else if (s->from_teacher) {
        if (!t) return nx_fail(err, "student.from_teacher needs the teacher's config");
        *m = *t;
    } else if (s->preset >= 0) {
        NX_ASSERT(s->preset < CFG_NPRESETS);
        *m = CFG_PRESETS[s->preset].shape;
    } else {
        m->arch = NX_ARCH_LLAMA;
        m->V = 32000;
        m->max_pos = 2048;
        m->rope_theta = 10000.0f;
        m->eps = 1e-5f;
        m->bos_id = m->eos_id = -1;
        m->dtype = NX_F32;
        if (t) { /* what the student cannot know better than the teacher */
            m->max_pos = t->max_pos;
            m->rope_theta = t->rope_theta;
            m->rope = t->rope; /* positions mean what they mean to the teacher */
            m->eps = t->eps;
        }
    }
    if (t && !s->from_teacher) {
        m->V = t->V;
        m->bos_id = t->bos_id;
        m->eos_id = t->eos_id;
    }
    return NX_OK;
}

/* What needs both shapes: layer indices in the teacher's range, and equal
 * widths where teacher tensors are copied or compared unprojected. */
static int check_against_teacher(const nx_run_config *rc, const nx_model_config *m, const nx_model_config *t,
                                 nx_err *err) {
    const struct nx_run_student *s = &rc->student;
    if (s->from_teacher && s->init.kind != NX_INIT_PRUNE && m->L > t->L)
        return nx_fail(err, "student.num_layers %d is more than the teacher's %d layers", m->L, t->L);
    const nx_layer_list *cl = &s->init.copy_layers;
    if (s->init.kind == NX_INIT_AUTO && (m->V != t->V || m->C != t->C))
        return nx_fail(err, "student.init auto copies teacher layers chosen by importance, so the student needs "
                            "the teacher's vocabulary and hidden size (teacher %d x %d, student %d x %d)",
                       t->V, t->C, m->V, m->C);
    if (s->init.kind == NX_INIT_COPY_LAYERS) {
        for (int i = 0; i < cl->n; i++)
            if (cl->v[i] >= t->L)
                return nx_fail(err, "student.init.copy_layers: teacher layer %d out of range (the teacher has %d layers, 0..%d)",
                               cl->v[i], t->L, t->L - 1);
        if (m->V != t->V || m->C != t->C)
            return nx_fail(err, "student.init.copy_layers copies the teacher's embeddings, so the student needs its "
                                "vocabulary and hidden size (teacher %d x %d, student %d x %d)",
                           t->V, t->C, m->V, m->C);
    }
    const nx_layer_map *lm = &rc->loss.hidden.layer_map;
    for (int i = 0; i < lm->n; i++)
        if (lm->pair[i][1] >= t->L)
            return nx_fail(err, "loss.hidden.layer_map: teacher layer %d out of range (the teacher has %d layers)",
                           lm->pair[i][1], t->L);
    if (rc->loss.hidden.weight > 0 && rc->loss.hidden.projection == NX_PROJECTION_NONE && m->C != t->C)
        return nx_fail(err, "loss.hidden.projection is none but the widths differ (student %d, teacher %d); "
                            "use projection: auto", m->C, t->C);
    if (rc->loss.alpha > 0 && m->V != t->V)
        return nx_fail(err, "distilling logits (loss.alpha %g > 0) needs the teacher's vocabulary: student %d, "
                            "teacher %d; drop student.vocab_size", rc->loss.alpha, m->V, t->V);
    return NX_OK;
}

int nx_run_config_sparse_opts(const nx_run_config *rc, nx_sparse_opts *o, nx_err *err) {
    const struct nx_run_student *s = &rc->student;
    memset(o, 0, sizeof *o);
    o->method = s->init.method < 0 ? NX_PRUNE_MINITRON : (nx_prune_method)s->init.method;
    o->sparsity = s->init.sparsity;
    o->global = s->init.scope == 1;
    if (s->init.pattern[0] && nx_sparse_parse_pattern(s->init.pattern, &o->n, &o->m, err)) return NX_ERR;
    if (o->method == NX_PRUNE_MINITRON) return NX_OK;
    if (o->global && o->method != NX_PRUNE_MAGNITUDE)
        return nx_fail(err, "scope global is for magnitude pruning; wanda compares the weights of each output row");
    if (o->global && o->n) return nx_fail(err, "an N:M pattern groups weights within rows; drop scope global");
    return NX_OK;
}

int nx_run_config_prune_shape(const nx_run_config *rc, const nx_model_config *t, nx_model_config *out,
                              nx_err *err) {
    const struct nx_run_student *s = &rc->student;
    nx_prune_shape want = {s->hidden_size, s->intermediate_size, s->num_heads, s->num_kv_heads, s->num_layers};
    if (s->init.target_params) {
        unsigned axes = s->init.axes ? s->init.axes : NX_AXIS_HIDDEN | NX_AXIS_FFN;
        if (nx_prune_fit(t, s->init.target_params, axes, s->init.multiple, &want, err))
            return nx_fail_prefix(err, "student.init.target_params");
    }
    if (nx_prune_shape_resolve(t, &want, out, err)) return nx_fail_prefix(err, "student (init kind prune)");
    return NX_OK;
}

int nx_run_config_student_shape(const nx_run_config *rc, const nx_model_config *t, nx_model_config *out,
                                nx_err *err) {
    const struct nx_run_student *s = &rc->student;
    nx_model_config m;
    if (s->init.kind == NX_INIT_PRUNE) {
        if (!t) return nx_fail(err, "a pruned student's shape needs the teacher's config");
        nx_sparse_opts so;
        if (nx_run_config_sparse_opts(rc, &so, err)) return NX_ERR;
        if (so.method != NX_PRUNE_MINITRON) {
            *out = *t;
            return nx_sparse_check(t, &so, err) ? nx_fail_prefix(err, "student.init") : NX_OK;
        }
        if (nx_run_config_prune_shape(rc, t, &m, err)) return NX_ERR;
        if (check_against_teacher(rc, &m, t, err)) return NX_ERR;
        *out = m;
        return NX_OK;
    }
    if (base_shape(s, t, &m, err)) return NX_ERR;
    if (s->init.kind == NX_INIT_LOAD) {
        if (t && check_against_teacher(rc, &m, t, err)) return NX_ERR;
        *out = m;
        return NX_OK;
    }
    bool explicit_ = !s->from_teacher && s->preset < 0;
    if (s->arch >= 0 && (nx_arch)s->arch != m.arch) {
        m.arch = (nx_arch)s->arch;
        m.qkv_bias = m.arch == NX_ARCH_QWEN2;
        m.o_bias = false;
        m.qk_norm = m.arch == NX_ARCH_QWEN3;
        if (m.arch == NX_ARCH_LLAMA) m.window = m.window_from = 0; /* llama configs have no window */
    } else if (!s->from_teacher) {
        m.qkv_bias = m.arch == NX_ARCH_QWEN2;
        m.o_bias = false;
        m.qk_norm = m.arch == NX_ARCH_QWEN3;
    }
    if (s->vocab_size) m.V = s->vocab_size;
    if (s->hidden_size) m.C = s->hidden_size;
    if (s->num_layers) m.L = s->num_layers;
    if (s->num_heads) m.NH = s->num_heads;
    if (s->num_kv_heads) m.KVH = s->num_kv_heads;
    else if (explicit_) m.KVH = m.NH;
    if (s->head_dim) m.HS = s->head_dim;
    else if (explicit_) m.HS = m.NH > 0 ? m.C / m.NH : 0;
    if (s->intermediate_size) m.F = s->intermediate_size;
    if (s->max_position_embeddings) m.max_pos = s->max_position_embeddings;
    if (s->rope_theta > 0) m.rope_theta = (float)s->rope_theta;
    if (s->rms_norm_eps > 0) m.eps = (float)s->rms_norm_eps;
    if (m.window && m.window_from >= m.L) m.window = m.window_from = 0; /* the sliding layers were cut off */
    if (s->tie_word_embeddings >= 0) m.tied = s->tie_word_embeddings;
    else if (explicit_) m.tied = false;
    if (explicit_ && !s->head_dim && m.NH > 0 && m.C % m.NH)
        return nx_fail(err, "hidden_size %d is not a multiple of num_heads %d; give head_dim", m.C, m.NH);
    if (m.KVH > 0 && m.NH % m.KVH)
        return nx_fail(err, "num_heads (%d) must be a multiple of num_kv_heads (%d)", m.NH, m.KVH);
    if (nx_model_config_check(&m, err)) return NX_ERR;
    if (t && check_against_teacher(rc, &m, t, err)) return NX_ERR;
    *out = m;
    return NX_OK;
}
