/*
 * embedding.c: a runtime inside a C program it did not write, through the
 * ABI: runtime options (workers, stack size, thread names, start and stop
 * hooks with their user pointer), shutdown with a time limit, every thread
 * gone after wsrt_runtime_free, and fork(): a child that uses a runtime it
 * inherited gets WSRT_ERR_FORKED at once (never a hang), and a runtime it
 * makes itself works.
 *
 * Races are never ordered by sleeping: tasks block on events the test sets.
 * The only polling loops wait for a state that is certain to come, with a
 * deadline.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "helpers.h"

#define SECTION(name) printf("  %s\n", name)

/* The names of this process's threads that start with `prefix`, counted;
   names[] gets up to `cap` of them. */
static int threads_named(const char *prefix, char names[][16], int cap) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[16] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%.255s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* exited meanwhile */
        if (fgets(name, sizeof name, f) != NULL) {
            name[strcspn(name, "\n")] = '\0';
            if (strncmp(name, prefix, strlen(prefix)) == 0) {
                if (n < cap)
                    memcpy(names[n], name, sizeof name);
                n++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Waits until no thread is named with `prefix`: a joined thread runs no
   code any more, but the kernel may list it for a moment while it reaps
   it (a state certain to come). */
static void wait_no_threads_named(const char *prefix) {
    double end = now_s() + DEADLINE_S;
    while (threads_named(prefix, NULL, 0) != 0) {
        CHECK(now_s() < end);
        sched_yield();
    }
}

/* ------------------------------------------------------------------ */

typedef struct {
    atomic_int starts[4];
    atomic_int stops[4];
    atomic_int wrong_thread; /* a hook ran on a thread not named for its index */
} hooks;

static void check_own_name(size_t index, hooks *h) {
    char path[64], name[32] = {0}, want[32];
    snprintf(path, sizeof path, "/proc/thread-self/comm");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    CHECK(fgets(name, sizeof name, f) != NULL);
    fclose(f);
    name[strcspn(name, "\n")] = '\0';
    snprintf(want, sizeof want, "cemb-%zu", index);
    if (strcmp(name, want) != 0)
        atomic_fetch_add(&h->wrong_thread, 1);
}

static void on_start(size_t index, void *user) {
    hooks *h = user;
    CHECK(index < 4);
    check_own_name(index, h);
    atomic_fetch_add(&h->starts[index], 1);
}

static void on_stop(size_t index, void *user) {
    hooks *h = user;
    CHECK(index < 4);
    check_own_name(index, h);
    atomic_fetch_add(&h->stops[index], 1);
}

static void test_options_and_hooks(void) {
    SECTION("options: workers, names, hooks once per worker with distinct indices");
    hooks h;
    for (int i = 0; i < 4; i++) {
        atomic_init(&h.starts[i], 0);
        atomic_init(&h.stops[i], 0);
    }
    atomic_init(&h.wrong_thread, 0);
    wsrt_runtime_opts opts = {0};
    opts.workers = 3;
    opts.thread_name = "cemb";
    opts.on_thread_start = on_start;
    opts.on_thread_stop = on_stop;
    opts.hook_user = &h;
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new_opts(&opts, &rt));
    CHECK_EQ(wsrt_runtime_workers(rt), 3);
    /* A task runs only after its worker's start hook: one on each worker. */
    blocker b[3];
    wsrt_task *t[3];
    for (int i = 0; i < 3; i++) {
        blocker_init(&b[i]);
        t[i] = occupy(rt, &b[i]);
    }
    char names[4][16];
    CHECK_EQ(threads_named("cemb-", names, 4), 3);
    for (int i = 0; i < 3; i++) {
        event_set(&b[i].release);
        wait_ok(t[i]);
        wsrt_task_release(t[i]);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(atomic_load(&h.stops[i]), 0);
    free_runtime(rt);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(atomic_load(&h.starts[i]), 1);
        CHECK_EQ(atomic_load(&h.stops[i]), 1);
        blocker_destroy(&b[i]);
    }
    CHECK_EQ(atomic_load(&h.starts[3]), 0);
    CHECK_EQ(atomic_load(&h.wrong_thread), 0);
    wait_no_threads_named("cemb-");
}

static void test_option_errors(void) {
    SECTION("options: defaults and bad input");
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new_opts(NULL, &rt));
    CHECK(wsrt_runtime_workers(rt) >= 1);
    free_runtime(rt);
    wsrt_runtime_opts zero = {0};
    CHECK_OK(wsrt_runtime_new_opts(&zero, &rt));
    free_runtime(rt);
    CHECK_STATUS(wsrt_runtime_new_opts(&zero, NULL), WSRT_ERR_NULL);
    wsrt_runtime_opts bad = {0};
    bad.thread_name = "\xff\xfe";
    rt = NULL;
    CHECK_STATUS(wsrt_runtime_new_opts(&bad, &rt), WSRT_ERR_INVALID_ARG);
    CHECK(rt == NULL); /* outputs only on success */
    bad.thread_name = NULL;
    bad.workers = 5000;
    CHECK_STATUS(wsrt_runtime_new_opts(&bad, &rt), WSRT_ERR_INVALID_ARG);
    CHECK(rt == NULL);
}

