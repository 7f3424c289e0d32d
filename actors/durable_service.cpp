#include "actors/durable_service.hpp"

#include <algorithm>
#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/outbound.hpp"
#include "messages/errc.hpp"

namespace nova {

namespace {

using clock = std::chrono::steady_clock;

void send_local(const caf::actor& dest, const envelope& x) {
  if (x.priority == priority::urgent || x.kind == kind::emergency)
    caf::anon_send<caf::message_priority::high>(dest, x);
  else
    caf::anon_send(dest, x);
}

} // namespace

durable_service::durable_service(runtime_context* ctx,
                                 std::shared_ptr<durable_store> store,
                                 settings s)
  : ctx_(ctx), store_(std::move(store)), settings_(s) {
  settings_.batch = std::max<size_t>(settings_.batch, 1);
  writer_ = std::thread{[this] { run_writer(); }};
  reader_ = std::thread{[this] { run_reader(); }};
}

durable_service::~durable_service() {
  stop(caf::timespan{0});
}

void durable_service::stop(caf::timespan drain) {
  {
    std::lock_guard guard{write_mtx_};
    if (!stopping_) {
      stopping_ = true;
      drain_ = drain;
    }
  }
  write_cv_.notify_all();
  if (writer_.joinable())
    writer_.join();
  {
    std::lock_guard guard{read_mtx_};
    reader_stopping_ = true;
  }
  read_cv_.notify_all();
  if (reader_.joinable())
    reader_.join();
}

caf::error durable_service::append(envelope env) {
  {
    std::lock_guard guard{write_mtx_};
    if (stopping_)
      return make_error(errc::shutting_down,
                        "the node is shutting down; durable send not taken");
    if (to_write_.size() >= settings_.capacity) {
      ctx_->stats.add(counter::outbox_full);
      return make_error(errc::queue_full,
                        std::to_string(to_write_.size())
                          + " durable envelopes wait for the store; try "
                            "again later");
    }
    to_write_.push_back(std::move(env));
    backlog_.fetch_add(1, std::memory_order_relaxed);
  }
  write_cv_.notify_one();
  return caf::none;
}

void durable_service::catch_up(const std::string& nova_id, caf::actor nova,
                               bool with_pending) {
  {
    std::lock_guard guard{read_mtx_};
    to_read_.push_back(
      read_job{nova_id, std::move(nova), with_pending, {}, std::nullopt, 0});
  }
  read_cv_.notify_one();
}

void durable_service::ack(const std::string& nova_id,
                          std::vector<std::string> entry_ids) {
  if (entry_ids.empty())
    return;
  {
    std::lock_guard guard{read_mtx_};
    to_read_.push_back(
      read_job{nova_id, {}, false, std::move(entry_ids), std::nullopt, 0});
  }
  read_cv_.notify_one();
}

void durable_service::replay(replay_query q, caf::actor to, uint64_t token) {
  {
    std::lock_guard guard{read_mtx_};
    read_job job;
    job.nova = std::move(to);
    job.replay = std::move(q);
    job.token = token;
    to_read_.push_back(std::move(job));
  }
  read_cv_.notify_one();
}

caf::timespan durable_service::next_delay(caf::timespan current) const {
  return std::min(current * 2, settings_.retry_max);
}

void durable_service::failed(const caf::error& err, const char* what) {
  store_ok_.store(false, std::memory_order_relaxed);
  if (!outage_logged_.exchange(true))
    spdlog::warn("durable: {} failed: {}; retrying while {} envelopes wait "
                 "(health is degraded until the store answers)",
                 what, describe(err), backlog());
}

void durable_service::recovered() {
  if (!store_ok_.exchange(true, std::memory_order_relaxed)
      && outage_logged_.exchange(false))
    spdlog::info("durable: the store answers again; {} envelopes wait",
                 backlog());
}

void durable_service::notify(const envelope& env, const std::string& entry_id,
                             std::vector<std::string>& woken) {
  switch (env.kind) {
    case kind::broadcast:
    case kind::multicast:
    case kind::event:
    case kind::emergency:
      // Written for replay; delivered in real time as usual.
      if (auto err = fan_out(*ctx_, env, send_local))
        spdlog::debug("durable: real-time copy of {} not sent: {}",
                      env.id.view(), describe(err));
      return;
    default:
      break;
  }
  // One wake-up per local receiver and batch; most of a batch usually goes
  // to few receivers, so this spares a directory lookup per envelope.
  if (std::find(woken.begin(), woken.end(), env.to) != woken.end())
    return;
  if (auto dest = ctx_->directory.find(env.to)) {
    woken.push_back(env.to);
    caf::anon_send(dest, durable_atom::value);
  } else if (ctx_->bus && ctx_->bus->knows(env.to)) {
    auto copy = env;
    copy.headers[durable_header] = entry_id;
    if (auto err = ctx_->bus->publish(copy))
      spdlog::debug("durable: notification for {} not sent: {} (it is "
                    "read on the next catch-up)",
                    env.id.view(), describe(err));
  }
  // Else nobody runs it now: it waits in its inbox for its next start.
}

void durable_service::run_writer() {
  // Two batches in flight on one connection: while the server appends one,
  // this thread formats and sends the next, then reads the older one's
  // replies and notifies for it.
  constexpr size_t max_in_flight = 2;
  durable_store::appender out{*store_};
  std::deque<std::vector<envelope>> in_flight; // oldest first
  auto delay = settings_.retry_min;
  clock::time_point deadline{};
  // After a connection error nothing in flight is known to be written:
  // everything goes back to the front of the queue, in order, and is sent
  // again once the store answers (receivers drop what arrives twice).
  auto requeue = [&](std::vector<envelope>* batch) {
    out.reset();
    std::lock_guard guard{write_mtx_};
    if (batch != nullptr)
      to_write_.insert(to_write_.begin(), std::make_move_iterator(batch->begin()),
                       std::make_move_iterator(batch->end()));
    for (auto i = in_flight.rbegin(); i != in_flight.rend(); ++i)
      to_write_.insert(to_write_.begin(), std::make_move_iterator(i->begin()),
                       std::make_move_iterator(i->end()));
    in_flight.clear();
  };
  // Waits before the next attempt; false when the node stops and the drain
  // time is over (what waits is then lost, and said so).
  auto back_off = [&](const caf::error& err) {
    failed(err, "writing durable envelopes");
    std::unique_lock guard{write_mtx_};
    if (stopping_ && clock::now() >= deadline) {
      auto lost = to_write_.size();
      spdlog::error("durable: the node stops with {} accepted durable "
                    "envelopes the store never took: they are lost",
                    lost);
      ctx_->stats.add(counter::dead_letters, lost);
      backlog_.store(0, std::memory_order_relaxed);
      return false;
    }
    write_cv_.wait_for(guard, delay);
    delay = next_delay(delay);
    return true;
  };
  for (;;) {
    std::vector<envelope> batch;
    {
      std::unique_lock guard{write_mtx_};
      if (in_flight.empty()) {
        write_cv_.wait(guard,
                       [this] { return stopping_ || !to_write_.empty(); });
        if (to_write_.empty())
          return; // stopping, everything written
      }
      if (in_flight.size() < max_in_flight) {
        auto n = std::min(to_write_.size(), settings_.batch);
        batch.reserve(n);
        for (size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(to_write_.front()));
          to_write_.pop_front();
        }
      }
      if (stopping_ && deadline == clock::time_point{})
        deadline = clock::now() + drain_;
    }
    if (!batch.empty()) {
      if (auto err = out.send(batch)) {
        if (is(err, errc::backend_unavailable)) {
          requeue(&batch);
          if (!back_off(err))
            return;
          continue;
        }
        // Not a connection problem: the store would refuse these (it should
        // not, they were checked). Say so; they are not retried forever.
        spdlog::error("durable: the store refused {} envelopes: {}",
                      batch.size(), describe(err));
        ctx_->stats.add(counter::dead_letters, batch.size());
        backlog_.fetch_sub(batch.size(), std::memory_order_relaxed);
        continue;
      }
      in_flight.push_back(std::move(batch));
      if (in_flight.size() < max_in_flight) {
        std::lock_guard guard{write_mtx_};
        if (!to_write_.empty())
          continue; // send the next one before reading
      }
    }
    auto ids = out.receive();
    if (!ids && is(ids.error(), errc::backend_unavailable)) {
      requeue(nullptr);
      if (!back_off(ids.error()))
        return;
      continue;
    }
    delay = settings_.retry_min;
    auto done = std::move(in_flight.front());
    in_flight.pop_front();
    auto n = done.size();
    if (!ids) {
      spdlog::error("durable: the store refused {} envelopes: {}", n,
                    describe(ids.error()));
      ctx_->stats.add(counter::dead_letters, n);
    } else {
      recovered();
      std::vector<std::string> woken;
      for (size_t i = 0; i < n && i < ids->size(); ++i)
        notify(done[i], (*ids)[i], woken);
    }
    backlog_.fetch_sub(n, std::memory_order_relaxed);
  }
}

