/* run.c — one run of `nexus distill` / `nexus train` (see run.h): the
 * orchestration, with the pieces in their own files (init.c, data.c,
 * metrics.c, progress.c).
 *
 * Order of work: output paths against inputs, the teacher's config, the
 * student's shape, both models' contexts and the memory plan (configs
 * only, so a run that cannot work is refused in a moment) → the run
 * directory, locked → teacher (weights for distill, tokenizer always) →
 * student initialisation → data (token shards or JSONL tokenized in
 * memory, checked against the tokenizer and the vocabulary before any step)
 * → trainer, loader → resume → steps with metrics.jsonl, evals,
 * checkpoints → final eval, student directory, summary. Every failure
 * before the first step leaves nothing behind; after it, the newest
 * checkpoint is the state of record.
 *
 * A checkpoint holds the student's parameters followed by the trainer's own
 * (hidden-state projections), AdamW's moments over all of them, and the
 * loader's state: everything a resumed run needs to continue bit for bit. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "nexus/checkpoint.h"
#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/modelfile.h"
#include "nexus/tokenizer.h"
#include "run_internal.h"

nx_train_opts nx_run_train_opts(const nx_run_config *rc, bool distill) {
    return (nx_train_opts){
        .B = rc->data.batch_size, .T = rc->data.seq_len - 1, .accum = rc->data.grad_accum,
        .alpha = (float)rc->loss.alpha, .temp = (float)rc->loss.temperature, .kd = rc->loss.kind,
        .lr = (float)rc->optimizer.lr, .min_lr = (float)rc->optimizer.min_lr,
        .beta1 = (float)rc->optimizer.betas[0], .beta2 = (float)rc->optimizer.betas[1],
        .eps = (float)rc->optimizer.eps, .weight_decay = (float)rc->optimizer.weight_decay,
        .clip = (float)rc->optimizer.clip, .sched = rc->optimizer.schedule,
        .warmup = rc->optimizer.warmup_steps, .total_steps = rc->optimizer.steps,
        .n_layer_map = rc->loss.hidden.layer_map.n, .layer_map = (const int (*)[2])rc->loss.hidden.layer_map.pair,
        .hidden_weight = distill ? (float)rc->loss.hidden.weight : 0.0f, .proj_seed = (uint64_t)rc->seed ^ 0x9a0ecu,
        .attention_weight = distill ? (float)rc->loss.attention : 0.0f, .recompute = rc->recompute};
}

typedef struct {
    nx_model teacher, student;
    bool have_teacher_weights, have_student;
    nx_tokenizer *tok;
    run_data train, val;
    bool have_train, have_val;
    nx_trainer tr;
    bool have_trainer;
    int32_t *inputs, *targets;
    uint8_t *mask;              /* the student's sparsity mask (student.nparams bytes), or NULL */
    run_metrics metrics;
    run_dir dir;
} run_state;

static void cleanup(run_state *s) {
    run_metrics_close(&s->metrics);
    run_dir_close(&s->dir);
    if (s->have_trainer) nx_trainer_free(&s->tr);
    free(s->inputs);
    free(s->targets);
    free(s->mask);
    if (s->have_train) run_data_close(&s->train);
    if (s->have_val) run_data_close(&s->val);
    if (s->tok) nx_tokenizer_free(s->tok);
    if (s->have_student) nx_model_free(&s->student);
    if (s->have_teacher_weights) nx_model_free(&s->teacher);
}

static int save_ckpt(run_state *s, const nx_run_config *rc, const nx_loader *ld, int64_t tokens, nx_err *err) {
    nx_ckpt_meta meta = {.config_hash = nx_run_config_hash(rc), .step = s->tr.step, .tokens = tokens,
                         .best_val_loss = NAN};
    nx_rng_seed(&meta.rng, 0);
    meta.data_state_len = sizeof ld->st;
    memcpy(meta.data_state, &ld->st, sizeof ld->st);
    nx_train_state st = nx_trainer_state(&s->tr);
    return nx_ckpt_save(rc->checkpoint.dir, &meta, s->tr.n_train, st.params, st.m, st.v, s->tr.mask_host,
                        s->tr.opt.t, rc->checkpoint.keep, err);
}

