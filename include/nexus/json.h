/* json.h — the small pieces every JSON adapter of io/ and cli/ shares, on
 * top of cJSON: naming a value's kind for error messages, and writing a
 * float as the shortest decimal that reads back as the same float. */
#ifndef NEXUS_JSON_H
#define NEXUS_JSON_H

#include <cJSON.h>
#include <stdbool.h>

/* "a string", "a number", "an array", "an object", "a boolean", "null",
 * "missing" (x NULL) or "invalid": for "key 'x' must be ... (got %s)". */
const char *nx_json_kind(const cJSON *x);

/* A raw cJSON number holding the shortest "%.*g" text (1 to 9 significant
 * digits) that strtof reads back as v, so 1e-05f stays "1e-05" rather than
 * 9.99999974737875e-06. as_float: text that would read as an integer gets
 * ".0" ("3.0", while 10000 is "1e+04" already) so that Python's json reads
 * a float, as transformers writes it. */
/* The shortest "%.Ng" of v that reads back exactly: with as_float N = 1..9
 * and strtof(buf) == (float)v ("0.0005", not "0.000500000024"), else N =
 * 1..17 and strtod(buf) == v, as Python's repr() does. v finite. */
void nx_fmt_real(char *buf, size_t n, double v, bool as_float);
cJSON *nx_json_float(float v, bool as_float);

#endif
