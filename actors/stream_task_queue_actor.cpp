#include "actors/stream_task_queue_actor.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/quiet.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;

using steady = std::chrono::steady_clock;

// From the helper threads.
using claimed_atom = caf::atom_constant<caf::atom("sqclaimed")>;
using collected_atom = caf::atom_constant<caf::atom("sqcollect")>;
using io_atom = caf::atom_constant<caf::atom("sqio")>;
// Timers; each carries the generation it was set for, so a timer replaced
// by an earlier one does nothing when it fires.
using promote_atom = caf::atom_constant<caf::atom("sqpromote")>;
using lease_tick_atom = caf::atom_constant<caf::atom("sqlease")>;
using reclaim_atom = caf::atom_constant<caf::atom("sqreclaim")>;
using redo_atom = caf::atom_constant<caf::atom("sqredo")>;
using outbox_atom = caf::atom_constant<caf::atom("sqoutbox")>;

constexpr caf::timespan first_retry = 100ms;

// Tasks per round trip of a batch write or claim.
constexpr size_t max_batch = 512;

constexpr size_t num_lanes = 4;

// Names the calling thread for `top -H`, `perf` and /proc (at most 15
// characters).
void name_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

bool transient(const caf::error& err) {
  return is(err, errc::backend_unavailable);
}

size_t lane_index(priority p) noexcept {
  switch (p) {
    case priority::urgent: return 0;
    case priority::high: return 1;
    case priority::normal: return 2;
    default: return 3;
  }
}

// Logs store trouble once per outage (and again every 10 s while it lasts),
// not once per call, and keeps the node's health flag. One per thread.
class outage_log {
public:
  explicit outage_log(std::shared_ptr<stream_task_queue_health> health)
    : health_(std::move(health)) {
    // nop
  }

  void failed(const char* what, const caf::error& err) {
    auto now = steady::now();
    if (!down_ || now - last_ >= 10s) {
      spdlog::warn("task queue: {} failed: {}", what, describe(err));
      last_ = now;
    } else {
      spdlog::debug("task queue: {} failed: {}", what, describe(err));
    }
    down_ = transient(err);
    if (down_)
      health_->store_reachable.store(false);
  }

  void ok() {
    if (down_)
      spdlog::info("task queue: the task store answers again");
    down_ = false;
    if (!health_->store_reachable.load(std::memory_order_relaxed))
      health_->store_reachable.store(true);
  }

private:
  std::shared_ptr<stream_task_queue_health> health_;
  bool down_ = false;
  steady::time_point last_;
};

// The thread that waits on the store for tasks while local workers wait and
// the queue is empty (`wait_claim_many` blocks). It only claims, releases
// and sends: it never touches the actor's state.
class claimer {
public:
  claimer(std::shared_ptr<task_store> store, std::string consumer,
          caf::actor_addr owner, caf::timespan slice, caf::timespan retry_max,
          std::shared_ptr<stream_task_queue_health> health)
    : store_(std::move(store)),
      consumer_(std::move(consumer)),
      owner_(std::move(owner)),
      slice_(slice),
      retry_max_(retry_max),
      log_(std::move(health)) {
    thread_ = std::thread{[this] {
      name_thread("nova.tq.wait");
      run();
    }};
  }

  claimer(const claimer&) = delete;
  claimer& operator=(const claimer&) = delete;

  ~claimer() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // How many waiting workers the actor cannot serve otherwise.
  void want(size_t n) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (want_ == n)
        return;
      want_ = n;
    }
    cv_.notify_all();
  }

private:
  void run() {
    auto delay = first_retry;
    for (;;) {
      size_t n = 0;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        cv_.wait(guard, [this] { return stop_ || want_ > 0; });
        if (stop_)
          return;
        n = std::min(want_, max_batch);
      }
      auto r = store_->wait_claim_many(consumer_, n, slice_);
      if (!r) {
        log_.failed("waiting for a task", r.error());
        std::unique_lock<std::mutex> guard{mtx_};
        if (cv_.wait_for(guard, delay, [this] { return stop_; }))
          return;
        delay = std::min(delay * 2, retry_max_);
        continue;
      }
      log_.ok();
      delay = first_retry;
      if (r->empty())
        continue;
      bool stopping = false;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        stopping = stop_;
        // Until the actor tells again, these cover that much of the demand.
        want_ -= std::min(want_, r->size());
      }
      auto owner = caf::actor_cast<caf::actor>(owner_);
      if (!stopping && owner) {
        caf::anon_send(owner, claimed_atom::value, std::move(*r));
        continue;
      }
      // Nobody is left to run them: back to their lanes, uncounted.
      for (auto& c : *r)
        if (auto back = store_->release(c); !back)
          spdlog::warn("task queue: cannot give task '{}' back; it is "
                       "reclaimed later: {}",
                       c.task.id, describe(back.error()));
    }
  }

  std::shared_ptr<task_store> store_;
  std::string consumer_;
  caf::actor_addr owner_;
  caf::timespan slice_;
  caf::timespan retry_max_;
  outage_log log_;
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t want_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

// The threads that make every call to the store for the actor, so that the
// actor never blocks and runs on the scheduler like any other. One writes:
// enqueues and completions handed over while a round trip ran go out
// together in the next one, so batches grow with the load; other calls are
// jobs that return a continuation for the actor. The other claims, on a
// connection of its own: a node's claims and completions overlap, so
// neither waits for the other's round trip. Results go into a report and the
// actor is told with one `io_atom` per report; like the claimer, this thread
// never touches actor state.
class store_io {
public:
  using continuation = std::function<void()>;
  using job = std::function<continuation(task_store&)>;

  struct report {
    // Enqueues the store answered, by sequence number.
    std::vector<std::pair<uint64_t, caf::expected<std::string>>> enqueued;
    // Enqueues that did not reach the store.
    std::vector<std::pair<uint64_t, task>> unsent;
    size_t done_now = 0;
    // Completions whose delivery was stale.
    std::vector<std::string> done_before;
    // Completions that did not reach the store.
    std::vector<task_store::completion_request> unfinished;
    std::vector<claimed_task> claimed;
    size_t claims_asked = 0;
    bool claim_failed = false;
    // Some call got through / the last error.
    bool ok = false;
    caf::error error;
    // What the jobs left for the actor to do, in order.
    std::vector<continuation> then;
  };