/* Recurses `depth` times with 64 KiB of stack a frame; returns a sum over
   every frame so that none can be left out. */
static int64_t deep(int depth) {
    volatile char frame[64 * 1024];
    frame[depth % (int)sizeof frame] = (char)depth;
    int64_t below = depth == 0 ? 0 : deep(depth - 1);
    return below + frame[depth % (int)sizeof frame];
}

static int32_t deep_fn(void *arg, void **result) {
    *result = (void *)(intptr_t)deep((int)(intptr_t)arg);
    return WSRT_TASK_OK;
}

static void test_stack_size(void) {
    SECTION("options: a task using 8 MiB of stack on a 16 MiB stack");
    wsrt_runtime_opts opts = {0};
    opts.workers = 1;
    opts.stack_size = 16u << 20;
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new_opts(&opts, &rt));
    wsrt_task *t = spawn(rt, deep_fn, (void *)(intptr_t)128, NULL, NULL);
    wait_ok(t);
    void *sum = NULL;
    CHECK_OK(wsrt_task_result(t, &sum));
    int64_t want = 0;
    for (int d = 0; d <= 128; d++)
        want += (char)d;
    CHECK_EQ((intptr_t)sum, want);
    wsrt_task_release(t);
    free_runtime(rt);
}

static void test_shutdown_timeout(void) {
    SECTION("shutdown with a time limit: TIMEOUT on time, a later call OK, threads joined");
    wsrt_runtime_opts opts = {0};
    opts.workers = 2;
    opts.thread_name = "cstop";
    wsrt_runtime *rt = NULL;
    CHECK_OK(wsrt_runtime_new_opts(&opts, &rt));
    blocker b;
    blocker_init(&b); /* ignores its cancel request */
    wsrt_task *stubborn = occupy(rt, &b);
    double begun = now_s();
    CHECK_STATUS(wsrt_runtime_shutdown_timeout(rt, WSRT_SHUTDOWN_CANCEL, 50 * 1000 * 1000),
                 WSRT_ERR_TIMEOUT);
    CHECK(now_s() - begun >= 0.050);
    CHECK(wsrt_task_cancel_requested(stubborn));
    CHECK_EQ(wsrt_task_state(stubborn), WSRT_STATE_RUNNING);
    wsrt_task *late = NULL;
    CHECK_STATUS(wsrt_spawn(rt, noop_fn, NULL, NULL, &late), WSRT_ERR_SHUTDOWN);
    CHECK(late == NULL);
    CHECK_STATUS(wsrt_runtime_shutdown_timeout(NULL, WSRT_SHUTDOWN_CANCEL, 0), WSRT_ERR_NULL);
    CHECK_STATUS(wsrt_runtime_shutdown_timeout(rt, (wsrt_shutdown_mode)7, 0),
                 WSRT_ERR_INVALID_ARG);
    event_set(&b.release);
    CHECK_OK(wsrt_runtime_shutdown_timeout(rt, WSRT_SHUTDOWN_CANCEL, -1));
    CHECK_EQ(wsrt_task_state(stubborn), WSRT_STATE_SUCCEEDED);
    CHECK_EQ(atomic_load(&b.saw_cancel), 1);
    CHECK_EQ(atomic_load(&b.arg_drops), 1);
    CHECK_EQ(threads_named("cstop-", NULL, 0), 2);
    free_runtime(rt);
    wait_no_threads_named("cstop-");
    wsrt_task_release(stubborn);
    blocker_destroy(&b);
}

