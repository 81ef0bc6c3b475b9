/*
 * spawn.c: spawning tasks and what a task tells about itself, through the C
 * ABI, with exact codes and states.
 *
 * Covers: the state of a task before, while and after it runs; polling
 * wsrt_task_done; failure codes, results and result_drop; names (default,
 * opts.name, set_name, snprintf truncation); ids; wsrt_current_task;
 * wsrt_task_arg; all_tasks and finding a task by its arg; stats;
 * wsrt_version and wsrt_status_str.
 *
 * Races are never ordered by sleeping: tasks block on events (a mutex and a
 * condition variable) that the test sets, and a one-worker runtime runs its
 * queue in order. The only polling loops wait for a state that is certain to
 * come, with a deadline so that a bug fails the test instead of hanging it.
 */
#define _POSIX_C_SOURCE 200809L

#include "wsrt.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("spawn: %s\n", name)

/* ------------------------------------------------------------------ */
/* Status before, while and after running                              */
/* ------------------------------------------------------------------ */

static void test_status_lifecycle(void) {
    SECTION("status before/while/after running");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy, b;
    blocker_init(&busy);
    blocker_init(&b);
    int value = 7;
    b.result = &value;

    wsrt_task *occ = occupy(rt, &busy);
    CHECK_EQ(wsrt_task_state(occ), WSRT_STATE_RUNNING);

    /* The only worker is busy: the new task is PENDING. */
    wsrt_task *t = spawn(rt, blocker_fn, &b, blocker_drop, NULL);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_PENDING);
    CHECK(!wsrt_task_done(t));
    CHECK(!wsrt_task_cancelled(t));
    CHECK(!wsrt_task_cancel_requested(t));
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_INVALID_STATE);
    CHECK(out == &out); /* untouched on error */
    int32_t code = -99;
    CHECK_STATUS(wsrt_task_error(t, &code), WSRT_ERR_INVALID_STATE);
    CHECK_EQ(code, -99);
    CHECK_STATUS(wsrt_task_wait(t, 0), WSRT_ERR_TIMEOUT);

    /* Free the worker: our task starts and blocks: RUNNING. */
    event_set(&busy.release);
    event_wait(&b.started);
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_RUNNING);
    CHECK(!wsrt_task_done(t));
    CHECK_STATUS(wsrt_task_result(t, &out), WSRT_ERR_INVALID_STATE);
    CHECK_STATUS(wsrt_task_error(t, &code), WSRT_ERR_INVALID_STATE);
    CHECK(wsrt_task_done(occ));
    CHECK_EQ(wsrt_task_state(occ), WSRT_STATE_SUCCEEDED);

    /* Let it finish, and poll wsrt_task_done until it is. */
    event_set(&b.release);
    double end = now_s() + DEADLINE_S;
    while (!wsrt_task_done(t)) {
        CHECK(now_s() < end);
        wsrt_status s = wsrt_task_wait(t, 1000000); /* 1 ms */
        CHECK(s == WSRT_OK || s == WSRT_ERR_TIMEOUT);
    }
    CHECK_EQ(wsrt_task_state(t), WSRT_STATE_SUCCEEDED);
    CHECK(!wsrt_task_cancelled(t));
    CHECK_OK(wsrt_task_result(t, &out));
    CHECK(out == &value);
    code = -99;
    CHECK_OK(wsrt_task_error(t, &code));
    CHECK_EQ(code, 0);
    CHECK_EQ(atomic_load(&b.calls), 1);
    CHECK_EQ(atomic_load(&b.arg_drops), 1); /* before the state became final */

    wsrt_task_release(t);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
    blocker_destroy(&b);
}

/* ------------------------------------------------------------------ */
/* Failure codes, results, result_drop                                 */
/* ------------------------------------------------------------------ */

static int32_t self_cancel_fn(void *arg, void **result) {
    (void)arg;
    *result = &result_drops; /* ignored: only a SUCCEEDED task keeps a result */
    return WSRT_TASK_CANCELLED;
}

