#include "actors/task_queue_actor.hpp"

#include <deque>
#include <map>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/quiet.hpp"
#include <spdlog/spdlog.h>

#include "actors/task_queue.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using collect_timeout_atom = caf::atom_constant<caf::atom("ctimeout")>;

struct waiter {
  std::string worker;
  caf::actor_addr addr;
  caf::response_promise promise;
};

struct collector {
  std::string session;
  size_t wanted = 0;
  caf::response_promise promise;
};

struct queue_state {
  static inline const char* name = "nova.task_queue";

  task_queue queue{task_queue::settings{}};
  std::deque<waiter> waiters;
  std::map<std::string, std::deque<task_result>> results;
  std::map<uint64_t, collector> collectors;
  uint64_t next_collector = 0;
  // worker id -> address of the actor that holds its leases
  std::map<caf::actor_addr, std::string> monitored;
  std::optional<task_queue::time_point> tick_at;
  context_ptr ctx;
};

using queue_actor = caf::stateful_actor<queue_state>;

constexpr size_t max_results_per_session = 100'000;

void schedule_tick(queue_actor* self) {
  auto next = self->state.queue.next_deadline();
  if (!next)
    return;
  auto& at = self->state.tick_at;
  if (at && *at <= *next)
    return;
  at = *next;
  auto delay = *next - task_queue::clock::now();
  if (delay < caf::timespan{0})
    delay = caf::timespan{0};
  self->delayed_send(self, delay, tick_atom::value);
}

void watch(queue_actor* self, const caf::actor_addr& addr,
           const std::string& worker) {
  if (self->state.monitored.emplace(addr, worker).second)
    self->monitor(addr);
}

void deliver_result(queue_actor* self, task_result r) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  ctx.stats.add(r.status == task_status::dead ? counter::tasks_dead
                                              : counter::tasks_done);
  if (r.status == task_status::dead)
    spdlog::debug("task '{}' is a dead letter after {} attempts: {}",
                  r.task_id, r.attempts, r.error);
  if (r.session.empty())
    return;
  auto& box = st.results[r.session];
  box.push_back(std::move(r));
  if (box.size() > max_results_per_session)
    box.pop_front();
  for (auto i = st.collectors.begin(); i != st.collectors.end();) {
    auto& c = i->second;
    auto j = st.results.find(c.session);
    if (j != st.results.end() && j->second.size() >= c.wanted) {
      std::vector<task_result> out;
      for (size_t k = 0; k < c.wanted; ++k) {
        out.push_back(std::move(j->second.front()));
        j->second.pop_front();
      }
      c.promise.deliver(std::move(out));
      i = st.collectors.erase(i);
    } else {
      ++i;
    }
  }
}

void hand_out(queue_actor* self) {
  auto& st = self->state;
  auto now = task_queue::clock::now();
  while (!st.waiters.empty() && st.queue.has_ready()) {
    auto w = std::move(st.waiters.front());
    st.waiters.pop_front();
    auto t = st.queue.claim(w.worker, now);
    watch(self, w.addr, w.worker);
    w.promise.deliver(std::move(*t));
  }
  schedule_tick(self);
}

void on_failure(queue_actor* self, const task_queue::failure& f) {
  if (f.dead)
    deliver_result(self, *f.dead);
  else
    self->state.ctx->stats.add(counter::tasks_retried);
}

} // namespace

caf::error prepare_task(task& t, runtime_context& ctx) {
  if (!t.session.empty())
    if (auto err = check_id(t.session, "session"))
      return err;
  if (t.payload.size() > ctx.limits.max_payload) {
    ctx.stats.add(counter::rejected_oversized);
    return make_error(errc::payload_too_large,
                      "task payload of " + std::to_string(t.payload.size())
                        + " bytes exceeds the limit of "
                        + std::to_string(ctx.limits.max_payload) + " bytes");
  }
  if (t.id.empty())
    t.id = new_message_id();
  else if (auto err = check_id(t.id, "task id"))
    return err;
  t.created_at = now_ms();
  return caf::none;
}

