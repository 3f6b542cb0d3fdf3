/* run.c — one run of `nexus distill` / `nexus train` (see run.h).
 *
 * Order of work: teacher (weights for distill, tokenizer always) → student
 * shape and initialisation → data (token shards or JSONL tokenized in
 * memory, checked against the tokenizer and the vocabulary before any step)
 * → trainer, loader → resume → steps with metrics.jsonl, evals,
 * checkpoints → final eval, student directory, summary. Every failure
 * before the first step leaves nothing behind; after it, the newest
 * checkpoint is the state of record. */
#include "nexus/run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/checkpoint.h"
#include "nexus/dataset.h"
#include "nexus/eval.h"
#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/tokenizer.h"
#include "nexus/train.h"

/* ---- student initialisation ---- */

/* Teacher tensor name for a student tensor: layer i becomes layer map[i]. */
static void teacher_name(const char *student, const int *map, char *out, size_t n) {
    int l, at;
    if (sscanf(student, "model.layers.%d.%n", &l, &at) == 1)
        snprintf(out, n, "model.layers.%d.%s", map[l], student + at);
    else
        snprintf(out, n, "%s", student);
}

int nx_student_copy_layers(nx_model *s, const nx_model *t, const int *map, int n, nx_err *err) {
    const nx_model_config *sc = &s->cfg, *tc = &t->cfg;
    if (sc->C != tc->C || sc->F != tc->F || sc->NH != tc->NH || sc->KVH != tc->KVH || sc->HS != tc->HS ||
        sc->V != tc->V || sc->qkv_bias != tc->qkv_bias || sc->o_bias != tc->o_bias)
        return nx_fail(err, "copying teacher layers needs the student's widths to equal the teacher's "
                            "(hidden %d/%d, intermediate %d/%d, heads %d/%d, kv heads %d/%d, vocab %d/%d): "
                            "use student.init: random for a narrower student",
                       sc->C, tc->C, sc->F, tc->F, sc->NH, tc->NH, sc->KVH, tc->KVH, sc->V, tc->V);
    if (n != sc->L) return nx_fail(err, "copy_layers lists %d layers but the student has %d", n, sc->L);
    for (int i = 0; i < n; i++)
        if (map[i] < 0 || map[i] >= tc->L)
            return nx_fail(err, "copy_layers[%d] = %d: the teacher has layers 0..%d", i, map[i], tc->L - 1);
    /* walk the student's tensors by name; a tied teacher's head is its embeddings */
    float *buf = NULL;
    for (int i = 0; i < s->ntab; i++) {
        char want[96];
        teacher_name(s->tab[i].name, map, want, sizeof want);
        if (tc->tied && !strcmp(want, "lm_head.weight")) snprintf(want, sizeof want, "model.embed_tokens.weight");
        int j = nx_model_find(t, want);
        NX_ASSERTM(j >= 0 && t->tab[j].numel == s->tab[i].numel, "equal widths give the same tensors");
        buf = realloc(buf, sizeof(float) * s->tab[i].numel);
        nx_model_get(t, j, buf);
        nx_model_set(s, i, buf, NX_F32);
    }
    free(buf);
    return NX_OK;
}

void nx_layer_importance(const nx_model *t, const int32_t *ids, int B, int T, double *bi) {
    nx_acts a;
    nx_err e;
    NX_ASSERT(nx_acts_init(&a, t, B, T, NX_ACTS_INFER, &e) == NX_OK);
    nx_model_forward(t, &a, ids, B, T, false);
    long N = (long)B * T;
    int C = t->cfg.C;
    size_t NC = (size_t)N * C;
    float *res = nx_xmalloc(sizeof(float) * (t->cfg.L + 1) * NC);
    nx_backend_download(t->be, res, a.res, sizeof(float) * (t->cfg.L + 1) * NC);
    for (int l = 0; l < t->cfg.L; l++) {
        const float *x = res + (size_t)l * NC, *y = res + (size_t)(l + 1) * NC;
        double sum = 0;
        for (long n = 0; n < N; n++) {
            double xy = 0, xx = 0, yy = 0;
            for (int c = 0; c < C; c++) {
                xy += (double)x[n * C + c] * y[n * C + c];
                xx += (double)x[n * C + c] * x[n * C + c];
                yy += (double)y[n * C + c] * y[n * C + c];
            }
            sum += xy / (sqrt(xx * yy) + 1e-30);
        }
        bi[l] = 1.0 - sum / N;
    }
    free(res);
    nx_acts_free(&a);
}

