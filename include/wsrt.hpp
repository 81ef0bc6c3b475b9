/*
 * wsrt.hpp: a header-only C++17 wrapper over the wsrt C ABI (wsrt.h).
 *
 *   wsrt::Runtime rt;                                  // one worker per CPU
 *   wsrt::Task<int> t = rt.spawn([v = std::vector<int>{1, 2}] { return v[0] + v[1]; });
 *   t.on_done([](wsrt::Task<int> &done) { std::puts(done.name().c_str()); });
 *   int three = t.get();                               // waits; throws if cancelled/failed
 *
 *   {
 *     wsrt::Group g(rt);                               // a nursery: its destructor waits
 *     g.spawn([] { work(); });
 *     g.set_deadline(std::chrono::milliseconds(50));   // then cancels what is left
 *   }
 *
 * Ownership: a Task copy retains the C handle, its destructor releases it.
 * A spawned callable (and everything it captured) is moved into the task
 * and destroyed exactly once, through the task's arg_drop, when the task
 * is done (also if it is cancelled before it ran, or at shutdown). The
 * value lives in the task and is destroyed with the last handle.
 *
 * Errors: get() throws wsrt::CancelledError for a cancelled task, rethrows
 * the exception the callable threw, and throws wsrt::FailedError(code) for
 * any other failure. Calls that fail in the C layer throw wsrt::Error.
 * Only C ABI calls are used; no exception crosses into the library.
 */
#ifndef WSRT_HPP
#define WSRT_HPP

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "wsrt.h"

namespace wsrt {

/** The task's state; the same values as `wsrt_state`. */
enum class State {
  Pending = WSRT_STATE_PENDING,
  Running = WSRT_STATE_RUNNING,
  Suspended = WSRT_STATE_SUSPENDED,
  Succeeded = WSRT_STATE_SUCCEEDED,
  Failed = WSRT_STATE_FAILED,
  Cancelled = WSRT_STATE_CANCELLED,
};

/** A C call failed; `status()` says why. */
class Error : public std::runtime_error {
 public:
  explicit Error(wsrt_status s) : std::runtime_error(wsrt_status_str(s)), status_(s) {}
  wsrt_status status() const noexcept { return status_; }

 private:
  wsrt_status status_;
};

/** get() of a task that ended CANCELLED (asyncio's CancelledError). */
class CancelledError : public Error {
 public:
  CancelledError() : Error(WSRT_ERR_CANCELLED) {}
};

/** get() of a task that FAILED with a code (not a C++ exception). */
class FailedError : public Error {
 public:
  explicit FailedError(int32_t code) : Error(WSRT_ERR_FAILED), code_(code) {}
  int32_t code() const noexcept { return code_; }

 private:
  int32_t code_;
};

namespace detail {

inline void check(wsrt_status s) {
  if (s != WSRT_OK) throw Error(s);
}

/** The failure code a task function returns when the callable threw. */
constexpr int32_t kThrew = INT32_MIN + 1;

/** Where a throwing callable leaves its exception for get(). */
struct ExceptionSlot {
  std::exception_ptr error;
};

template <class F, class T>
struct Closure {
  F fn;
  std::shared_ptr<ExceptionSlot> slot;

  static int32_t run(void *arg, void **result) noexcept {
    auto *self = static_cast<Closure *>(arg);
    try {
      if constexpr (std::is_void_v<T>) {
        self->fn();
        *result = nullptr;
      } else {
        *result = new T(self->fn());
      }
      return WSRT_TASK_OK;
    } catch (...) {
      self->slot->error = std::current_exception();
      return kThrew;
    }
  }
  static void drop(void *arg) noexcept { delete static_cast<Closure *>(arg); }
};

template <class T>
void drop_result(void *value) noexcept {
  delete static_cast<T *>(value);
}

}  // namespace detail

template <class T>
class Task;
class Group;

/** A runtime: worker threads. Not copyable; the destructor drains and frees it. */
class Runtime {
 public:
  /** `workers` = 0: one per CPU. */
  explicit Runtime(std::size_t workers = 0) { detail::check(wsrt_runtime_new(workers, &rt_)); }
  /** With options (threads' stack size, names, start/stop hooks). */
  explicit Runtime(const wsrt_runtime_opts &opts) { detail::check(wsrt_runtime_new_opts(&opts, &rt_)); }
  Runtime(const Runtime &) = delete;
  Runtime &operator=(const Runtime &) = delete;
  Runtime(Runtime &&other) noexcept : rt_(std::exchange(other.rt_, nullptr)) {}
  Runtime &operator=(Runtime &&other) noexcept {
    if (this != &other) {
      reset();
      rt_ = std::exchange(other.rt_, nullptr);
    }
    return *this;
  }
  ~Runtime() { reset(); }

