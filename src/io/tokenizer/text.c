/* text.c — the small text utilities the tokenizer files share: Unicode
 * whitespace as Rust defines it, stepping over whitespace in both directions,
 * and the slow path of the growable byte buffer.
 *
 * Also the growth step of the (items, len, cap) arrays used throughout.
 *
 * Text reaching these functions is valid UTF-8 (encode rejects anything else
 * up front, as HF only accepts a Rust &str), so stepping back over
 * continuation bytes always lands on a character start. The per-character
 * helpers on the hot path (utf8_decode, utf8_encode, buf_append) are inline
 * in internal.h. */
#include "internal.h"

size_t tok_utf8_invalid_at(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int w = utf8_decode((const uint8_t *)s, n, i, &cp);
        if (w < 0) return i;
        i += (size_t)w;
    }
    return n;
}

bool tok_is_unicode_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

size_t tok_utf8_prev(const char *s, size_t i) {
    do i--; while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

size_t tok_skip_spaces(const char *s, size_t n, size_t i) {
    uint32_t cp;
    int w;
    while (i < n && (w = utf8_decode((const uint8_t *)s, n, i, &cp)) > 0 && tok_is_unicode_space(cp))
        i += (size_t)w;
    return i;
}

size_t tok_trim_spaces(const char *s, size_t lo, size_t end) {
    uint32_t cp;
    while (end > lo) {
        size_t j = tok_utf8_prev(s, end);
        if (utf8_decode((const uint8_t *)s, end, j, &cp) > 0 && tok_is_unicode_space(cp)) end = j;
        else break;
    }
    return end;
}

void *tok_resize(void *items, size_t count, size_t elem_size) {
    void *p = realloc(items, count * elem_size);
    NX_ASSERTM(p || count == 0, "out of memory");
    return p;
}

void *tok_grow(void *items, size_t *cap, size_t elem_size, size_t initial) {
    *cap = *cap ? 2 * *cap : initial;
    return tok_resize(items, *cap, elem_size);
}

void tok_buf_grow(byte_buf *b, size_t extra) {
    size_t c = b->cap ? b->cap : 64;
    while (c < b->len + extra + 1) c *= 2;
    b->data = tok_resize(b->data, c, 1);
    b->cap = c;
}