  store_io(std::shared_ptr<task_store> store, std::string consumer,
           caf::actor_addr owner)
    : store_(std::move(store)),
      consumer_(std::move(consumer)),
      owner_(std::move(owner)) {
    thread_ = std::thread{[this] {
      name_thread("nova.tq.write");
      run();
    }};
    claim_thread_ = std::thread{[this] {
      name_thread("nova.tq.claim");
      run_claims();
    }};
  }

  store_io(const store_io&) = delete;
  store_io& operator=(const store_io&) = delete;

  ~store_io() {
    stop();
  }

  void enqueue(std::vector<std::pair<uint64_t, task>>& xs) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& x : xs)
      enqueues_.push_back(std::move(x));
    cv_.notify_one();
  }

  void complete(task_store::completion_request x) {
    std::lock_guard<std::mutex> guard{mtx_};
    completions_.push_back(std::move(x));
    cv_.notify_one();
  }

  void claim(size_t n) {
    std::lock_guard<std::mutex> guard{mtx_};
    claims_ += n;
    claim_cv_.notify_one();
  }

  void post(job f) {
    std::lock_guard<std::mutex> guard{mtx_};
    jobs_.push_back(std::move(f));
    cv_.notify_one();
  }

  report take() {
    std::lock_guard<std::mutex> guard{mtx_};
    reported_ = false;
    return std::exchange(report_, report{});
  }

  // Stops the threads after their current round trips. What it never wrote
  // stays for `left_enqueues` and `left_completions`; jobs not run yet are
  // dropped.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
      stop_ = true;
    }
    cv_.notify_all();
    claim_cv_.notify_all();
    thread_.join();
    claim_thread_.join();
  }

  std::vector<std::pair<uint64_t, task>> left_enqueues() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto out = std::move(enqueues_);
    for (auto& x : report_.unsent)
      out.push_back(std::move(x));
    return out;
  }

  std::vector<task_store::completion_request> left_completions() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto out = std::move(completions_);
    for (auto& x : report_.unfinished)
      out.push_back(std::move(x));
    return out;
  }

private:
  void run() {
    for (;;) {
      std::vector<std::pair<uint64_t, task>> enq;
      std::vector<task_store::completion_request> comp;
      std::vector<job> fs;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        cv_.wait(guard, [this] {
          return stop_ || !enqueues_.empty() || !completions_.empty()
                 || !jobs_.empty();
        });
        if (stop_)
          return;
        enq.swap(enqueues_);
        comp.swap(completions_);
        fs.swap(jobs_);
      }
      report r;
      if (!enq.empty())
        write(enq, r);
      if (!comp.empty())
        write(comp, r);
      for (auto& f : fs)
        r.then.push_back(f(*store_));
      publish(std::move(r));
    }
  }

  void run_claims() {
    for (;;) {
      size_t n = 0;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        claim_cv_.wait(guard, [this] { return stop_ || claims_ > 0; });
        if (stop_)
          return;
        n = std::min(claims_, max_batch);
        claims_ -= n;
      }
      report r;
      r.claims_asked = n;
      auto xs = store_->claim_many(consumer_, n);
      if (xs) {
        r.ok = true;
        r.claimed = std::move(*xs);
      } else {
        r.claim_failed = true;
        r.error = std::move(xs.error());
      }
      publish(std::move(r));
    }
  }

  // Hands `r` to the actor: one `io_atom` until it takes the report.
  void publish(report r) {
    bool notify = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      merge(std::move(r));
      notify = !reported_;
      reported_ = true;
    }
    if (notify)
      if (auto hdl = caf::actor_cast<caf::actor>(owner_))
        caf::anon_send(hdl, io_atom::value);
  }

  void write(std::vector<std::pair<uint64_t, task>>& enq, report& r) {
    // Several script calls per `enqueue_many`, in one pipeline.
    constexpr size_t per_call = 8 * max_batch;
    for (size_t first = 0; first < enq.size(); first += per_call) {
      auto last = std::min(enq.size(), first + per_call);
      std::vector<task> ts;
      ts.reserve(last - first);
      for (size_t i = first; i < last; ++i)
        ts.push_back(std::move(enq[i].second));
      auto xs = store_->enqueue_many(ts);
      if (!xs && transient(xs.error())) {
        r.error = std::move(xs.error());
        for (size_t i = first; i < last; ++i)
          enq[i].second = std::move(ts[i - first]);
        for (size_t i = first; i < enq.size(); ++i)
          r.unsent.push_back(std::move(enq[i]));
        return;
      }
      if (!xs) {
        spdlog::error("task queue: enqueueing {} tasks failed: {}",
                      last - first, describe(xs.error()));
        for (size_t i = first; i < last; ++i)
          r.enqueued.emplace_back(enq[i].first, xs.error());
        continue;
      }
      r.ok = true;
      for (size_t i = first; i < last; ++i)
        r.enqueued.emplace_back(enq[i].first, std::move((*xs)[i - first]));
    }
  }

  void write(std::vector<task_store::completion_request>& comp, report& r) {
    auto xs = store_->complete_many(comp);
    if (!xs && transient(xs.error())) {
      r.error = std::move(xs.error());
      for (auto& x : comp)
        r.unfinished.push_back(std::move(x));
      return;
    }
    if (!xs) {
      spdlog::error("task queue: completing {} tasks failed: {}", comp.size(),
                    describe(xs.error()));
      return;
    }
    r.ok = true;
    for (size_t i = 0; i < xs->size(); ++i) {
      if ((*xs)[i] == task_store::completion::done)
        ++r.done_now;
      else
        r.done_before.push_back(comp[i].claim.task.id);
    }
  }

  void merge(report r) {
    auto append = [](auto& to, auto& from) {
      if (to.empty())
        to = std::move(from);
      else
        to.insert(to.end(), std::make_move_iterator(from.begin()),
                  std::make_move_iterator(from.end()));
    };
    append(report_.enqueued, r.enqueued);
    append(report_.unsent, r.unsent);
    report_.done_now += r.done_now;
    append(report_.done_before, r.done_before);
    append(report_.unfinished, r.unfinished);
    append(report_.claimed, r.claimed);
    report_.claims_asked += r.claims_asked;
    report_.claim_failed = report_.claim_failed || r.claim_failed;
    report_.ok = report_.ok || r.ok;
    if (r.error)
      report_.error = std::move(r.error);
    append(report_.then, r.then);
  }

  std::shared_ptr<task_store> store_;
  std::string consumer_;
  caf::actor_addr owner_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::condition_variable claim_cv_;
  std::vector<std::pair<uint64_t, task>> enqueues_;
  std::vector<task_store::completion_request> completions_;
  std::vector<job> jobs_;
  size_t claims_ = 0;
  report report_;
  bool reported_ = false;
  bool stop_ = false;
  std::thread thread_;
  std::thread claim_thread_;
};