static void test_failure_and_results(void) {
    SECTION("failure codes and results");
    wsrt_runtime *rt = new_runtime(1);
    int dummy = 0;

    counter failing;
    counter_init(&failing, 42);
    failing.result = &dummy; /* set, but a failed task has no result */
    wsrt_task *f = spawn(rt, counter_fn, &failing, counter_drop, result_must_not_drop);

    counter negative;
    counter_init(&negative, -1000);
    wsrt_task *n = spawn(rt, counter_fn, &negative, NULL, NULL);

    wsrt_task *sc = spawn(rt, self_cancel_fn, NULL, NULL, result_must_not_drop);

    counter ok;
    counter_init(&ok, WSRT_TASK_OK);
    ok.result = &dummy;
    wsrt_task *s = spawn(rt, counter_fn, &ok, NULL, NULL);

    wait_ok(f);
    wait_ok(n);
    wait_ok(sc);
    wait_ok(s);

    /* return 42 -> FAILED, result -> WSRT_ERR_FAILED, error -> 42 */
    CHECK_EQ(wsrt_task_state(f), WSRT_STATE_FAILED);
    CHECK(!wsrt_task_cancelled(f));
    void *out = &out;
    CHECK_STATUS(wsrt_task_result(f, &out), WSRT_ERR_FAILED);
    CHECK(out == &out);
    int32_t code = 0;
    CHECK_OK(wsrt_task_error(f, &code));
    CHECK_EQ(code, 42);
    CHECK_EQ(atomic_load(&failing.arg_drops), 1);

    /* Any value other than 0, -1, -2 is a failure code. */
    CHECK_EQ(wsrt_task_state(n), WSRT_STATE_FAILED);
    CHECK_OK(wsrt_task_error(n, &code));
    CHECK_EQ(code, -1000);

    /* A task may end itself CANCELLED without a request. */
    CHECK_EQ(wsrt_task_state(sc), WSRT_STATE_CANCELLED);
    CHECK(wsrt_task_cancelled(sc));
    CHECK(!wsrt_task_cancel_requested(sc));
    CHECK_STATUS(wsrt_task_result(sc, &out), WSRT_ERR_CANCELLED);
    code = -99;
    CHECK_STATUS(wsrt_task_error(sc, &code), WSRT_ERR_CANCELLED);
    CHECK_EQ(code, -99);

    /* wsrt_task_error of a SUCCEEDED task gives 0. */
    CHECK_EQ(wsrt_task_state(s), WSRT_STATE_SUCCEEDED);
    code = -99;
    CHECK_OK(wsrt_task_error(s, &code));
    CHECK_EQ(code, 0);
    CHECK_OK(wsrt_task_result(s, &out));
    CHECK(out == &dummy);
    /* Reading the result twice gives it twice (it stays owned by the task). */
    out = NULL;
    CHECK_OK(wsrt_task_result(s, &out));
    CHECK(out == &dummy);

    wsrt_task_release(f);
    wsrt_task_release(n);
    wsrt_task_release(sc);
    wsrt_task_release(s);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&bad_result_drops), 0);
}

static void test_result_drop(void) {
    SECTION("result_drop runs once, with the last handle");
    wsrt_runtime *rt = new_runtime(1);
    atomic_store(&result_drops, 0);

    wsrt_task *h1 = spawn(rt, alloc_result_fn, (void *)(intptr_t)77, NULL, result_free);
    wsrt_task *h2 = wsrt_task_retain(h1);
    CHECK(h2 == h1);
    wait_ok(h1);
    /* The worker that ran the task may hold its own reference for a moment
       after the task is done; once it has run the next task it has dropped
       it, and the handles are the only references left. */
    flush(rt);
    void *out = NULL;
    CHECK_OK(wsrt_task_result(h2, &out));
    CHECK(out != NULL && *(int *)out == 77);

    wsrt_task_release(h1);
    CHECK_EQ(atomic_load(&result_drops), 0); /* h2 still holds it */
    CHECK_OK(wsrt_task_result(h2, &out));
    CHECK_EQ(*(int *)out, 77);
    wsrt_task_release(h2);
    CHECK_EQ(atomic_load(&result_drops), 1);

    /* A detached task's result is dropped once too, when it is freed. */
    CHECK_OK(wsrt_spawn(rt, alloc_result_fn, (void *)(intptr_t)5,
                        &(wsrt_spawn_opts){.result_drop = result_free}, NULL));
    flush(rt);
    CHECK_EQ(atomic_load(&result_drops), 2);

    free_runtime(rt);
    CHECK_EQ(atomic_load(&result_drops), 2);
}

/* ------------------------------------------------------------------ */
/* Names, ids, current task                                            */
/* ------------------------------------------------------------------ */

