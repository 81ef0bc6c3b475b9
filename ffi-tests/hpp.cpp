// The C++ wrapper (include/wsrt.hpp): RAII handles, spawning callables,
// get() and its exceptions, on_done with lambdas, and that every captured
// object is destroyed exactly once.
//
// Races are never ordered by sleeping: a Gate (an atomic flag the test opens)
// holds the runtime's only worker, and a one-worker runtime runs its queue in
// order.
#include "wsrt.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
      std::exit(1);                                                         \
    }                                                                       \
  } while (0)

namespace {

std::atomic<int> live{0};
std::atomic<int> destroyed{0};

/** Counts its copies alive; moved-from copies count too (each destroyed once). */
struct Tracked {
  int value;
  explicit Tracked(int v) : value(v) { ++live; }
  Tracked(const Tracked &o) : value(o.value) { ++live; }
  Tracked(Tracked &&o) noexcept : value(o.value) { ++live; }
  ~Tracked() {
    --live;
    ++destroyed;
  }
};

/** Blocks the runtime's only worker until release() is called. */
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  void hold() {
    entered = true;
    while (!open) {
    }
  }
  void wait_entered() const {
    while (!entered) {
    }
  }
  void release() { open = true; }
};

void values_and_captures() {
  {
    wsrt::Runtime rt(2);
    wsrt::Task<int> t = rt.spawn([tracked = Tracked(20)] { return tracked.value + 22; });
    CHECK(t.get() == 42);
    CHECK(t.get() == 42);  // asyncio result(): repeatable
    CHECK(t.state() == wsrt::State::Succeeded);
    wsrt::Task<int> copy = t;  // retain
    CHECK(copy.id() == t.id());
    wsrt::Task<std::string> s = rt.spawn([] { return std::string("hello"); });
    CHECK(s.get() == "hello");
    wsrt::Task<void> v = rt.spawn([] {});
    v.get();
    CHECK(v.done());
  }
  CHECK(live == 0);  // every captured object destroyed, none twice (ASan/valgrind)
}

void exceptions() {
  wsrt::Runtime rt(1);
  wsrt::Task<int> t = rt.spawn([]() -> int { throw std::runtime_error("boom"); });
  bool caught = false;
  try {
    t.get();
  } catch (const std::runtime_error &e) {
    caught = std::string(e.what()) == "boom";
  }
  CHECK(caught);
  CHECK(t.state() == wsrt::State::Failed);

  Gate gate;
  wsrt::Task<void> blocker = rt.spawn([&gate] { gate.hold(); });
  gate.wait_entered();
  int before = destroyed;
  wsrt::Task<int> pending = rt.spawn([tracked = Tracked(1)] { return tracked.value; });
  int after_spawn = destroyed;
  CHECK(pending.state() == wsrt::State::Pending);
  CHECK(pending.cancel());
  CHECK(pending.state() == wsrt::State::Cancelled);
  // The closure (with its capture) was destroyed by the cancel, exactly once.
  CHECK(destroyed == after_spawn + 1);
  CHECK(after_spawn >= before);
  bool cancelled = false;
  try {
    pending.get();
  } catch (const wsrt::CancelledError &e) {
    cancelled = e.status() == WSRT_ERR_CANCELLED;
  }
  CHECK(cancelled);
  gate.release();
  blocker.get();
}

void callbacks_in_order() {
  std::vector<int> order;
  std::mutex m;
  {
    wsrt::Runtime rt(1);
    Gate gate;
    wsrt::Task<int> t = rt.spawn([&gate] {
      gate.hold();
      return 7;
    });
    for (int i = 0; i < 4; ++i) {
      t.on_done([i, &order, &m](wsrt::Task<int> &done) {
        CHECK(done.done());
        std::lock_guard<std::mutex> lock(m);
        order.push_back(i);
      });
    }
    gate.release();
    CHECK(t.get() == 7);
    rt.shutdown();
    // Added after done: runs now, on this thread.
    t.on_done([&order](wsrt::Task<int> &) { order.push_back(99); });
  }
  CHECK((order == std::vector<int>{0, 1, 2, 3, 99}));
}

void names_and_moves() {
  wsrt::Runtime rt(1);
  wsrt::Task<int> t = rt.spawn([] { return 1; }, "first");
  CHECK(t.name() == "first");
  t.set_name("renamed");
  CHECK(t.name() == "renamed");
  wsrt::Task<int> moved = std::move(t);
  CHECK(moved.get() == 1);
  wsrt::Runtime other = std::move(rt);
  CHECK(other.workers() == 1);
  CHECK(other.spawn([] { return 2; }).get() == 2);
}

void groups_wait_when_they_go() {
  wsrt::Runtime rt(2);
  std::atomic<int> ran{0};
  std::vector<wsrt::Task<int>> tasks;
  {
    wsrt::Group g(rt);
    for (int i = 0; i < 8; i++) {
      tasks.push_back(g.spawn([&ran, t = Tracked(i)] {
        ++ran;
        return t.value;
      }));
    }
  }  // the destructor waited: every task is done
  CHECK(ran == 8);
  for (auto &t : tasks) CHECK(t.done());
  CHECK(tasks[3].get() == 3);

  // A cancelled group: queued tasks end CANCELLED without running; a
  // shielded one runs; get() throws CancelledError.
  wsrt::Runtime one(1);
  Gate gate;
  auto blocker = one.spawn([&gate] { gate.hold(); });
  gate.wait_entered();
  wsrt::Group g(one, WSRT_GROUP_CANCEL_ON_FAILURE);
  wsrt::Group below(g, 0);
  auto plain = below.spawn([] { return 1; });
  auto shielded = g.spawn_shielded([] { return 2; });
  CHECK(g.cancel());
  CHECK(!g.cancel());
  CHECK(below.cancelled());
  gate.release();
  CHECK(g.wait());
  CHECK(shielded.get() == 2);
  bool threw = false;
  try {
    plain.get();
  } catch (const wsrt::CancelledError &) {
    threw = true;
  }
  CHECK(threw);
  wsrt_group_counts c = below.stats();
  CHECK(c.cancelled == 1 && c.spawned == 1);

  // A deadline, through std::chrono: a task that runs until asked.
  wsrt::Group timed(rt);
  std::atomic<bool> started{false};
  auto spinner = timed.spawn([&started] {
    started = true;
    while (!wsrt_cancel_requested()) {
    }
    return 0;
  });
  while (!started) {
  }
  timed.set_deadline(std::chrono::milliseconds(10));
  CHECK(timed.wait());
  CHECK(timed.cancelled());
  CHECK(spinner.get() == 0);
  blocker.get();

  // Runtime options.
  wsrt_runtime_opts opts{};
  opts.workers = 2;
  opts.thread_name = "hpp";
  wsrt::Runtime named(opts);
  CHECK(named.workers() == 2);
  auto isolated = named.spawn([] { return 5; });
  CHECK(isolated.wait_isolated());
  CHECK(isolated.get() == 5);
}

}  // namespace

int main() {
  values_and_captures();
  exceptions();
  callbacks_in_order();
  names_and_moves();
  groups_wait_when_they_go();
  CHECK(live == 0);
  std::puts("hpp: ok");
  return 0;
}