using continuation = store_io::continuation;

// The reply to `(enqueue_atom, std::vector<task>)`, filled as the store
// answers for each task.
struct batch_reply {
  caf::response_promise rp;
  enqueue_results results;
  size_t left = 0;
};

// Where the answer for one enqueued task goes: its own response promise,
// or its slot in the reply to a batch.
struct enqueue_sink {
  caf::response_promise rp;
  std::shared_ptr<batch_reply> batch;
  size_t index = 0;

  void deliver(caf::expected<std::string> x) {
    if (!batch) {
      if (x)
        rp.deliver(std::move(*x));
      else
        rp.deliver(std::move(x.error()));
      return;
    }
    if (x)
      batch->results.ids[index] = std::move(*x);
    else
      batch->results.errors[index] = std::move(x.error());
    if (--batch->left == 0)
      batch->rp.deliver(std::move(batch->results));
  }
};

struct waiter {
  std::string worker;
  caf::actor_addr addr;
  caf::response_promise promise;
};

// A claim nobody asked for yet.
struct buffered {
  claimed_task claim;
  steady::time_point since;
};

struct lease {
  claimed_task claim;
  std::string worker;
  steady::time_point deadline;
};

// A completion or failure for the store, kept in order while the store is
// unreachable.
struct deferred_op {
  bool complete = false;
  claimed_task claim;
  std::string worker;
  // The payload of a completion, the reason of a failure.
  std::string text;
  int64_t at_ms = 0;
};

// What the store made of a `deferred_op`.
struct op_outcome {
  // False: the store was unreachable; the op is to be tried again.
  bool reached = true;
  std::optional<task_store::completion> completion;
  std::optional<task_store::failure> failure;
  // Any other error: logged, the op is dropped.
  caf::error error;
};

op_outcome run_on(task_store& store, const deferred_op& op) {
  op_outcome out;
  auto note = [&](caf::error err) {
    out.reached = !transient(err);
    out.error = std::move(err);
  };
  if (op.complete) {
    auto r = store.complete(op.claim, op.text, op.worker);
    if (r)
      out.completion = *r;
    else
      note(std::move(r.error()));
  } else {
    auto r = store.fail(op.claim, op.text, op.at_ms, op.worker);
    if (r)
      out.failure = std::move(*r);
    else
      note(std::move(r.error()));
  }
  return out;
}

struct collect_job {
  std::string session;
  size_t wanted = 0;
  std::vector<task_result> results;
  caf::response_promise promise;
  steady::time_point deadline;
  std::shared_ptr<std::atomic<bool>> stop;
  std::thread thread;
};

struct stream_queue_state {
  static inline const char* name = "nova.stream_task_queue";

  context_ptr ctx;
  std::shared_ptr<task_store> store;
  stream_task_queue_settings cfg;
  std::shared_ptr<stream_task_queue_health> health;
  std::string consumer;
  std::unique_ptr<claimer> claims;
  std::unique_ptr<store_io> io;
  std::deque<waiter> waiters;
  // Claimed ahead, per lane (urgent first): handed out best lane first.
  std::array<std::deque<buffered>, num_lanes> ready;
  size_t ready_size = 0;
  // Hand-outs since `rate_since`, and the rate they gave (tasks/s).
  uint64_t handed = 0;
  steady::time_point rate_since = steady::now();
  double rate = 0;
  // Claims asked of `io` and not reported yet.
  size_t claims_in_flight = 0;
  // The last claim found every lane drained (the claimer waits for more),
  // or failed (until `claims_held_until`).
  bool store_empty = false;
  steady::time_point claims_held_until;
  std::map<caf::actor_addr, std::string> monitored;
  std::unordered_map<std::string, lease> leases;
  // Enqueues handed to `io`, by sequence number.
  std::unordered_map<uint64_t, enqueue_sink> promises;
  uint64_t next_seq = 0;
  // Accepted while the store was unreachable, oldest first.
  std::deque<task> outbox;
  size_t outbox_capacity = 0;
  // A drain of the outbox is due or running.
  bool outbox_busy = false;
  caf::timespan outbox_delay = first_retry;
  std::deque<deferred_op> deferred;
  caf::timespan redo_delay = first_retry;
  // A retry of `deferred` is due or running.
  bool redo_busy = false;
  // Collects run one at a time per session, so each result is handed out
  // once: the running job per session, and those queued behind it.
  std::map<uint64_t, collect_job> jobs;
  std::map<std::string, uint64_t> running;
  std::map<std::string, std::deque<uint64_t>> queued;
  std::map<std::string, std::string> positions;
  uint64_t next_job = 0;
  std::optional<int64_t> promote_at;
  uint64_t promote_gen = 0;
  caf::timespan promote_delay = first_retry;
  std::optional<steady::time_point> lease_tick_at;
  uint64_t lease_gen = 0;
  uint64_t malformed_seen = 0;
  std::optional<outage_log> log;

  stream_queue_state() = default;
  stream_queue_state(const stream_queue_state&) = delete;
  stream_queue_state& operator=(const stream_queue_state&) = delete;

  // Runs when the actor exits: what this node holds goes back to the store
  // while it answers, so nothing waits for a reclaim that need not.
  ~stream_queue_state() {
    claims.reset();
    std::vector<task_store::completion_request> completing;
    std::vector<std::pair<uint64_t, task>> enqueuing;
    if (io) {
      io->stop();
      completing = io->left_completions();
      enqueuing = io->left_enqueues();
    }
    for (auto& kvp : jobs)
      if (kvp.second.stop)
        kvp.second.stop->store(true);
    for (auto& kvp : jobs)
      if (kvp.second.thread.joinable())
        kvp.second.thread.join();
    if (!store)
      return;
    bool up = true;
    // Finished work first: its effect is what matters most.
    if (!completing.empty()) {
      up = static_cast<bool>(store->complete_many(completing));
      if (!up)
        spdlog::warn("task queue: {} completions were not written; their "
                     "tasks run again elsewhere",
                     completing.size());
    }
    for (auto& op : deferred) {
      if (!up)
        break;
      up = run_on(*store, op).reached;
    }
    // Tasks this node holds are retried elsewhere now rather than after
    // they went stale.
    auto now = now_ms();
    for (auto& kvp : leases) {
      if (!up)
        break;
      up = static_cast<bool>(store->fail(kvp.second.claim,
                                         "node '" + ctx->node_id + "' stopped",
                                         now, kvp.second.worker));
    }
    for (auto& lane : ready)
      for (auto& b : lane) {
        if (!up)
          break;
        up = static_cast<bool>(store->release(b.claim));
      }
    for (auto& x : enqueuing)
      outbox.push_back(std::move(x.second));
    if (outbox.empty())
      return;
    size_t lost = outbox.size();
    if (up) {
      std::vector<task> ts{std::make_move_iterator(outbox.begin()),
                           std::make_move_iterator(outbox.end())};
      if (store->enqueue_many(ts))
        lost = 0;
    }
    if (lost > 0)
      spdlog::error("task queue: node '{}' stops with {} accepted tasks "
                    "that the store never took: they are lost",
                    ctx->node_id, lost);
  }
};

