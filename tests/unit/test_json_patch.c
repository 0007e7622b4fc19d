/*
 * test_json_patch.c — unit tests of feox_json_patch_apply (engine/json/json_patch.h): the public RFC
 * 6902 conformance suite read from ../shared at test time, exact number preservation, pointer
 * edge cases, error messages, strict parsing, nesting limits and allocation failure.
 *
 * The suite lives in <shared>/data/json-patch-tests. <shared> is $FEOX_SHARED_DIR if set, else the
 * first "../shared" found walking up from the current directory, the test binary's directory or
 * this source file's directory. If it cannot be found the suite tests fail.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "feox.h"
#include "json/json_number.h"
#include "json/json_patch.h"

/* A pointer value no allocation can return: failed calls must leave *out equal to it. */
static char untouched_marker;
#define UNTOUCHED (&untouched_marker)

typedef struct patch_result {
    feox_err err;
    char *out; /* UNTOUCHED unless err == FEOX_OK */
    size_t out_len;
    char errmsg[256];
} patch_result;

static patch_result apply(const char *doc, const char *patch)
{
    patch_result r;
    r.out = UNTOUCHED;
    r.out_len = 12345;
    strcpy(r.errmsg, "(unset)");
    r.err = feox_json_patch_apply(doc, strlen(doc), patch, strlen(patch), &r.out, &r.out_len,
                                  r.errmsg, sizeof(r.errmsg));
    return r;
}

/* Applies patch to doc and checks the exact output text. */
static void expect_output(const char *doc, const char *patch, const char *expected)
{
    patch_result r = apply(doc, patch);
    if (r.err != FEOX_OK)
        fail_msg("patch %s on %s failed: %s", patch, doc, r.errmsg);
    assert_string_equal(r.out, expected);
    assert_int_equal(r.out_len, strlen(expected));
    feox_free(r.out);
}

/* Applies patch to doc, which must fail with JSON_PATCH, the given message, and *out untouched. */
static void expect_failure(const char *doc, const char *patch, const char *message)
{
    patch_result r = apply(doc, patch);
    if (r.err != FEOX_ERR_JSON_PATCH)
        fail_msg("patch %s on %s: expected JSON_PATCH, got %d (%s)", patch, doc, (int)r.err,
                 r.err == FEOX_OK ? r.out : r.errmsg);
    assert_ptr_equal(r.out, UNTOUCHED);
    assert_int_equal(r.out_len, 12345);
    if (message)
        assert_string_equal(r.errmsg, message);
}

/* Like expect_failure, but only checks that the message contains fragment. */
static void expect_failure_mentioning(const char *doc, const char *patch, const char *fragment)
{
    expect_failure(doc, patch, NULL);
    patch_result r = apply(doc, patch);
    if (!strstr(r.errmsg, fragment))
        fail_msg("message \"%s\" does not mention \"%s\"", r.errmsg, fragment);
}

/* ---- locating and running the conformance suite ---------------------------------------------- */

static bool suite_file_exists(const char *shared_dir, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/data/json-patch-tests/tests.json", shared_dir);
    return n > 0 && (size_t)n < size && access(path, R_OK) == 0;
}

/* Walks up from start looking for <ancestor>/../shared. */
static bool find_shared_above(const char *start, char *shared_dir, size_t size)
{
    char dir[PATH_MAX];
    char probe[PATH_MAX + 64];
    if (!start || !realpath(start, dir))
        return false;
    for (;;) {
        int n = snprintf(shared_dir, size, "%s/../shared", dir);
        if (n > 0 && (size_t)n < size && suite_file_exists(shared_dir, probe, sizeof(probe)))
            return true;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            return false;
        *slash = '\0';
    }
}

