/*
 * dlclose_loop.c: libwsrt.so loaded, used and unloaded 100 times, as a
 * plugin host does. Each round: dlopen, then on a thread of the host: a
 * runtime of two workers, a fork-join tree of tasks spawned and waited
 * for, wsrt_runtime_free, and then no thread of the runtime left in the
 * process (/proc/self/task); the host thread exits, and dlclose unloads
 * the library (it is no longer mapped). The host thread exits first
 * because a thread that starts threads through Rust's standard library
 * gets a thread-local destructor of the library, and glibc keeps a library
 * with pending thread-local destructors loaded until that thread exits
 * (docs/api.md, "Embedding").
 *
 * Usage: dlclose_loop PATH_TO_LIBWSRT_SO [ROUNDS] (tests/ffi.rs passes it).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "api.h"


/* Whether a file whose path contains `name` is mapped in this process. */
static bool mapped(const char *name) {
    FILE *maps = fopen("/proc/self/maps", "r");
    CHECK(maps != NULL);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, maps) != NULL)
        found = strstr(line, name) != NULL;
    fclose(maps);
    return found;
}

/* The threads of this process now. */
static int threads(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/*
 * Waits until this process has `n` threads. A joined thread can no longer
 * run any code (the kernel clears its id, which pthread_join waits for,
 * after it left user space), but it stays listed in /proc for a moment
 * while the kernel reaps it: a state certain to come.
 */
static void wait_threads(int n) {
    double end = now_s() + DEADLINE_S;
    while (threads() != n) {
        CHECK(now_s() < end);
        sched_yield();
    }
}

/* One round's use of the library, on a thread of the host's. */
static void *host(void *unused) {
    (void)unused;
    CHECK_EQ(api.runtime_new(2, &g_rt), WSRT_OK);
    CHECK(threads() >= 3); /* main, this one, the workers as they start */
    wsrt_task *t = NULL;
    CHECK_EQ(api.spawn(g_rt, fib_task, (void *)(intptr_t)10, NULL, &t), WSRT_OK);
    CHECK_EQ(wait_result(t), 55);
    CHECK_EQ(api.runtime_free(g_rt), WSRT_OK);
    /* No thread of the runtime exists any more. */
    wait_threads(2);
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2 || argc == 3);
    int rounds = argc == 3 ? atoi(argv[2]) : 100;
    CHECK_EQ(threads(), 1);
    for (int round = 0; round < rounds; round++) {
        void *lib = load_api(argv[1]);

        pthread_t thread;
        CHECK_EQ(pthread_create(&thread, NULL, host, NULL), 0);
        CHECK_EQ(pthread_join(thread, NULL), 0);
        wait_threads(1);
        CHECK_EQ(dlclose(lib), 0);
        /* Really unloaded: nothing of it stays (a pending thread-local
           destructor, an atexit handler) to keep it mapped. */
        CHECK(!mapped("libwsrt"));
    }
    printf("dlclose_loop: %d rounds ok\n", rounds);
    return 0;
}
