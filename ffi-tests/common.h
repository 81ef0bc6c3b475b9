/*
 * common.h: what the C tests share. The CHECK macros, unlike assert(), are
 * never compiled out, print the failing expression with file:line, and exit
 * with status 1 (which tests/ffi.rs reports); `event` is a one-shot flag
 * threads wait for, so that tests order races without sleeping. The only
 * polling loops (wait_for_state, and a few in the tests) wait for a state
 * that is certain to come, with a deadline (now_s() + DEADLINE_S) so that a
 * bug fails the test instead of hanging it.
 *
 * Functions are static inline so that a file may leave some unused under
 * -Werror. Define _POSIX_C_SOURCE 200809L before any #include.
 */
#ifndef WSRT_FFI_TESTS_COMMON_H
#define WSRT_FFI_TESTS_COMMON_H

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "define _POSIX_C_SOURCE 200809L before any #include"
#endif

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

/* A one-shot flag threads can wait for. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool set;
} event;

static inline void event_init(event *e) {
    CHECK(pthread_mutex_init(&e->mu, NULL) == 0);
    CHECK(pthread_cond_init(&e->cv, NULL) == 0);
    e->set = false;
}

static inline void event_destroy(event *e) {
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static inline void event_set(event *e) {
    pthread_mutex_lock(&e->mu);
    e->set = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static inline void event_wait(event *e) {
    pthread_mutex_lock(&e->mu);
    while (!e->set)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static inline bool event_is_set(event *e) {
    pthread_mutex_lock(&e->mu);
    bool set = e->set;
    pthread_mutex_unlock(&e->mu);
    return set;
}

/* Seconds on the monotonic clock. */
static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A generous deadline for states that are certain to come (valgrind is slow). */
#define DEADLINE_S 120.0

/* Spins (yielding the CPU) until the task reaches `state`. */
static inline void wait_for_state(wsrt_task *t, wsrt_state state) {
    double end = now_s() + DEADLINE_S;
    while (wsrt_task_state(t) != state) {
        CHECK(now_s() < end);
        sched_yield();
    }
}

#endif /* WSRT_FFI_TESTS_COMMON_H */
