/*
 * callbacks.c: done-callbacks through the C ABI.
 *
 * Covers: the order callbacks run in (the first in the task's slot, the
 * others in its list), each exactly once, after arg_drop, seeing the final
 * state, on the thread that finished the task; removal by (cb, user), also
 * of a pair added twice; removal after they ran; a callback added after done
 * runs at once on the adding thread; the callbacks of a cancelled PENDING
 * task run inside wsrt_task_cancel.
 *
 * Races are never ordered by sleeping: tasks block on events (a mutex and a
 * condition variable) that the test sets, and a one-worker runtime runs its
 * queue in order. Nothing here polls.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("callbacks: %s\n", name)

/* ------------------------------------------------------------------ */
/* Done-callbacks                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    int n;
    int order[16];
    wsrt_state states[16];
    bool done[16];
    int arg_drops[16];  /* the task's arg_drop count when the callback ran */
    pthread_t threads[16];
    event last;         /* set by the callback whose id is `last_id` */
    int last_id;
    counter *task_arg;  /* the counter the task runs with */
} cb_log;

typedef struct {
    cb_log *log;
    int id;
} cb_entry;

static void cb_log_init(cb_log *log, counter *task_arg, int last_id) {
    CHECK(pthread_mutex_init(&log->mu, NULL) == 0);
    log->n = 0;
    event_init(&log->last);
    log->last_id = last_id;
    log->task_arg = task_arg;
}

static void cb_log_destroy(cb_log *log) {
    event_destroy(&log->last);
    pthread_mutex_destroy(&log->mu);
}

static void log_cb(wsrt_task *t, void *user) {
    cb_entry *e = user;
    cb_log *log = e->log;
    pthread_mutex_lock(&log->mu);
    CHECK(log->n < 16);
    int i = log->n++;
    log->order[i] = e->id;
    log->states[i] = wsrt_task_state(t);
    log->done[i] = wsrt_task_done(t);
    log->arg_drops[i] = log->task_arg ? atomic_load(&log->task_arg->arg_drops) : -1;
    log->threads[i] = pthread_self();
    pthread_mutex_unlock(&log->mu);
    if (e->id == log->last_id)
        event_set(&log->last);
}

static void never_cb(wsrt_task *t, void *user) {
    (void)t;
    (void)user;
    fprintf(stderr, "a removed callback ran\n");
    exit(1);
}

static void test_callbacks(void) {
    SECTION("done-callbacks: order, once, final state, removal");
    wsrt_runtime *rt = new_runtime(1);
    pthread_t main_thread = pthread_self();
    blocker busy;
    blocker_init(&busy);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    cb_log log;
    cb_log_init(&log, &c, 3);
    cb_entry e1 = {&log, 1}, e2 = {&log, 2}, e3 = {&log, 3};
    int other_user = 0;

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_PENDING);

    /* The first entry sits in the task's slot, the others in its list:
       removal and order must not care. */
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &other_user));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e2));
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &other_user));
    CHECK_OK(wsrt_task_add_done_callback(t, never_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e3));

    /* (cb, user) added twice is removed twice; the user pointer matters. */
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &other_user), 2);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &other_user), 0);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &e1), 1);
    CHECK_EQ(wsrt_task_remove_done_callback(t, never_cb, &e2), 0);
    CHECK_EQ(wsrt_task_remove_done_callback(t, log_cb, &other_user), 0);

    event_set(&busy.release);
    wait_ok(t);
    event_wait(&log.last);
    flush(rt);

    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(log.order[i], i + 1);
        CHECK_EQ(log.states[i], WSRT_STATE_SUCCEEDED);
        CHECK(log.done[i]);
        CHECK_EQ(log.arg_drops[i], 1); /* arg_drop runs before the callbacks */
        /* Finished by the worker: the callbacks ran there. */
        CHECK(!pthread_equal(log.threads[i], main_thread));
        CHECK(pthread_equal(log.threads[i], log.threads[0]));
    }
    pthread_mutex_unlock(&log.mu);

    /* Removing after they ran removes nothing. */
    CHECK_EQ(wsrt_task_remove_done_callback(t, log_cb, &e1), 0);

    /* Added after done: runs now, on this thread, before add returns. */
    cb_entry e4 = {&log, 4};
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e4));
    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 4);
    CHECK_EQ(log.order[3], 4);
    CHECK_EQ(log.states[3], WSRT_STATE_SUCCEEDED);
    CHECK(pthread_equal(log.threads[3], main_thread));
    pthread_mutex_unlock(&log.mu);

    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(log.n, 4); /* nothing ran twice */
    cb_log_destroy(&log);
    blocker_destroy(&busy);
}

static void test_callbacks_on_cancel(void) {
    SECTION("done-callbacks of a cancelled PENDING task run in cancel()");
    wsrt_runtime *rt = new_runtime(1);
    pthread_t main_thread = pthread_self();
    blocker busy;
    blocker_init(&busy);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    cb_log log;
    cb_log_init(&log, &c, 2);
    cb_entry e1 = {&log, 1}, e2 = {&log, 2};

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t = spawn(rt, counter_fn, &c, counter_drop, NULL);
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e1));
    CHECK_OK(wsrt_task_add_done_callback(t, log_cb, &e2));
    CHECK(wsrt_task_cancel(t));

    /* Before cancel returned, on this thread, after arg_drop. */
    CHECK(event_is_set(&log.last));
    pthread_mutex_lock(&log.mu);
    CHECK_EQ(log.n, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(log.order[i], i + 1);
        CHECK_EQ(log.states[i], WSRT_STATE_CANCELLED);
        CHECK_EQ(log.arg_drops[i], 1);
        CHECK(pthread_equal(log.threads[i], main_thread));
    }
    pthread_mutex_unlock(&log.mu);

    event_set(&busy.release);
    wait_ok(occ);
    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    CHECK_EQ(log.n, 2);
    CHECK_EQ(atomic_load(&c.calls), 0);
    cb_log_destroy(&log);
    blocker_destroy(&busy);
}

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_callbacks();
    test_callbacks_on_cancel();

    printf("callbacks: all passed\n");
    return 0;
}
