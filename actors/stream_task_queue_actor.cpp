#include "actors/stream_task_queue_actor.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
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
// Timers; each carries the generation it was set for, so a timer replaced
// by an earlier one does nothing when it fires.
using promote_atom = caf::atom_constant<caf::atom("sqpromote")>;
using lease_tick_atom = caf::atom_constant<caf::atom("sqlease")>;
using reclaim_atom = caf::atom_constant<caf::atom("sqreclaim")>;
using redo_atom = caf::atom_constant<caf::atom("sqredo")>;

constexpr caf::timespan first_retry = 100ms;

bool transient(const caf::error& err) {
  return is(err, errc::backend_unavailable);
}

// Logs store trouble once per outage (and again every 10 s while it lasts),
// not once per call.
class outage_log {
public:
  void failed(const char* what, const caf::error& err) {
    auto now = steady::now();
    if (!down_ || now - last_ >= 10s) {
      spdlog::warn("task queue: {} failed: {}", what, describe(err));
      last_ = now;
    } else {
      spdlog::debug("task queue: {} failed: {}", what, describe(err));
    }
    down_ = transient(err);
  }

  void ok() {
    if (down_)
      spdlog::info("task queue: the task store answers again");
    down_ = false;
  }

private:
  bool down_ = false;
  steady::time_point last_;
};

// The thread that waits on the store for tasks while local workers wait
// (`wait_claim` blocks; the actor must not). It only claims, releases and
// sends: it never touches the actor's state.
class claimer {
public:
  claimer(std::shared_ptr<task_store> store, std::string consumer,
          caf::actor_addr owner, caf::timespan slice, caf::timespan retry_max)
    : store_(std::move(store)),
      consumer_(std::move(consumer)),
      owner_(std::move(owner)),
      slice_(slice),
      retry_max_(retry_max) {
    thread_ = std::thread{[this] { run(); }};
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

  // One more worker waits for a task.
  void add_demand() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++demand_;
    }
    cv_.notify_all();
  }

  // A waiting worker was served otherwise, or left.
  void drop_demand() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (demand_ > 0)
      --demand_;
  }

private:
  void run() {
    outage_log log;
    auto delay = first_retry;
    for (;;) {
      {
        std::unique_lock<std::mutex> guard{mtx_};
        cv_.wait(guard, [this] { return stop_ || demand_ > 0; });
        if (stop_)
          return;
      }
      auto r = store_->wait_claim(consumer_, slice_);
      if (!r) {
        log.failed("waiting for a task", r.error());
        std::unique_lock<std::mutex> guard{mtx_};
        if (cv_.wait_for(guard, delay, [this] { return stop_; }))
          return;
        delay = std::min(delay * 2, retry_max_);
        continue;
      }
      log.ok();
      delay = first_retry;
      if (!*r)
        continue;
      bool wanted = false;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (!stop_ && demand_ > 0) {
          --demand_;
          wanted = true;
        }
      }
      auto owner = caf::actor_cast<caf::actor>(owner_);
      if (wanted && owner) {
        caf::anon_send(owner, claimed_atom::value, std::move(**r));
        continue;
      }
      // The worker left while we waited: back to its lane, uncounted.
      if (auto back = store_->release(**r); !back)
        spdlog::warn("task queue: cannot give task '{}' back; it is "
                     "reclaimed later: {}",
                     (*r)->task.id, describe(back.error()));
    }
  }

  std::shared_ptr<task_store> store_;
  std::string consumer_;
  caf::actor_addr owner_;
  caf::timespan slice_;
  caf::timespan retry_max_;
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t demand_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

struct waiter {
  std::string worker;
  caf::actor_addr addr;
  caf::response_promise promise;
};

struct lease {
  claimed_task claim;
  std::string worker;
  steady::time_point deadline;
};