/* A checkpoint's CRC says its bytes are the ones written, not that a
 * crafted or foreign file holds what this run could have written: every
 * field is checked against the run before any of it is used. */
static int check_resumed(run_state *s, const nx_run_config *rc, const nx_ckpt_meta *meta, const char *path,
                         nx_err *err) {
    int64_t per = (int64_t)rc->data.grad_accum * rc->data.batch_size * (rc->data.seq_len - 1);
    const char *fix = "a corrupt or crafted checkpoint: resume from an earlier one, or start over with --overwrite";
    if (meta->step < 0 || meta->step > INT64_MAX / per)
        return nx_fail(err, "%s: step %lld is not a step count: %s", path, (long long)meta->step, fix);
    if (meta->tokens != meta->step * per)
        return nx_fail(err, "%s: %lld tokens trained after %lld steps of %lld tokens: %s", path,
                       (long long)meta->tokens, (long long)meta->step, (long long)per, fix);
    if (s->tr.opt.t != meta->step)
        return nx_fail(err, "%s: %lld AdamW updates after %lld steps: %s", path, (long long)s->tr.opt.t,
                       (long long)meta->step, fix);
    if (meta->data_state_len != sizeof(nx_loader_state))
        return nx_fail(err, "%s: data-loader state of %u bytes, expected %zu: %s", path, meta->data_state_len,
                       sizeof(nx_loader_state), fix);
    nx_train_state st = nx_trainer_state(&s->tr);
    for (size_t i = 0; i < s->tr.n_train; i++)
        if (!isfinite(st.params[i]) || !isfinite(st.m[i]) || !(st.v[i] >= 0) || !isfinite(st.v[i]))
            return nx_fail(err, "%s: trained value %zu is not finite (or a second moment below 0): %s", path, i, fix);
    return NX_OK;
}

/* Restores the student, the trainer's step and AdamW, and the loader from
 * the newest checkpoint; *tokens is the count trained on so far. */
static int resume(run_state *s, const nx_run_config *rc, nx_loader *ld, int64_t *tokens, nx_err *err) {
    char path[NX_RUN_PATH_MAX + 64];
    nx_ckpt_meta meta;
    nx_adamw *opt = &s->tr.opt;
    if (nx_ckpt_latest(rc->checkpoint.dir, path, sizeof path, err)) return NX_ERR;
    nx_train_state st = nx_trainer_state(&s->tr);
    uint8_t *mask = nx_xmalloc(opt->n);
    bool has_mask;
    if (nx_ckpt_load(path, nx_run_config_hash(rc), &meta, opt->n, st.params, st.m, st.v, mask, &has_mask, &opt->t,
                     err)) {
        free(mask);
        return NX_ERR;
    }
    int r = check_resumed(s, rc, &meta, path, err);
    if (r == NX_OK) {
        nx_loader_state ls;
        memcpy(&ls, meta.data_state, sizeof ls);
        if (nx_loader_restore(ld, &ls, err)) r = nx_fail_prefix(err, "%s", path);
    }
    if (r == NX_OK) {
        nx_trainer_state_upload(&s->tr);
        for (size_t i = 0; has_mask && r == NX_OK && i < opt->n; i++)
            if (mask[i] > 1)
                r = nx_fail(err, "%s: mask byte %zu is %u, not 0 or 1: a corrupt or crafted checkpoint: resume "
                                 "from an earlier one, or start over with --overwrite", path, i, mask[i]);
        if (has_mask && r == NX_OK) r = nx_trainer_set_mask(&s->tr, mask, err);
    }
    free(mask);
    if (r) return NX_ERR;
    s->tr.step = meta.step;
    *tokens = meta.tokens;
    if (run_dir_start(&s->dir, rc, false, err) ||
        run_metrics_open(&s->metrics, rc->log.metrics_file, true, meta.step, err))
        return NX_ERR;
    run_progress_resumed(path, meta.step);
    return NX_OK;
}