  /**
   * Spawns `fn` (moved into the task); the task's value is `fn()`. Inside
   * a task of a group it joins that group (as wsrt_spawn does).
   */
  template <class F, class T = std::invoke_result_t<std::decay_t<F> &>>
  Task<T> spawn(F &&fn, const char *name = nullptr) {
    return spawn_into<F, T>(nullptr, 0, std::forward<F>(fn), name);
  }

  /** Shuts down (see wsrt_runtime_shutdown) and waits. */
  void shutdown(wsrt_shutdown_mode mode = WSRT_SHUTDOWN_DRAIN) {
    detail::check(wsrt_runtime_shutdown(rt_, mode));
  }
  std::size_t workers() const { return wsrt_runtime_workers(rt_); }
  wsrt_stats stats() const {
    wsrt_stats s{};
    detail::check(wsrt_runtime_stats(rt_, &s));
    return s;
  }
  wsrt_runtime *get() const noexcept { return rt_; }

 private:
  friend class Group;

  template <class F, class T>
  Task<T> spawn_into(wsrt_group *group, uint32_t flags, F &&fn, const char *name) {
    using C = detail::Closure<std::decay_t<F>, T>;
    auto slot = std::make_shared<detail::ExceptionSlot>();
    auto *closure = new C{std::forward<F>(fn), slot};
    wsrt_spawn_opts opts{};
    opts.name = name;
    opts.arg_drop = &C::drop;
    if constexpr (!std::is_void_v<T>) opts.result_drop = &detail::drop_result<T>;
    opts.group = group;
    opts.flags = flags;
    wsrt_task *t = nullptr;
    wsrt_status s = wsrt_spawn(rt_, &C::run, closure, &opts, &t);
    if (s != WSRT_OK) {
      delete closure;  // on error the C layer gives ownership back
      throw Error(s);
    }
    return Task<T>(t, std::move(slot));
  }

  void reset() noexcept {
    if (rt_) wsrt_runtime_free(rt_);
    rt_ = nullptr;
  }
  wsrt_runtime *rt_ = nullptr;
};

/** A task handle: copy = retain, destructor = release. */
template <class T>
class Task {
 public:
  Task(const Task &other) : t_(wsrt_task_retain(other.t_)), slot_(other.slot_) {}
  Task(Task &&other) noexcept : t_(std::exchange(other.t_, nullptr)), slot_(std::move(other.slot_)) {}
  Task &operator=(Task other) noexcept {
    std::swap(t_, other.t_);
    std::swap(slot_, other.slot_);
    return *this;
  }
  ~Task() { wsrt_task_release(t_); }

  uint64_t id() const noexcept { return wsrt_task_id(t_); }
  State state() const noexcept { return static_cast<State>(wsrt_task_state(t_)); }
  bool done() const noexcept { return wsrt_task_done(t_); }
  bool cancelled() const noexcept { return wsrt_task_cancelled(t_); }
  /** asyncio cancel(): false if already done. */
  bool cancel() noexcept { return wsrt_task_cancel(t_); }

  std::string name() const {
    std::string out(wsrt_task_name(t_, nullptr, 0), '\0');
    wsrt_task_name(t_, out.data(), out.size() + 1);
    return out;
  }
  void set_name(const std::string &name) { detail::check(wsrt_task_set_name(t_, name.c_str())); }

  /** Waits until done (helping if on a worker); false on timeout. */
  bool wait(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    wsrt_status s = wsrt_task_wait(t_, static_cast<int64_t>(timeout.count()));
    if (s == WSRT_ERR_TIMEOUT) return false;
    detail::check(s);
    return true;
  }

  /**
   * Like wait(), but on a worker it runs only this task and what is
   * spawned inside the wait: safe while holding a lock that other queued
   * tasks take (see wsrt_task_wait_isolated).
   */
  bool wait_isolated(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    wsrt_status s = wsrt_task_wait_isolated(t_, static_cast<int64_t>(timeout.count()));
    if (s == WSRT_ERR_TIMEOUT) return false;
    detail::check(s);
    return true;
  }

  /** Waits, then returns the value (a copy) or throws (asyncio result()). */
  std::conditional_t<std::is_void_v<T>, void, T> get() {
    wait();
    void *value = nullptr;
    wsrt_status s = wsrt_task_result(t_, &value);
    if (s == WSRT_ERR_CANCELLED) throw CancelledError();
    if (s == WSRT_ERR_FAILED) {
      if (slot_ && slot_->error) std::rethrow_exception(slot_->error);
      int32_t code = 0;
      wsrt_task_error(t_, &code);
      throw FailedError(code);
    }
    detail::check(s);
    if constexpr (!std::is_void_v<T>) return *static_cast<T *>(value);
  }