using queue_actor = caf::stateful_actor<stream_queue_state>;

std::string consumer_of(const runtime_context& ctx) {
  return is_valid_id(ctx.node_id) ? ctx.node_id : std::string{"node"};
}

void note_malformed(queue_actor* self) {
  auto& st = self->state;
  auto n = st.store->malformed();
  if (n > st.malformed_seen) {
    st.ctx->stats.add(counter::decode_errors, n - st.malformed_seen);
    st.malformed_seen = n;
  }
}

// Runs `f(store)` on the I/O thread; the continuation it returns runs in
// the actor (`self` stays valid: the I/O thread stops before the state).
template <class F>
void post(queue_actor* self, F f) {
  self->state.io->post(std::move(f));
}

// -- timers -------------------------------------------------------------------

void schedule_promote(queue_actor* self, int64_t due_ms) {
  auto& st = self->state;
  if (st.promote_at && *st.promote_at <= due_ms)
    return;
  st.promote_at = due_ms;
  auto delay = std::max<int64_t>(due_ms - now_ms(), 0);
  self->delayed_send(self, std::chrono::milliseconds(delay),
                     promote_atom::value, ++st.promote_gen);
}

void check_promotions(queue_actor* self) {
  post(self, [self](task_store& s) -> continuation {
    auto next = s.next_due();
    return [self, next = std::move(next)] {
      if (!next) {
        self->state.log->failed("reading the retry schedule", next.error());
        return;
      }
      if (*next)
        schedule_promote(self, **next);
    };
  });
}

void schedule_lease_tick(queue_actor* self, steady::time_point at) {
  auto& st = self->state;
  if (st.lease_tick_at && *st.lease_tick_at <= at)
    return;
  st.lease_tick_at = at;
  auto delay = std::max(caf::timespan{0},
                        std::chrono::duration_cast<caf::timespan>(
                          at - steady::now()));
  self->delayed_send(self, delay, lease_tick_atom::value, ++st.lease_gen);
}

void schedule_lease_tick(queue_actor* self) {
  std::optional<steady::time_point> next;
  for (auto& kvp : self->state.leases)
    if (!next || kvp.second.deadline < *next)
      next = kvp.second.deadline;
  if (next)
    schedule_lease_tick(self, *next);
}

void schedule_redo(queue_actor* self) {
  auto& st = self->state;
  if (st.redo_busy)
    return;
  st.redo_busy = true;
  self->delayed_send(self, st.redo_delay, redo_atom::value);
  st.redo_delay = std::min(st.redo_delay * 2, st.cfg.store_retry_max);
}

void schedule_outbox(queue_actor* self) {
  auto& st = self->state;
  if (st.outbox_busy)
    return;
  st.outbox_busy = true;
  self->delayed_send(self, st.outbox_delay, outbox_atom::value);
  st.outbox_delay = std::min(st.outbox_delay * 2, st.cfg.store_retry_max);
}

// -- enqueue and the outbox ---------------------------------------------------

void set_outbox_depth(queue_actor* self) {
  self->state.health->outbox_depth.store(self->state.outbox.size());
}

// Accepts `t` into the outbox: it is written once the store answers.
void hold(queue_actor* self, task t, enqueue_sink& rp) {
  auto& st = self->state;
  if (st.outbox.size() >= st.outbox_capacity) {
    st.ctx->stats.add(counter::outbox_full);
    rp.deliver(make_error(errc::queue_full,
                          fmt::format("the task store is unreachable and {} "
                                      "tasks already wait for it (the "
                                      "outbox is full)",
                                      st.outbox.size())));
    return;
  }
  auto id = t.id;
  st.outbox.push_back(std::move(t));
  set_outbox_depth(self);
  schedule_outbox(self);
  rp.deliver(std::move(id));
}

// Takes `t` for the store, its answer for `sink`: checked here (a task
// held in the outbox must be writable later), then held in the outbox
// while that holds anything (later tasks queue behind it), else added to
// `out`, what the caller hands to the store thread.
void accept(queue_actor* self, task t, enqueue_sink sink,
            std::vector<std::pair<uint64_t, task>>& out) {
  auto& st = self->state;
  if (t.id.empty())
    t.id = new_message_id();
  else if (auto err = check_id(t.id, "task id")) {
    sink.deliver(std::move(err));
    return;
  }
  if (!t.session.empty())
    if (auto err = check_id(t.session, "session")) {
      sink.deliver(std::move(err));
      return;
    }
  if (!st.outbox.empty()) {
    hold(self, std::move(t), sink);
    return;
  }
  auto seq = st.next_seq++;
  st.promises.emplace(seq, std::move(sink));
  out.emplace_back(seq, std::move(t));
}