static int evaluate(run_state *s, const nx_run_config *rc, bool distill, nx_eval_result *r, nx_err *err) {
    int64_t maxw = rc->eval.batches > 0 ? (int64_t)rc->eval.batches * rc->data.batch_size
                 : rc->eval.tokens > 0 ? rc->eval.tokens / rc->data.seq_len : 0;
    if (maxw == 0 && rc->eval.tokens > 0) maxw = 1;
    return nx_eval(&s->student, distill ? &s->teacher : NULL, s->val.view, rc->data.seq_len,
                   rc->data.batch_size, maxw, r, NULL, err);
}

/* The student's shape. Without a teacher to distill from (nexus train)
 * nothing is compared with the teacher's logits or states, so the losses
 * that would need its vocabulary or widths do not constrain the shape. */
static int student_shape(const nx_run_config *rc, bool distill, const nx_model_config *t, nx_model_config *s,
                         nx_err *err) {
    if (distill) return nx_run_config_student_shape(rc, t, s, err);
    nx_run_config *own = nx_xmalloc(sizeof *own);
    *own = *rc;
    own->loss.alpha = 0, own->loss.hidden.weight = 0, own->loss.attention = 0;
    int r = nx_run_config_student_shape(own, t, s, err);
    free(own);
    return r;
}

/* Every forward stays within the models' contexts: training windows of
 * seq_len − 1 inputs, evaluation windows of seq_len tokens, through the
 * student and (distilling) the teacher. */
static int check_context(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                         nx_err *err) {
    bool eval = rc->data.validation[0] != 0;
    int need = eval ? rc->data.seq_len : rc->data.seq_len - 1;
    const char *what = eval ? "evaluation windows of data.seq_len" : "training windows of data.seq_len - 1";
    if (need > s->max_pos)
        return nx_fail(err, "data.seq_len %d: %s = %d tokens exceed the student's max_position_embeddings %d; "
                            "lower data.seq_len to %d", rc->data.seq_len, what, need, s->max_pos,
                       s->max_pos + (eval ? 0 : 1));
    if (distill && need > t->max_pos)
        return nx_fail(err, "data.seq_len %d: %s = %d tokens exceed the teacher's max_position_embeddings %d; "
                            "lower data.seq_len to %d", rc->data.seq_len, what, need, t->max_pos,
                       t->max_pos + (eval ? 0 : 1));
    return NX_OK;
}

/* Free bytes on the file system holding path; *dev its device. */
static double free_bytes(const char *path, dev_t *dev) {
    struct statvfs v;
    struct stat st;
    if (statvfs(path, &v) || stat(path, &st)) return INFINITY;
    *dev = st.st_dev;
    return (double)v.f_bavail * (double)v.f_frsize;
}

/* Room for what the run will write: the checkpoints that exist at once
 * (checkpoint.keep + 1 while a new one replaces the oldest; every one when
 * keep is 0, fewer when the run writes fewer) and the student. A run with
 * --overwrite counts the space of the checkpoints it will delete. */
static int check_disk(const nx_run_config *rc, bool overwrite, size_t n_train, bool mask, const nx_model_config *scfg,
                      nx_err *err) {
    double ck = (double)nx_ckpt_bytes(n_train, mask);
    int64_t every = rc->checkpoint.every, steps = rc->optimizer.steps;
    int64_t future = (every > 0 ? steps / every : 0) + 1, at_once = future;
    if (rc->checkpoint.keep > 0 && rc->checkpoint.keep + 1 < at_once) at_once = rc->checkpoint.keep + 1;
    double need_ck = (double)at_once * ck;
    double need_out = (double)nx_model_size(scfg, rc->output.dtype) + (1 << 20); /* + config, tokenizer */
    dev_t dck = 0, dout = 1;
    double fck = free_bytes(rc->checkpoint.dir, &dck), fout = free_bytes(rc->output.dir, &dout);
    if (!overwrite) {
        /* checkpoints already there (a resumed run's) count toward keep */
        DIR *d = opendir(rc->checkpoint.dir);
        struct dirent *e;
        int64_t have = 0;
        while (d && (e = readdir(d))) have += !strncmp(e->d_name, "step-", 5);
        if (d) closedir(d);
        if (rc->checkpoint.keep > 0) need_ck = fmax(1, fmin((double)future, rc->checkpoint.keep + 1.0 - have)) * ck;
    }
    if (dck == dout) need_ck += need_out, need_out = 0;
    char a[32], b[32], c[32];
    if (need_ck > fck)
        return nx_fail(err, "%s: %s free, but the run's checkpoints need %s (%lld at once of %s each)%s: free "
                            "some space, lower checkpoint.keep, or choose another checkpoint.dir",
                       rc->checkpoint.dir, run_bytes(a, sizeof a, fck), run_bytes(b, sizeof b, need_ck),
                       (long long)at_once, run_bytes(c, sizeof c, ck),
                       dck == dout ? " and the student" : "");
    if (need_out > fout)
        return nx_fail(err, "%s: %s free, but the student needs %s: free some space or choose another output.dir",
                       rc->output.dir, run_bytes(a, sizeof a, fout), run_bytes(b, sizeof b, need_out));
    return NX_OK;
}