void durable_service::take_acks(read_job& job) {
  // Acks settle entries whose handlers ran, so they may go earlier than
  // queued, and together: one XACK, sent with the read when `job` reads.
  auto same = [&](const read_job& x) {
    return !x.nova && !x.replay && x.nova_id == job.nova_id;
  };
  for (auto i = to_read_.begin(); i != to_read_.end();) {
    if (!same(*i)) {
      ++i;
      continue;
    }
    job.acks.insert(job.acks.end(), std::make_move_iterator(i->acks.begin()),
                    std::make_move_iterator(i->acks.end()));
    i = to_read_.erase(i);
  }
}

void durable_service::run_reader() {
  auto delay = settings_.retry_min;
  for (;;) {
    read_job job;
    {
      std::unique_lock guard{read_mtx_};
      read_cv_.wait(guard,
                    [this] { return reader_stopping_ || !to_read_.empty(); });
      if (reader_stopping_) {
        // Settle what the Novas handled, one attempt each: otherwise their
        // next start hands it out again. Reads nobody waits for any more.
        auto left = std::move(to_read_);
        guard.unlock();
        for (auto& x : left)
          if (!x.replay && !x.acks.empty())
            static_cast<void>(store_->ack(x.nova_id, x.acks));
        return;
      }
      job = std::move(to_read_.front());
      to_read_.pop_front();
      if (!job.replay)
        take_acks(job);
    }
    if (job.replay) {
      // One attempt: the caller decides whether to ask again.
      auto& q = *job.replay;
      auto r = store_->replay(q.stream, q.from, q.subject_pattern, q.limit);
      if (r)
        caf::anon_send(job.nova, replay_atom::value, job.token, std::move(*r));
      else
        caf::anon_send(job.nova, replay_atom::value, job.token, r.error());
      continue;
    }
    caf::error err;
    if (!job.nova) {
      if (auto r = store_->ack(job.nova_id, job.acks); !r)
        err = std::move(r.error());
    } else {
      auto r = store_->pending_and_new(job.nova_id, settings_.batch, nullptr,
                                       job.with_pending, job.acks);
      if (r) {
        bool more = r->size() >= settings_.batch;
        caf::anon_send(job.nova, durable_atom::value, std::move(*r), more);
      } else {
        err = std::move(r.error());
      }
    }
    if (!err) {
      recovered();
      delay = settings_.retry_min;
      continue;
    }
    if (!is(err, errc::backend_unavailable)) {
      spdlog::warn("durable: {} of '{}' failed: {}",
                   job.nova ? "reading the inbox" : "acking the inbox",
                   job.nova_id, describe(err));
      if (job.nova) // let the Nova ask again later
        caf::anon_send(job.nova, durable_atom::value,
                       std::vector<stored_envelope>{}, false);
      continue;
    }
    failed(err, job.nova ? "reading a durable inbox" : "acking a durable inbox");
    std::unique_lock guard{read_mtx_};
    to_read_.push_front(std::move(job)); // in order, once the store is back
    read_cv_.wait_for(guard, delay, [this] { return reader_stopping_; });
    delay = next_delay(delay);
  }
}

} // namespace nova