static bool find_shared_dir(char *shared_dir, size_t size)
{
    char probe[PATH_MAX + 64];
    const char *env = getenv("FEOX_SHARED_DIR");
    if (env && *env) {
        snprintf(shared_dir, size, "%s", env);
        return suite_file_exists(shared_dir, probe, sizeof(probe));
    }
    char exe[PATH_MAX];
    ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (exe_len > 0) {
        exe[exe_len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
    }
    char source[PATH_MAX];
    snprintf(source, sizeof(source), "%s", __FILE__);
    char *slash = strrchr(source, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(source, sizeof(source), ".");
    return find_shared_above(".", shared_dir, size) ||
           (exe_len > 0 && find_shared_above(exe, shared_dir, size)) ||
           find_shared_above(source, shared_dir, size);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            text = malloc((size_t)size + 1);
            if (text)
                len = fread(text, 1, (size_t)size, f);
        }
    }
    fclose(f);
    if (text)
        text[len] = '\0';
    return text;
}

/* Runs one record; returns NULL when it passes, else a static description of the failure. */
static const char *run_record(const cJSON *record, char *why, size_t why_size)
{
    char *doc = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(record, "doc"));
    char *patch = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(record, "patch"));
    char *doc_before = doc ? strdup(doc) : NULL;
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(record, "expected");
    bool must_fail = cJSON_GetObjectItemCaseSensitive(record, "error") != NULL;
    const char *failure = NULL;
    if (!doc || !patch || !doc_before) {
        failure = "cannot print the record";
        goto done;
    }
    patch_result r = apply(doc, patch);
    if (strcmp(doc, doc_before) != 0) {
        failure = "input document text was modified";
    } else if (must_fail) {
        if (r.err != FEOX_ERR_JSON_PATCH || r.out != UNTOUCHED || r.errmsg[0] == '\0')
            failure = "should fail with JSON_PATCH, a message, and output untouched";
    } else if (r.err != FEOX_OK) {
        snprintf(why, why_size, "failed: %s", r.errmsg);
        failure = why;
    } else if (expected) {
        cJSON *result = cJSON_Parse(r.out);
        if (!result || !cJSON_Compare(result, expected, 1)) {
            snprintf(why, why_size, "result %s differs from expected", r.out);
            failure = why;
        }
        cJSON_Delete(result);
    }
    if (r.err == FEOX_OK)
        feox_free(r.out);
done:
    if (failure) {
        const char *comment = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record,
                                                                                     "comment"));
        print_message("FAILED: %s | doc %s | patch %s | %s\n", comment ? comment : "",
                      doc ? doc : "?", patch ? patch : "?", failure);
    }
    cJSON_free(doc);
    cJSON_free(patch);
    free(doc_before);
    return failure;
}

static void run_suite_file(const char *name, int minimum_records)
{
    char shared_dir[PATH_MAX];
    if (!find_shared_dir(shared_dir, sizeof(shared_dir)))
        fail_msg("conformance suite not found: set FEOX_SHARED_DIR or keep ../shared next to the "
                 "repository");
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/data/json-patch-tests/%s", shared_dir, name);
    char *text = read_file(path);
    if (!text)
        fail_msg("cannot read %s", path);
    cJSON *suite = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(suite))
        fail_msg("%s is not a JSON array", path);

    int run = 0;
    int failed = 0;
    int skipped = 0;
    const cJSON *record = NULL;
    cJSON_ArrayForEach(record, suite)
    {
        bool disabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "disabled"));
        bool has_case = cJSON_GetObjectItemCaseSensitive(record, "doc") &&
                        cJSON_GetObjectItemCaseSensitive(record, "patch");
        if (disabled || !has_case) {
            skipped++;
            continue;
        }
        char why[512];
        run++;
        failed += run_record(record, why, sizeof(why)) != NULL;
    }
    cJSON_Delete(suite);
    print_message("%s: %d records run, %d skipped, %d failed\n", name, run, skipped, failed);
    assert_int_equal(failed, 0);
    assert_true(run >= minimum_records);
}

static void test_conformance_tests_json(void **state)
{
    (void)state;
    run_suite_file("tests.json", 90);
}

static void test_conformance_spec_tests_json(void **state)
{
    (void)state;
    run_suite_file("spec_tests.json", 15);
}

/* ---- numbers --------------------------------------------------------------------------------- */

static const char *const exact_literals[] = {
    "9007199254740993",     "-9007199254740993", "9223372036854775807",
    "-9223372036854775808", "18446744073709551615", "1e400",
    "0.1",                  "-0.0",                 "123456789012345678901234567890.000000001",
    "1.5E-7",
};

