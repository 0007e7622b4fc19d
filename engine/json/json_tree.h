/*
 * json_tree.h — edits and comparisons on cJSON trees built by json_parse.h (numbers as raw text).
 *
 * The list edits are ours because Debian's cJSON 1.7.15 cannot insert into an array at an index
 * above 0 (cJSON_InsertItemInArray returns 0 there). They keep cJSON's
 * invariant that a container's first child's ->prev points at its last child.
 */
#ifndef FEOX_JSON_TREE_H
#define FEOX_JSON_TREE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Links item (detached) into container before `before` (a child of container), or at the end when
 * before is NULL. */
void feox_json_tree_insert_before(cJSON *container, cJSON *item, cJSON *before);

/* Detaches child from container and returns it (its ->string, the member name, stays on it). */
cJSON *feox_json_tree_unlink(cJSON *container, cJSON *child);

/* Puts replacement (detached) where old is in container; old is detached and returned. */
cJSON *feox_json_tree_replace(cJSON *container, cJSON *old, cJSON *replacement);

/* How many children container (an array or an object) has. */
size_t feox_json_tree_child_count(const cJSON *container);

/* Deep JSON equality: numbers by value, object members regardless of order. */
bool feox_json_tree_equal(const cJSON *a, const cJSON *b);

/* How many containers nest inside item, itself included (a scalar gives 0, "[[]]" gives 2). Stops
 * counting once the answer exceeds limit, returning limit + 1. */
size_t feox_json_tree_nesting(const cJSON *item, size_t limit);

#endif
