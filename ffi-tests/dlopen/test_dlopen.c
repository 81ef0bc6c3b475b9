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

#include "api.h"

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

    load_api(argv[1]);

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