static void test_names(void) {
    SECTION("names");
    wsrt_runtime *rt = new_runtime(1);

    /* Default: "Task-<id>", with opts NULL or opts.name NULL. */
    wsrt_task *a = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, NULL, &a));
    wsrt_task *b = spawn(rt, noop_fn, NULL, NULL, NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "Task-%" PRIu64, wsrt_task_id(a));
    check_name(a, expected);
    snprintf(expected, sizeof expected, "Task-%" PRIu64, wsrt_task_id(b));
    check_name(b, expected);

    /* opts.name is copied. */
    char name[] = "fetch-7";
    wsrt_spawn_opts opts = {0};
    opts.name = name;
    wsrt_task *c = NULL;
    CHECK_OK(wsrt_spawn(rt, noop_fn, NULL, &opts, &c));
    name[0] = 'X';
    check_name(c, "fetch-7");

    /* set_name at any time: before and after done. */
    CHECK_OK(wsrt_task_set_name(c, "renamed"));
    check_name(c, "renamed");
    wait_ok(c);
    CHECK_OK(wsrt_task_set_name(c, "after-done"));
    check_name(c, "after-done");
    CHECK_OK(wsrt_task_set_name(c, "renamed"));

    /* snprintf rules: at most cap-1 bytes and a NUL; returns the full length. */
    char buf[16];
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 4), 7);
    CHECK(memcmp(buf, "ren\0", 4) == 0);
    CHECK_EQ(buf[4], 'x'); /* nothing written past cap */

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 1), 7);
    CHECK_EQ(buf[0], '\0');
    CHECK_EQ(buf[1], 'x');

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 0), 7); /* cap 0: nothing written */
    CHECK_EQ(buf[0], 'x');
    CHECK_EQ(wsrt_task_name(c, NULL, 0), 7); /* buf may be NULL with cap 0 */

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 7), 7); /* one short: "rename" */
    CHECK(strcmp(buf, "rename") == 0);
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, 8), 7); /* exactly fits */
    CHECK(strcmp(buf, "renamed") == 0);

    /* The empty name and a multi-byte UTF-8 name. */
    CHECK_OK(wsrt_task_set_name(c, ""));
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(wsrt_task_name(c, buf, sizeof buf), 0);
    CHECK_EQ(buf[0], '\0');
    CHECK_OK(wsrt_task_set_name(c, "t\xc3\xa2" "che")); /* "tâche": 6 bytes */
    check_name(c, "t\xc3\xa2" "che");

    /* Invalid UTF-8 leaves the name as it was. */
    CHECK_STATUS(wsrt_task_set_name(c, "\xff\xfe"), WSRT_ERR_INVALID_ARG);
    check_name(c, "t\xc3\xa2" "che");

    wait_ok(a);
    wait_ok(b);
    wsrt_task_release(a);
    wsrt_task_release(b);
    wsrt_task_release(c);
    free_runtime(rt);
}

typedef struct {
    uint64_t id;        /* wsrt_task_id(wsrt_current_task()) */
    void *arg;          /* wsrt_task_arg(wsrt_current_task()) */
    uint64_t child_id;  /* id of a task spawned from inside */
    bool cancel_requested;
    wsrt_runtime *rt;
} whoami;

static int32_t whoami_fn(void *arg, void **result) {
    whoami *w = arg;
    (void)result;
    wsrt_task *me = wsrt_current_task();
    CHECK(me != NULL);
    w->id = wsrt_task_id(me);
    w->arg = wsrt_task_arg(me);
    w->cancel_requested = wsrt_cancel_requested();
    if (w->rt != NULL) {
        wsrt_task *child = NULL;
        CHECK_OK(wsrt_spawn(w->rt, noop_fn, NULL, NULL, &child));
        w->child_id = wsrt_task_id(child);
        CHECK_OK(wsrt_task_wait(child, -1));
        wsrt_task_release(child);
    }
    return WSRT_TASK_OK;
}

