/* info.c — `nexus info MODEL_DIR|MODEL.gguf|config.json [--batch B] [--seq-len T] [--json]`
 *
 * What a model is and what it costs before anything is loaded: architecture
 * and shape from config.json, parameter counts by part from the same
 * parameter table that loading uses, the checkpoint's size on disk (after
 * checking that every tensor is there with the right shape), its size at
 * other precisions, and the memory to run and to train it.
 *
 * Memory formulas (bytes; N parameters, everything f32 as nexus computes):
 *   inference(B, T) = 4N                               weights
 *                   + 4·2·L·B·T·KVH·HS                 KV cache (K and V)
 *                   + 4·B·(3C + 2F + V + NH·T)         one decode step's scratch
 *   training(B, T)  = 4N + 4N + 8N                     weights, grads, AdamW m and v
 *                   + activations                      exactly what nx_acts_init plans for
 *                                                      training at B × T (nx_acts_bytes)
 * A run config (YAML) describes a student and a run: its B and T are the
 * config's batch_size and seq_len − 1, and a distillation adds the teacher's
 * weights (nx_model_bytes: 4N_t in f32, 2N_t + the largest matrix in f32 in
 * bf16 and its widening workspace), its inference activations (nx_acts_bytes of the teacher, with every
 * layer's attention maps for attention transfer) and the hidden-state and
 * attention losses' buffers (nx_trainer_loss_bytes).
 *
 * Quantised sizes count 2-D matrices at 8 + 16/32 bits (int8) or 4 + 16/32
 * bits (4-bit) per weight — a group of 32 weights shares one f16 scale, as
 * llama.cpp's Q8_0/Q4_0 do — and keep norms and biases in f32. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "nexus/gguf.h"
#include "nexus/hf.h"
#include "nexus/modelfile.h"
#include "nexus/json.h"
#include "nexus/run.h"

static const char *const ROPE_NAMES[] = {"default", "linear", "dynamic", "yarn", "llama3"};

typedef struct {
    double emb, attn, mlp, norm, head, total, matrix, vector;
} counts;

static counts count_params(const nx_model_config *c) {
    counts k = {0};
    int np = nx_model_params(c, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * np);
    nx_model_params(c, NX_F32, tab);
    for (int i = 0; i < np; i++) {
        double n = (double)tab[i].numel;
        const char *nm = tab[i].name;
        if (!strcmp(nm, "model.embed_tokens.weight")) k.emb += n;
        else if (!strcmp(nm, "lm_head.weight")) k.head += n;
        else if (strstr(nm, "norm")) k.norm += n;
        else if (strstr(nm, ".self_attn.")) k.attn += n;
        else if (strstr(nm, ".mlp.")) k.mlp += n;
        else NX_ASSERTM(0, "parameter of unknown part");
        k.total += n;
        if (tab[i].ndim == 2) k.matrix += n;
        else k.vector += n;
    }
    free(tab);
    return k;
}

static const char *human(double bytes, char *buf, size_t n) { return cli_bytes(bytes, buf, n); }

static const char *commas(double v, char *buf, size_t n) {
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

int cmd_info(int argc, char **argv) {
    long B = 1, T = 0;
    bool json = false;
    cli_multi sets = {0};
    const cli_opt opts[] = {
        {"--set", OPT_MULTI, &sets, "a run config's key, as for distill (repeatable)"},
        {"--batch", OPT_INT, &B, "batch size B for the memory estimates (default 1)"},
        {"--seq-len", OPT_INT, &T, "sequence length T (default max_position_embeddings)"},
        {"--json", OPT_FLAG, &json, "print one JSON object instead of the table"},
    };
    const cli_spec spec = {
        "info", "MODEL_DIR|MODEL.gguf|CONFIG_JSON|RUN_CONFIG.yaml [--batch B] [--seq-len T] [--set k=v] [--json]",
        "Show a Hugging Face model's architecture, parameter counts by part, its size on disk\n"
        "and at f32/bf16/int8/4-bit, and the memory to run and train it. MODEL_DIR holds\n"
        "config.json and (optionally) model.safetensors or a sharded index; a config.json path\n"
        "alone gives everything but the size on disk. A GGUF file is read for its metadata and\n"
        "tensor layout (validated), not its weights.\n\n"
        "Quantised sizes: matrices at int8 or 4-bit with one f16 scale per group of 32 weights\n"
        "(8.5 and 4.5 bits per weight); norms and biases stay f32.\n"
        "Memory (bytes, f32 throughout; N params):\n"
        "  inference = 4N + 8·L·B·T·KVH·HS (KV cache) + 4·B·(3C + 2F + V + NH·T)\n"
        "  training  = 16N (weights, grads, AdamW m, v) + the activations nexus plans for B×T.\n"
        "A run config (CONFIG.yaml) shows its student, with B and T from the config; a\n"
        "distillation adds the teacher's weights and inference activations; with device: cuda,\n"
        "the GPU memory plan that distill prints and checks before loading.",
        opts, 4, 1, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (B < 1 || B > 1 << 20) {
        fprintf(stderr, "nexus info: --batch must be between 1 and %d (got %ld)\n", 1 << 20, B);
        return EXIT_USAGE;
    }
    if (T < 0 || T > 1 << 24) {
        fprintf(stderr, "nexus info: --seq-len must be between 1 and %d (got %ld)\n", 1 << 24, T);
        return EXIT_USAGE;
    }
    const char *path = pos[0];
    struct stat sb;
    char msg[1200];
    if (stat(path, &sb) != 0) {
        snprintf(msg, sizeof msg, "%s: %s (give a model directory, a GGUF file or a config.json)", path, strerror(errno));
        return cli_error("info", msg);
    }
    nx_model_config c;
    nx_err err = {{0}};
    bool is_dir = S_ISDIR(sb.st_mode), gguf = !is_dir && nx_modelfile_is_gguf(path);
    nx_gguf g = {0};
    size_t plen = strlen(path);
    bool yaml = !is_dir && plen > 5 && (!strcmp(path + plen - 5, ".yaml") || !strcmp(path + plen - 4, ".yml"));
    double teacher_bytes = 0; /* distillation: teacher weights + inference activations */
    nx_run_plan gpu_plan = {0}; /* device: cuda: the GPU memory plan of distilling */
    nx_run_config run; /* a run config's, else the defaults */
    nx_run_config_defaults(&run);
    if (yaml) {
        nx_model_config tc, *tcp = NULL;
        if (nx_run_config_load(&run, path, sets.v, sets.n, &err)) {
            cli_error("info", err.msg);
            return EXIT_USAGE; /* as for distill: a run config that does not load is a usage error */
        }
        if (nx_modelfile_config(run.teacher.path, &tc, &err) == NX_OK) tcp = &tc;
        if (nx_run_config_student_shape(&run, tcp, &c, &err))
            return cli_error("info", err.msg); /* names the teacher when its shape is needed */
        if (B == 1) B = run.data.batch_size;
        if (T == 0) T = run.data.seq_len - 1;
        if (tcp) {
            nx_train_opts to = nx_run_train_opts(&run, true);
            to.B = (int)B, to.T = (int)T;
            teacher_bytes = (double)nx_model_bytes(&tc, run.teacher.dtype) +
                            (double)nx_acts_bytes(&tc, (int)B, (int)T,
                                                  to.attention_weight > 0 ? NX_ACTS_KEEP_PROBS : NX_ACTS_INFER) +
                            (double)nx_trainer_loss_bytes(&c, &tc, &to);
            if (run.device == NX_DEVICE_CUDA && nx_run_plan_compute(&run, true, &tc, &c, &gpu_plan, &err))
                return cli_error("info", err.msg);
        }
    } else if (gguf) {
        if (nx_gguf_open(&g, path, &err) || nx_gguf_model_config(&g, &c, &err)) {
            nx_gguf_close(&g);
            return cli_error("info", err.msg);
        }
    } else if ((is_dir ? nx_hf_load_config(path, &c, &err) : nx_hf_load_config_file(path, &c, &err)) != NX_OK) {
        return cli_error("info", err.msg);
    }
    /* Weights, when there are any: validated against the config. */
    double disk = -1;
    char dtypes[64] = "";
    int nfiles = 0;
    if (gguf) { /* the reader validated the layout; the types present, as GGUF names them */
        disk = (double)g.size;
        nfiles = 1;
        snprintf(dtypes, sizeof dtypes, "GGUF ");
        for (uint32_t id = 0; id < 64; id++) {
            const nx_ggml_type *ti = nx_ggml_type_info(id);
            bool seen = false;
            for (int i = 0; ti && i < g.nt && !seen; i++) seen = g.t[i].type == id;
            if (seen) snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), "%s%s",
                               dtypes[5] ? "+" : "", ti->name);
        }
        nx_gguf_close(&g);
    }
    if (is_dir) {
        nx_safetensors st;
        if (nx_st_open_dir(&st, path, &err) == NX_OK) {
            if (nx_hf_check_tensors(&c, &st, &err) != NX_OK) {
                nx_st_close(&st);
                return cli_error("info", err.msg);
            }
            disk = 0;
            for (int i = 0; i < st.nfiles; i++) disk += (double)st.map_sizes[i];
            nfiles = st.nfiles;
            bool seen[NX_DTYPE_COUNT] = {0};
            for (int i = 0; i < st.n; i++) seen[st.t[i].dtype] = true;
            for (int d = 0; d < NX_DTYPE_COUNT; d++)
                if (seen[d]) snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), "%s%s",
                                      *dtypes ? "+" : "", nx_dtype_name((nx_dtype)d));
            nx_st_close(&st);
        } else if (strstr(err.msg, "no model.safetensors") == NULL) {
            return cli_error("info", err.msg); /* weights present but broken */
        }
    }
    if (T == 0) T = c.max_pos;
    counts k = count_params(&c);
    double N = k.total, L = c.L, C = c.C, V = c.V, F = c.F, NH = c.NH, KVH = c.KVH, HS = c.HS;
    double f32 = 4 * N, bf16 = 2 * N;
    double int8 = k.matrix * (8.0 + 16.0 / 32) / 8 + 4 * k.vector;
    double q4 = k.matrix * (4.0 + 16.0 / 32) / 8 + 4 * k.vector;
    double kv = 4.0 * 2 * L * B * T * KVH * HS;
    double scratch = 4.0 * B * (3 * C + 2 * F + V + NH * T);
    double infer = f32 + kv + scratch;
    if ((double)B * T > 2147483647.0 || nx_acts_bytes(&c, (int)B, (int)T, NX_ACTS_TRAIN) == SIZE_MAX) {
        snprintf(msg, sizeof msg, "batch %ld x sequence length %ld: activations too large to count", B, T);
        return cli_error("info", msg);
    }
    double acts = (double)nx_acts_bytes(&c, (int)B, (int)T, NX_ACTS_TRAIN | (run.recompute ? NX_ACTS_RECOMPUTE : 0));
    double train = 16 * N + acts + teacher_bytes;

    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", path);
        cJSON_AddStringToObject(r, "model_type", nx_arch_name(c.arch));
        cJSON *s = cJSON_AddObjectToObject(r, "config");
        cJSON_AddNumberToObject(s, "vocab_size", c.V);
        cJSON_AddNumberToObject(s, "hidden_size", c.C);
        cJSON_AddNumberToObject(s, "num_hidden_layers", c.L);
        cJSON_AddNumberToObject(s, "num_attention_heads", c.NH);
        cJSON_AddNumberToObject(s, "num_key_value_heads", c.KVH);
        cJSON_AddNumberToObject(s, "head_dim", c.HS);
        cJSON_AddNumberToObject(s, "intermediate_size", c.F);
        cJSON_AddNumberToObject(s, "max_position_embeddings", c.max_pos);
        cJSON_AddItemToObject(s, "rope_theta", nx_json_float(c.rope_theta, false));
        cJSON_AddItemToObject(s, "rms_norm_eps", nx_json_float(c.eps, false));
        cJSON_AddBoolToObject(s, "tie_word_embeddings", c.tied);
        cJSON_AddBoolToObject(s, "qkv_bias", c.qkv_bias);
        cJSON_AddBoolToObject(s, "o_bias", c.o_bias);
        cJSON_AddStringToObject(s, "rope_type", ROPE_NAMES[c.rope.type]);
        if (c.rope.type != NX_ROPE_DEFAULT) cJSON_AddItemToObject(s, "rope_factor", nx_json_float(c.rope.factor, false));
        cJSON_AddNumberToObject(s, "sliding_window", c.window);
        cJSON_AddNumberToObject(s, "first_sliding_layer", c.window ? c.window_from : c.L);
        cJSON_AddBoolToObject(s, "qk_norm", c.qk_norm);
        cJSON *p = cJSON_AddObjectToObject(r, "parameters");
        cJSON_AddNumberToObject(p, "embeddings", k.emb);
        cJSON_AddNumberToObject(p, "attention", k.attn);
        cJSON_AddNumberToObject(p, "mlp", k.mlp);
        cJSON_AddNumberToObject(p, "norms", k.norm);
        cJSON_AddNumberToObject(p, "head", k.head);
        cJSON_AddNumberToObject(p, "total", k.total);
        cJSON *z = cJSON_AddObjectToObject(r, "bytes");
        if (disk >= 0) {
            cJSON_AddNumberToObject(z, "disk", disk);
            cJSON_AddStringToObject(z, "disk_dtype", dtypes);
        } else cJSON_AddNullToObject(z, "disk");
        cJSON_AddNumberToObject(z, "f32", f32);
        cJSON_AddNumberToObject(z, "bf16", bf16);
        cJSON_AddNumberToObject(z, "int8_g32", int8);
        cJSON_AddNumberToObject(z, "q4_g32", q4);
        cJSON *m = cJSON_AddObjectToObject(r, "memory");
        cJSON_AddNumberToObject(m, "batch", (double)B);
        cJSON_AddNumberToObject(m, "seq_len", (double)T);
        cJSON_AddNumberToObject(m, "inference_weights", f32);
        cJSON_AddNumberToObject(m, "inference_kv_cache", kv);
        cJSON_AddNumberToObject(m, "inference_scratch", scratch);
        cJSON_AddNumberToObject(m, "inference_total", infer);
        cJSON_AddNumberToObject(m, "train_weights_grads_adamw", 16 * N);
        cJSON_AddNumberToObject(m, "train_activations", acts);
        if (yaml) cJSON_AddNumberToObject(m, "train_teacher", teacher_bytes);
        cJSON_AddNumberToObject(m, "train_total", train);
        if (gpu_plan.gpu) {
            cJSON *g = cJSON_AddObjectToObject(r, "gpu_plan");
            const char *key[] = {"student", "activations", "teacher", "teacher_activations", "losses", "evaluation",
                                 "cuda_workspace", "context", "total"};
            double val[] = {gpu_plan.student, gpu_plan.activations, gpu_plan.teacher, gpu_plan.teacher_acts,
                            gpu_plan.losses, gpu_plan.eval, gpu_plan.workspace, gpu_plan.context, gpu_plan.total};
            for (int i = 0; i < 9; i++) cJSON_AddNumberToObject(g, key[i], val[i]);
        }
        char *out = cJSON_Print(r);
        puts(out);
        free(out);
        cJSON_Delete(r);
        return EXIT_OK;
    }
    char a[32], b[32], d[32], e[32];
    printf(yaml ? "student of   %s\n" : "model        %s\n", path);
    printf("architecture %s (%s)\n", nx_arch_name(c.arch), nx_arch_class(c.arch));
    printf("shape        V=%d C=%d L=%d NH=%d KVH=%d HS=%d F=%d max_pos=%d\n", c.V, c.C, c.L, c.NH, c.KVH, c.HS,
           c.F, c.max_pos);
    printf("             rope_theta=%g rms_norm_eps=%g tied=%s qkv_bias=%s o_bias=%s dtype=%s\n", c.rope_theta,
           c.eps, c.tied ? "yes" : "no", c.qkv_bias ? "yes" : "no", c.o_bias ? "yes" : "no",
           nx_hf_dtype_name(c.dtype));
    if (c.rope.type != NX_ROPE_DEFAULT || c.window || c.qk_norm) {
        printf("             rope=%s", ROPE_NAMES[c.rope.type]);
        if (c.rope.type != NX_ROPE_DEFAULT) printf(" (factor %g)", c.rope.factor);
        if (c.window) printf(" sliding_window=%d from layer %d", c.window, c.window_from);
        if (c.qk_norm) printf(" qk_norm=yes");
        printf("\n");
    }
    printf("\nparameters\n");
    const char *part[] = {"embeddings", "attention", "mlp", "norms", "head"};
    double val[] = {k.emb, k.attn, k.mlp, k.norm, k.head};
    for (int i = 0; i < 5; i++) {
        if (i == 4 && c.tied) {
            printf("  %-12s %15s  (tied to embeddings)\n", part[i], "0");
            continue;
        }
        printf("  %-12s %15s  %5.1f%%\n", part[i], commas(val[i], a, sizeof a), 100 * val[i] / N);
    }
    printf("  %-12s %15s\n", "total", commas(N, a, sizeof a));
    printf("\nsize\n");
    if (disk >= 0)
        printf("  %-12s %15s  (%d file%s, %s)\n", "on disk", human(disk, a, sizeof a), nfiles, nfiles > 1 ? "s" : "",
               dtypes);
    else printf("  %-12s %15s  (no weights: %s)\n", "on disk", "-", is_dir ? "no safetensors" : "config only");
    printf("  %-12s %15s\n", "f32", human(f32, a, sizeof a));
    printf("  %-12s %15s\n", "bf16", human(bf16, a, sizeof a));
    printf("  %-12s %15s  (matrices int8 + f16 scale per group of 32; norms, biases f32)\n", "int8",
           human(int8, a, sizeof a));
    printf("  %-12s %15s  (matrices 4-bit + f16 scale per group of 32; norms, biases f32)\n", "4-bit",
           human(q4, a, sizeof a));
    printf("\nmemory, f32 (formulas in 'nexus info --help')\n");
    printf("  inference B=%ld T=%ld: %s = weights %s + KV cache %s + scratch %s\n", B, T, human(infer, a, sizeof a),
           human(f32, b, sizeof b), human(kv, d, sizeof d), human(scratch, e, sizeof e));
    printf("  training  B=%ld T=%ld: %s = weights+grads+AdamW %s + activations %s", B, T,
           human(train, a, sizeof a), human(16 * N, b, sizeof b), human(acts, d, sizeof d));
    if (teacher_bytes > 0) printf(" + teacher %s", human(teacher_bytes, e, sizeof e));
    printf("\n");
    if (gpu_plan.gpu) { /* what `nexus distill` prints and checks before loading (device: cuda) */
        printf("\n");
        nx_run_plan_print(stdout, &gpu_plan, &run, -1, "");
    } else if (yaml && run.device == NX_DEVICE_CUDA) {
        printf("\nGPU memory plan: needs the teacher's config.json (%s)\n", run.teacher.path);
    }
    return EXIT_OK;
}
