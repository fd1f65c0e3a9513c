/* Strict JSON parser: values, escapes, UTF-8, numbers, every error class, limits, typed readers, and
 * allocation balance (including a failure injected at every allocation). */
#include <stdint.h>

#include "core/core.h"
#include "harness.h"
#include "util/json.h"

/* Counting allocator that can be told to fail its k-th allocation: checks that every path frees
 * what it took and that running out of memory is reported, not crashed on. */
typedef struct {
    long live, calls, fail_at; /* fail_at < 0: never fail */
} counting;

static void *count_alloc(void *user, size_t size, size_t align) {
    counting *c = user;
    if (c->calls++ == c->fail_at) return NULL;
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    c->live++;
    return p;
}

static void count_free(void *user, void *ptr) {
    counting *c = user;
    c->live--;
    free(ptr);
}

static counting counter;
static vitq_allocator alloc = {sizeof(vitq_allocator), count_alloc, count_free, &counter};

static vitq_i_json *parse_n(const char *text, size_t len) {
    vitq_i_json *root = NULL;
    counter.fail_at = -1;
    vitq_status st = vitq_i_json_parse(&alloc, text, len, "test.json", &root);
    if (st != VITQ_OK) printf("    unexpected failure: %s\n", vitq_last_error());
    return root;
}

static vitq_i_json *parse(const char *text) { return parse_n(text, strlen(text)); }

static void done(vitq_i_json *root) {
    vitq_i_json_free(&alloc, root);
    CHECK(counter.live == 0);
}

/* Expect `text` to fail with `want`; the tree pointer must be NULL and nothing may leak. */
static void expect_fail_n(const char *text, size_t len, vitq_status want, const char *msg_part) {
    vitq_i_json *root = (vitq_i_json *)&root; /* must be overwritten with NULL */
    counter.fail_at = -1;
    vitq_status st = vitq_i_json_parse(&alloc, text, len, "test.json", &root);
    if (st != want) {
        printf("    input %.60s: got %s, expected %s (%s)\n", text, vitq_status_name(st),
               vitq_status_name(want), vitq_last_error());
        harness_check_failures++;
    }
    CHECK(root == NULL);
    CHECK(counter.live == 0);
    if (msg_part && !strstr(vitq_last_error(), msg_part)) {
        printf("    message '%s' lacks '%s'\n", vitq_last_error(), msg_part);
        harness_check_failures++;
    }
}

static void expect_fail(const char *text, const char *msg_part) {
    expect_fail_n(text, strlen(text), VITQ_ERR_FORMAT, msg_part);
}

static void test_values(void) {
    vitq_i_json *r = parse(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\", \"d\": {\"e\": -2.5}, "
                           "\"f\": [], \"g\": {}} ");
    CHECK(r && r->type == VITQ_I_JSON_OBJECT && r->count == 6);
    if (!r) return;
    CHECK(strcmp(r->keys[0], "a") == 0 && strcmp(r->keys[5], "g") == 0 && r->key_lengths[3] == 1);
    const vitq_i_json *a = vitq_i_json_get(r, "a"), *b = vitq_i_json_get(r, "b");
    CHECK(a && a->type == VITQ_I_JSON_NUMBER && a->is_integer && a->integer == 1 && a->number == 1.0);
    CHECK(b && b->type == VITQ_I_JSON_ARRAY && b->count == 3);
    if (b && b->count == 3) {
        CHECK(b->items[0]->type == VITQ_I_JSON_BOOL && b->items[0]->boolean == 1);
        CHECK(b->items[1]->type == VITQ_I_JSON_BOOL && b->items[1]->boolean == 0);
        CHECK(b->items[2]->type == VITQ_I_JSON_NULL);
    }
    const vitq_i_json *c = vitq_i_json_get(r, "c");
    CHECK(c && c->type == VITQ_I_JSON_STRING && c->length == 1 && strcmp(c->string, "x") == 0);
    const vitq_i_json *e = vitq_i_json_get(vitq_i_json_get(r, "d"), "e");
    CHECK(e && e->number == -2.5 && !e->is_integer);
    const vitq_i_json *f = vitq_i_json_get(r, "f"), *g = vitq_i_json_get(r, "g");
    CHECK(f && f->type == VITQ_I_JSON_ARRAY && f->count == 0);
    CHECK(g && g->type == VITQ_I_JSON_OBJECT && g->count == 0);
    CHECK(vitq_i_json_get(r, "missing") == NULL);
    CHECK(vitq_i_json_get(b, "a") == NULL); /* not an object */
    CHECK(vitq_i_json_get(NULL, "a") == NULL);
    done(r);

    /* Any value may be the root; surrounding whitespace of all four kinds is fine. */
    r = parse("\t\r\n 42 \n\r\t");
    CHECK(r && r->type == VITQ_I_JSON_NUMBER && r->integer == 42);
    done(r);
    r = parse("\"s\"");
    CHECK(r && r->type == VITQ_I_JSON_STRING && strcmp(r->string, "s") == 0);
    done(r);
    r = parse("null");
    CHECK(r && r->type == VITQ_I_JSON_NULL);
    done(r);
    /* The text need not be NUL-terminated: only `len` bytes are read. */
    r = parse_n("[1]garbage", 3);
    CHECK(r && r->type == VITQ_I_JSON_ARRAY && r->count == 1);
    done(r);
    /* A UTF-8 byte order mark is skipped. */
    r = parse("\xEF\xBB\xBF{\"k\":true}");
    CHECK(r && r->type == VITQ_I_JSON_OBJECT && vitq_i_json_get(r, "k")->boolean == 1);
    done(r);
}