static void test_ids_and_current_task(void) {
    SECTION("ids and wsrt_current_task");
    wsrt_runtime *rt = new_runtime(2);

    CHECK(wsrt_current_task() == NULL);
    CHECK(!wsrt_cancel_requested());

    enum { N = 6 };
    whoami w[N];
    wsrt_task *t[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        w[i].rt = (i % 2) ? rt : NULL;
        t[i] = spawn(rt, whoami_fn, &w[i], NULL, NULL);
        CHECK(wsrt_task_id(t[i]) != 0);
        if (i > 0)
            CHECK(wsrt_task_id(t[i]) > wsrt_task_id(t[i - 1]));
    }
    for (int i = 0; i < N; i++) {
        wait_ok(t[i]);
        CHECK_EQ(wsrt_task_state(t[i]), WSRT_STATE_SUCCEEDED);
        CHECK_EQ(w[i].id, wsrt_task_id(t[i]));
        CHECK(w[i].arg == &w[i]);
        CHECK(wsrt_task_arg(t[i]) == &w[i]);
        CHECK(!w[i].cancel_requested);
        if (w[i].rt != NULL) /* spawned later than its parent */
            CHECK(w[i].child_id > wsrt_task_id(t[i]));
    }
    CHECK(wsrt_current_task() == NULL);

    for (int i = 0; i < N; i++)
        wsrt_task_release(t[i]);
    free_runtime(rt);
}

/* ------------------------------------------------------------------ */
/* all_tasks and wsrt_task_arg                                         */
/* ------------------------------------------------------------------ */

static void test_all_tasks(void) {
    SECTION("wsrt_runtime_all_tasks and finding a task by its arg");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter c[3];
    for (int i = 0; i < 3; i++)
        counter_init(&c[i], WSRT_TASK_OK);

    size_t len = 99;
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);

    wsrt_task *occ = occupy(rt, &busy);
    wsrt_task *t0 = spawn(rt, counter_fn, &c[0], counter_drop, NULL);
    wsrt_task *t1 = spawn(rt, counter_fn, &c[1], counter_drop, NULL);
    /* c[2] is detached: no handle, reachable only through all_tasks. */
    wsrt_spawn_opts opts = {0};
    opts.arg_drop = counter_drop;
    CHECK_OK(wsrt_spawn(rt, counter_fn, &c[2], &opts, NULL));

    /* Count only. */
    len = 0;
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 4);

    /* cap smaller than the total: the total is still reported. */
    wsrt_task *buf[8] = {0};
    len = 0;
    CHECK_OK(wsrt_runtime_all_tasks(rt, buf, 2, &len));
    CHECK_EQ(len, 4);
    CHECK(buf[0] != NULL && buf[1] != NULL);
    CHECK(buf[2] == NULL);
    wsrt_task_release(buf[0]);
    wsrt_task_release(buf[1]);

    /* Everything, then find the detached task by its arg. */
    memset(buf, 0, sizeof buf);
    CHECK_OK(wsrt_runtime_all_tasks(rt, buf, 8, &len));
    CHECK_EQ(len, 4);
    wsrt_task *found = NULL;
    int seen_occ = 0, seen_t0 = 0, seen_t1 = 0;
    for (size_t i = 0; i < len; i++) {
        CHECK(buf[i] != NULL);
        CHECK(!wsrt_task_done(buf[i]));
        void *arg = wsrt_task_arg(buf[i]);
        if (arg == &c[2])
            found = wsrt_task_retain(buf[i]);
        seen_occ += wsrt_task_id(buf[i]) == wsrt_task_id(occ);
        seen_t0 += wsrt_task_id(buf[i]) == wsrt_task_id(t0);
        seen_t1 += wsrt_task_id(buf[i]) == wsrt_task_id(t1);
        wsrt_task_release(buf[i]);
    }
    CHECK_EQ(seen_occ, 1);
    CHECK_EQ(seen_t0, 1);
    CHECK_EQ(seen_t1, 1);
    CHECK(found != NULL);
    CHECK(wsrt_task_arg(t0) == &c[0]);
    CHECK_EQ(wsrt_task_state(found), WSRT_STATE_PENDING);
    CHECK(wsrt_task_id(found) > wsrt_task_id(t1));

    /* The handle from all_tasks is a real handle: cancel through it. */
    CHECK(wsrt_task_cancel(found));
    CHECK_EQ(wsrt_task_state(found), WSRT_STATE_CANCELLED);
    CHECK_EQ(atomic_load(&c[2].arg_drops), 1);
    CHECK(wsrt_task_arg(found) == &c[2]); /* still the same pointer value */
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 3); /* done tasks are not listed */

    event_set(&busy.release);
    wait_ok(t0);
    wait_ok(t1);
    flush(rt);
    CHECK_OK(wsrt_runtime_all_tasks(rt, NULL, 0, &len));
    CHECK_EQ(len, 0);
    CHECK_EQ(atomic_load(&c[0].calls), 1);
    CHECK_EQ(atomic_load(&c[1].calls), 1);
    CHECK_EQ(atomic_load(&c[2].calls), 0);

    wsrt_task_release(found);
    wsrt_task_release(t0);
    wsrt_task_release(t1);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

