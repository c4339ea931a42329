/* Allocation that cannot return NULL: running out of memory is not a user
 * error we can recover from, so these print one line and exit(1). */
#ifndef MD_UTIL_XALLOC_H
#define MD_UTIL_XALLOC_H

#include <stddef.h>

void *md_malloc(size_t n);
void *md_calloc(size_t n, size_t size);
void *md_realloc(void *p, size_t n);
char *md_strdup(const char *s);

/* Grows *p (of element size elt, capacity *cap) to hold at least need elements. */
void md_grow(void **p, size_t elt, size_t *cap, size_t need);
#define MD_GROW(p, cap, need) md_grow((void **)&(p), sizeof *(p), &(cap), (need))

#endif