// A completion or failure the store did not take (unreachable): retried in
// order until it does.
struct deferred_op {
  bool complete = false;
  claimed_task claim;
  std::string worker;
  // The payload of a completion, the reason of a failure.
  std::string text;
  int64_t at_ms = 0;
};

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
  std::string consumer;
  std::unique_ptr<claimer> claims;
  std::deque<waiter> waiters;
  std::map<caf::actor_addr, std::string> monitored;
  std::unordered_map<std::string, lease> leases;
  std::deque<deferred_op> deferred;
  caf::timespan redo_delay = first_retry;
  bool redo_scheduled = false;
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
  outage_log log;

  stream_queue_state() = default;
  stream_queue_state(const stream_queue_state&) = delete;
  stream_queue_state& operator=(const stream_queue_state&) = delete;

  // Runs when the actor exits.
  ~stream_queue_state() {
    claims.reset();
    for (auto& kvp : jobs)
      if (kvp.second.stop)
        kvp.second.stop->store(true);
    for (auto& kvp : jobs)
      if (kvp.second.thread.joinable())
        kvp.second.thread.join();
    if (!store)
      return;
    // Tasks this node holds are retried elsewhere now rather than after
    // they went stale; one attempt each while the store answers.
    auto now = now_ms();
    for (auto& op : deferred) {
      auto ok = op.complete
                  ? static_cast<bool>(
                    store->complete(op.claim, op.text, op.worker))
                  : static_cast<bool>(
                    store->fail(op.claim, op.text, op.at_ms, op.worker));
      if (!ok)
        return;
    }
    for (auto& kvp : leases) {
      auto r = store->fail(kvp.second.claim,
                           "node '" + ctx->node_id + "' stopped", now,
                           kvp.second.worker);
      if (!r)
        return;
    }
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
  auto next = self->state.store->next_due();
  if (!next) {
    self->state.log.failed("reading the retry schedule", next.error());
    return;
  }
  if (*next)
    schedule_promote(self, **next);
}

void schedule_lease_tick(queue_actor* self) {
  auto& st = self->state;
  std::optional<steady::time_point> next;
  for (auto& kvp : st.leases)
    if (!next || kvp.second.deadline < *next)
      next = kvp.second.deadline;
  if (!next)
    return;
  if (st.lease_tick_at && *st.lease_tick_at <= *next)
    return;
  st.lease_tick_at = *next;
  auto delay = std::max(caf::timespan{0},
                        std::chrono::duration_cast<caf::timespan>(
                          *next - steady::now()));
  self->delayed_send(self, delay, lease_tick_atom::value, ++st.lease_gen);
}

void schedule_redo(queue_actor* self) {
  auto& st = self->state;
  if (st.redo_scheduled)
    return;
  st.redo_scheduled = true;
  self->delayed_send(self, st.redo_delay, redo_atom::value);
  st.redo_delay = std::min(st.redo_delay * 2, st.cfg.store_retry_max);
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
    spdlog::debug("task '{}': failure ignored, the task was {}", c.task.id,
                  f.already_done ? "done by another delivery"
                                 : "taken over by another delivery");
  }
}

// Runs one store operation; false if the store did not answer.
bool attempt(queue_actor* self, const deferred_op& op) {
  auto& st = self->state;
  if (op.complete) {
    auto r = st.store->complete(op.claim, op.text, op.worker);
    if (!r) {
      if (transient(r.error()))
        return false;
      spdlog::error("task queue: completing task '{}' failed: {}",
                    op.claim.task.id, describe(r.error()));
      return true;
    }
    if (*r == task_store::completion::done)
      st.ctx->stats.add(counter::tasks_done);
    else
      spdlog::debug("task '{}' was already done; this delivery was only "
                    "acked",
                    op.claim.task.id);
    return true;
  }
  auto f = st.store->fail(op.claim, op.text, op.at_ms, op.worker);
  if (!f) {
    if (transient(f.error()))
      return false;
    spdlog::error("task queue: failing task '{}' failed: {}",
                  op.claim.task.id, describe(f.error()));
    return true;
  }
  on_failure(self, op.claim, *f);
  return true;
}

void run_op(queue_actor* self, deferred_op op) {
  auto& st = self->state;
  // Behind operations still waiting for the store, to keep their order.
  if (st.deferred.empty() && attempt(self, op)) {
    st.log.ok();
    return;
  }
  st.log.failed(op.complete ? "completing a task" : "failing a task",
                make_error(errc::backend_unavailable,
                           "task '" + op.claim.task.id
                             + "' waits for the store"));
  st.deferred.push_back(std::move(op));
  schedule_redo(self);
}

void fail_lease(queue_actor* self, lease l, std::string reason) {
  deferred_op op;
  op.claim = std::move(l.claim);
  op.worker = std::move(l.worker);
  op.text = std::move(reason);
  op.at_ms = now_ms();
  run_op(self, std::move(op));
}

// -- handing out tasks --------------------------------------------------------

void watch(queue_actor* self, const caf::actor_addr& addr,
           const std::string& worker) {
  if (self->state.monitored.emplace(addr, worker).second)
    self->monitor(addr);
}

