/* pattern.c — tokenizer.json patterns, {"String": s} or {"Regex": r}, and
 * the Replace rule built on them (the Replace normalizer and the Replace
 * decoder are the same rule, so they share this code).
 *
 * Regexes run on PCRE2 (UTF + UCP, JIT when available). HF runs them on
 * Oniguruma, whose \s is the Unicode White_Space property; PCRE2's \s (with
 * UCP) also matches U+180E, so patterns are rewritten \s → \p{White_Space}
 * and \S → \P{White_Space} before compiling. docs/TOKENIZER.md has the
 * details.
 *
 * tok_find_matches mirrors HF's Pattern::find_matches: it returns spans that
 * cover the whole input, each flagged as a match or not; the callers (Split
 * behaviours, Replace) then decide what each span becomes. An empty regex
 * match advances by one character, as Oniguruma's iteration does. */
#include "internal.h"

pcre2_code *tok_regex_compile(const char *regex, load_ctx *L, const char *where) {
    byte_buf b = {0};
    for (const char *p = regex; *p; p++) {
        if (p[0] == '\\' && p[1]) {
            if (p[1] == 's') buf_append(&b, "\\p{White_Space}", 15);
            else if (p[1] == 'S') buf_append(&b, "\\P{White_Space}", 15);
            else buf_append(&b, p, 2);
            p++;
        } else buf_append_char(&b, *p);
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.data, b.len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    free(b.data);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        nx_fail(L->err, "%s: %s: regex does not compile (%s near offset %zu): %s", L->name, where,
                msg, (size_t)eo, regex);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter runs if JIT is unavailable */
    return re;
}

int tok_pattern_parse(const cJSON *o, load_ctx *L, const char *where, pattern *p) {
    const cJSON *json = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if ((s = tok_json_string(json, "String"))) { p->literal = tok_strdup_len(s, &p->literal_len); return NX_OK; }
    if ((s = tok_json_string(json, "Regex"))) {
        if (!(p->regex = tok_regex_compile(s, L, where))) return NX_ERR;
        size_t n;
        p->source = tok_strdup_len(s, &n); /* kept only with a compiled regex: error paths free nothing */
        return NX_OK;
    }
    return nx_fail(L->err, "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", L->name, where);
}

int tok_replace_parse(const cJSON *o, load_ctx *L, const char *where, replace_rule *r) {
    const char *content = tok_json_string(o, "content");
    if (!content) return nx_fail(L->err, "%s: %s has no \"content\" string", L->name, where);
    if (tok_pattern_parse(o, L, where, &r->pattern)) return NX_ERR;
    r->content = tok_strdup_len(content, &r->content_len);
    return NX_OK;
}

void tok_pattern_free(pattern *p) {
    free(p->literal);
    free(p->source);
    if (p->regex) pcre2_code_free(p->regex);
}

void tok_replace_free(replace_rule *r) {
    tok_pattern_free(&r->pattern);
    free(r->content);
}

int tok_find_matches(const pcre2_code *regex, const char *literal, size_t literal_len, const char *s,
                     size_t n, pcre2_match_data *md, span_list *out, nx_err *err) {
    out->len = 0;
    if (n == 0) { span_list_push(out, 0, 0, false); return NX_OK; }
    size_t prev = 0; /* end of the last match */
    if (!regex) {
        if (literal_len == 0) { span_list_push(out, 0, n, false); return NX_OK; }
        const char *p = s, *end = s + n;
        while ((p = memmem(p, (size_t)(end - p), literal, literal_len))) {
            size_t ms = (size_t)(p - s);
            if (ms != prev) span_list_push(out, prev, ms, false);
            span_list_push(out, ms, ms + literal_len, true);
            prev = ms + literal_len;
            p += literal_len;
        }
    } else {
        size_t pos = 0;
        while (pos <= n) {
            int rc = pcre2_match(regex, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                char msg[128];
                pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
                return nx_fail(err, "regex match failed (%s)", msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms != prev) span_list_push(out, prev, ms, false);
            span_list_push(out, ms, me, true);
            prev = me;
            if (me == ms) { /* empty match: step one character */
                if (me >= n) break;
                uint32_t cp;
                int w = utf8_decode((const uint8_t *)s, n, me, &cp);
                pos = me + (size_t)(w > 0 ? w : 1);
            } else pos = me;
        }
    }
    if (prev != n) span_list_push(out, prev, n, false);
    return NX_OK;
}

int tok_replace_apply(const replace_rule *r, const char *s, size_t n, pcre2_match_data *md,
                      span_list *matches, byte_buf *out, nx_err *err) {
    const pattern *p = &r->pattern;
    if (tok_find_matches(p->regex, p->literal, p->literal_len, s, n, md, matches, err)) return NX_ERR;
    for (size_t i = 0; i < matches->len; i++) {
        span x = matches->items[i];
        if (x.is_match) buf_append(out, r->content, r->content_len);
        else buf_append(out, s + x.start, x.end - x.start);
    }
    return NX_OK;
}
