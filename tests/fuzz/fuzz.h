/* fuzz.h — what the libFuzzer targets (tests/fuzz/fuzz_*.c) share: the
 * entry point's declaration, and for readers that take a path, the input
 * written to a file of this process in /dev/shm (memory, no disk), kept
 * open and rewritten for every input. Any crash, leak or ASan/UBSan report
 * is a finding; a clean NX_ERR is the reader doing its job. */
#ifndef NEXUS_FUZZ_H
#define NEXUS_FUZZ_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nexus/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_cleanup(void) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf /dev/shm/nxfuzz-%d*", (int)getpid());
    if (system(cmd)) { /* nothing to do about it */ }
}

/* data[0..size) as the whole content of /dev/shm/nxfuzz-PID<suffix>; returns
 * that path (one per suffix and process; /dev/shm/nxfuzz-PID* is removed at
 * exit). */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[128];
    static bool registered;
    if (!registered) registered = true, atexit(fuzz_cleanup);
    snprintf(path, sizeof path, "/dev/shm/nxfuzz-%d%s", (int)getpid(), suffix);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    NX_ASSERT(fd >= 0);
    for (size_t at = 0; at < size;) {
        ssize_t k = write(fd, data + at, size - at);
        NX_ASSERT(k > 0);
        at += (size_t)k;
    }
    close(fd);
    return path;
}

#endif