static void test_stats(void) {
    SECTION("wsrt_runtime_stats after shutdown");
    wsrt_runtime *rt = new_runtime(1);
    blocker busy;
    blocker_init(&busy);
    counter s1, s2, f1, c1, c2, d1;
    counter_init(&s1, WSRT_TASK_OK);
    counter_init(&s2, WSRT_TASK_OK);
    counter_init(&f1, 5);
    counter_init(&c1, WSRT_TASK_OK);
    counter_init(&c2, WSRT_TASK_CANCELLED);
    counter_init(&d1, WSRT_TASK_OK);
    yielder y;
    yielder_init(&y, 2);

    wsrt_stats st;
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.workers, 1);

    wsrt_task *occ = occupy(rt, &busy);                    /* succeeds */
    wsrt_task *t[6];
    t[0] = spawn(rt, counter_fn, &s1, NULL, NULL);          /* succeeds */
    t[1] = spawn(rt, counter_fn, &s2, NULL, NULL);          /* succeeds */
    t[2] = spawn(rt, counter_fn, &f1, NULL, NULL);          /* fails */
    t[3] = spawn(rt, counter_fn, &c1, counter_drop, NULL);  /* cancelled pending */
    t[4] = spawn(rt, counter_fn, &c2, NULL, NULL);          /* cancels itself */
    t[5] = spawn(rt, yielder_fn, &y, NULL, NULL);           /* yields, succeeds */
    CHECK_OK(wsrt_spawn(rt, counter_fn, &d1, NULL, NULL));  /* detached, succeeds */
    CHECK(wsrt_task_cancel(t[3]));
    event_set(&busy.release);

    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK_EQ(st.spawned, 8);
    CHECK_EQ(st.succeeded, 5);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.cancelled, 2);
    CHECK_EQ(st.spawned, st.succeeded + st.failed + st.cancelled);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.running, 0);
    CHECK_EQ(st.suspended, 0);
    CHECK_EQ(st.workers, 1);
    CHECK_EQ(atomic_load(&y.calls), 3);
    CHECK_EQ(atomic_load(&d1.calls), 1);
    CHECK_EQ(atomic_load(&c1.calls), 0);

    for (int i = 0; i < 6; i++)
        wsrt_task_release(t[i]);
    wsrt_task_release(occ);
    free_runtime(rt);
    blocker_destroy(&busy);
}

/* ------------------------------------------------------------------ */
/* Version and status strings                                          */
/* ------------------------------------------------------------------ */

static void test_version_and_status_str(void) {
    SECTION("wsrt_version and wsrt_status_str");
    const char *v = wsrt_version();
    CHECK(v != NULL);
    CHECK(strcmp(v, WSRT_VERSION_STRING) == 0);
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", WSRT_VERSION_MAJOR,
             WSRT_VERSION_MINOR, WSRT_VERSION_PATCH);
    CHECK(strcmp(v, expected) == 0);
    CHECK(wsrt_version() == v); /* static */

    const char *unknown = wsrt_status_str((wsrt_status)99);
    CHECK(unknown != NULL);
    CHECK(strcmp(unknown, "unknown status") == 0);
    CHECK(wsrt_status_str((wsrt_status)-1) != NULL);
    CHECK(wsrt_status_str((wsrt_status)(WSRT_ERR_FORKED + 1)) != NULL);
    for (int s = WSRT_OK; s <= WSRT_ERR_FORKED; s++) {
        const char *str = wsrt_status_str((wsrt_status)s);
        CHECK(str != NULL);
        CHECK(str[0] != '\0');
        CHECK(strcmp(str, unknown) != 0);
        for (int o = WSRT_OK; o < s; o++) /* each is distinct */
            CHECK(strcmp(str, wsrt_status_str((wsrt_status)o)) != 0);
    }
}

int main(void) {
    /* A bug must fail the test, not hang it. */
    alarm(600);
    setvbuf(stdout, NULL, _IONBF, 0);

    test_version_and_status_str();
    test_status_lifecycle();
    test_failure_and_results();
    test_result_drop();
    test_names();
    test_ids_and_current_task();
    test_all_tasks();
    test_stats();

    printf("spawn: all passed\n");
    return 0;
}
