/* postprocess.c — the post-processor, reduced to what encoding a single
 * sequence needs: the ids to put before it and after it when add_special is
 * set (BOS/EOS, CLS/SEP).
 *
 *   TemplateProcessing   "single": the special tokens before the $A
 *                        sequence are the prefix, those after it the suffix;
 *   RobertaProcessing,   cls is the prefix, sep the suffix;
 *   BertProcessing
 *   ByteLevel            nothing (it only adjusts offsets, which we do not
 *                        compute);
 *   Sequence             of these, prefixes and suffixes concatenated.
 *
 * Pair templates, type ids and offsets are not needed by nexus and not read.
 * load.c checks afterwards that every id is inside the vocabulary. */
#include "internal.h"

void tok_push_ids(int32_t **ids, int *n, const int32_t *add, int k) {
    *ids = tok_resize(*ids, (size_t)(*n + k + 1), sizeof(int32_t));
    if (k) memcpy(*ids + *n, add, (size_t)k * sizeof(int32_t));
    *n += k;
}

static int load_template(nx_tokenizer *t, const cJSON *o, load_ctx *L) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *item;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    bool after_sequence = false;
    cJSON_ArrayForEach(item, single) {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) { after_sequence = true; continue; }
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const char *name = tok_json_string(special, "id");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(specials, name ? name : ""), "ids"), *x;
        if (!name || !cJSON_IsArray(ids))
            return nx_fail(L->err, "%s: post_processor.single names special token \"%s\" that "
                           "post_processor.special_tokens does not define", L->name, name ? name : "?");
        cJSON_ArrayForEach(x, ids) {
            int32_t id = x->valueint;
            if (after_sequence) tok_push_ids(&t->suffix_ids, &t->n_suffix_ids, &id, 1);
            else tok_push_ids(&t->prefix_ids, &t->n_prefix_ids, &id, 1);
        }
    }
    return NX_OK;
}

static int load_processor(nx_tokenizer *t, const cJSON *o, const char *type, load_ctx *L) {
    if (!strcmp(type, "ByteLevel")) return NX_OK;
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        /* "cls": [token, id], "sep": [token, id] */
        const cJSON *cls = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "cls"), 1);
        const cJSON *sep = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "sep"), 1);
        if (!cJSON_IsNumber(cls) || !cJSON_IsNumber(sep))
            return nx_fail(L->err, "%s: post_processor %s needs \"cls\" and \"sep\" as [token, id]", L->name, type);
        int32_t cls_id = cls->valueint, sep_id = sep->valueint;
        tok_push_ids(&t->prefix_ids, &t->n_prefix_ids, &cls_id, 1);
        tok_push_ids(&t->suffix_ids, &t->n_suffix_ids, &sep_id, 1);
        return NX_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) return load_template(t, o, L);
    return TOK_UNKNOWN_TYPE;
}

int tok_postprocess_load(nx_tokenizer *t, const cJSON *o, load_ctx *L) {
    return tok_load_component(t, o, L, "post_processor", "processors",
                              "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing", load_processor);
}