void nx_choose_layers(const double *bi, int L, int n, int *out) {
    bool *take = calloc(L, 1);
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int l = 0; l < L; l++)
            if (!take[l] && (best < 0 || bi[l] > bi[best])) best = l;
        take[best] = true;
    }
    for (int l = 0, k = 0; l < L; l++)
        if (take[l]) out[k++] = l;
    free(take);
}

/* ---- data ---- */

typedef struct {
    bool is_shard;
    nx_shard shard;
    nx_token_stream stream;
    nx_tokens view;
} dataset;

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* path: a shard (.bin), a directory holding `name` (train.bin / val.bin),
 * or documents (.jsonl[.gz], text) tokenized here. */
static int open_data(dataset *d, const char *path, const char *name, const nx_tokenizer *tok,
                     const char *field, int V, bool progress, nx_err *err) {
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st)) return nx_fail(err, "%s: %s (check data paths in the config)", path, strerror(errno));
    char shard_path[NX_RUN_PATH_MAX + 32];
    const char *sp = NULL;
    if (S_ISDIR(st.st_mode)) {
        snprintf(shard_path, sizeof shard_path, "%s/%s", path, name);
        sp = shard_path;
    } else if (ends_with(path, ".bin")) {
        sp = path;
    }
    if (sp) {
        if (nx_shard_open(&d->shard, sp, err)) return NX_ERR;
        d->is_shard = true;
        if (d->shard.info.fingerprint != nx_tokenizer_fingerprint(tok)) {
            nx_shard_close(&d->shard);
            return nx_fail(err, "%s: made with a different tokenizer than the teacher's (fingerprint "
                                "%016llx, teacher %016llx): run nexus prepare-data with the teacher's model",
                           sp, (unsigned long long)d->shard.info.fingerprint,
                           (unsigned long long)nx_tokenizer_fingerprint(tok));
        }
        if ((int64_t)d->shard.info.vocab_size > V) {
            nx_shard_close(&d->shard);
            return nx_fail(err, "%s: token ids up to %u but the student's vocabulary has %d", sp,
                           d->shard.info.vocab_size, V);
        }
        d->view = nx_shard_tokens(&d->shard);
        return NX_OK;
    }
    const char *paths[1] = {path};
    nx_docs_opts o = {.field = field, .eos_id = nx_tokenizer_eos_id(tok), .progress = progress};
    if (o.eos_id < 0)
        return nx_fail(err, "%s: the teacher's tokenizer names no EOS token to separate documents", path);
    if (nx_dataset_tokenize(tok, paths, 1, &o, &d->stream, NULL, err)) return NX_ERR;
    for (size_t i = 0; i < d->stream.n; i++)
        if (d->stream.ids[i] >= V) {
            int32_t bad = d->stream.ids[i];
            nx_token_stream_free(&d->stream);
            return nx_fail(err, "%s: token id %d at position %zu is outside the student's vocabulary (%d)",
                           path, bad, i, V);
        }
    d->view = nx_stream_tokens(&d->stream);
    return NX_OK;
}

static void close_data(dataset *d) {
    if (d->is_shard) nx_shard_close(&d->shard);
    else nx_token_stream_free(&d->stream);
    memset(d, 0, sizeof *d);
}

/* ---- metrics ---- */

/* The directory, created with its parents, and writable. */
static int writable_dir(const char *dir, nx_err *err) {
    if (nx_mkdirs(dir, err)) return NX_ERR;
    if (access(dir, W_OK)) return nx_fail(err, "%s: not writable: %s", dir, strerror(errno));
    return NX_OK;
}

/* On resume, keep only the metric lines of steps already checkpointed. */
static void truncate_metrics(const char *path, int64_t upto) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tmp[NX_RUN_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *g = fopen(tmp, "w");
    if (!g) {
        fclose(f);
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"step\": ");
        long long s;
        if (p && sscanf(p + 8, "%lld", &s) == 1 && s >= upto) continue;
        fputs(line, g);
    }
    fclose(f);
    fclose(g);
    rename(tmp, path);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* ---- the run ---- */

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
        .attention_weight = distill ? (float)rc->loss.attention : 0.0f};
}

typedef struct {
    nx_model teacher, student;
    bool have_teacher_weights, have_student;
    nx_tokenizer *tok;
    dataset train, val;
    bool have_train, have_val;
    nx_trainer tr;
    bool have_trainer;
    int32_t *inputs, *targets;
    FILE *metrics;
} run_state;

