/*
 * check.h: the assertion macros of the C tests. Unlike assert(), they are
 * never compiled out, print the failing expression with file:line, and exit
 * with status 1 (which tests/ffi.rs reports).
 */
#ifndef WSRT_FFI_TESTS_CHECK_H
#define WSRT_FFI_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "wsrt.h"

#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #expr);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Integer equality that prints both sides on failure. */
#define CHECK_EQ(actual, expected)                                             \
    do {                                                                       \
        long long check_a_ = (long long)(actual);                              \
        long long check_e_ = (long long)(expected);                            \
        if (check_a_ != check_e_) {                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #actual, #expected, check_a_, check_e_); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* A wsrt_status call that must return `expected`. */
#define CHECK_STATUS(call, expected)                                           \
    do {                                                                       \
        wsrt_status check_s_ = (call);                                         \
        if (check_s_ != (expected)) {                                          \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n",       \
                    __FILE__, __LINE__, #call, (int)check_s_,                  \
                    wsrt_status_str(check_s_), #expected);                     \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, WSRT_OK)

#endif /* WSRT_FFI_TESTS_CHECK_H */