static void test_numbers_survive_untouched_and_written(void **state)
{
    (void)state;
    char doc[256];
    char patch[256];
    char expected[256];
    for (size_t i = 0; i < sizeof(exact_literals) / sizeof(exact_literals[0]); i++) {
        const char *n = exact_literals[i];
        snprintf(doc, sizeof(doc), "{\"n\": %s, \"x\": [%s]}", n, n);
        snprintf(expected, sizeof(expected), "{\"n\":%s,\"x\":[%s,2]}", n, n);
        expect_output(doc, "[{\"op\":\"add\",\"path\":\"/x/-\",\"value\":2}]", expected);

        snprintf(patch, sizeof(patch), "[{\"op\":\"add\",\"path\":\"/n\",\"value\":%s}]", n);
        snprintf(expected, sizeof(expected), "{\"n\":%s}", n);
        expect_output("{}", patch, expected);

        snprintf(patch, sizeof(patch), "[{\"op\":\"replace\",\"path\":\"/n\",\"value\":%s}]", n);
        expect_output("{\"n\":0}", patch, expected);

        snprintf(doc, sizeof(doc), "{\"a\":%s}", n);
        snprintf(expected, sizeof(expected), "{\"a\":%s,\"b\":%s}", n, n);
        expect_output(doc, "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}]", expected);

        snprintf(expected, sizeof(expected), "{\"b\":%s}", n);
        expect_output(doc, "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"}]", expected);

        snprintf(patch, sizeof(patch), "[{\"op\":\"test\",\"path\":\"/a\",\"value\":%s}]", n);
        expect_output(doc, patch, doc);
    }
}

static void expect_test_op(const char *stored, const char *tested, bool equal)
{
    char doc[128];
    char patch[160];
    snprintf(doc, sizeof(doc), "{\"a\":%s}", stored);
    snprintf(patch, sizeof(patch), "[{\"op\":\"test\",\"path\":\"/a\",\"value\":%s}]", tested);
    patch_result r = apply(doc, patch);
    if (equal && r.err != FEOX_OK)
        fail_msg("test %s == %s should pass: %s", stored, tested, r.errmsg);
    if (!equal && r.err != FEOX_ERR_JSON_PATCH)
        fail_msg("test %s == %s should fail", stored, tested);
    if (r.err == FEOX_OK)
        feox_free(r.out);
}

static void test_test_op_compares_numbers_exactly_by_value(void **state)
{
    (void)state;
    expect_test_op("9007199254740993", "9007199254740992", false);
    expect_test_op("-9007199254740993", "-9007199254740992", false);
    expect_test_op("9223372036854775807", "9223372036854775806", false);
    expect_test_op("-9223372036854775808", "-9223372036854775807", false);
    expect_test_op("18446744073709551615", "18446744073709551614", false);
    expect_test_op("1e400", "1e401", false);
    expect_test_op("0.1", "0.10000000000000001", false); /* the same double */
    expect_test_op("1", "-1", false);
    expect_test_op("1", "\"1\"", false);
    expect_test_op("0", "false", false);

    expect_test_op("1", "1.0", true);
    expect_test_op("100", "1E+2", true);
    expect_test_op("0.1", "1e-1", true);
    expect_test_op("-0.0", "0", true);
    expect_test_op("0", "0e10", true);
    expect_test_op("1e400", "10e399", true);
    expect_test_op("12.50", "1.25e1", true);
    expect_test_op("-9223372036854775808", "-92233720368547758.08e2", true);
    expect_test_op("18446744073709551615", "18446744073709551615.000", true);
}

static void test_number_equal_directly(void **state)
{
    (void)state;
    assert_true(feox_json_number_equal("0.00123", "1.23e-3"));
    assert_true(feox_json_number_equal("-0", "0.000"));
    assert_false(feox_json_number_equal("0.00123", "1.23e-2"));
    assert_false(feox_json_number_equal("10", "1"));
    assert_false(feox_json_number_equal("-1", "1"));
    assert_true(feox_json_number_equal("1000", "1e3"));
}

/* ---- operations and pointers ----------------------------------------------------------------- */