static void cleanup(run_state *s) {
    if (s->metrics) fclose(s->metrics);
    if (s->have_trainer) nx_trainer_free(&s->tr);
    free(s->inputs);
    free(s->targets);
    if (s->have_train) close_data(&s->train);
    if (s->have_val) close_data(&s->val);
    if (s->tok) nx_tokenizer_free(s->tok);
    if (s->have_student) nx_model_free(&s->student);
    if (s->have_teacher_weights) nx_model_free(&s->teacher);
}

static int save_ckpt(run_state *s, const nx_run_config *rc, const nx_loader *ld, int64_t tokens,
                     nx_err *err) {
    nx_ckpt_meta meta = {.config_hash = nx_run_config_hash(rc), .step = s->tr.step, .tokens = tokens,
                         .best_val_loss = NAN};
    nx_rng_seed(&meta.rng, 0);
    meta.data_state_len = sizeof ld->st;
    memcpy(meta.data_state, &ld->st, sizeof ld->st);
    return nx_ckpt_save(rc->checkpoint.dir, &meta, s->student.params, &s->tr.opt, rc->checkpoint.keep, err);
}

static int evaluate(run_state *s, const nx_run_config *rc, bool distill, nx_eval_result *r, nx_err *err) {
    int64_t maxw = rc->eval.batches > 0 ? (int64_t)rc->eval.batches * rc->data.batch_size
                 : rc->eval.tokens > 0 ? rc->eval.tokens / rc->data.seq_len : 0;
    if (maxw == 0 && rc->eval.tokens > 0) maxw = 1;
    return nx_eval(&s->student, distill ? &s->teacher : NULL, s->val.view, rc->data.seq_len,
                   rc->data.batch_size, maxw, r, err);
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
    nx_model_config tcfg;

    /* teacher: weights when distilling (or copying layers), config + tokenizer always */
    bool need_weights = distill || rc->student.init.kind != NX_INIT_RANDOM;
    if (need_weights) {
        if (nx_hf_load_model_as(rc->teacher.path, &s.teacher, rc->teacher.dtype, err)) goto fail;
        s.have_teacher_weights = true;
        tcfg = s.teacher.cfg;
    } else if (nx_hf_load_config(rc->teacher.path, &tcfg, err)) {
        goto fail;
    }
    if (nx_tokenizer_load(&s.tok, rc->teacher.path, err)) goto fail;
    if (nx_tokenizer_vocab_size(s.tok) > tcfg.V) {
        nx_fail(err, "%s: the tokenizer has %d tokens but the model's vocab_size is %d", rc->teacher.path,
                nx_tokenizer_vocab_size(s.tok), tcfg.V);
        goto fail;
    }

    /* student */
    nx_model_config scfg;
    if (nx_run_config_student_shape(rc, &tcfg, &scfg, err)) goto fail;
    if (rc->data.seq_len - 1 > scfg.max_pos) {
        nx_fail(err, "data.seq_len %d exceeds the student's max_position_embeddings %d + 1", rc->data.seq_len,
                scfg.max_pos);
        goto fail;
    }
    if (nx_model_init(&s.student, &scfg, err)) goto fail;
    s.have_student = true;

    /* data, checked before any step */
    if (nx_tokenizer_vocab_size(s.tok) > scfg.V) {
        nx_fail(err, "the tokenizer has %d tokens but the student's vocab_size is %d: the student must "
                     "cover the teacher's vocabulary", nx_tokenizer_vocab_size(s.tok), scfg.V);
        goto fail;
    }
    if (open_data(&s.train, rc->data.train, "train.bin", s.tok, rc->data.text_field, scfg.V, o->progress, err))
        goto fail;
    s.have_train = true;
    if (rc->data.validation[0]) {
        if (open_data(&s.val, rc->data.validation, "val.bin", s.tok, rc->data.text_field, scfg.V, o->progress, err))
            goto fail;
        s.have_val = true;
        if (s.val.view.n < (uint64_t)rc->data.seq_len) {
            nx_fail(err, "%s: %llu tokens, fewer than one evaluation window of %d", rc->data.validation,
                    (unsigned long long)s.val.view.n, rc->data.seq_len);
            goto fail;
        }
    }
    int B = rc->data.batch_size, T = rc->data.seq_len - 1, accum = rc->data.grad_accum;
    nx_loader ld;
    if (nx_loader_init(&ld, s.train.view, B, T,
                       rc->data.order == NX_ORDER_SEQUENTIAL ? NX_BATCH_SEQUENTIAL : NX_BATCH_RANDOM,
                       (uint64_t)rc->seed, err)) {
        nx_fail_prefix(err, "%s", rc->data.train);
        goto fail;
    }

    /* initialisation (skipped on resume: the checkpoint holds the student) */
    nx_rng rng;
    nx_rng_seed(&rng, (uint64_t)rc->seed ^ 0x5eedu);
    if (!o->resume) {
        if (rc->student.init.kind == NX_INIT_RANDOM) {
            nx_model_init_random(&s.student, (float)rc->student.init.std, &rng);
        } else {
            int map[NX_RUN_MAX_LAYERS];
            int n = scfg.L;
            if (rc->student.init.kind == NX_INIT_COPY_LAYERS) {
                memcpy(map, rc->student.init.copy_layers.v, sizeof(int) * rc->student.init.copy_layers.n);
                n = rc->student.init.copy_layers.n;
            } else { /* auto: block influence on a few training batches */
                int nb = rc->student.init.importance_batches > 0 ? rc->student.init.importance_batches : 1;
                double *bi = calloc(tcfg.L, sizeof(double)), *acc = calloc(tcfg.L, sizeof(double));
                int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
                nx_loader probe = ld;
                for (int k = 0; k < nb; k++) {
                    nx_loader_next(&probe, in, tg);
                    nx_layer_importance(&s.teacher, in, B, T, bi);
                    for (int l = 0; l < tcfg.L; l++) acc[l] += bi[l] / nb;
                }
                nx_choose_layers(acc, tcfg.L, scfg.L, map);
                fprintf(stderr, "nexus: layer importance (1 - cos(in, out)):");
                for (int l = 0; l < tcfg.L; l++) fprintf(stderr, " %d:%.4f", l, acc[l]);
                fprintf(stderr, "\nnexus: student layers copied from teacher layers");
                for (int l = 0; l < scfg.L; l++) fprintf(stderr, " %d", map[l]);
                fputc('\n', stderr);
                free(bi), free(acc), free(in), free(tg);
            }
            if (nx_student_copy_layers(&s.student, &s.teacher, map, n, err)) goto fail;
        }
    }

    nx_train_opts to = nx_run_train_opts(rc, distill);
    if (nx_trainer_init(&s.tr, &s.student, distill ? &s.teacher : NULL, &to, err)) goto fail;
    s.have_trainer = true;
    s.inputs = nx_xmalloc(sizeof(int32_t) * accum * B * T);
    s.targets = nx_xmalloc(sizeof(int32_t) * accum * B * T);

    /* outputs */
    if (writable_dir(rc->output.dir, err) || writable_dir(rc->checkpoint.dir, err)) goto fail;
    int64_t tokens = 0;
    if (o->resume) {
        char path[NX_RUN_PATH_MAX + 64];
        nx_ckpt_meta meta;
        if (nx_ckpt_latest(rc->checkpoint.dir, path, sizeof path, err)) goto fail;
        if (nx_ckpt_load(path, nx_run_config_hash(rc), &meta, s.student.params, &s.tr.opt, err)) goto fail;
        if (meta.data_state_len != sizeof ld.st) {
            nx_fail(err, "%s: data-loader state of %u bytes, expected %zu", path, meta.data_state_len, sizeof ld.st);
            goto fail;
        }
        memcpy(&ld.st, meta.data_state, sizeof ld.st);
        s.tr.step = meta.step;
        tokens = meta.tokens;
        truncate_metrics(rc->log.metrics_file, meta.step);
        fprintf(stderr, "nexus: resumed from %s (step %lld)\n", path, (long long)meta.step);
    }
    s.metrics = fopen(rc->log.metrics_file, o->resume ? "a" : "w");
    if (!s.metrics) {
        nx_fail(err, "%s: cannot write metrics: %s", rc->log.metrics_file, strerror(errno));
        goto fail;
    }

    /* steps */
    int64_t total = rc->optimizer.steps, start = s.tr.step;
    double t_train = 0;
    nx_step_stats st = {0};
    while (s.tr.step < total) {
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
        double tps = (s.tr.step - start) * (double)st.tokens / t_train; /* this session's steps */
        fprintf(s.metrics,
                "{\"step\": %lld, \"loss\": %.9g, \"ce\": %.9g, \"kd\": %.9g, \"hidden\": %.9g, "
                "\"attention\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g, \"tokens\": %lld, \"step_s\": %.4f, "
                "\"tokens_per_s\": %.1f}\n",
                (long long)st.step, st.loss, st.ce, st.kd, st.hidden, st.attention, st.grad_norm, st.lr,
                (long long)tokens, dt, tps);
        bool last = s.tr.step == total;
        if (o->progress) {
            char eta[32];
            fmt_eta(eta, sizeof eta, (total - s.tr.step) * t_train / (s.tr.step - start));
            fprintf(stderr, "\r step %lld/%lld | loss %.4f | %.0f tok/s | ETA %s   ", (long long)s.tr.step,
                    (long long)total, st.loss, tps, eta);
            if (last) fputc('\n', stderr);
        } else if (rc->log.every > 0 && (s.tr.step % rc->log.every == 0 || last)) {
            fprintf(stderr, "step %lld/%lld  loss %.4f  ce %.4f  kd %.4f  |g| %.3f  lr %.3g  %.0f tok/s\n",
                    (long long)s.tr.step, (long long)total, st.loss, st.ce, st.kd, st.grad_norm, st.lr, tps);
        }
        if (s.have_val && rc->eval.every > 0 && s.tr.step % rc->eval.every == 0 && !last) {
            nx_eval_result r;
            if (evaluate(&s, rc, distill, &r, err)) goto fail;
            fprintf(s.metrics, "{\"eval\": true, \"step\": %lld, \"val_loss\": %.9g, \"val_ppl\": %.6g, "
                               "\"agreement\": %.6g, \"kl\": %.6g}\n",
                    (long long)s.tr.step, r.loss, r.perplexity, r.agreement, r.kl);
            if (o->progress) fputc('\n', stderr);
            fprintf(stderr, "eval step %lld: val ppl %.3f", (long long)s.tr.step, r.perplexity);
            if (distill) fprintf(stderr, "  agreement %.4f  kl %.4f", r.agreement, r.kl);
            fputc('\n', stderr);
        }
        fflush(s.metrics);
        bool stop = o->stop && *o->stop;
        if ((rc->checkpoint.every > 0 && s.tr.step % rc->checkpoint.every == 0) || last || stop) {
            if (save_ckpt(&s, rc, &ld, tokens, err)) goto fail;
        }
        if (stop && !last) {
            if (o->progress) fputc('\n', stderr);
            fprintf(stderr, "nexus: interrupted after step %lld; checkpoint saved in %s; continue with --resume\n",
                    (long long)s.tr.step, rc->checkpoint.dir);
            out->interrupted = true;
            break;
        }
    }
    out->steps_done = s.tr.step;
    out->tokens = tokens;
    out->seconds = t_train;
    out->tokens_per_s = s.tr.step > start ? (s.tr.step - start) * (double)accum * B * T / t_train : 0;
    out->final_loss = st.loss;
    out->student.params = nx_model_count(&scfg);
    out->student.bytes = (double)out->student.params * nx_dtype_size(rc->output.dtype);
    out->has_teacher = distill;
    if (out->interrupted) {
        rcode = NX_OK;
        goto fail;
    }

    /* final evaluation and the student directory */
    if (s.have_val) {
        nx_eval_result r;
        if (evaluate(&s, rc, distill, &r, err)) goto fail;
        out->student.ppl = r.perplexity;
        out->student.agreement = r.agreement;
        out->student.kl = r.kl;
        fprintf(s.metrics, "{\"eval\": true, \"final\": true, \"step\": %lld, \"val_loss\": %.9g, "
                           "\"val_ppl\": %.6g, \"agreement\": %.6g, \"kl\": %.6g}\n",
                (long long)s.tr.step, r.loss, r.perplexity, r.agreement, r.kl);
        out->teacher.ppl = r.teacher_perplexity; /* NAN without a teacher */
    }
    if (distill) {
        out->teacher.params = nx_model_count(&tcfg);
        out->teacher.bytes = (double)out->teacher.params * nx_dtype_size(tcfg.dtype);
    }
    if (nx_hf_save_model(rc->output.dir, &s.student, rc->output.dtype, err)) goto fail;
    if (nx_hf_copy_tokenizer(rc->teacher.path, rc->output.dir, err)) goto fail;
    rcode = NX_OK;
fail:
    cleanup(&s);
    return rcode;
}
