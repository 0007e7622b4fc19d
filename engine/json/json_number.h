/*
 * json_number.h — exact value comparison of JSON number literals kept as text.
 *
 * The JSON patch engine keeps numbers as their source text (json_parse.h) so that 64-bit integers
 * and other values a double cannot hold survive. `test` still compares numbers by value: 1, 1.0
 * and 10e-1 are equal, 9007199254740993 and 9007199254740992 are not.
 */
#ifndef FEOX_JSON_NUMBER_H
#define FEOX_JSON_NUMBER_H

#include <stdbool.h>

/* True when the two RFC 8259 number literals (already validated) denote the same decimal value.
 * The comparison is exact, except that exponents beyond +-10^15 are treated as equal to 10^15,
 * and -0 equals 0 (as it does in every JSON implementation that compares by value). */
bool feox_json_number_equal(const char *a, const char *b);

#endif