// Writes the outbox in order, a batch per round trip; stops at the first
// task the store cannot take yet (unreachable, or its lane is full) and
// tries again later.
void drain_outbox(queue_actor* self) {
  auto& st = self->state;
  if (st.outbox.empty()) {
    st.outbox_busy = false;
    st.outbox_delay = first_retry;
    return;
  }
  auto n = std::min(st.outbox.size(), max_batch);
  std::vector<task> ts{st.outbox.begin(), st.outbox.begin() + n};
  post(self, [self, ts = std::move(ts)](task_store& s) mutable
             -> continuation {
    auto n = ts.size();
    auto r = s.enqueue_many(ts);
    return [self, n, r = std::move(r)]() mutable {
      auto& st = self->state;
      auto retry_later = [&] {
        st.outbox_busy = false;
        schedule_outbox(self);
      };
      if (!r) {
        st.log->failed("writing the task outbox", r.error());
        retry_later();
        return;
      }
      st.log->ok();
      size_t taken = 0;
      for (; taken < n; ++taken) {
        auto& x = (*r)[taken];
        if (x) {
          st.ctx->stats.add(counter::tasks_enqueued);
          continue;
        }
        if (is(x.error(), errc::queue_full))
          break;
        // A duplicate was written by an earlier attempt whose reply got
        // lost (or the id is taken by another task: the caller reused it).
        auto& t = st.outbox[taken];
        if (is(x.error(), errc::duplicate_id))
          spdlog::debug("task queue: task '{}' from the outbox was in the "
                        "store already",
                        t.id);
        else
          spdlog::error("task queue: task '{}' from the outbox was "
                        "refused: {}",
                        t.id, describe(x.error()));
      }
      st.outbox.erase(st.outbox.begin(), st.outbox.begin() + taken);
      set_outbox_depth(self);
      if (taken < n) {
        retry_later();
        return;
      }
      if (st.outbox.empty())
        spdlog::info("task queue: the outbox is written; enqueues go to the "
                     "store directly again");
      drain_outbox(self);
    };
  });
}

// -- completions and failures -------------------------------------------------

void on_failure(queue_actor* self, const claimed_task& c,
                const task_store::failure& f) {
  auto& st = self->state;
  if (f.dead) {
    st.ctx->stats.add(counter::tasks_dead);
    spdlog::debug("task '{}' is a dead letter after {} attempts: {}",
                  f.dead->task_id, f.dead->attempts, f.dead->error);
  } else if (f.retry_at) {
    st.ctx->stats.add(counter::tasks_retried);
    schedule_promote(self, *f.retry_at);
  } else {
    spdlog::debug("task '{}': failure ignored, another delivery completed, "
                  "retried or gave up the task",
                  c.task.id);
  }
}

// Takes what the store made of `op`; false if it was unreachable.
bool apply(queue_actor* self, const deferred_op& op, const op_outcome& r) {
  auto& st = self->state;
  if (!r.reached)
    return false;
  if (r.error) {
    spdlog::error("task queue: {} task '{}' failed: {}",
                  op.complete ? "completing" : "failing", op.claim.task.id,
                  describe(r.error));
  } else if (r.completion) {
    if (*r.completion == task_store::completion::done)
      st.ctx->stats.add(counter::tasks_done);
    else
      spdlog::debug("task '{}': this delivery was stale (another one "
                    "settled it); only acked",
                    op.claim.task.id);
  } else if (r.failure) {
    on_failure(self, op.claim, *r.failure);
  }
  st.log->ok();
  return true;
}

void defer(queue_actor* self, deferred_op op) {
  auto& st = self->state;
  st.log->failed(op.complete ? "completing a task" : "failing a task",
                 make_error(errc::backend_unavailable,
                            "task '" + op.claim.task.id
                              + "' waits for the store"));
  st.deferred.push_back(std::move(op));
  schedule_redo(self);
}

void run_op(queue_actor* self, deferred_op op) {
  // Behind operations still waiting for the store, to keep their order.
  if (!self->state.deferred.empty()) {
    defer(self, std::move(op));
    return;
  }
  post(self, [self, op = std::move(op)](task_store& s) mutable
             -> continuation {
    auto r = run_on(s, op);
    return [self, op = std::move(op), r = std::move(r)]() mutable {
      if (!apply(self, op, r))
        defer(self, std::move(op));
    };
  });
}

void fail_lease(queue_actor* self, lease l, std::string reason) {
  deferred_op op;
  op.complete = false;
  op.claim = std::move(l.claim);
  op.worker = std::move(l.worker);
  op.text = std::move(reason);
  op.at_ms = now_ms();
  run_op(self, std::move(op));
}

// Retries the deferred operations in order until one fails again.
void redo(queue_actor* self) {
  auto& st = self->state;
  if (st.deferred.empty()) {
    st.redo_busy = false;
    return;
  }
  std::vector<deferred_op> ops{st.deferred.begin(), st.deferred.end()};
  post(self, [self, ops = std::move(ops)](task_store& s) -> continuation {
    std::vector<op_outcome> outs;
    for (auto& op : ops) {
      outs.push_back(run_on(s, op));
      if (!outs.back().reached)
        break;
    }
    return [self, outs = std::move(outs)] {
      auto& st = self->state;
      st.redo_busy = false;
      for (auto& r : outs) {
        // Only this retry takes from the front; new ones go to the back.
        if (!apply(self, st.deferred.front(), r))
          break;
        st.deferred.pop_front();
      }
      if (st.deferred.empty()) {
        st.redo_delay = first_retry;
        return;
      }
      schedule_redo(self);
    };
  });
}

// -- claims -------------------------------------------------------------------

void watch(queue_actor* self, const caf::actor_addr& addr,
           const std::string& worker) {
  if (self->state.monitored.emplace(addr, worker).second)
    self->monitor(addr);
}

void buffer(queue_actor* self, claimed_task c) {
  auto& st = self->state;
  auto& lane = st.ready[lane_index(c.lane)];
  lane.push_back(buffered{std::move(c), steady::now()});
  ++st.ready_size;
}

// The best claim buffered here.
std::optional<claimed_task> next_ready(queue_actor* self) {
  auto& st = self->state;
  for (auto& lane : st.ready)
    if (!lane.empty()) {
      auto c = std::move(lane.front().claim);
      lane.pop_front();
      --st.ready_size;
      return c;
    }
  return std::nullopt;
}

// Leases `c` to `worker`; returns the task to send (the lease keeps the
// claim for the completion or failure).
task lease_to(queue_actor* self, claimed_task& c, const std::string& worker) {
  auto& st = self->state;
  ++st.handed;
  auto deadline = steady::now() + st.ctx->limits.task_timeout;
  auto& l = st.leases[c.task.id];
  l = lease{std::move(c), worker, deadline};
  schedule_lease_tick(self, deadline);
  return l.claim.task;
}

void serve_waiters(queue_actor* self) {
  auto& st = self->state;
  while (!st.waiters.empty() && st.ready_size > 0) {
    auto c = next_ready(self);
    auto w = std::move(st.waiters.front());
    st.waiters.pop_front();
    w.promise.deliver(lease_to(self, *c, w.worker));
  }
}

