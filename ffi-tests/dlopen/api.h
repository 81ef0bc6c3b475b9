/*
 * api.h: what the dlopen tests (test_dlopen.c, dlclose_loop.c) share: the
 * functions of libwsrt.so they look up with dlsym, and a fork-join task
 * that uses them. Static functions: each test is one program.
 */
#ifndef WSRT_FFI_TESTS_DLOPEN_API_H
#define WSRT_FFI_TESTS_DLOPEN_API_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

/* The runtime fib_task spawns on. */
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

/* dlopen(path), then every function of `api`; fails the test if one is missing. */
static void *load_api(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen(%s): %s\n", path, dlerror());
        exit(1);
    }
    /* POSIX: a function pointer goes through a data pointer (dlsym). */
    *(void **)&api.runtime_new = need(lib, "wsrt_runtime_new");
    *(void **)&api.runtime_free = need(lib, "wsrt_runtime_free");
    *(void **)&api.spawn = need(lib, "wsrt_spawn");
    *(void **)&api.task_wait = need(lib, "wsrt_task_wait");
    *(void **)&api.task_result = need(lib, "wsrt_task_result");
    *(void **)&api.task_release = need(lib, "wsrt_task_release");
    *(void **)&api.current_task = need(lib, "wsrt_current_task");
    return lib;
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

#endif /* WSRT_FFI_TESTS_DLOPEN_API_H */