/* Teacher weights on be (when distilling or copying layers; *tcfg, read
 * before, becomes theirs) and its tokenizer. */
static int load_teacher(run_state *s, const nx_run_config *rc, bool distill, nx_backend *be, nx_model_config *tcfg,
                        nx_err *err) {
    if (distill || (rc->student.init.kind != NX_INIT_RANDOM && rc->student.init.kind != NX_INIT_LOAD)) {
        if (nx_modelfile_load(rc->teacher.path, rc->teacher.dtype, be, &s->teacher, NULL, err)) return NX_ERR;
        s->have_teacher_weights = true;
        *tcfg = s->teacher.cfg;
    }
    if (nx_modelfile_tokenizer(rc->teacher.path, &s->tok, err)) return NX_ERR;
    if (nx_tokenizer_vocab_size(s->tok) > tcfg->V)
        return nx_fail(err, "%s: the tokenizer has %d tokens but the model's vocab_size is %d", rc->teacher.path,
                       nx_tokenizer_vocab_size(s->tok), tcfg->V);
    return NX_OK;
}

/* Training and validation data, checked against the student's vocabulary. */
static int open_data(run_state *s, const nx_run_config *rc, int V, bool progress, nx_err *err) {
    if (nx_tokenizer_vocab_size(s->tok) > V)
        return nx_fail(err, "the tokenizer has %d tokens but the student's vocab_size is %d: the student must "
                            "cover the teacher's vocabulary", nx_tokenizer_vocab_size(s->tok), V);
    if (run_data_open(&s->train, rc->data.train, "train.bin", s->tok, rc->data.text_field, V, progress, err))
        return NX_ERR;
    s->have_train = true;
    if (!rc->data.validation[0]) return NX_OK;
    bool derived = !strcmp(rc->data.validation, rc->data.train) || strstr(rc->data.validation, "/val.bin");
    if (run_data_open(&s->val, rc->data.validation, "val.bin", s->tok, rc->data.text_field, V, progress, err)) {
        if (derived)
            nx_fail_prefix(err, "data.validation (by default the val.bin beside data.train's train.bin: make it with "
                                "prepare-data --val-fraction, or set data.validation)");
        return NX_ERR;
    }
    s->have_val = true;
    if (s->val.view.n < (uint64_t)rc->data.seq_len)
        return nx_fail(err, "%s: %llu tokens, fewer than one evaluation window of %d", rc->data.validation,
                       (unsigned long long)s->val.view.n, rc->data.seq_len);
    return NX_OK;
}

/* The final evaluation into the summary and metrics, then the student
 * directory with the teacher's tokenizer. */
