#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    fprintf(stderr, "[E::md_malloc] out of memory allocating %zu bytes\n", n);
    exit(1);
}

void *md_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *md_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *md_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *md_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(md_malloc(n), s, n);
}

void md_grow(void **p, size_t elt, size_t *cap, size_t need)
{
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 16;
    while (c < need) c += c >> 1;
    *p = md_realloc(*p, c * elt);
    *cap = c;
}
