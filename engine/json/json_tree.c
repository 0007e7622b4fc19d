/*
 * json_tree.c — list edits, deep equality and nesting depth of cJSON trees (see json_tree.h).
 */
#include "json/json_tree.h"

#include <string.h>

#include "json/json_number.h"

void feox_json_tree_insert_before(cJSON *container, cJSON *item, cJSON *before)
{
    cJSON *first = container->child;
    if (!first) {
        container->child = item;
        item->prev = item;
        item->next = NULL;
        return;
    }
    if (!before) {
        cJSON *last = first->prev;
        last->next = item;
        item->prev = last;
        item->next = NULL;
        first->prev = item;
        return;
    }
    item->next = before;
    item->prev = before->prev; /* before the first child: the last one, as the invariant wants */
    if (before == first)
        container->child = item;
    else
        before->prev->next = item;
    before->prev = item;
}

cJSON *feox_json_tree_unlink(cJSON *container, cJSON *child)
{
    cJSON *first = container->child;
    if (child == first) {
        container->child = child->next;
        if (child->next)
            child->next->prev = child->prev; /* the new first child points at the last */
    } else {
        child->prev->next = child->next;
        if (child->next)
            child->next->prev = child->prev;
        else
            first->prev = child->prev; /* removed the last child */
    }
    child->next = NULL;
    child->prev = NULL;
    return child;
}

cJSON *feox_json_tree_replace(cJSON *container, cJSON *old, cJSON *replacement)
{
    cJSON *next = old->next;
    feox_json_tree_unlink(container, old);
    feox_json_tree_insert_before(container, replacement, next);
    return old;
}

size_t feox_json_tree_child_count(const cJSON *container)
{
    size_t count = 0;
    for (const cJSON *c = container->child; c; c = c->next)
        count++;
    return count;
}

static const cJSON *find_member(const cJSON *object, const char *name)
{
    for (const cJSON *c = object->child; c; c = c->next) {
        if (c->string && strcmp(c->string, name) == 0)
            return c;
    }
    return NULL;
}

/* Every member of a has an equal member of the same name in b. */
static bool members_contained(const cJSON *a, const cJSON *b)
{
    for (const cJSON *member = a->child; member; member = member->next) {
        const cJSON *other = find_member(b, member->string);
        if (!other || !feox_json_tree_equal(member, other))
            return false;
    }
    return true;
}

bool feox_json_tree_equal(const cJSON *a, const cJSON *b)
{
    int type = a->type & 0xFF;
    if (type != (b->type & 0xFF))
        return false;
    switch (type) {
    case cJSON_NULL:
    case cJSON_True:
    case cJSON_False: return true;
    case cJSON_Raw: return feox_json_number_equal(a->valuestring, b->valuestring);
    case cJSON_Number: return a->valuedouble == b->valuedouble;
    case cJSON_String: return strcmp(a->valuestring, b->valuestring) == 0;
    case cJSON_Array: {
        const cJSON *x = a->child;
        const cJSON *y = b->child;
        for (; x && y; x = x->next, y = y->next) {
            if (!feox_json_tree_equal(x, y))
                return false;
        }
        return !x && !y;
    }
    case cJSON_Object:
        /* Both directions, so duplicate member names cannot make unequal objects look equal. */
        return feox_json_tree_child_count(a) == feox_json_tree_child_count(b) &&
               members_contained(a, b) && members_contained(b, a);
    default: return false;
    }
}

size_t feox_json_tree_nesting(const cJSON *item, size_t limit)
{
    int type = item->type & 0xFF;
    if (type != cJSON_Array && type != cJSON_Object)
        return 0;
    if (limit == 0)
        return 1;
    size_t deepest_child = 0;
    for (const cJSON *c = item->child; c; c = c->next) {
        size_t nesting = feox_json_tree_nesting(c, limit - 1);
        if (nesting > deepest_child)
            deepest_child = nesting;
        if (deepest_child > limit - 1)
            break;
    }
    return deepest_child + 1;
}
