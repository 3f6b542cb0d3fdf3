/* modelfile.c — a model by path, dispatched on what the path is
 * (modelfile.h): a GGUF file (its first four bytes are "GGUF", whatever its
 * name) goes to gguf.c, anything else is a Hugging Face directory for hf.c
 * and the tokenizer. A GGUF is opened once per call and closed before
 * returning: the weights are converted into the model's own memory, so
 * nothing keeps the mapping. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/modelfile.h"

#include "nexus/fsutil.h"
#include "nexus/gguf.h"
#include "nexus/hf.h"

bool nx_modelfile_is_gguf(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char magic[4];
    bool yes = read(fd, magic, 4) == 4 && !memcmp(magic, "GGUF", 4);
    close(fd);
    return yes;
}

int nx_modelfile_config(const char *path, nx_model_config *cfg, nx_err *err) {
    if (!nx_modelfile_is_gguf(path)) return nx_hf_load_config(path, cfg, err);
    nx_gguf g;
    if (nx_gguf_open(&g, path, err)) return NX_ERR;
    int rc = nx_gguf_model_config(&g, cfg, err);
    nx_gguf_close(&g);
    return rc;
}

int nx_modelfile_load(const char *path, nx_dtype hold, nx_backend *be, nx_model *m, nx_tokenizer **tok,
                      nx_err *err) {
    memset(m, 0, sizeof *m);
    if (tok) *tok = NULL;
    if (!nx_modelfile_is_gguf(path)) {
        if (tok && nx_tokenizer_load(tok, path, err)) return NX_ERR;
        if (nx_hf_load_model_on(path, m, hold, be, err) == NX_OK) return NX_OK;
        if (tok) nx_tokenizer_free(*tok), *tok = NULL;
        return NX_ERR;
    }
    nx_gguf g;
    if (nx_gguf_open(&g, path, err)) return NX_ERR;
    int rc = nx_gguf_load_model(&g, m, hold, be, err);
    if (rc == NX_OK && tok && nx_gguf_load_tokenizer(&g, tok, err)) {
        nx_model_free(m);
        rc = NX_ERR;
    }
    nx_gguf_close(&g);
    return rc;
}

int nx_modelfile_tokenizer(const char *path, nx_tokenizer **tok, nx_err *err) {
    if (!nx_modelfile_is_gguf(path)) return nx_tokenizer_load(tok, path, err);
    *tok = NULL;
    nx_gguf g;
    if (nx_gguf_open(&g, path, err)) return NX_ERR;
    int rc = nx_gguf_load_tokenizer(&g, tok, err);
    nx_gguf_close(&g);
    return rc;
}

bool nx_modelfile_has_tokenizer(const char *path) {
    if (!nx_modelfile_is_gguf(path)) {
        char *p = nx_path_join(path, "tokenizer.json");
        bool yes = access(p, R_OK) == 0;
        free(p);
        return yes;
    }
    nx_gguf g;
    nx_err e;
    if (nx_gguf_open(&g, path, &e)) return true; /* unreadable: loading it will say why */
    bool yes = nx_gguf_find(&g, "tokenizer.ggml.model") != NULL;
    nx_gguf_close(&g);
    return yes;
}

int nx_modelfile_copy_tokenizer(const char *src, const char *dst_dir, nx_err *err) {
    if (!nx_modelfile_is_gguf(src)) return nx_hf_copy_tokenizer(src, dst_dir, err);
    nx_gguf g;
    if (nx_gguf_open(&g, src, err)) return NX_ERR;
    char *js = NULL, *cfg = NULL, gen[160];
    int rc = nx_gguf_tokenizer_json(&g, &js, &cfg, err);
    /* generation_config.json as transformers derives it from a config: the special ids */
    int64_t bos = -1, eos = -1;
    if (rc == NX_OK) rc = nx_gguf_get_int(&g, "tokenizer.ggml.bos_token_id", false, 0, INT32_MAX, &bos, err);
    if (rc == NX_OK) rc = nx_gguf_get_int(&g, "tokenizer.ggml.eos_token_id", false, 0, INT32_MAX, &eos, err);
    size_t o = (size_t)snprintf(gen, sizeof gen, "{\n  \"_from_model_config\": true");
    if (bos >= 0) o += (size_t)snprintf(gen + o, sizeof gen - o, ",\n  \"bos_token_id\": %lld", (long long)bos);
    if (eos >= 0) o += (size_t)snprintf(gen + o, sizeof gen - o, ",\n  \"eos_token_id\": %lld", (long long)eos);
    snprintf(gen + o, sizeof gen - o, "\n}");
    nx_gguf_close(&g);
    if (rc == NX_OK) rc = nx_mkdirs(dst_dir, err);
    const char *names[3] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    char *texts[3] = {js, cfg, gen};
    for (int i = 0; i < 3 && rc == NX_OK; i++) {
        char *p = nx_path_join(dst_dir, names[i]);
        const void *parts[2] = {texts[i], "\n"};
        size_t lens[2] = {strlen(texts[i]), 1};
        rc = nx_write_atomic(p, parts, lens, 2, err);
        free(p);
    }
    free(js);
    free(cfg);
    return rc;
}

double nx_modelfile_disk_bytes(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return (double)sb.st_size;
    DIR *d = opendir(path);
    if (!d) return 0;
    double total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *p = nx_path_join(path, e->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (double)sb.st_size;
        free(p);
    }
    closedir(d);
    return total;
}