// How many claims to keep ready beyond the waiting workers: about what the
// workers here finish in `prefetch_window`.
size_t prefetch_target(queue_actor* self) {
  auto& st = self->state;
  if (st.cfg.prefetch == 0)
    return 0;
  auto now = steady::now();
  auto elapsed = std::chrono::duration<double>(now - st.rate_since).count();
  auto window = std::chrono::duration<double>(st.cfg.prefetch_window).count();
  if (elapsed >= window) {
    st.rate = static_cast<double>(st.handed) / elapsed;
    st.handed = 0;
    st.rate_since = now;
  }
  return std::min(st.cfg.prefetch, static_cast<size_t>(st.rate * window));
}

// Asks the I/O thread for claims: for every waiting worker plus the
// prefetch, topped up once the claims at hand fall to half of that. While
// the lanes are drained (or the store fails), the claimer waits for tasks
// for the waiting workers instead.
void want_more(queue_actor* self) {
  auto& st = self->state;
  serve_waiters(self);
  auto need = st.waiters.size() + prefetch_target(self);
  auto have = st.ready_size + st.claims_in_flight;
  auto held = st.store_empty || steady::now() < st.claims_held_until;
  if (!held && have < need
      && (have * 2 <= need || st.waiters.size() > st.ready_size)) {
    auto n = need - have;
    st.claims_in_flight += n;
    st.io->claim(n);
  }
  st.claims->want(held ? st.waiters.size() : 0);
}

// Something changed in the store that makes claiming worth a try again.
void unhold_claims(queue_actor* self) {
  self->state.store_empty = false;
  self->state.claims_held_until = {};
}

void on_io_report(queue_actor* self) {
  auto& st = self->state;
  auto r = st.io->take();
  if (r.error)
    st.log->failed("writing to the task store", r.error);
  if (r.ok)
    st.log->ok();
  for (auto& [seq, x] : r.enqueued) {
    auto i = st.promises.find(seq);
    if (i == st.promises.end())
      continue;
    if (x)
      st.ctx->stats.add(counter::tasks_enqueued);
    i->second.deliver(std::move(x));
    st.promises.erase(i);
  }
  if (!r.enqueued.empty())
    unhold_claims(self);
  for (auto& [seq, t] : r.unsent) {
    auto i = st.promises.find(seq);
    if (i == st.promises.end())
      continue;
    hold(self, std::move(t), i->second);
    st.promises.erase(i);
  }
  st.ctx->stats.add(counter::tasks_done, r.done_now);
  for (auto& id : r.done_before)
    spdlog::debug("task '{}': this delivery was stale (another one settled "
                  "it); only acked",
                  id);
  for (auto& x : r.unfinished) {
    deferred_op op;
    op.complete = true;
    op.claim = std::move(x.claim);
    op.worker = std::move(x.worker);
    op.text = std::move(x.payload);
    op.at_ms = now_ms();
    defer(self, std::move(op));
  }
  st.claims_in_flight -= std::min(st.claims_in_flight, r.claims_asked);
  if (r.claim_failed)
    st.claims_held_until = steady::now() + st.redo_delay;
  else if (r.claimed.size() < r.claims_asked)
    st.store_empty = true;
  for (auto& c : r.claimed)
    buffer(self, std::move(c));
  for (auto& f : r.then)
    f();
  note_malformed(self);
  want_more(self);
}

// Gives back claims that waited here longer than a worker may run a task:
// by now another node would take them over as stale.
void release_old(queue_actor* self) {
  auto& st = self->state;
  auto limit = steady::now() - st.cfg.min_idle / 3;
  std::vector<claimed_task> old;
  for (auto& lane : st.ready)
    while (!lane.empty() && lane.front().since < limit) {
      old.push_back(std::move(lane.front().claim));
      lane.pop_front();
      --st.ready_size;
    }
  if (old.empty())
    return;
  post(self, [self, old = std::move(old)](task_store& s) -> continuation {
    caf::error err;
    for (auto& c : old) {
      spdlog::debug("task queue: giving back task '{}': no worker took it",
                    c.task.id);
      if (auto back = s.release(c); !back) {
        err = std::move(back.error());
        break;
      }
    }
    return [self, err = std::move(err)] {
      if (err)
        self->state.log->failed("giving a task back", err);
    };
  });
}

void reclaim(queue_actor* self) {
  auto& st = self->state;
  release_old(self);
  // Claims no worker here wants go back to their lanes for any node.
  auto want = st.waiters.size() + prefetch_target(self);
  auto keep = want > st.ready_size ? want - st.ready_size : 0;
  post(self, [self, consumer = st.consumer, min_idle = st.cfg.min_idle,
              keep](task_store& s) -> continuation {
    auto r = s.reclaim(consumer, min_idle);
    caf::error err;
    if (r) {
      while (r->tasks.size() > keep) {
        if (auto back = s.release(r->tasks.back()); !back && !err)
          err = std::move(back.error());
        r->tasks.pop_back();
      }
    }
    return [self, r = std::move(r), err = std::move(err)]() mutable {
      auto& st = self->state;
      note_malformed(self);
      if (!r) {
        st.log->failed("reclaiming stale tasks", r.error());
        return;
      }
      if (err)
        st.log->failed("giving a task back", err);
      else
        st.log->ok();
      for (auto& d : r->dead) {
        st.ctx->stats.add(counter::tasks_dead);
        spdlog::debug("task '{}' is a dead letter after {} attempts: {}",
                      d.task_id, d.attempts, d.error);
      }
      for (auto& c : r->tasks) {
        spdlog::debug("task '{}' reclaimed from a stale claim (attempt {})",
                      c.task.id, c.task.attempts);
        buffer(self, std::move(c));
      }
      unhold_claims(self);
      want_more(self);
      // Retries of nodes that stopped are due as well.
      check_promotions(self);
    };
  });
}

// -- collect ------------------------------------------------------------------

void finish_job(queue_actor* self, uint64_t key);

// Reads `key`'s results on a thread of its own: what is there at once, then
// blocking reads until all arrived or the deadline (the first read also
// when the deadline passed: a timeout of 0 returns what has arrived).
void start_job(queue_actor* self, uint64_t key) {
  auto& st = self->state;
  auto& job = st.jobs.at(key);
  st.running[job.session] = key;
  auto from = st.positions.try_emplace(job.session, "0-0").first->second;
  job.stop = std::make_shared<std::atomic<bool>>(false);
  job.thread = std::thread{
    [store = st.store, session = job.session, want = job.wanted,
     deadline = job.deadline, from = std::move(from), stop = job.stop,
     owner = self->address(), key] {
      name_thread("nova.tq.collect");
      std::vector<task_result> out;
      auto at = from;
      for (bool first = true; out.size() < want && !stop->load();
           first = false) {
        auto left = std::max(std::chrono::duration_cast<caf::timespan>(
                               deadline - steady::now()),
                             caf::timespan{0});
        if (!first && left == caf::timespan{0})
          break;
        auto r = store->collect(session, want - out.size(),
                                std::min<caf::timespan>(left, 500ms), at);
        if (!r) {
          spdlog::debug("task queue: reading the results of '{}': {}",
                        session, describe(r.error()));
          std::this_thread::sleep_for(std::min<caf::timespan>(left, 100ms));
          continue;
        }
        for (auto& x : r->results)
          out.push_back(std::move(x));
        at = r->last_id;
      }
      if (auto hdl = caf::actor_cast<caf::actor>(owner))
        caf::anon_send(hdl, collected_atom::value, key, std::move(out), at);
    }};
}

