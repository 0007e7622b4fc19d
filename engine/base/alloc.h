/*
 * alloc.h — the engine's allocation functions. Every engine allocation (and cJSON's, once
 * feox_alloc_init_cjson has run) goes through them, so tests can make the Nth allocation fail
 * (feox_set_allocator in feox.h).
 */
#ifndef FEOX_ALLOC_H
#define FEOX_ALLOC_H

#include <stddef.h>

void *feox_mem_alloc(size_t size);
void *feox_mem_calloc(size_t count, size_t size);
void *feox_mem_realloc(void *ptr, size_t size);
void feox_mem_free(void *ptr);
char *feox_mem_strndup(const char *s, size_t len);
/* a followed by b in a new string (NULL if the allocation fails). */
char *feox_mem_concat(const char *a, const char *b);

/* Point cJSON's hooks at the engine allocator (idempotent; called by json_patch). */
void feox_alloc_init_cjson(void);

#endif