void take_lease(queue_actor* self, const claimed_task& c,
                const std::string& worker) {
  auto& st = self->state;
  st.leases[c.task.id] = lease{c, worker,
                               steady::now() + st.ctx->limits.task_timeout};
  schedule_lease_tick(self);
}

// True if a redelivered task is done already: then it is acked and skipped.
bool skip_if_done(queue_actor* self, const claimed_task& c) {
  if (c.task.attempts <= 1)
    return false;
  auto& st = self->state;
  auto done = st.store->is_done(c.task.id);
  if (!done) {
    // Unknown: run it; the done record keeps the effect to one.
    st.log.failed("checking a redelivered task", done.error());
    return false;
  }
  if (!*done)
    return false;
  spdlog::debug("task '{}' was completed by an earlier delivery; skipped",
                c.task.id);
  if (auto err = st.store->ack_done(c))
    st.log.failed("acking a completed task", err);
  return true;
}

// A claim from the helper thread (`from_claimer`) or from a reclaim.
void hand_out(queue_actor* self, claimed_task c, bool from_claimer) {
  auto& st = self->state;
  if (skip_if_done(self, c)) {
    if (from_claimer)
      st.claims->add_demand();
    return;
  }
  if (st.waiters.empty()) {
    auto back = st.store->release(c);
    if (!back)
      st.log.failed("giving a task back", back.error());
    return;
  }
  auto w = std::move(st.waiters.front());
  st.waiters.pop_front();
  if (!from_claimer)
    st.claims->drop_demand();
  take_lease(self, c, w.worker);
  w.promise.deliver(std::move(c.task));
}

// -- collect ------------------------------------------------------------------

void finish_job(queue_actor* self, uint64_t key);