static void test_array_insert_anywhere(void **state)
{
    (void)state;
    /* cJSON_InsertItemInArray is broken above index 0 in Debian's build; ours must not be. */
    expect_output("[1,2,3]", "[{\"op\":\"add\",\"path\":\"/1\",\"value\":\"x\"}]", "[1,\"x\",2,3]");
    expect_output("[1,2,3]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":\"x\"}]", "[1,2,3,\"x\"]");
    expect_output("[1,2,3]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":\"x\"}]", "[\"x\",1,2,3]");
    expect_output("[]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":1}]", "[1]");
    /* A run of edits exercises the list invariants (first->prev is the last element). */
    expect_output("[1,2,3]",
                  "[{\"op\":\"add\",\"path\":\"/1\",\"value\":\"a\"},"
                  "{\"op\":\"add\",\"path\":\"/-\",\"value\":\"b\"},"
                  "{\"op\":\"remove\",\"path\":\"/0\"},"
                  "{\"op\":\"move\",\"from\":\"/0\",\"path\":\"/-\"},"
                  "{\"op\":\"remove\",\"path\":\"/3\"},"
                  "{\"op\":\"add\",\"path\":\"/-\",\"value\":\"c\"},"
                  "{\"op\":\"replace\",\"path\":\"/0\",\"value\":\"d\"},"
                  "{\"op\":\"replace\",\"path\":\"/3\",\"value\":\"e\"},"
                  "{\"op\":\"copy\",\"from\":\"/1\",\"path\":\"/0\"}]",
                  "[3,\"d\",3,\"b\",\"e\"]");
}

static void test_pointer_escapes_and_edges(void **state)
{
    (void)state;
    expect_output("{\"a/b\":1,\"m~n\":2}",
                  "[{\"op\":\"test\",\"path\":\"/a~1b\",\"value\":1},"
                  "{\"op\":\"test\",\"path\":\"/m~0n\",\"value\":2},"
                  "{\"op\":\"add\",\"path\":\"/c~1~0d\",\"value\":3}]",
                  "{\"a/b\":1,\"m~n\":2,\"c/~d\":3}");
    expect_output("{\"\":{\"\":5}}", "[{\"op\":\"replace\",\"path\":\"//\",\"value\":6}]",
                  "{\"\":{\"\":6}}");
    expect_output("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":[true]}]", "[true]");
    expect_output("\"x\"", "[{\"op\":\"replace\",\"path\":\"\",\"value\":null}]", "null");
    expect_failure("[1,2]", "[{\"op\":\"test\",\"path\":\"/01\",\"value\":2}]",
                   "operation 0 (test): path /01: \"01\" is not an array index");
    expect_failure("[1,2]", "[{\"op\":\"remove\",\"path\":\"/-\"}]", NULL);
    expect_failure("[1,2]", "[{\"op\":\"remove\",\"path\":\"/99999999999999999999999\"}]", NULL);
    expect_failure("[1,2]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":0}]",
                   "operation 0 (add): path /3: array index 3 is out of bounds (length 2)");
    expect_failure("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a~2\",\"value\":0}]",
                   "operation 0 (add): path \"/a~2\" is not a valid JSON pointer");
    expect_failure("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":0}]",
                   "operation 0 (add): path /a/b does not exist (parent is not an object or "
                   "array)");
    expect_failure("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]",
                   "operation 0 (remove): cannot remove the whole document");
}

static void test_move_semantics(void **state)
{
    (void)state;
    expect_failure("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]",
                   "operation 0 (move): cannot move /a into its own child /a/b/c");
    expect_failure("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/x\"}]", NULL);
    expect_output("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
                  "{\"a\":{\"b\":1}}");
    expect_output("{\"a\":1,\"ab\":2}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/ab\"}]",
                  "{\"ab\":1}");
    expect_output("{\"a\":{\"b\":1},\"c\":[]}",
                  "[{\"op\":\"move\",\"from\":\"/a/b\",\"path\":\"/c/0\"}]",
                  "{\"a\":{},\"c\":[1]}");
    expect_failure("{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/a\"}]",
                   "operation 0 (move): from /x does not exist");
    /* Found by fuzz_json_patch: moving the whole document to an invalid path crashed. */
    expect_failure("{\"a\":1}", "[{\"op\":\"move\",\"from\":\"\",\"path\":\"'x\"}]",
                   "operation 0 (move): path \"'x\" is not a valid JSON pointer");
    expect_failure("{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"b\"}]",
                   "operation 0 (move): path \"b\" is not a valid JSON pointer");
}

