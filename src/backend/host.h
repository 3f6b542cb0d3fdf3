/* host.h (private) — memory functions of the backends whose memory is the
 * host's (cpu, ref): 64-byte aligned zeroed allocation, memmove for every
 * copy direction, memset, and nothing to wait for. */
#ifndef NEXUS_BACKEND_HOST_H
#define NEXUS_BACKEND_HOST_H

#include "nexus/backend.h"

void *nx_host_alloc(nx_backend *be, size_t n);
void nx_host_free(nx_backend *be, void *p);
void nx_host_copy(nx_backend *be, void *dst, const void *src, size_t n);
void nx_host_fill(nx_backend *be, void *dst, int byte, size_t n);
void nx_host_sync(nx_backend *be);

#endif