void finish_job(queue_actor* self, uint64_t key) {
  auto& st = self->state;
  auto i = st.jobs.find(key);
  if (i == st.jobs.end())
    return;
  auto session = i->second.session;
  if (i->second.thread.joinable())
    i->second.thread.join();
  i->second.promise.deliver(std::move(i->second.results));
  st.jobs.erase(i);
  st.running.erase(session);
  note_malformed(self);
  auto q = st.queued.find(session);
  if (q == st.queued.end())
    return;
  auto next = q->second.front();
  q->second.pop_front();
  if (q->second.empty())
    st.queued.erase(q);
  start_job(self, next);
}

// Runs `f(store)` on the I/O thread and answers the current request with
// its result.
template <class T, class F>
caf::result<T> ask_store(queue_actor* self, F f) {
  auto rp = self->make_response_promise();
  post(self, [rp, f = std::move(f)](task_store& s) mutable -> continuation {
    caf::expected<T> r = f(s);
    return [rp, r = std::move(r)]() mutable {
      if (r)
        rp.deliver(std::move(*r));
      else
        rp.deliver(std::move(r.error()));
    };
  });
  return caf::delegated<T>{};
}

} // namespace

task_store::settings task_store_settings(const limits& l) {
  task_store::settings s;
  s.delivery_limit = l.delivery_limit;
  s.retry_base = l.retry_base;
  s.retry_max = std::max(l.retry_max, l.retry_base);
  s.known_ttl = l.task_id_ttl;
  return s;
}

caf::actor spawn_stream_task_queue(caf::actor_system& sys, context_ptr ctx,
                                   std::shared_ptr<task_store> store) {
  return spawn_stream_task_queue(sys, std::move(ctx), std::move(store),
                                 stream_task_queue_settings{});
}