static void test_error_messages_name_the_operation(void **state)
{
    (void)state;
    expect_failure("{\"a\":1}",
                   "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1},"
                   "{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]",
                   "operation 1 (test): value at /a differs");
    expect_failure("{}", "[{\"op\":\"spam\",\"path\":\"/a\"}]",
                   "operation 0 (spam): unknown operation");
    expect_failure("{}", "[{\"path\":\"/a\"}]", "operation 0: 'op' is missing");
    expect_failure("{}", "[{\"op\":1,\"path\":\"/a\"}]", "operation 0: 'op' is not a string");
    expect_failure("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}, 7]",
                   "operation 1: not a JSON object");
    expect_failure("{}", "[{\"op\":\"add\",\"value\":1}]", "operation 0 (add): 'path' is missing");
    expect_failure("{}", "[{\"op\":\"add\",\"path\":null,\"value\":1}]",
                   "operation 0 (add): 'path' is not a string");
    expect_failure("{}", "[{\"op\":\"add\",\"path\":\"/a\"}]",
                   "operation 0 (add): 'value' is missing");
    expect_failure("{}", "[{\"op\":\"copy\",\"path\":\"/a\"}]",
                   "operation 0 (copy): 'from' is missing");
    expect_failure("{}", "[{\"op\":\"remove\",\"path\":\"/a\"}]",
                   "operation 0 (remove): path /a does not exist");
    expect_failure("{}", "{\"op\":\"remove\",\"path\":\"/a\"}", "patch is not a JSON array");
    expect_failure_mentioning("{\"a\":", "[]", "document is not valid JSON");
    expect_failure_mentioning("{}", "[{]", "patch is not valid JSON");
}

static void test_failure_is_all_or_nothing(void **state)
{
    (void)state;
    const char *doc = "{\"a\": [1, 2], \"n\": 9007199254740993}";
    char copy[64];
    strcpy(copy, doc);
    expect_failure(doc,
                   "[{\"op\":\"add\",\"path\":\"/x\",\"value\":1},"
                   "{\"op\":\"remove\",\"path\":\"/a/0\"},"
                   "{\"op\":\"replace\",\"path\":\"\",\"value\":5},"
                   "{\"op\":\"test\",\"path\":\"/q\",\"value\":2}]",
                   "operation 3 (test): path /q does not exist (parent is not an object or "
                   "array)");
    assert_string_equal(doc, copy);
    /* The NULL errmsg form works too. */
    char *out = UNTOUCHED;
    size_t out_len = 7;
    assert_int_equal(feox_json_patch_apply(doc, strlen(doc), "[1]", 3, &out, &out_len, NULL, 0),
                     FEOX_ERR_JSON_PATCH);
    assert_ptr_equal(out, UNTOUCHED);
    assert_int_equal(out_len, 7);
}

static void test_output_is_compact_and_strings_round_trip(void **state)
{
    (void)state;
    expect_output(" { \"a\" : [ 1 , 2.50 ] ,\n\t\"b\" : { } }\r\n", "[ ]",
                  "{\"a\":[1,2.50],\"b\":{}}");
    expect_output("{\"s\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\"}", "[]",
                  "{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\\n\\\"/\"}");
    expect_output("{}", "[{\"op\":\"add\",\"path\":\"/\\u00e9\",\"value\":\"\\t\"}]",
                  "{\"\xc3\xa9\":\"\\t\"}");
    /* Explicit lengths: text after doc_len is not read. */
    char *out = UNTOUCHED;
    size_t out_len = 0;
    assert_int_equal(feox_json_patch_apply("[1]garbage", 3, "[]xx", 2, &out, &out_len, NULL, 0),
                     FEOX_OK);
    assert_string_equal(out, "[1]");
    feox_free(out);
}

