/*
 * route.h — event type → Kafka topic, first match wins (contract §4).
 *
 * Patterns are shell globs (fnmatch(3): '*', '?', '[…]') with '|' between
 * alternatives: "call_*|target_*". Pure: no I/O, no logging.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stddef.h>

#include "cfg.h"

struct route_table;

/**
 * @brief Compile routes.
 * @param routes borrowed; copied, may be freed after the call.
 * @param tp out: the table, owned by the caller (route_free()).
 * @param why out, on W2K_EINVAL: index of the offending route (may be NULL).
 * @returns 0, W2K_EINVAL (an empty pattern or alternative), W2K_ENOMEM.
 */
int route_new(const struct cfg_route *routes, size_t n,
    struct route_table **tp, size_t *bad_index);

/**
 * @brief The topic for an event type.
 * @param type borrowed, NUL-terminated.
 * @returns the topic (borrowed from the table, valid until route_free()),
 *          or NULL when no route matches.
 */
const char *route_lookup(const struct route_table *t, const char *type);

/** @brief Free a table. NULL is a no-op. */
void route_free(struct route_table *t);

#endif