caf::actor spawn_task_queue(caf::actor_system& sys, context_ptr ctx) {
  task_queue::settings s;
  s.delivery_limit = ctx->limits.delivery_limit;
  s.retry_base = ctx->limits.retry_base;
  s.retry_max = ctx->limits.retry_max;
  s.task_timeout = ctx->limits.task_timeout;
  auto f = [](queue_actor* self, task_queue::settings s,
              context_ptr ctx) -> caf::behavior {
    self->state.ctx = std::move(ctx);
    make_quiet(self, "task queue");
    self->state.queue = task_queue{s};
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
      for (auto& f : st.queue.release_worker(worker,
                                             task_queue::clock::now()))
        on_failure(self, f);
      hand_out(self);
    });
    return {
      [self](enqueue_atom, task& t) -> caf::result<std::string> {
        auto id = t.id;
        if (auto err = self->state.queue.enqueue(std::move(t)))
          return err;
        self->state.ctx->stats.add(counter::tasks_enqueued);
        hand_out(self);
        return id;
      },
      [self](enqueue_atom, std::vector<task>& ts) -> enqueue_results {
        enqueue_results out;
        out.ids.resize(ts.size());
        out.errors.resize(ts.size());
        for (size_t i = 0; i < ts.size(); ++i) {
          auto id = ts[i].id;
          if (auto err = self->state.queue.enqueue(std::move(ts[i]))) {
            out.errors[i] = std::move(err);
            continue;
          }
          self->state.ctx->stats.add(counter::tasks_enqueued);
          out.ids[i] = std::move(id);
        }
        hand_out(self);
        return out;
      },
      [self](claim_atom, std::string& worker) -> caf::result<task> {
        auto& st = self->state;
        auto addr = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (auto t = st.queue.claim(worker, task_queue::clock::now())) {
          if (addr)
            watch(self, addr, worker);
          schedule_tick(self);
          return std::move(*t);
        }
        auto rp = self->make_response_promise();
        if (addr)
          watch(self, addr, worker);
        st.waiters.push_back(waiter{std::move(worker), addr, rp});
        return caf::delegated<task>{};
      },
      [self](complete_atom, std::string& id, std::string& worker,
             std::string& payload) {
        auto r = self->state.queue.complete(id, worker, std::move(payload),
                                            task_queue::clock::now());
        if (!r) {
          spdlog::debug("ignoring completion of task '{}' by '{}': {}", id,
                        worker, describe(r.error()));
          return;
        }
        deliver_result(self, std::move(*r));
      },
      [self](fail_atom, std::string& id, std::string& worker,
             std::string& reason) {
        auto f = self->state.queue.fail(id, worker, std::move(reason),
                                        task_queue::clock::now());
        if (!f) {
          spdlog::debug("ignoring failure of task '{}' by '{}': {}", id,
                        worker, describe(f.error()));
          return;
        }
        on_failure(self, *f);
        schedule_tick(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        st.tick_at.reset();
        for (auto& r : st.queue.advance(task_queue::clock::now()))
          deliver_result(self, std::move(r));
        hand_out(self);
      },
      [self](collect_atom, std::string& session, uint64_t n,
             caf::timespan timeout)
        -> caf::result<std::vector<task_result>> {
        auto& st = self->state;
        auto& box = st.results[session];
        if (box.size() >= n) {
          std::vector<task_result> out;
          for (uint64_t k = 0; k < n; ++k) {
            out.push_back(std::move(box.front()));
            box.pop_front();
          }
          return out;
        }
        auto rp = self->make_response_promise();
        auto key = st.next_collector++;
        st.collectors.emplace(key, collector{session, static_cast<size_t>(n),
                                             rp});
        self->delayed_send(self, timeout, collect_timeout_atom::value, key);
        return caf::delegated<std::vector<task_result>>{};
      },
      [self](collect_timeout_atom, uint64_t key) {
        auto& st = self->state;
        auto i = st.collectors.find(key);
        if (i == st.collectors.end())
          return;
        std::vector<task_result> out;
        auto j = st.results.find(i->second.session);
        if (j != st.results.end()) {
          for (auto& r : j->second)
            out.push_back(std::move(r));
          st.results.erase(j);
        }
        i->second.promise.deliver(std::move(out));
        st.collectors.erase(i);
      },
      [self](dead_atom, uint64_t limit) {
        return self->state.queue.dead_letters(limit);
      },
      [self](redrive_atom, std::string& id) -> caf::result<uint64_t> {
        auto n = self->state.queue.redrive(id);
        if (!n)
          return std::move(n.error());
        hand_out(self);
        return static_cast<uint64_t>(*n);
      },
      [self](stats_atom) { return self->state.queue.stats(); },
    };
  };
  auto hdl = sys.spawn(f, s, std::move(ctx));
  hdl->attach_functor([](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown)
      spdlog::error("the task queue stopped: {}", describe(reason));
  });
  return hdl;
}

} // namespace nova