static void test_strict_json(void **state)
{
    (void)state;
    static const char *const invalid[] = {
        "",         "01",          "[1,]",      "{\"a\":1,}", "tru",          "1 2",
        "[1 2]",    "{\"a\" 1}",   "{a:1}",     "\"\\x\"",    "\"\\u00\"",    "\"\\u0000\"",
        "\"\\ud800\"", "\"\\udc00x\"", "\"a\nb\"", "-",         "1.",           ".5",
        "1e",       "+1",          "[",         "NaN",        "\"unterminated", "//\n1",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        expect_failure_mentioning(invalid[i], "[]", "document is not valid JSON");
        char patch[64];
        snprintf(patch, sizeof(patch), "[{\"op\":\"add\",\"path\":\"\",\"value\":%s}]", invalid[i]);
        expect_failure_mentioning("{}", patch, "patch is not valid JSON");
    }
    expect_output("-0", "[]", "-0");
    expect_output("[-1.5e+3,0.0E-0,true,false,null]", "[]", "[-1.5e+3,0.0E-0,true,false,null]");
}

static char *nested_arrays(size_t depth)
{
    char *text = malloc(2 * depth + 1);
    assert_non_null(text);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    return text;
}

static void test_nesting_limit(void **state)
{
    (void)state;
    char *ok = nested_arrays(1000);
    char *too_deep = nested_arrays(1001);
    expect_output(ok, "[]", ok);
    expect_failure_mentioning(too_deep, "[]", "nesting too deep");
    free(too_deep);
    free(ok);
    /* Copying a document into itself doubles its depth; the result must stay parseable. */
    char *deep = nested_arrays(600);
    size_t len = strlen(deep);
    char *doc = malloc(len + 16);
    assert_non_null(doc);
    snprintf(doc, len + 16, "{\"a\":%s}", deep);
    char path[2048] = "/a";
    for (int i = 0; i < 598; i++)
        strcat(path, "/0");
    char patch[2200];
    snprintf(patch, sizeof(patch), "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"%s/0\"}]", path);
    expect_failure_mentioning(doc, patch, "nest deeper than 1000");
    free(doc);
    free(deep);
}

/* ---- allocation failure ---------------------------------------------------------------------- */

static long allocations_until_failure; /* the allocation that fails is the one that hits 0 */
static long live_allocations;

static void *failing_malloc(size_t size)
{
    if (--allocations_until_failure == 0)
        return NULL;
    void *p = malloc(size);
    if (p)
        live_allocations++;
    return p;
}

static void *failing_realloc(void *ptr, size_t size)
{
    if (--allocations_until_failure == 0)
        return NULL;
    void *p = realloc(ptr, size);
    if (p && !ptr)
        live_allocations++;
    return p;
}

static void counting_free(void *ptr)
{
    if (ptr)
        live_allocations--;
    free(ptr);
}

/* Runs one patch with the Nth allocation failing, for N = 1, 2, ... until an allocation-free
 * outcome: every earlier run must return NOMEM, leave *out untouched and leak nothing; the final
 * run must match the unconstrained result (success with the same text, or the same error).
 * Returns how many allocation sites were failed. */
static long exhaust_allocation_failures(const char *doc, const char *patch)
{
    patch_result reference = apply(doc, patch);
    long n = 1;
    for (;; n++) {
        allocations_until_failure = n;
        live_allocations = 0;
        feox_set_allocator(failing_malloc, failing_realloc, counting_free);
        char *out = UNTOUCHED;
        size_t out_len = 99;
        char errmsg[256] = "";
        feox_err err = feox_json_patch_apply(doc, strlen(doc), patch, strlen(patch), &out,
                                             &out_len, errmsg, sizeof(errmsg));
        if (err == FEOX_OK) {
            assert_int_equal(reference.err, FEOX_OK);
            assert_string_equal(out, reference.out);
            feox_free(out);
        }
        feox_set_allocator(NULL, NULL, NULL);
        if (live_allocations != 0)
            fail_msg("allocation %ld failing leaked %ld allocations", n, live_allocations);
        if (err != FEOX_ERR_NOMEM) {
            assert_int_equal(err, reference.err);
            if (err != FEOX_OK)
                assert_string_equal(errmsg, reference.errmsg);
            break;
        }
        assert_ptr_equal(out, UNTOUCHED);
        assert_int_equal(out_len, 99);
    }
    if (reference.err == FEOX_OK)
        feox_free(reference.out);
    return n;
}

