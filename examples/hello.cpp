// hello.cpp: wsrt from C++.
//
// The header is plain C with an extern "C" block, so C++ includes it
// directly. Task functions and callbacks are C function pointers: a lambda
// that captures nothing converts to one. Anything the task needs travels
// through its `arg` pointer, and its result through `*result`.
//
// Build (from the repository root, after `cargo build`):
//   g++ -std=c++17 -pthread -I include examples/hello.cpp -o hello -L target/debug -lwsrt -Wl,-rpath,target/debug

#include "wsrt.h"

#include <cstdio>
#include <string>
#include <vector>

int main() {
    std::printf("wsrt %s\n", wsrt_version());

    wsrt_runtime *rt = nullptr;
    if (wsrt_runtime_new(2, &rt) != WSRT_OK)
        return 1;

    // Each task greets one name and returns a new std::string. result_drop
    // deletes it when the last handle to the task is released.
    wsrt_spawn_opts opts{};
    opts.result_drop = [](void *p) { delete static_cast<std::string *>(p); };

    std::vector<std::string> names{"Ada", "Grace", "Linus"};
    std::vector<wsrt_task *> tasks;
    for (std::string &name : names) {
        wsrt_task *t = nullptr;
        wsrt_spawn(
            rt,
            [](void *arg, void **result) -> int32_t {
                auto *name = static_cast<std::string *>(arg);
                *result = new std::string("Hello, " + *name + "!");
                return WSRT_TASK_OK;
            },
            &name, &opts, &t);
        tasks.push_back(t);
    }

    // Collect the results in spawn order.
    bool ok = true;
    for (std::size_t i = 0; i < tasks.size(); i++) {
        wsrt_task_wait(tasks[i], -1);
        void *result = nullptr;
        if (wsrt_task_result(tasks[i], &result) != WSRT_OK) {
            ok = false;
            continue;
        }
        const std::string &greeting = *static_cast<std::string *>(result);
        char task_name[32];
        wsrt_task_name(tasks[i], task_name, sizeof task_name);
        std::printf("%s says: %s\n", task_name, greeting.c_str());
        ok = ok && greeting == "Hello, " + names[i] + "!";
    }

    for (wsrt_task *t : tasks)
        wsrt_task_release(t); // result_drop deletes each string once
    wsrt_runtime_free(rt);        // the task is no longer referenced

    std::puts(ok ? "hello: OK" : "hello: UNEXPECTED BEHAVIOUR");
    return ok ? 0 : 1;
}