/* ------------------------------------------------------------------ */

static void test_fork(void) {
    SECTION("fork: the child gets WSRT_ERR_FORKED from an inherited runtime, a new one works");
    wsrt_runtime *rt = new_runtime(1);
    wsrt_task *done = spawn(rt, noop_fn, NULL, NULL, NULL);
    wait_ok(done);
    blocker b;
    blocker_init(&b);
    wsrt_task *running = occupy(rt, &b);
    counter c;
    counter_init(&c, WSRT_TASK_OK);
    wsrt_task *pending = spawn(rt, counter_fn, &c, counter_drop, NULL);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child: none of rt's workers exist here. */
        wsrt_task *t = NULL;
        CHECK_STATUS(wsrt_spawn(rt, noop_fn, NULL, NULL, &t), WSRT_ERR_FORKED);
        CHECK(t == NULL);
        CHECK_STATUS(wsrt_task_wait(pending, -1), WSRT_ERR_FORKED);
        CHECK_STATUS(wsrt_task_wait(running, 1000), WSRT_ERR_FORKED);
        CHECK_OK(wsrt_task_wait(done, -1)); /* done before the fork */
        CHECK_EQ(wsrt_task_state(pending), WSRT_STATE_PENDING);
        CHECK(!wsrt_task_cancel(pending));
        CHECK_EQ(wsrt_task_state(pending), WSRT_STATE_PENDING);
        size_t len = 0;
        CHECK_STATUS(wsrt_runtime_all_tasks(rt, NULL, 0, &len), WSRT_ERR_FORKED);
        CHECK_STATUS(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_CANCEL), WSRT_ERR_FORKED);
        CHECK_STATUS(wsrt_runtime_shutdown_timeout(rt, WSRT_SHUTDOWN_DRAIN, 1000),
                     WSRT_ERR_FORKED);
        /* A runtime of the child's own works. */
        wsrt_runtime *mine = new_runtime(2);
        counter mc;
        counter_init(&mc, WSRT_TASK_OK);
        wsrt_task *m = spawn(mine, counter_fn, &mc, counter_drop, NULL);
        wait_ok(m);
        CHECK_EQ(wsrt_task_state(m), WSRT_STATE_SUCCEEDED);
        CHECK_EQ(atomic_load(&mc.calls), 1);
        wsrt_task_release(m);
        free_runtime(mine);
        CHECK_EQ(atomic_load(&mc.arg_drops), 1);
        /* The inherited one is abandoned, not waited for; its handles may
           still be released. */
        CHECK_OK(wsrt_runtime_free(rt));
        wsrt_task_release(done);
        wsrt_task_release(running);
        wsrt_task_release(pending);
        /* Every check passed. Under valgrind, the child's memory still
           holds what the parent's workers kept on their stacks and in
           their thread-locals, which no thread of the child can reach:
           leaks of the fork, not of wsrt. Exec, so that valgrind does not
           count them (exit() above would have, on a failed check). */
        fflush(stdout);
        execl("/bin/true", "true", (char *)NULL);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* The parent's runtime is untouched. */
    CHECK_EQ(wsrt_task_state(pending), WSRT_STATE_PENDING);
    event_set(&b.release);
    wait_ok(running);
    wait_ok(pending);
    CHECK_EQ(atomic_load(&c.calls), 1);
    wsrt_task_release(done);
    wsrt_task_release(running);
    wsrt_task_release(pending);
    free_runtime(rt);
    CHECK_EQ(atomic_load(&c.arg_drops), 1);
    blocker_destroy(&b);
}

int main(void) {
    printf("embedding:\n");
    test_options_and_hooks();
    test_option_errors();
    test_stack_size();
    test_shutdown_timeout();
    test_fork();
    printf("embedding: all passed\n");
    return 0;
}