caf::actor spawn_stream_task_queue(caf::actor_system& sys, context_ptr ctx,
                                   std::shared_ptr<task_store> store,
                                   stream_task_queue_settings cfg) {
  auto timeout = ctx->limits.task_timeout;
  if (cfg.reclaim_interval.count() <= 0)
    cfg.reclaim_interval = std::max<caf::timespan>(timeout / 2, 10ms);
  if (cfg.min_idle.count() <= 0)
    cfg.min_idle = timeout + timeout / 2;
  if (cfg.claim_slice.count() <= 0)
    cfg.claim_slice = 1s;
  if (cfg.store_retry_max < first_retry)
    cfg.store_retry_max = first_retry;
  if (cfg.prefetch_window.count() <= 0)
    cfg.prefetch_window = 10ms;
  if (cfg.outbox_capacity == 0)
    cfg.outbox_capacity = std::max<size_t>(ctx->limits.outbox_capacity, 1);
  if (!cfg.health)
    cfg.health = std::make_shared<stream_task_queue_health>();
  auto f = [](queue_actor* self, context_ptr ctx,
              std::shared_ptr<task_store> store,
              stream_task_queue_settings cfg) -> caf::behavior {
    auto& st = self->state;
    st.ctx = std::move(ctx);
    st.store = std::move(store);
    st.cfg = cfg;
    st.health = cfg.health;
    st.log.emplace(st.health);
    st.outbox_capacity = cfg.outbox_capacity;
    st.consumer = consumer_of(*st.ctx);
    st.malformed_seen = st.store->malformed();
    make_quiet(self, "task queue");
    st.claims = std::make_unique<claimer>(st.store, st.consumer,
                                          self->address(), cfg.claim_slice,
                                          cfg.store_retry_max, st.health);
    st.io = std::make_unique<store_io>(st.store, st.consumer,
                                       self->address());
    post(self, [self](task_store& s) -> continuation {
      auto err = s.ensure_groups();
      return [self, err = std::move(err)] {
        if (err)
          self->state.log->failed("creating the consumer groups", err);
      };
    });
    check_promotions(self);
    self->delayed_send(self, cfg.reclaim_interval, reclaim_atom::value);
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& st = self->state;
      auto i = st.monitored.find(dm.source);
      if (i == st.monitored.end())
        return;
      auto worker = i->second;
      st.monitored.erase(i);
      st.waiters.erase(std::remove_if(st.waiters.begin(), st.waiters.end(),
                                      [&](const waiter& w) {
                                        return w.addr == dm.source;
                                      }),
                       st.waiters.end());
      want_more(self);
      std::vector<lease> gone;
      for (auto j = st.leases.begin(); j != st.leases.end();) {
        if (j->second.worker == worker) {
          gone.push_back(std::move(j->second));
          j = st.leases.erase(j);
        } else {
          ++j;
        }
      }
      for (auto& l : gone)
        fail_lease(self, std::move(l), "worker '" + worker + "' stopped");
    });
    return {
      [self](enqueue_atom, task& t) -> caf::result<std::string> {
        std::vector<std::pair<uint64_t, task>> out;
        accept(self, std::move(t),
               enqueue_sink{self->make_response_promise(), nullptr, 0}, out);
        if (!out.empty())
          self->state.io->enqueue(out);
        return caf::delegated<std::string>{};
      },
      [self](enqueue_atom,
             std::vector<task>& ts) -> caf::result<enqueue_results> {
        if (ts.empty())
          return enqueue_results{};
        auto batch = std::make_shared<batch_reply>();
        batch->rp = self->make_response_promise();
        batch->results.ids.resize(ts.size());
        batch->results.errors.resize(ts.size());
        batch->left = ts.size();
        std::vector<std::pair<uint64_t, task>> out;
        out.reserve(ts.size());
        for (size_t i = 0; i < ts.size(); ++i)
          accept(self, std::move(ts[i]), enqueue_sink{{}, batch, i}, out);
        if (!out.empty())
          self->state.io->enqueue(out);
        return caf::delegated<enqueue_results>{};
      },
      [self](claim_atom, std::string& worker) -> caf::result<task> {
        auto& st = self->state;
        auto addr = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (addr)
          watch(self, addr, worker);
        if (st.waiters.empty() && st.ready_size > 0) {
          auto c = next_ready(self);
          auto t = lease_to(self, *c, worker);
          want_more(self);
          return t;
        }
        auto rp = self->make_response_promise();
        st.waiters.push_back(waiter{std::move(worker), addr, rp});
        want_more(self);
        return caf::delegated<task>{};
      },
      [self](io_atom) { on_io_report(self); },
      [self](claimed_atom, std::vector<claimed_task>& xs) {
        for (auto& c : xs)
          buffer(self, std::move(c));
        unhold_claims(self);
        want_more(self);
        note_malformed(self);
      },
      [self](outbox_atom) { drain_outbox(self); },
      [self](store_health_atom) -> caf::result<bool, uint64_t> {
        auto& h = *self->state.health;
        return {h.store_reachable.load(), h.outbox_depth.load()};
      },
      [self](complete_atom, std::string& id, std::string& worker,
             std::string& payload) {
        auto& st = self->state;
        auto i = st.leases.find(id);
        if (i == st.leases.end() || i->second.worker != worker) {
          spdlog::debug("ignoring completion of task '{}' by '{}': not "
                        "claimed by it here (done, or its lease expired)",
                        id, worker);
          return;
        }
        auto claim = std::move(i->second.claim);
        st.leases.erase(i);
        if (!st.deferred.empty()) {
          // Behind the operations still waiting for the store.
          deferred_op op;
          op.complete = true;
          op.claim = std::move(claim);
          op.worker = std::move(worker);
          op.text = std::move(payload);
          op.at_ms = now_ms();
          defer(self, std::move(op));
          return;
        }
        st.io->complete(task_store::completion_request{
          std::move(claim), std::move(payload), std::move(worker)});
      },
      [self](fail_atom, std::string& id, std::string& worker,
             std::string& reason) {
        auto& st = self->state;
        auto i = st.leases.find(id);
        if (i == st.leases.end() || i->second.worker != worker) {
          spdlog::debug("ignoring failure of task '{}' by '{}': not claimed "
                        "by it here",
                        id, worker);
          return;
        }
        auto l = std::move(i->second);
        st.leases.erase(i);
        fail_lease(self, std::move(l), std::move(reason));
      },
      [self](lease_tick_atom, uint64_t gen) {
        auto& st = self->state;
        if (gen != st.lease_gen)
          return;
        st.lease_tick_at.reset();
        auto now = steady::now();
        std::vector<lease> expired;
        for (auto i = st.leases.begin(); i != st.leases.end();) {
          if (i->second.deadline <= now) {
            expired.push_back(std::move(i->second));
            i = st.leases.erase(i);
          } else {
            ++i;
          }
        }
        for (auto& l : expired) {
          auto reason = "task timed out on worker '" + l.worker + "'";
          fail_lease(self, std::move(l), std::move(reason));
        }
        schedule_lease_tick(self);
      },
      [self](redo_atom) { redo(self); },
      [self](promote_atom, uint64_t gen) {
        auto& st = self->state;
        if (gen != st.promote_gen)
          return;
        st.promote_at.reset();
        post(self, [self](task_store& s) -> continuation {
          auto n = s.promote_due(now_ms());
          caf::expected<std::optional<int64_t>> next{std::nullopt};
          if (n)
            next = s.next_due();
          return [self, n = std::move(n), next = std::move(next)] {
            auto& st = self->state;
            note_malformed(self);
            if (!n || !next) {
              st.log->failed("promoting due retries",
                             n ? next.error() : n.error());
              schedule_promote(self,
                               now_ms()
                                 + std::chrono::duration_cast<
                                     std::chrono::milliseconds>(
                                     st.promote_delay)
                                     .count());
              st.promote_delay = std::min(st.promote_delay * 2,
                                          st.cfg.store_retry_max);
              return;
            }
            st.promote_delay = first_retry;
            if (*next)
              schedule_promote(self, **next);
          };
        });
      },
      [self](reclaim_atom) {
        self->delayed_send(self, self->state.cfg.reclaim_interval,
                           reclaim_atom::value);
        reclaim(self);
      },
      [self](collect_atom, std::string& session, uint64_t n,
             caf::timespan timeout)
        -> caf::result<std::vector<task_result>> {
        auto& st = self->state;
        if (auto key = st.store->names().task_results(session); !key)
          return std::move(key.error());
        auto key = st.next_job++;
        auto& job = st.jobs[key];
        job.session = session;
        job.wanted = static_cast<size_t>(n);
        job.deadline = steady::now() + std::max(timeout, caf::timespan{0});
        job.promise = self->make_response_promise();
        if (st.running.count(session))
          st.queued[session].push_back(key);
        else
          start_job(self, key);
        return caf::delegated<std::vector<task_result>>{};
      },
      [self](collected_atom, uint64_t key, std::vector<task_result>& xs,
             std::string& last_id) {
        auto& st = self->state;
        auto i = st.jobs.find(key);
        if (i == st.jobs.end())
          return;
        for (auto& x : xs)
          i->second.results.push_back(std::move(x));
        st.positions[i->second.session] = std::move(last_id);
        finish_job(self, key);
      },
      [self](dead_atom, uint64_t limit) -> caf::result<std::vector<task>> {
        return ask_store<std::vector<task>>(self, [limit](task_store& s) {
          return s.dead_letters(static_cast<size_t>(limit));
        });
      },
      [self](redrive_atom, std::string& id) -> caf::result<uint64_t> {
        return ask_store<uint64_t>(self,
                                   [id](task_store& s)
                                     -> caf::expected<uint64_t> {
                                     auto n = s.redrive(id);
                                     if (!n)
                                       return std::move(n.error());
                                     return static_cast<uint64_t>(*n);
                                   });
      },
      [self](stats_atom) -> caf::result<queue_stats> {
        return ask_store<queue_stats>(self,
                                      [](task_store& s) { return s.stats(); });
      },
    };
  };
  // Scheduled like any actor: every call to the store runs on its I/O
  // thread (or the claimer's), never in a handler.
  auto hdl = sys.spawn(f, std::move(ctx), std::move(store), cfg);
  hdl->attach_functor([](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown)
      spdlog::error("the task queue stopped: {}", describe(reason));
  });
  return hdl;
}

} // namespace nova
