#include "actors/task_queue.hpp"

#include <algorithm>

#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

task_queue::task_queue(settings s) : settings_(s) {
  if (settings_.delivery_limit == 0)
    settings_.delivery_limit = 1;
}

size_t task_queue::lane_of(priority p) noexcept {
  switch (p) {
    case priority::urgent: return 0;
    case priority::high: return 1;
    case priority::low: return 3;
    default: return 2;
  }
}

caf::error task_queue::enqueue(task t) {
  if (t.id.empty())
    t.id = new_message_id();
  if (queued_ids_.count(t.id) || leases_.count(t.id) || done_ids_.count(t.id))
    return make_error(errc::duplicate_id,
                      "task '" + t.id + "' is already queued or done");
  queued_ids_.insert(t.id);
  ++enqueued_;
  lanes_[lane_of(t.priority)].push_back(std::move(t));
  return caf::none;
}

bool task_queue::has_ready() const noexcept {
  for (const auto& lane : lanes_)
    if (!lane.empty())
      return true;
  return false;
}

std::optional<task> task_queue::claim(const std::string& worker,
                                      time_point now) {
  for (auto& lane : lanes_) {
    if (lane.empty())
      continue;
    task t = std::move(lane.front());
    lane.pop_front();
    ++t.attempts;
    auto& l = leases_[t.id];
    l.t = t;
    l.worker = worker;
    l.deadline = now + settings_.task_timeout;
    return t;
  }
  return std::nullopt;
}

void task_queue::remember_done(const std::string& id) {
  if (done_ids_.insert(id).second) {
    done_order_.push_back(id);
    if (done_order_.size() > settings_.remembered_ids) {
      done_ids_.erase(done_order_.front());
      done_order_.pop_front();
    }
  }
}

caf::expected<task_result> task_queue::complete(const std::string& task_id,
                                                const std::string& worker,
                                                std::string payload,
                                                time_point) {
  auto i = leases_.find(task_id);
  if (i == leases_.end() || i->second.worker != worker)
    return make_error(errc::not_found,
                      "task '" + task_id + "' is not claimed by '" + worker
                        + "' (already done, or its lease expired and it was "
                          "retried)");
  task_result r;
  r.task_id = task_id;
  r.session = i->second.t.session;
  r.status = task_status::done;
  r.worker = worker;
  r.payload = std::move(payload);
  r.attempts = i->second.t.attempts;
  r.completed_at = now_ms();
  queued_ids_.erase(task_id);
  leases_.erase(i);
  remember_done(task_id);
  ++done_;
  return r;
}

caf::timespan task_queue::backoff(uint32_t attempts) const noexcept {
  auto d = settings_.retry_base;
  for (uint32_t i = 1; i < attempts && d < settings_.retry_max; ++i)
    d *= 2;
  return std::min(d, settings_.retry_max);
}

task_queue::failure task_queue::fail_lease(lease l, std::string reason,
                                           time_point now) {
  failure out;
  l.t.last_error = std::move(reason);
  auto limit = l.t.max_attempts > 0 ? l.t.max_attempts
                                    : settings_.delivery_limit;
  if (l.t.attempts >= limit) {
    task_result r;
    r.task_id = l.t.id;
    r.session = l.t.session;
    r.status = task_status::dead;
    r.worker = l.worker;
    r.error = l.t.last_error;
    r.attempts = l.t.attempts;
    r.completed_at = now_ms();
    out.dead = std::move(r);
    // The id stays taken while it is a dead letter: a redrive brings it back.
    dead_.push_back(std::move(l.t));
    return out;
  }
  ++retried_;
  auto at = now + backoff(l.t.attempts);
  out.retry_at = at;
  delayed_.push_back(delayed{std::move(l.t), at});
  return out;
}

caf::expected<task_queue::failure>
task_queue::fail(const std::string& task_id, const std::string& worker,
                 std::string reason, time_point now) {
  auto i = leases_.find(task_id);
  if (i == leases_.end() || i->second.worker != worker)
    return make_error(errc::not_found,
                      "task '" + task_id + "' is not claimed by '" + worker
                        + "'");
  auto l = std::move(i->second);
  leases_.erase(i);
  return fail_lease(std::move(l), std::move(reason), now);
}

std::vector<task_queue::failure>
task_queue::release_worker(const std::string& worker, time_point now) {
  std::vector<lease> gone;
  for (auto i = leases_.begin(); i != leases_.end();) {
    if (i->second.worker == worker) {
      gone.push_back(std::move(i->second));
      i = leases_.erase(i);
    } else {
      ++i;
    }
  }
  std::vector<failure> out;
  for (auto& l : gone)
    out.push_back(fail_lease(std::move(l),
                             "worker '" + worker + "' stopped", now));
  return out;
}

std::vector<task_result> task_queue::advance(time_point now) {
  std::vector<task_result> dead;
  std::vector<lease> expired;
  for (auto i = leases_.begin(); i != leases_.end();) {
    if (i->second.deadline <= now) {
      expired.push_back(std::move(i->second));
      i = leases_.erase(i);
    } else {
      ++i;
    }
  }
  for (auto& l : expired) {
    auto reason = "task timed out on worker '" + l.worker + "'";
    auto f = fail_lease(std::move(l), std::move(reason), now);
    if (f.dead)
      dead.push_back(std::move(*f.dead));
  }
  // Keep the order tasks were delayed in, so retries stay FIFO per lane.
  auto ready = std::stable_partition(delayed_.begin(), delayed_.end(),
                                     [&](const delayed& d) {
                                       return d.ready_at <= now;
                                     });
  for (auto i = delayed_.begin(); i != ready; ++i)
    lanes_[lane_of(i->t.priority)].push_back(std::move(i->t));
  delayed_.erase(delayed_.begin(), ready);
  return dead;
}

std::optional<task_queue::time_point> task_queue::next_deadline() const {
  std::optional<time_point> out;
  auto consider = [&](time_point t) {
    if (!out || t < *out)
      out = t;
  };
  for (const auto& d : delayed_)
    consider(d.ready_at);
  for (const auto& kvp : leases_)
    consider(kvp.second.deadline);
  return out;
}

std::vector<task> task_queue::dead_letters(size_t limit) const {
  std::vector<task> out;
  for (const auto& t : dead_) {
    if (out.size() >= limit)
      break;
    out.push_back(t);
  }
  return out;
}

caf::expected<size_t> task_queue::redrive(const std::string& task_id) {
  size_t moved = 0;
  for (auto i = dead_.begin(); i != dead_.end();) {
    if (task_id.empty() || i->id == task_id) {
      task t = std::move(*i);
      i = dead_.erase(i);
      t.attempts = 0;
      queued_ids_.insert(t.id);
      lanes_[lane_of(t.priority)].push_back(std::move(t));
      ++moved;
    } else {
      ++i;
    }
  }
  if (moved == 0 && !task_id.empty())
    return make_error(errc::not_found,
                      "no dead letter with task id '" + task_id + "'");
  return moved;
}

queue_stats task_queue::stats() const {
  queue_stats s;
  for (const auto& lane : lanes_)
    s.depth.push_back(lane.size());
  s.in_flight = leases_.size();
  s.delayed = delayed_.size();
  s.dead = dead_.size();
  s.done = done_;
  s.retried = retried_;
  s.enqueued = enqueued_;
  return s;
}

} // namespace nova