void start_job(queue_actor* self, uint64_t key) {
  auto& st = self->state;
  auto& job = st.jobs.at(key);
  st.running[job.session] = key;
  auto& pos = st.positions.try_emplace(job.session, "0-0").first->second;
  auto r = st.store->results_since(job.session, pos,
                                   job.wanted - job.results.size());
  if (r) {
    for (auto& x : r->results)
      job.results.push_back(std::move(x));
    pos = r->last_id;
  } else {
    st.log.failed("reading task results", r.error());
  }
  if (job.results.size() >= job.wanted || steady::now() >= job.deadline) {
    finish_job(self, key);
    return;
  }
  job.stop = std::make_shared<std::atomic<bool>>(false);
  job.thread = std::thread{
    [store = st.store, session = job.session,
     want = job.wanted - job.results.size(), deadline = job.deadline,
     from = pos, stop = job.stop, owner = self->address(), key] {
      std::vector<task_result> out;
      auto at = from;
      while (out.size() < want && !stop->load()) {
        auto left = std::chrono::duration_cast<caf::timespan>(deadline
                                                              - steady::now());
        if (left <= caf::timespan{0})
          break;
        auto r = store->collect(session, want - out.size(),
                                std::min<caf::timespan>(left, 500ms), at);
        if (!r) {
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

} // namespace

task_store::settings task_store_settings(const limits& l) {
  task_store::settings s;
  s.delivery_limit = l.delivery_limit;
  s.retry_base = l.retry_base;
  s.retry_max = std::max(l.retry_max, l.retry_base);
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
  auto f = [](queue_actor* self, context_ptr ctx,
              std::shared_ptr<task_store> store,
              stream_task_queue_settings cfg) -> caf::behavior {
    auto& st = self->state;
    st.ctx = std::move(ctx);
    st.store = std::move(store);
    st.cfg = cfg;
    st.consumer = consumer_of(*st.ctx);
    st.malformed_seen = st.store->malformed();
    make_quiet(self, "task queue");
    if (auto err = st.store->ensure_groups())
      st.log.failed("creating the consumer groups", err);
    st.claims = std::make_unique<claimer>(st.store, st.consumer,
                                          self->address(), cfg.claim_slice,
                                          cfg.store_retry_max);
    check_promotions(self);
    self->delayed_send(self, cfg.reclaim_interval, reclaim_atom::value);
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& st = self->state;
      auto i = st.monitored.find(dm.source);
      if (i == st.monitored.end())
        return;
      auto worker = i->second;
      st.monitored.erase(i);
      for (auto j = st.waiters.begin(); j != st.waiters.end();) {
        if (j->addr == dm.source) {
          j = st.waiters.erase(j);
          st.claims->drop_demand();
        } else {
          ++j;
        }
      }
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
        auto& st = self->state;
        auto id = st.store->enqueue(std::move(t));
        if (!id) {
          if (transient(id.error()))
            st.log.failed("enqueueing a task", id.error());
          return std::move(id.error());
        }
        st.log.ok();
        st.ctx->stats.add(counter::tasks_enqueued);
        return std::move(*id);
      },
      [self](claim_atom, std::string& worker) -> caf::result<task> {
        auto& st = self->state;
        auto addr = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (addr)
          watch(self, addr, worker);
        // Nobody waits before this worker: try the store at once.
        if (st.waiters.empty()) {
          for (size_t round = 0; round < 16; ++round) {
            auto c = st.store->claim(st.consumer);
            if (!c) {
              st.log.failed("claiming a task", c.error());
              break;
            }
            if (!*c)
              break;
            if (skip_if_done(self, **c))
              continue;
            take_lease(self, **c, worker);
            note_malformed(self);
            return std::move((*c)->task);
          }
          note_malformed(self);
        }
        auto rp = self->make_response_promise();
        st.waiters.push_back(waiter{std::move(worker), addr, rp});
        st.claims->add_demand();
        return caf::delegated<task>{};
      },
      [self](claimed_atom, claimed_task& c) {
        hand_out(self, std::move(c), true);
        note_malformed(self);
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
        deferred_op op;
        op.complete = true;
        op.claim = std::move(i->second.claim);
        op.worker = std::move(worker);
        op.text = std::move(payload);
        op.at_ms = now_ms();
        st.leases.erase(i);
        run_op(self, std::move(op));
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
      [self](redo_atom) {
        auto& st = self->state;
        st.redo_scheduled = false;
        while (!st.deferred.empty()) {
          if (!attempt(self, st.deferred.front())) {
            schedule_redo(self);
            return;
          }
          st.deferred.pop_front();
        }
        st.redo_delay = first_retry;
        st.log.ok();
      },
      [self](promote_atom, uint64_t gen) {
        auto& st = self->state;
        if (gen != st.promote_gen)
          return;
        st.promote_at.reset();
        auto n = st.store->promote_due(now_ms());
        note_malformed(self);
        if (!n) {
          st.log.failed("promoting due retries", n.error());
          schedule_promote(self, now_ms() + std::chrono::duration_cast<
                                   std::chrono::milliseconds>(
                                   st.promote_delay)
                                   .count());
          st.promote_delay = std::min(st.promote_delay * 2,
                                      st.cfg.store_retry_max);
          return;
        }
        st.promote_delay = first_retry;
        check_promotions(self);
      },
      [self](reclaim_atom) {
        auto& st = self->state;
        self->delayed_send(self, st.cfg.reclaim_interval,
                           reclaim_atom::value);
        auto r = st.store->reclaim(st.consumer, st.cfg.min_idle);
        note_malformed(self);
        if (!r) {
          st.log.failed("reclaiming stale tasks", r.error());
          return;
        }
        for (auto& d : r->dead) {
          st.ctx->stats.add(counter::tasks_dead);
          spdlog::debug("task '{}' is a dead letter after {} attempts: {}",
                        d.task_id, d.attempts, d.error);
        }
        for (auto& c : r->tasks) {
          spdlog::debug("task '{}' reclaimed from a stale claim (attempt {})",
                        c.task.id, c.task.attempts);
          hand_out(self, std::move(c), false);
        }
        // Retries of nodes that stopped are due as well.
        check_promotions(self);
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
        auto xs = self->state.store->dead_letters(static_cast<size_t>(limit));
        if (!xs)
          return std::move(xs.error());
        return std::move(*xs);
      },
      [self](redrive_atom, std::string& id) -> caf::result<uint64_t> {
        auto n = self->state.store->redrive(id);
        if (!n)
          return std::move(n.error());
        return static_cast<uint64_t>(*n);
      },
      [self](stats_atom) -> caf::result<queue_stats> {
        auto s = self->state.store->stats();
        if (!s)
          return std::move(s.error());
        return std::move(*s);
      },
    };
  };
  // Detached: calls to the store block for a round trip (longer while it is
  // unreachable) and must not hold a scheduler thread.
  auto hdl = sys.spawn<caf::detached>(f, std::move(ctx), std::move(store),
                                      cfg);
  hdl->attach_functor([](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown)
      spdlog::error("the task queue stopped: {}", describe(reason));
  });
  return hdl;
}

} // namespace nova