  /**
   * Runs `fn(Task &)` once the task is done (at once, here, if it already
   * is), on the thread that finishes it. `fn` must not throw: an exception
   * escaping it terminates the program (it would otherwise cross the C ABI).
   */
  template <class F>
  void on_done(F &&fn) {
    struct Callback {
      std::decay_t<F> fn;
      Task self;
      static void call(wsrt_task *, void *user) noexcept {
        std::unique_ptr<Callback> cb(static_cast<Callback *>(user));
        cb->fn(cb->self);
      }
    };
    auto *cb = new Callback{std::forward<F>(fn), *this};
    wsrt_status s = wsrt_task_add_done_callback(t_, &Callback::call, cb);
    if (s != WSRT_OK) {
      delete cb;
      throw Error(s);
    }
  }

  wsrt_task *get_handle() const noexcept { return t_; }

 private:
  friend class Runtime;
  friend class Group;
  Task(wsrt_task *t, std::shared_ptr<detail::ExceptionSlot> slot) : t_(t), slot_(std::move(slot)) {}
  wsrt_task *t_;
  std::shared_ptr<detail::ExceptionSlot> slot_;
};

/**
 * A group of tasks (see wsrt_group_new), owned like a Trio nursery: the
 * destructor waits for every task of the group and of the groups below it,
 * so nothing spawned into it outlives the scope that made it. Cancel it,
 * or give it a deadline, to make that wait short. Not copyable; movable.
 *
 * The destructor cannot report an error: inside a task of this very group
 * (which could never see its own group finish) it does not wait.
 */
class Group {
 public:
  /** A top-level group of `rt`; `flags`: WSRT_GROUP_* bits. */
  explicit Group(Runtime &rt, uint32_t flags = 0) : rt_(&rt) {
    detail::check(wsrt_group_new(rt.get(), nullptr, flags, &g_));
  }
  /** A group below `parent`: cancelled with it, waited for with it. */
  Group(Group &parent, uint32_t flags) : rt_(parent.rt_) {
    detail::check(wsrt_group_new(rt_->get(), parent.g_, flags, &g_));
  }
  Group(const Group &) = delete;
  Group &operator=(const Group &) = delete;
  Group(Group &&other) noexcept : rt_(other.rt_), g_(std::exchange(other.g_, nullptr)) {}
  Group &operator=(Group &&) = delete;
  ~Group() {
    if (!g_) return;
    wsrt_group_wait(g_, -1);  // WSRT_ERR_WOULD_DEADLOCK inside its own task: no wait
    wsrt_group_release(g_);
  }

  /** Spawns `fn` into the group (see Runtime::spawn). */
  template <class F, class T = std::invoke_result_t<std::decay_t<F> &>>
  Task<T> spawn(F &&fn, const char *name = nullptr) {
    return rt_->spawn_into<F, T>(g_, 0, std::forward<F>(fn), name);
  }
  /** Spawns `fn` into the group, left alone by its cancel (asyncio shield). */
  template <class F, class T = std::invoke_result_t<std::decay_t<F> &>>
  Task<T> spawn_shielded(F &&fn, const char *name = nullptr) {
    return rt_->spawn_into<F, T>(g_, WSRT_SPAWN_SHIELDED, std::forward<F>(fn), name);
  }

  /** Cancels the group and every group below it; false if it already was. */
  bool cancel() noexcept { return wsrt_group_cancel(g_); }
  bool cancelled() const noexcept { return wsrt_group_cancelled(g_); }
  /**
   * Cancels the group once `timeout` has passed (a runtime timer: no
   * thread waits for it); replaces an earlier deadline, a negative
   * `timeout` removes it.
   */
  template <class Rep, class Period>
  void set_deadline(std::chrono::duration<Rep, Period> timeout) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    detail::check(wsrt_group_set_deadline(g_, static_cast<int64_t>(ns)));
  }
  void clear_deadline() { detail::check(wsrt_group_set_deadline(g_, -1)); }
  /** Waits for every task of the group and below; false on timeout. */
  bool wait(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    wsrt_status s = wsrt_group_wait(g_, static_cast<int64_t>(timeout.count()));
    if (s == WSRT_ERR_TIMEOUT) return false;
    detail::check(s);
    return true;
  }
  wsrt_group_counts stats() const {
    wsrt_group_counts c{};
    detail::check(wsrt_group_stats(g_, &c));
    return c;
  }
  wsrt_group *get() const noexcept { return g_; }

 private:
  Runtime *rt_;
  wsrt_group *g_ = nullptr;
};

}  // namespace wsrt

#endif /* WSRT_HPP */
