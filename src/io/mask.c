/* mask.c — the sparsity mask that travels with a pruned model: one file
 * beside model.safetensors in its directory,
 *
 *     sparsity_mask.safetensors
 *
 * a safetensors file of BOOL tensors named like the weights they mask
 * (e.g. "model.layers.0.mlp.up_proj.weight"), of the same shape: true
 * where the weight is kept, false where it was pruned and must stay zero.
 * A weight with no mask tensor is all kept. safetensors so that any tool
 * reads it (torch: `w.mul_(mask)`); transformers loads model.safetensors
 * only and never sees it.
 *
 * In memory a mask is one byte per float of the model's f32 parameter
 * buffer (nx_model_params in f32), as the trainer applies it. */
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"

int nx_hf_save_mask(const char *dir, const nx_model_config *cfg, const uint8_t *mask, nx_err *err) {
    int n = nx_model_params(cfg, NX_F32, NULL);
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, NX_F32, tab);
    nx_st_entry *e = nx_xcalloc(n, sizeof *e);
    int k = 0;
    for (int i = 0; i < n; i++) { /* only the tensors that lost something */
        const uint8_t *mk = mask + tab[i].off / sizeof(float);
        size_t z = 0;
        while (z < tab[i].numel && mk[z]) z++;
        if (z == tab[i].numel) continue;
        uint8_t *b = nx_xmalloc(tab[i].numel);
        for (size_t j = 0; j < tab[i].numel; j++) b[j] = mk[j] != 0;
        e[k] = (nx_st_entry){.name = tab[i].name, .dtype = NX_BOOL, .ndim = tab[i].ndim, .data = b};
        e[k].shape[0] = tab[i].shape[0];
        e[k].shape[1] = tab[i].shape[1];
        k++;
    }
    char *path = nx_path_join(dir, NX_HF_MASK_FILE);
    int rc = nx_mkdirs(dir, err) ? NX_ERR : nx_st_write(path, e, k, err);
    for (int i = 0; i < k; i++) free((void *)e[i].data);
    free(e), free(tab), free(path);
    return rc;
}

int nx_hf_load_mask(const char *dir, const nx_model_config *cfg, uint8_t *mask, bool *found, nx_err *err) {
    int n = nx_model_params(cfg, NX_F32, NULL);
    memset(mask, 1, nx_model_numel(cfg));
    *found = false;
    char *path = nx_path_join(dir, NX_HF_MASK_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) {
        free(path);
        return NX_OK;
    }
    fclose(f);
    nx_safetensors st;
    if (nx_st_open(&st, path, err)) {
        free(path);
        return NX_ERR;
    }
    nx_param *tab = nx_xmalloc(sizeof *tab * n);
    nx_model_params(cfg, NX_F32, tab);
    int rc = NX_ERR;
    for (int t = 0; t < st.n; t++) {
        const nx_st_tensor *x = &st.t[t];
        int i = 0;
        while (i < n && strcmp(tab[i].name, x->name)) i++;
        if (i == n) {
            nx_fail(err, "%s: tensor '%s' masks no weight of this model: the mask belongs to another model", path,
                    x->name);
            goto out;
        }
        if (x->dtype != NX_BOOL && x->dtype != NX_U8) {
            nx_fail(err, "%s: tensor '%s' is %s; a mask is BOOL (or U8 0/1)", path, x->name, nx_dtype_name(x->dtype));
            goto out;
        }
        if (x->ndim != tab[i].ndim || x->shape[0] != tab[i].shape[0] || (x->ndim == 2 && x->shape[1] != tab[i].shape[1])) {
            nx_fail(err, "%s: tensor '%s' has another shape than the weight it masks", path, x->name);
            goto out;
        }
        uint8_t *mk = mask + tab[i].off / sizeof(float);
        const uint8_t *b = x->data;
        for (size_t j = 0; j < tab[i].numel; j++) mk[j] = b[j] != 0;
    }
    *found = true;
    rc = NX_OK;
out:
    nx_st_close(&st);
    free(tab), free(path);
    return rc;
}
