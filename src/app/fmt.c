/* fmt.c — see fmt.h. printf's %g with a fixed precision either loses bits
 * (%.9g of a double) or writes noise digits (%.17g of 0.1); trying the
 * precisions in turn and keeping the first that reads back gives the
 * shortest exact text, as Python's repr() does. */
#include "fmt.h"

#include <stdio.h>
#include <stdlib.h>

void app_fmt_real(char *buf, size_t n, double v, bool as_float) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (as_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) return;
    }
}