static void test_allocation_failure_is_clean(void **state)
{
    (void)state;
    const char *doc = "{\"id\":9223372036854775807,\"tags\":[\"a\",\"b\\u00e9\"],"
                      "\"m~n\":{\"x\":1.5}}";
    const char *patch = "[{\"op\":\"add\",\"path\":\"/tags/1\",\"value\":{\"k\":[1,2]}},"
                        "{\"op\":\"copy\",\"from\":\"/m~0n\",\"path\":\"/new key\"},"
                        "{\"op\":\"move\",\"from\":\"/tags/0\",\"path\":\"/first\"},"
                        "{\"op\":\"replace\",\"path\":\"/id\",\"value\":18446744073709551615},"
                        "{\"op\":\"remove\",\"path\":\"/m~0n/x\"},"
                        "{\"op\":\"test\",\"path\":\"/first\",\"value\":\"a\"}]";
    /* Many allocation sites: parse of both inputs, new member names, copy, print. */
    assert_true(exhaust_allocation_failures(doc, patch) > 20);
    /* A patch that fails late still fails cleanly when memory runs out before that. */
    exhaust_allocation_failures(doc, "[{\"op\":\"add\",\"path\":\"/z\",\"value\":[1]},"
                                     "{\"op\":\"test\",\"path\":\"/z\",\"value\":[2]}]");
    exhaust_allocation_failures(doc, "[{\"op\":\"replace\",\"path\":\"\",\"value\":\"s\"}]");
    exhaust_allocation_failures("[1,2", "[]");
    exhaust_allocation_failures("[]",
                                "[{\"op\":\"add\",\"path\":\"/-\",\"value\":\"\\ud83d\\ude00\"}]");
}

/* feox_json_patch_document (feox.h): the same patch without a store; the reason of a failure in
 * feox_error_detail(), *result untouched, and its arguments checked. */
static void test_public_document_function(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    const char *doc = "{\"a\":1,\"big\":9007199254740993}";
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]";
    assert_int_equal(feox_json_patch_document(doc, strlen(doc), patch, strlen(patch), &out, &len),
                     FEOX_OK);
    assert_string_equal(out, "{\"a\":2,\"big\":9007199254740993}");
    assert_int_equal(len, strlen(out));
    feox_free(out);
    assert_string_equal(feox_error_detail(), "");

    out = UNTOUCHED;
    const char *test_op = "[{\"op\":\"test\",\"path\":\"/a\",\"value\":5}]";
    assert_int_equal(
        feox_json_patch_document(doc, strlen(doc), test_op, strlen(test_op), &out, &len),
        FEOX_ERR_JSON_PATCH);
    assert_ptr_equal(out, UNTOUCHED);
    assert_string_equal(feox_error_detail(), "operation 0 (test): value at /a differs");
    assert_int_equal(feox_json_patch_document("{", 1, "[]", 2, &out, &len), FEOX_ERR_JSON_PATCH);
    assert_non_null(strstr(feox_error_detail(), "document is not valid JSON"));
    assert_ptr_equal(out, UNTOUCHED);
    assert_int_equal(feox_json_patch_document(NULL, 1, "[]", 2, &out, &len),
                     FEOX_ERR_INVALID_ARGUMENT);
    assert_int_equal(feox_json_patch_document("{}", 2, "[]", 2, NULL, &len),
                     FEOX_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance_tests_json),
        cmocka_unit_test(test_conformance_spec_tests_json),
        cmocka_unit_test(test_numbers_survive_untouched_and_written),
        cmocka_unit_test(test_test_op_compares_numbers_exactly_by_value),
        cmocka_unit_test(test_number_equal_directly),
        cmocka_unit_test(test_array_insert_anywhere),
        cmocka_unit_test(test_pointer_escapes_and_edges),
        cmocka_unit_test(test_move_semantics),
        cmocka_unit_test(test_error_messages_name_the_operation),
        cmocka_unit_test(test_failure_is_all_or_nothing),
        cmocka_unit_test(test_output_is_compact_and_strings_round_trip),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_allocation_failure_is_clean),
        cmocka_unit_test(test_public_document_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
