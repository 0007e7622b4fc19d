/*
 * json_number.c — exact comparison of JSON number literals (see json_number.h).
 *
 * A literal -I.FeX is read as: sign, the digit string D = I followed by F, and the position of the
 * decimal point in D. Stripping the leading zeros of D gives the normal form 0.d1d2...dn x 10^E
 * with d1 != 0; stripping trailing zeros then makes the digits unique. Two literals are equal when
 * both are zero, or their signs, digits and E agree. No digit string is ever copied or converted.
 */
#include "json/json_number.h"

#include <stddef.h>
#include <stdint.h>

/* Exponents are clamped here; no document of a sane size has a larger one. */
#define EXPONENT_CLAMP 1000000000000000LL

typedef struct decimal_view {
    bool negative;
    const char *integer; /* digits before the point */
    size_t integer_len;
    const char *fraction; /* digits after the point (may be empty) */
    size_t fraction_len;
    size_t first_significant; /* index in D of the first non-zero digit (== total when zero) */
    size_t last_significant;  /* index in D of the last non-zero digit */
    int64_t exponent;         /* E of the normal form */
} decimal_view;

static size_t digit_count(const decimal_view *v)
{
    return v->integer_len + v->fraction_len;
}

static char digit_at(const decimal_view *v, size_t index)
{
    return index < v->integer_len ? v->integer[index] : v->fraction[index - v->integer_len];
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int64_t read_exponent(const char *s)
{
    bool negative = false;
    if (*s == '+' || *s == '-')
        negative = *s++ == '-';
    int64_t value = 0;
    for (; is_digit(*s); s++) {
        if (value < EXPONENT_CLAMP)
            value = value * 10 + (*s - '0');
    }
    if (value > EXPONENT_CLAMP)
        value = EXPONENT_CLAMP;
    return negative ? -value : value;
}

static decimal_view read_decimal(const char *s)
{
    decimal_view v = {0};
    if (*s == '-') {
        v.negative = true;
        s++;
    }
    v.integer = s;
    while (is_digit(*s))
        s++;
    v.integer_len = (size_t)(s - v.integer);
    v.fraction = s;
    if (*s == '.') {
        v.fraction = ++s;
        while (is_digit(*s))
            s++;
        v.fraction_len = (size_t)(s - v.fraction);
    }
    int64_t literal_exponent = (*s == 'e' || *s == 'E') ? read_exponent(s + 1) : 0;

    size_t total = digit_count(&v);
    v.first_significant = total;
    for (size_t i = 0; i < total; i++) {
        if (digit_at(&v, i) != '0') {
            v.first_significant = i;
            break;
        }
    }
    v.last_significant = v.first_significant;
    for (size_t i = total; i > v.first_significant; i--) {
        if (digit_at(&v, i - 1) != '0') {
            v.last_significant = i - 1;
            break;
        }
    }
    v.exponent = (int64_t)v.integer_len - (int64_t)v.first_significant + literal_exponent;
    return v;
}

bool feox_json_number_equal(const char *a, const char *b)
{
    decimal_view x = read_decimal(a);
    decimal_view y = read_decimal(b);
    bool x_zero = x.first_significant == digit_count(&x);
    bool y_zero = y.first_significant == digit_count(&y);
    if (x_zero || y_zero)
        return x_zero && y_zero;
    if (x.negative != y.negative || x.exponent != y.exponent)
        return false;
    size_t x_len = x.last_significant - x.first_significant;
    if (x_len != y.last_significant - y.first_significant)
        return false;
    for (size_t i = 0; i <= x_len; i++) {
        if (digit_at(&x, x.first_significant + i) != digit_at(&y, y.first_significant + i))
            return false;
    }
    return true;
}