static int finish(run_state *s, const nx_run_config *rc, bool distill, const nx_model_config *tcfg,
                  nx_run_summary *out, nx_err *err) {
    if (s->have_val) {
        nx_eval_result r;
        if (evaluate(s, rc, distill, &r, err)) return NX_ERR;
        out->student.ppl = r.perplexity;
        out->student.agreement = r.agreement;
        out->student.kl = r.kl;
        if (run_metrics_eval(&s->metrics, s->tr.step, &r, true, err)) return NX_ERR;
        out->teacher.ppl = r.teacher_perplexity; /* NAN without a teacher */
    }
    if (distill) {
        out->teacher.params = nx_model_count(tcfg);
        /* as held: a GGUF teacher's quantized blocks count at their size */
        out->teacher.bytes = s->have_teacher_weights ? (double)s->teacher.nbytes
                                                     : (double)out->teacher.params * nx_dtype_size(tcfg->dtype);
    }
    if (nx_hf_save_model(rc->output.dir, &s->student, rc->output.dtype, err)) return NX_ERR;
    if (s->tr.mask_host && nx_hf_save_mask(rc->output.dir, &s->student.cfg, s->tr.mask_host, err)) return NX_ERR;
    return nx_modelfile_copy_tokenizer(rc->teacher.path, rc->output.dir, err);
}

