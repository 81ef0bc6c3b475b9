// cpp.cpp: the C ABI used from C++17.
//
// Covers: wsrt.h compiles as C++ (its extern "C" block links against the
// library); captureless lambdas converted to wsrt_task_fn / wsrt_done_fn /
// wsrt_drop_fn; spawn, wait and result (with a C++ object as the result,
// freed by result_drop); failure codes; cancel of a PENDING task and of a
// RUNNING task, with std::thread and std::condition_variable in control;
// done-callbacks appending to a std::vector in the order they were added;
// several std::threads spawning on one runtime at once (unique ids, every
// task run exactly once).
//
// Races are never ordered by sleeping: a Blocker task holds the worker
// between two Events (a std::mutex and a std::condition_variable) that the
// test sets, and a one-worker runtime runs its queue in order.

#include "wsrt.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr)) {                                                         \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,        \
                         __LINE__, #expr);                                     \
            std::exit(1);                                                      \
        }                                                                      \
    } while (0)

#define CHECK_STATUS(call, expected)                                           \
    do {                                                                       \
        wsrt_status check_s_ = (call);                                         \
        if (check_s_ != (expected)) {                                          \
            std::fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n",  \
                         __FILE__, __LINE__, #call, static_cast<int>(check_s_), \
                         wsrt_status_str(check_s_), #expected);                \
            std::exit(1);                                                      \
        }                                                                      \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, WSRT_OK)

namespace {

// A one-shot flag threads can wait for.
class Event {
  public:
    void set() {
        std::lock_guard<std::mutex> lock(mu_);
        set_ = true;
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return set_; });
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool set_ = false;
};

// A task that is RUNNING between `started` and `release`.
struct Blocker {
    Event started;
    Event release;
    bool honor_cancel = false;
    std::atomic<int> calls{0};
};

int32_t blocker_fn(void *arg, void **) {
    auto *b = static_cast<Blocker *>(arg);
    b->calls++;
    b->started.set();
    b->release.wait();
    if (b->honor_cancel && wsrt_cancel_requested())
        return WSRT_TASK_CANCELLED;
    return WSRT_TASK_OK;
}

wsrt_runtime *new_runtime(std::size_t workers) {
    wsrt_runtime *rt = nullptr;
    CHECK_OK(wsrt_runtime_new(workers, &rt));
    CHECK(rt != nullptr);
    return rt;
}

std::string name_of(const wsrt_task *t) {
    std::size_t n = wsrt_task_name(t, nullptr, 0);
    std::string s(n, '\0');
    CHECK(wsrt_task_name(t, &s[0], n + 1) == n); // writes n bytes + NUL
    return s;
}

std::atomic<int> results_freed{0};

void test_spawn_wait_result() {
    std::puts("cpp: spawn, wait, result");
    wsrt_runtime *rt = new_runtime(2);

    // The result is a heap std::string, freed by result_drop.
    wsrt_spawn_opts opts{};
    opts.name = "greeter";
    opts.result_drop = [](void *p) {
        results_freed++;
        delete static_cast<std::string *>(p);
    };
    wsrt_task_fn greet = [](void *arg, void **result) -> int32_t {
        auto *who = static_cast<const char *>(arg);
        *result = new std::string(std::string("hello, ") + who);
        return WSRT_TASK_OK;
    };
    static const char who[] = "world";
    wsrt_task *t = nullptr;
    CHECK_OK(wsrt_spawn(rt, greet, const_cast<char *>(who), &opts, &t));
    CHECK_OK(wsrt_task_wait(t, -1));
    CHECK(wsrt_task_state(t) == WSRT_STATE_SUCCEEDED);
    void *out = nullptr;
    CHECK_OK(wsrt_task_result(t, &out));
    CHECK(*static_cast<std::string *>(out) == "hello, world");
    CHECK(name_of(t) == "greeter");

    // A failure code.
    wsrt_task *f = nullptr;
    CHECK_OK(wsrt_spawn(
        rt, [](void *, void **) -> int32_t { return 17; }, nullptr, nullptr, &f));
    CHECK_OK(wsrt_task_wait(f, -1));
    CHECK(wsrt_task_state(f) == WSRT_STATE_FAILED);
    CHECK_STATUS(wsrt_task_result(f, &out), WSRT_ERR_FAILED);
    int32_t code = 0;
    CHECK_OK(wsrt_task_error(f, &code));
    CHECK(code == 17);

    wsrt_task_release(f);
    CHECK(results_freed == 0);
    CHECK_OK(wsrt_runtime_free(rt)); // joins the workers: only t holds it now
    CHECK(results_freed == 0);
    wsrt_task_release(t);
    CHECK(results_freed == 1);
}

void test_cancel() {
    std::puts("cpp: cancel PENDING and RUNNING tasks");
    wsrt_runtime *rt = new_runtime(1);
    Blocker busy;
    busy.honor_cancel = true;
    wsrt_task *running = nullptr;
    CHECK_OK(wsrt_spawn(rt, blocker_fn, &busy, nullptr, &running));
    busy.started.wait();

    // Queued behind the busy worker: PENDING, so cancel ends it at once.
    std::atomic<int> calls{0};
    std::atomic<int> drops{0};
    struct Arg {
        std::atomic<int> *calls;
        std::atomic<int> *drops;
    } arg{&calls, &drops};
    wsrt_spawn_opts opts{};
    opts.arg_drop = [](void *p) { (*static_cast<Arg *>(p)->drops)++; };
    wsrt_task *pending = nullptr;
    CHECK_OK(wsrt_spawn(
        rt,
        [](void *p, void **) -> int32_t {
            (*static_cast<Arg *>(p)->calls)++;
            return WSRT_TASK_OK;
        },
        &arg, &opts, &pending));
    CHECK(wsrt_task_state(pending) == WSRT_STATE_PENDING);
    CHECK(wsrt_task_cancel(pending));
    CHECK(wsrt_task_state(pending) == WSRT_STATE_CANCELLED);
    CHECK(drops == 1);
    CHECK(!wsrt_task_cancel(pending));

    // RUNNING: a request; another std::thread releases it.
    CHECK(wsrt_task_cancel(running));
    CHECK(wsrt_task_state(running) == WSRT_STATE_RUNNING);
    CHECK(wsrt_task_cancel_requested(running));
    std::thread releaser([&busy] { busy.release.set(); });
    CHECK_OK(wsrt_task_wait(running, -1));
    releaser.join();
    CHECK(wsrt_task_state(running) == WSRT_STATE_CANCELLED);
    void *out = nullptr;
    CHECK_STATUS(wsrt_task_result(running, &out), WSRT_ERR_CANCELLED);

    wsrt_task_release(pending);
    wsrt_task_release(running);
    CHECK_OK(wsrt_runtime_free(rt));
    CHECK(calls == 0);
    CHECK(drops == 1);
    CHECK(busy.calls == 1);
}

// Done-callbacks write into a vector; `user` points to a Slot.
struct Log {
    std::mutex mu;
    std::vector<int> order;
    std::vector<wsrt_state> states;
    Event last;
};

struct Slot {
    Log *log;
    int id;
};

void test_callbacks() {
    std::puts("cpp: done-callbacks in order");
    wsrt_runtime *rt = new_runtime(1);
    Blocker busy;
    wsrt_task *occ = nullptr;
    CHECK_OK(wsrt_spawn(rt, blocker_fn, &busy, nullptr, &occ));
    busy.started.wait();

    Log log;
    wsrt_done_fn record = [](wsrt_task *t, void *user) {
        auto *slot = static_cast<Slot *>(user);
        std::lock_guard<std::mutex> lock(slot->log->mu);
        slot->log->order.push_back(slot->id);
        slot->log->states.push_back(wsrt_task_state(t));
        if (slot->id == 5)
            slot->log->last.set();
    };
    wsrt_done_fn never = [](wsrt_task *, void *) {
        std::fputs("a removed callback ran\n", stderr);
        std::exit(1);
    };
    std::vector<Slot> slots;
    for (int id = 1; id <= 5; id++)
        slots.push_back(Slot{&log, id});

    wsrt_task *t = nullptr;
    CHECK_OK(wsrt_spawn(
        rt, [](void *, void **) -> int32_t { return WSRT_TASK_OK; }, nullptr,
        nullptr, &t));
    for (auto &slot : slots) {
        CHECK_OK(wsrt_task_add_done_callback(t, record, &slot));
        CHECK_OK(wsrt_task_add_done_callback(t, never, &slot));
    }
    for (auto &slot : slots)
        CHECK(wsrt_task_remove_done_callback(t, never, &slot) == 1);

    busy.release.set();
    log.last.wait();
    CHECK_OK(wsrt_task_wait(t, -1));
    {
        std::lock_guard<std::mutex> lock(log.mu);
        CHECK((log.order == std::vector<int>{1, 2, 3, 4, 5}));
        for (wsrt_state s : log.states)
            CHECK(s == WSRT_STATE_SUCCEEDED);
    }

    // Added after done: runs before add returns.
    Slot late{&log, 6};
    CHECK_OK(wsrt_task_add_done_callback(t, record, &late));
    {
        std::lock_guard<std::mutex> lock(log.mu);
        CHECK(log.order.size() == 6);
        CHECK(log.order.back() == 6);
    }

    wsrt_task_release(t);
    wsrt_task_release(occ);
    CHECK_OK(wsrt_runtime_free(rt));
    CHECK(log.order.size() == 6); // each ran exactly once
}

void test_threads() {
    std::puts("cpp: several std::threads spawn on one runtime");
    wsrt_runtime *rt = new_runtime(3);
    constexpr int kThreads = 4;
    constexpr int kTasks = 50;
    std::vector<std::atomic<int>> runs(kThreads * kTasks);
    for (auto &r : runs)
        r = 0;
    std::vector<std::vector<uint64_t>> ids(kThreads);

    std::vector<std::thread> threads;
    for (int th = 0; th < kThreads; th++) {
        threads.emplace_back([rt, th, &runs, &ids] {
            std::vector<wsrt_task *> tasks;
            for (int i = 0; i < kTasks; i++) {
                wsrt_task *t = nullptr;
                CHECK_OK(wsrt_spawn(
                    rt,
                    [](void *arg, void **result) -> int32_t {
                        (*static_cast<std::atomic<int> *>(arg))++;
                        *result = arg;
                        return WSRT_TASK_OK;
                    },
                    &runs[th * kTasks + i], nullptr, &t));
                tasks.push_back(t);
            }
            for (int i = 0; i < kTasks; i++) {
                wsrt_task *t = tasks[i];
                CHECK_OK(wsrt_task_wait(t, -1));
                void *out = nullptr;
                CHECK_OK(wsrt_task_result(t, &out));
                CHECK(out == &runs[th * kTasks + i]);
                ids[th].push_back(wsrt_task_id(t));
                // Ids increase in spawn order, also per thread.
                if (i > 0)
                    CHECK(ids[th][i] > ids[th][i - 1]);
                wsrt_task_release(t);
            }
        });
    }
    for (auto &t : threads)
        t.join();

    std::set<uint64_t> unique;
    for (auto &v : ids)
        unique.insert(v.begin(), v.end());
    CHECK(unique.size() == static_cast<std::size_t>(kThreads * kTasks));
    CHECK(unique.count(0) == 0);
    for (auto &r : runs)
        CHECK(r == 1);

    CHECK_OK(wsrt_runtime_shutdown(rt, WSRT_SHUTDOWN_DRAIN));
    wsrt_stats st{};
    CHECK_OK(wsrt_runtime_stats(rt, &st));
    CHECK(st.spawned == kThreads * kTasks);
    CHECK(st.succeeded == kThreads * kTasks);
    CHECK(st.workers == 3);
    CHECK_OK(wsrt_runtime_free(rt));
}

} // namespace

int main() {
    CHECK(std::strcmp(wsrt_version(), WSRT_VERSION_STRING) == 0);
    test_spawn_wait_result();
    test_cancel();
    test_callbacks();
    test_threads();
    std::puts("cpp: all passed");
    return 0;
}