static void check_string(const char *json, const char *want, size_t want_len) {
    vitq_i_json *r = parse(json);
    CHECK(r && r->type == VITQ_I_JSON_STRING);
    if (r && r->type == VITQ_I_JSON_STRING) {
        if (r->length != want_len || memcmp(r->string, want, want_len) != 0 || r->string[want_len] != '\0') {
            printf("    string %s decoded wrong (length %zu, expected %zu)\n", json, r->length, want_len);
            harness_check_failures++;
        }
    }
    done(r);
}

static void test_escapes(void) {
    check_string("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    check_string("\"\"", "", 0);
    check_string("\"a\\u0041b\"", "aAb", 3);
    check_string("\"\\u00e9\"", "\xC3\xA9", 2);          /* 2-byte UTF-8 */
    check_string("\"\\u20AC\"", "\xE2\x82\xAC", 3);      /* 3-byte, upper-case hex */
    check_string("\"\\uD83D\\uDE00\"", "\xF0\x9F\x98\x80", 4); /* surrogate pair -> U+1F600 */
    check_string("\"\\udbff\\udfff\"", "\xF4\x8F\xBF\xBF", 4); /* U+10FFFF, lower-case hex */
    check_string("\"\\u0000x\"", "\0x", 2);              /* NUL kept, length tells */
    check_string("\"\\uFFFF\"", "\xEF\xBF\xBF", 3);
    /* Raw UTF-8 of every length passes through untouched. */
    check_string("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F\"", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F", 10);

    expect_fail("\"\\x\"", "invalid escape");
    expect_fail("\"\\'\"", "invalid escape");
    expect_fail("\"\\u12\"", "4 hex digits");
    expect_fail("\"\\u12G4\"", "4 hex digits");
    expect_fail("\"\\uD800\"", "high surrogate");
    expect_fail("\"\\uD800x\"", "high surrogate");
    expect_fail("\"\\uD800\\u0041\"", "high surrogate");
    expect_fail("\"\\uD800\\uD800\"", "high surrogate");
    expect_fail("\"\\uDC00\"", "lone low surrogate");
    expect_fail("\"\\uDFFF\\uD800\"", "lone low surrogate");
    expect_fail("\"\\", "unterminated");
    expect_fail("\"abc", "unterminated");
    expect_fail("\"a\\\"", "unterminated");
    expect_fail("\"a\x01z\"", "control character 0x01");
    expect_fail("\"a\nz\"", "control character 0x0a");
    expect_fail("\"a\tz\"", "control character 0x09");
    expect_fail_n("\"a\0z\"", 5, VITQ_ERR_FORMAT, "control character 0x00");
    /* Ill-formed UTF-8: stray continuation, overlong, surrogate, above U+10FFFF, bad lead, cut short. */
    expect_fail("\"\x80\"", "invalid UTF-8 byte 0x80");
    expect_fail("\"\xC0\xAF\"", "invalid UTF-8 byte 0xc0");
    expect_fail("\"\xC1\xBF\"", "invalid UTF-8");
    expect_fail("\"\xE0\x80\xAF\"", "invalid UTF-8");
    expect_fail("\"\xED\xA0\x80\"", "invalid UTF-8");
    expect_fail("\"\xF0\x80\x80\xAF\"", "invalid UTF-8");
    expect_fail("\"\xF4\x90\x80\x80\"", "invalid UTF-8");
    expect_fail("\"\xF5\x80\x80\x80\"", "invalid UTF-8");
    expect_fail("\"\xFF\"", "invalid UTF-8");
    expect_fail("\"\xE2\x82\"", "invalid UTF-8");
    expect_fail("\"\xC3\x41\"", "invalid UTF-8");
    expect_fail("\"\xF0\x9F\x98\"", "invalid UTF-8");
}

static void check_number(const char *json, double want, int is_int, int64_t want_int) {
    vitq_i_json *r = parse(json);
    CHECK(r && r->type == VITQ_I_JSON_NUMBER);
    if (r && r->type == VITQ_I_JSON_NUMBER) {
        if (memcmp(&r->number, &want, sizeof want) != 0 || r->is_integer != is_int ||
            (is_int && r->integer != want_int)) {
            printf("    number %s: got %.17g int=%d %lld, expected %.17g int=%d %lld\n", json, r->number,
                   r->is_integer, (long long)r->integer, want, is_int, (long long)want_int);
            harness_check_failures++;
        }
    }
    done(r);
}

static void test_numbers(void) {
    check_number("0", 0.0, 1, 0);
    check_number("-0", -0.0, 1, 0); /* the double keeps its sign (compared bitwise) */
    check_number("7", 7.0, 1, 7);
    check_number("-123", -123.0, 1, -123);
    check_number("1.5", 1.5, 0, 0);
    check_number("-0.0", -0.0, 0, 0);
    check_number("1.0", 1.0, 0, 0); /* integer value, but not integer syntax */
    check_number("1e3", 1000.0, 0, 0);
    check_number("1E+3", 1000.0, 0, 0);
    check_number("25e-1", 2.5, 0, 0);
    check_number("1e-2", 0.01, 0, 0);
    check_number("1e-12", 1e-12, 0, 0);
    check_number("0.1", 0.1, 0, 0);
    check_number("3.141592653589793", 3.141592653589793, 0, 0);
    check_number("1e-400", 0.0, 0, 0); /* underflow to zero is representable, not an error */
    check_number("1.7976931348623157e308", 1.7976931348623157e308, 0, 0);
    /* Integers keep their exact value beyond 2^53, where the double rounds. */
    check_number("9007199254740993", 9007199254740992.0, 1, INT64_C(9007199254740993));
    check_number("9223372036854775807", 9223372036854775807.0, 1, INT64_MAX);
    check_number("-9223372036854775808", -9223372036854775808.0, 1, INT64_MIN);
    check_number("9223372036854775808", 9223372036854775808.0, 0, 0);
    check_number("-9223372036854775809", -9223372036854775808.0, 0, 0);
    check_number("123456789012345678901234567890", 1.2345678901234568e29, 0, 0);
    /* A number longer than the parser's on-stack buffer. */
    char longnum[300];
    memset(longnum, '1', 299);
    longnum[0] = '0';
    longnum[1] = '.';
    longnum[299] = '\0';
    vitq_i_json *r = parse(longnum);
    CHECK(r && r->type == VITQ_I_JSON_NUMBER && fabs(r->number - 0.111111111111111) < 1e-15);
    done(r);

    expect_fail("01", "leading zero");
    expect_fail("-01", "leading zero");
    expect_fail("-", "expected a digit");
    expect_fail("-a", "expected a digit");
    expect_fail("1.", "after the decimal point");
    expect_fail("1.e3", "after the decimal point");
    expect_fail(".5", "unexpected '.'");
    expect_fail("+1", "unexpected '+'");
    expect_fail("1e", "exponent");
    expect_fail("1e+", "exponent");
    expect_fail("1e400", "out of the range");
    expect_fail("-1e400", "out of the range");
    expect_fail("NaN", "unexpected 'N'");
    expect_fail("Infinity", "unexpected 'I'");
    expect_fail("-Infinity", "expected a digit");
    expect_fail("0x10", "unexpected 'x' after the JSON value");
    expect_fail("1 2", "after the JSON value");
}

static void test_syntax_errors(void) {
    expect_fail("", "line 1 col 1: unexpected end of input");
    expect_fail("   \n ", "line 2 col 2: unexpected end of input");
    expect_fail("[", "end of input");
    expect_fail("[1", "expected ',' or ']', found end of input");
    expect_fail("[1,]", "unexpected ']'");
    expect_fail("[,1]", "unexpected ','");
    expect_fail("[1 2]", "expected ',' or ']'");
    expect_fail("{", "expected a string key");
    expect_fail("{\"a\":1,}", "expected a string key, found '}'");
    expect_fail("{\"a\" 1}", "expected ':'");
    expect_fail("{\"a\":}", "unexpected '}'");
    expect_fail("{1:2}", "expected a string key");
    expect_fail("{'a':2}", "expected a string key");
    expect_fail("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    expect_fail("[1]]", "after the JSON value");
    expect_fail("{} {}", "after the JSON value");
    expect_fail("[1] x", "line 1 col 5: unexpected 'x'");
    expect_fail("tru", "expected true");
    expect_fail("True", "unexpected 'T'");
    expect_fail("nul", "expected null");
    expect_fail("falsy", "expected false");
    expect_fail("[true1]", "expected ',' or ']'");
    expect_fail("\xEF\xBB\xBF", "end of input");
    expect_fail("\x01", "byte 0x01");
    expect_fail_n("[1]\0", 4, VITQ_ERR_FORMAT, "byte 0x00 after the JSON value");
    expect_fail("[1,\n  2,\n  x]", "test.json: line 3 col 3: unexpected 'x'");
    /* Comments and trailing commas are not JSON. */
    expect_fail("[1] // c", "after the JSON value");
    expect_fail("/* c */ 1", "unexpected '/'");

    /* Arguments. */
    vitq_i_json *r = NULL;
    CHECK_STATUS(vitq_i_json_parse(&alloc, NULL, 3, "x", &r), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_json_parse(&alloc, "1", 1, "x", NULL), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_json_parse(&alloc, NULL, 0, NULL, &r), VITQ_ERR_FORMAT);
    CHECK(strstr(vitq_last_error(), "JSON: line 1 col 1") != NULL);
    vitq_i_json_free(&alloc, NULL);
}

static void test_duplicates(void) {
    expect_fail("{\"a\":1,\"a\":2}", "line 1 col 8: duplicate key \"a\"");
    expect_fail("{\"a\":1,\"b\":2,\"\\u0061\":3}", "duplicate key \"a\""); /* equal after decoding */
    expect_fail("[{\"x\":{\"k\":1,\"k\":1}}]", "duplicate key \"k\"");
    /* Same key in different objects, and prefixes of each other, are fine. */
    vitq_i_json *r = parse("{\"a\":{\"a\":1},\"ab\":2,\"b\":{\"a\":3},\"\":4}");
    CHECK(r && r->count == 4);
    CHECK(r && vitq_i_json_get(r, "")->integer == 4);
    done(r);
    /* Keys that differ only after an embedded NUL are distinct. */
    r = parse("{\"a\\u0000x\":1,\"a\\u0000y\":2}");
    CHECK(r && r->count == 2 && r->key_lengths[0] == 3);
    done(r);
    expect_fail("{\"a\\u0000x\":1,\"a\\u0000x\":2}", "duplicate key");

    /* Many keys: the first repeated one in text order is reported. */
    size_t cap = 3000 * 16 + 64, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{");
    for (int i = 0; i < 3000; i++) n += (size_t)snprintf(big + n, cap - n, "\"k%d\":%d,", i, i);
    n += (size_t)snprintf(big + n, cap - n, "\"k2999\":0,\"k17\":0}");
    expect_fail_n(big, n, VITQ_ERR_FORMAT, "duplicate key \"k2999\"");
    big[n - 19] = '}'; /* drop the two repeats: valid again */
    r = parse_n(big, n - 18);
    CHECK(r && r->count == 3000);
    CHECK(r && vitq_i_json_get(r, "k1234") && vitq_i_json_get(r, "k1234")->integer == 1234);
    done(r);
    free(big);
}

static void test_depth(void) {
    char buf[2 * (VITQ_I_JSON_MAX_DEPTH + 1) + 1];
    int d = VITQ_I_JSON_MAX_DEPTH;
    memset(buf, '[', (size_t)d);
    memset(buf + d, ']', (size_t)d);
    vitq_i_json *r = parse_n(buf, 2 * (size_t)d);
    CHECK(r != NULL);
    done(r);
    d++;
    memset(buf, '[', (size_t)d);
    memset(buf + d, ']', (size_t)d);
    expect_fail_n(buf, 2 * (size_t)d, VITQ_ERR_FORMAT, "nested deeper than 128");
    /* Objects count as well as arrays. */
    char obj[8 * 200];
    size_t n = 0;
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(obj + n, sizeof obj - n, "{\"a\":");
    expect_fail_n(obj, n, VITQ_ERR_FORMAT, "nested deeper");
    /* A deeply nested hostile input fails fast instead of exhausting the stack. */
    size_t huge = 1000000;
    char *deep = malloc(huge);
    memset(deep, '[', huge);
    expect_fail_n(deep, huge, VITQ_ERR_FORMAT, "nested deeper");
    free(deep);
}

static void test_large(void) {
    /* Enough members to grow the member stack and the arena several times. */
    size_t count = 200000, cap = count * 12 + 16, n = 0;
    char *text = malloc(cap);
    text[n++] = '[';
    for (size_t i = 0; i < count; i++) n += (size_t)snprintf(text + n, cap - n, "%s%zu", i ? "," : "", i);
    text[n++] = ']';
    counter.calls = 0;
    vitq_i_json *r = parse_n(text, n);
    CHECK(r && r->count == count);
    CHECK(r && r->items[count - 1]->integer == (int64_t)count - 1);
    CHECK(counter.calls < 40); /* arena: a few blocks, not one allocation per node */
    done(r);
    free(text);
}

static void test_oom(void) {
    /* Fail each allocation in turn: every one must give OUT_OF_MEMORY and leak nothing. */
    const char *text = "{\"a\":[1,2,{\"b\":\"str\\u00e9\"}],\"c\":1.5e300,\"d\":[[[]]],\"e\":null}";
    long total;
    counter.fail_at = -1;
    counter.calls = 0;
    vitq_i_json *r = NULL;
    CHECK_STATUS(vitq_i_json_parse(&alloc, text, strlen(text), "oom.json", &r), VITQ_OK);
    total = counter.calls;
    done(r);
    CHECK(total >= 2);
    for (long k = 0; k < total; k++) {
        counter.fail_at = k;
        counter.calls = 0;
        r = NULL;
        vitq_status st = vitq_i_json_parse(&alloc, text, strlen(text), "oom.json", &r);
        CHECK(st == VITQ_ERR_OUT_OF_MEMORY && r == NULL && counter.live == 0);
        CHECK(strstr(vitq_last_error(), "oom.json") != NULL);
    }
    counter.fail_at = -1;
}

static void test_typed(void) {
    vitq_i_json *r = parse("{\"i\": 12, \"neg\": -3, \"f\": 0.5, \"s\": \"gelu\", \"b\": true, \"n\": null,"
                           " \"arr\": [0.485, 0.456, 0.406], \"ints\": [3, 224, 224], \"mixed\": [1, \"x\"],"
                           " \"big\": [1e39], \"nul\": \"a\\u0000b\", \"fl\": [1.5], \"ff\": [2.0]}");
    if (!r) return;
    int64_t i = -1;
    double d = 0;
    const char *s = NULL;
    int b = -1, found = -1;
    float fv[4] = {0};
    int64_t iv[4] = {0};
    size_t count = 0;

    CHECK_STATUS(vitq_i_json_get_int(r, "i", "c.json", 1, 64, &i, &found), VITQ_OK);
    CHECK(found == 1 && i == 12);
    CHECK_STATUS(vitq_i_json_get_int(r, "absent", "c.json", 1, 64, &i, &found), VITQ_OK);
    CHECK(found == 0 && i == 12);
    CHECK_STATUS(vitq_i_json_get_int(r, "n", "c.json", 1, 64, &i, &found), VITQ_OK); /* null = absent */
    CHECK(found == 0);
    CHECK_STATUS(vitq_i_json_get_int(r, "neg", "c.json", 1, 64, &i, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "c.json: key 'neg': -3 is outside [1, 64]") != NULL);
    CHECK_STATUS(vitq_i_json_get_int(r, "f", "c.json", 0, 64, &i, NULL), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "expected an integer, got 0.5") != NULL);
    CHECK_STATUS(vitq_i_json_get_int(r, "s", "c.json", 0, 64, &i, &found), VITQ_ERR_CONFIG);
    CHECK(found == 0 && strstr(vitq_last_error(), "c.json: key 's': expected an integer, got string"));
    CHECK_STATUS(vitq_i_json_get_int(r, "i", "c.json", 0, 64, &i, NULL), VITQ_OK);

    CHECK_STATUS(vitq_i_json_get_number(r, "f", "c.json", &d, &found), VITQ_OK);
    CHECK(found == 1 && d == 0.5);
    CHECK_STATUS(vitq_i_json_get_number(r, "i", "c.json", &d, &found), VITQ_OK);
    CHECK(found == 1 && d == 12.0);
    CHECK_STATUS(vitq_i_json_get_number(r, "b", "c.json", &d, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "expected a number, got boolean") != NULL);

    CHECK_STATUS(vitq_i_json_get_string(r, "s", "c.json", &s, &found), VITQ_OK);
    CHECK(found == 1 && s && strcmp(s, "gelu") == 0);
    CHECK_STATUS(vitq_i_json_get_string(r, "nul", "c.json", &s, &found), VITQ_ERR_CONFIG);
    CHECK_STATUS(vitq_i_json_get_string(r, "i", "c.json", &s, &found), VITQ_ERR_CONFIG);

    CHECK_STATUS(vitq_i_json_get_bool(r, "b", "c.json", &b, &found), VITQ_OK);
    CHECK(found == 1 && b == 1);
    CHECK_STATUS(vitq_i_json_get_bool(r, "i", "c.json", &b, &found), VITQ_ERR_CONFIG);
    CHECK_STATUS(vitq_i_json_get_bool(r, "n", "c.json", &b, &found), VITQ_OK);
    CHECK(found == 0);

    CHECK_STATUS(vitq_i_json_get_floats(r, "arr", "c.json", 1, 4, fv, &count, &found), VITQ_OK);
    CHECK(found == 1 && count == 3 && fv[0] == 0.485f && fv[1] == 0.456f && fv[2] == 0.406f);
    CHECK_STATUS(vitq_i_json_get_floats(r, "arr", "c.json", 1, 2, fv, &count, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "array has 3 values, expected 1 to 2") != NULL);
    CHECK_STATUS(vitq_i_json_get_floats(r, "arr", "c.json", 4, 4, fv, &count, &found), VITQ_ERR_CONFIG);
    fv[0] = 7.0f;
    CHECK_STATUS(vitq_i_json_get_floats(r, "mixed", "c.json", 1, 4, fv, &count, &found), VITQ_ERR_CONFIG);
    CHECK(fv[0] == 7.0f); /* untouched on failure */
    CHECK(strstr(vitq_last_error(), "item 1: expected a number, got string") != NULL);
    CHECK_STATUS(vitq_i_json_get_floats(r, "big", "c.json", 1, 4, fv, &count, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "overflows a float") != NULL);
    CHECK_STATUS(vitq_i_json_get_floats(r, "f", "c.json", 1, 4, fv, &count, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "expected an array, got number") != NULL);
    CHECK_STATUS(vitq_i_json_get_floats(r, "absent", "c.json", 1, 4, fv, &count, &found), VITQ_OK);
    CHECK(found == 0);

    CHECK_STATUS(vitq_i_json_get_ints(r, "ints", "c.json", 3, 3, iv, &count, &found), VITQ_OK);
    CHECK(found == 1 && count == 3 && iv[0] == 3 && iv[1] == 224 && iv[2] == 224);
    CHECK_STATUS(vitq_i_json_get_ints(r, "fl", "c.json", 1, 3, iv, &count, &found), VITQ_ERR_CONFIG);
    CHECK_STATUS(vitq_i_json_get_ints(r, "ff", "c.json", 1, 3, iv, &count, &found), VITQ_ERR_CONFIG);
    CHECK(strstr(vitq_last_error(), "item 0 is not an integer") != NULL);
    CHECK_STATUS(vitq_i_json_get_ints(r, "arr", "c.json", 1, 3, iv, &count, NULL), VITQ_ERR_CONFIG);
    CHECK(iv[0] == 3);

    CHECK(strcmp(vitq_i_json_type_name(VITQ_I_JSON_OBJECT), "object") == 0);
    done(r);
}

int main(void) {
    counter.fail_at = -1;
    RUN(test_values);
    RUN(test_escapes);
    RUN(test_numbers);
    RUN(test_syntax_errors);
    RUN(test_duplicates);
    RUN(test_depth);
    RUN(test_large);
    RUN(test_oom);
    RUN(test_typed);
    HARNESS_EXIT();
}
