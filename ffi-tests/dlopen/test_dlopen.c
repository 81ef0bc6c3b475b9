/*
 * test_dlopen.c: libwsrt.so loaded at run time with dlopen, as Python's
 * ctypes or a plugin host loads it, instead of linked at build time.
 *
 * A library loaded that way gets its thread-locals from the dynamic TLS
 * space, also in threads that existed before it was loaded (which is why
 * src/alloc.rs builds mimalloc with local-dynamic TLS: initial-exec TLS
 * would need room in every thread's static TLS block). Here a thread
 * created before the dlopen spawns tasks, and the tasks, on the runtime's
 * workers, spawn and wait for children: every thread-local of the library
 * is used from threads it did not see start.
 *
 * Usage: test_dlopen PATH_TO_LIBWSRT_SO (tests/ffi.rs passes it). The
 * library is not dlclose'd: a Rust shared library with thread-local
 * destructors stays loaded until the process exits anyway.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdint.h>

#include "../common.h"

static struct {
    enum wsrt_status (*runtime_new)(size_t, struct wsrt_runtime **);
    enum wsrt_status (*runtime_free)(struct wsrt_runtime *);
    enum wsrt_status (*spawn)(struct wsrt_runtime *, wsrt_task_fn, void *,
                              const struct wsrt_spawn_opts *, struct wsrt_task **);
    enum wsrt_status (*task_wait)(struct wsrt_task *, int64_t);
    enum wsrt_status (*task_result)(const struct wsrt_task *, void **);
    void (*task_release)(struct wsrt_task *);
    struct wsrt_task *(*current_task)(void);
} api;

static wsrt_runtime *g_rt;

/* Loads `name` from the library, or fails the test. */
static void *need(void *lib, const char *name) {
    void *sym = dlsym(lib, name);
    if (sym == NULL) {
        fprintf(stderr, "dlsym(%s): %s\n", name, dlerror());
        exit(1);
    }
    return sym;
}

static intptr_t wait_result(wsrt_task *t) {
    void *out = NULL;
    CHECK_EQ(api.task_wait(t, -1), WSRT_OK);
    CHECK_EQ(api.task_result(t, &out), WSRT_OK);
    api.task_release(t);
    return (intptr_t)out;
}

/* fib(n) through handles: spawn fib(n-1), compute fib(n-2) here, wait. */
static int32_t fib_task(void *arg, void **result) {
    intptr_t n = (intptr_t)arg;
    CHECK(api.current_task() != NULL);
    if (n < 2) {
        *result = (void *)n;
        return WSRT_TASK_OK;
    }
    wsrt_task *child = NULL;
    CHECK_EQ(api.spawn(g_rt, fib_task, (void *)(n - 1), NULL, &child), WSRT_OK);
    void *b = NULL;
    fib_task((void *)(n - 2), &b);
    *result = (void *)(wait_result(child) + (intptr_t)b);
    return WSRT_TASK_OK;
}

/* A thread created before the library was loaded. */
static event loaded;

static void *early_thread(void *out) {
    event_wait(&loaded);
    CHECK(api.current_task() == NULL);
    wsrt_task *t = NULL;
    CHECK_EQ(api.spawn(g_rt, fib_task, (void *)(intptr_t)15, NULL, &t), WSRT_OK);
    *(intptr_t *)out = wait_result(t);
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    event_init(&loaded);
    intptr_t early = 0;
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, early_thread, &early), 0);

    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen(%s): %s\n", argv[1], dlerror());
        return 1;
    }
    /* POSIX: a function pointer goes through a data pointer (dlsym). */
    *(void **)&api.runtime_new = need(lib, "wsrt_runtime_new");
    *(void **)&api.runtime_free = need(lib, "wsrt_runtime_free");
    *(void **)&api.spawn = need(lib, "wsrt_spawn");
    *(void **)&api.task_wait = need(lib, "wsrt_task_wait");
    *(void **)&api.task_result = need(lib, "wsrt_task_result");
    *(void **)&api.task_release = need(lib, "wsrt_task_release");
    *(void **)&api.current_task = need(lib, "wsrt_current_task");

    CHECK_EQ(api.runtime_new(2, &g_rt), WSRT_OK);
    event_set(&loaded);

    wsrt_task *t = NULL;
    CHECK_EQ(api.spawn(g_rt, fib_task, (void *)(intptr_t)18, NULL, &t), WSRT_OK);
    CHECK_EQ(wait_result(t), 2584);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_EQ(early, 610);
    CHECK_EQ(api.runtime_free(g_rt), WSRT_OK);
    printf("test_dlopen: ok\n");
    return 0;
}