int nx_run(const nx_run_config *rc, const nx_run_opts *o, nx_run_summary *out, nx_err *err) {
    run_state s;
    memset(&s, 0, sizeof s);
    memset(out, 0, sizeof *out);
    out->student.ppl = out->teacher.ppl = out->student.agreement = out->student.kl = NAN;
    out->teacher.agreement = out->teacher.kl = NAN;
    nx_set_threads(rc->threads);
    int rcode = NX_ERR;
    bool distill = o->distill;
    nx_model_config tcfg, scfg;
    nx_backend *be = rc->device == NX_DEVICE_CUDA ? nx_backend_cuda(err) : nx_backend_cpu();
    if (!be) {
        nx_fail_prefix(err, "device: cuda");
        goto fail;
    }
    if (nx_backend_set_precision(be, rc->precision, err)) {
        nx_fail_prefix(err, "precision");
        goto fail;
    }

    /* configs only: where the run writes, the shapes, their contexts, the memory */
    if (run_dir_check_paths(rc, err) || nx_modelfile_config(rc->teacher.path, &tcfg, err) ||
        student_shape(rc, distill, &tcfg, &scfg, err) || check_context(rc, distill, &tcfg, &scfg, err) ||
        (!o->init_only && run_plan_check(rc, distill, &tcfg, &scfg, be, err)) || run_dir_open(&s.dir, rc, o, err))
        goto fail;
    if (load_teacher(&s, rc, distill, be, &tcfg, err)) goto fail;
    if (nx_model_init_on(&s.student, &scfg, NX_F32, be, err)) goto fail;
    s.have_student = true;
    if (open_data(&s, rc, scfg.V, o->progress, err)) goto fail;
    int B = rc->data.batch_size, T = rc->data.seq_len - 1, accum = rc->data.grad_accum;
    nx_loader ld;
    if (nx_loader_init(&ld, s.train.view, B, T,
                       rc->data.order == NX_ORDER_SEQUENTIAL ? NX_BATCH_SEQUENTIAL : NX_BATCH_RANDOM,
                       (uint64_t)rc->seed, err)) {
        nx_fail_prefix(err, "%s", rc->data.train);
        goto fail;
    }
    /* (skipped on resume: the checkpoint holds the student) */
    if (!o->resume && run_init_student(&s.student, &s.teacher, rc, &ld, &s.mask, o->init_only, err)) goto fail;
    if (o->init_only) { /* the initialised student is the result */
        out->student.params = nx_model_count(&scfg);
        out->student.bytes = (double)out->student.params * nx_dtype_size(rc->output.dtype);
        if (nx_hf_save_model(rc->output.dir, &s.student, rc->output.dtype, err) ||
            (s.mask && nx_hf_save_mask(rc->output.dir, &scfg, s.mask, err)) ||
            nx_modelfile_copy_tokenizer(rc->teacher.path, rc->output.dir, err))
            goto fail;
        rcode = NX_OK;
        goto fail;
    }

    nx_train_opts to = nx_run_train_opts(rc, distill);
    if (nx_trainer_init(&s.tr, &s.student, distill ? &s.teacher : NULL, &to, err)) goto fail;
    s.have_trainer = true;
    if (s.mask && nx_trainer_set_mask(&s.tr, s.mask, err)) goto fail;
    s.inputs = nx_xmalloc(sizeof(int32_t) * accum * B * T);
    s.targets = nx_xmalloc(sizeof(int32_t) * accum * B * T);
    if (check_disk(rc, o->overwrite, s.tr.n_train, s.tr.mask_host != NULL, &scfg, err)) goto fail;

    /* outputs: from here on the run writes */
    int64_t tokens = 0;
    if (o->resume ? resume(&s, rc, &ld, &tokens, err)
                  : run_dir_start(&s.dir, rc, o->overwrite, err) || run_metrics_open(&s.metrics, rc->log.metrics_file, false, 0, err))
        goto fail;

    /* steps */
    run_progress pg = {.tty = o->progress && isatty(STDERR_FILENO), .log_every = rc->log.every,
                       .start = s.tr.step, .total = rc->optimizer.steps};
    double t_train = 0;
    nx_step_stats st = {0};
    while (s.tr.step < pg.total) {
        double t0 = nx_now();
        for (int a = 0; a < accum; a++)
            nx_loader_next(&ld, s.inputs + (size_t)a * B * T, s.targets + (size_t)a * B * T);
        if (nx_trainer_step(&s.tr, s.inputs, s.targets, &st)) {
            nx_fail(err, "step %lld: the loss is not finite (loss %g, gradient norm %g); the first "
                         "non-finite gradient is in %s. Nothing was updated; the newest checkpoint in %s "
                         "is intact. Try a lower optimizer.lr or a smaller loss.temperature",
                    (long long)st.step, st.loss, st.grad_norm, st.bad_tensor, rc->checkpoint.dir);
            goto fail;
        }
        double dt = nx_now() - t0;
        t_train += dt;
        tokens += st.tokens;
        double tps = (s.tr.step - pg.start) * (double)st.tokens / t_train; /* this session's steps */
        if (run_metrics_step(&s.metrics, &st, tokens, dt, tps, err)) goto fail;
        nx_mem_info mi;
        nx_backend_mem_info(be, &mi); /* samples the device's use (cuBLAS allocates lazily) */
        run_progress_step(&pg, &st, s.tr.step, t_train, tps);
        bool last = s.tr.step == pg.total;
        if (s.have_val && rc->eval.every > 0 && s.tr.step % rc->eval.every == 0 && !last) {
            nx_eval_result r;
            if (evaluate(&s, rc, distill, &r, err)) goto fail;
            if (run_metrics_eval(&s.metrics, s.tr.step, &r, false, err)) goto fail;
            run_progress_eval(&pg, s.tr.step, &r, distill);
        }
        bool stop = o->stop && *o->stop;
        if ((rc->checkpoint.every > 0 && s.tr.step % rc->checkpoint.every == 0) || last || stop) {
            if (save_ckpt(&s, rc, &ld, tokens, err)) goto fail;
        }
        if (stop && !last) {
            run_progress_interrupted(&pg, s.tr.step, rc->checkpoint.dir);
            out->interrupted = true;
            break;
        }
    }
    out->steps_done = s.tr.step;
    out->tokens = tokens;
    out->seconds = t_train;
    out->tokens_per_s = s.tr.step > pg.start ? (s.tr.step - pg.start) * (double)accum * B * T / t_train : 0;
    out->final_loss = st.loss;
    out->student.params = nx_model_count(&scfg);
    out->student.bytes = (double)out->student.params * nx_dtype_size(rc->output.dtype);
    out->has_teacher = distill;
    if (out->interrupted || finish(&s, rc, distill, &tcfg, out, err) == NX_OK) rcode = NX_OK;
    if (rcode == NX_OK && rc->device == NX_DEVICE_CUDA) { /* after the final evaluation */
        nx_run_plan p;
        nx_mem_info mi;
        nx_backend_mem_info(be, &mi);
        if (nx_run_plan_compute(rc, distill, &tcfg, &scfg, &p, err) ||
            run_metrics_memory(&s.metrics, s.tr.step, &p, &mi, err)) {
            rcode = NX_ERR;
        } else {
            out->gpu = true;
            out->gpu_plan = p.total, out->gpu_peak_allocated = mi.peak, out->gpu_peak_used = mi.device_used_peak;
            out->gpu_total = mi.device_total;
        }
    }
fail:
    cleanup(&s);
    return rcode;
}
