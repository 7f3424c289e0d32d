#include "runtime/bench.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "runtime/node.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr uint64_t window = 10'000;
constexpr size_t payload_bytes = 128;
constexpr size_t threads = 2;
constexpr int rounds = 3;
constexpr double goal = 0.7;

/// Connects the driver to the receiver of one side: the driver sets
/// `target` and starts a run; the receiver reports when it counted them all.
class finish_line {
public:
  std::atomic<uint64_t> target{0};

  void finish() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ++finished_;
    }
    cv_.notify_all();
  }

  [[nodiscard]] uint64_t finished() {
    std::lock_guard<std::mutex> guard{mtx_};
    return finished_;
  }

  /// Waits until `n` runs finished or `timeout` passed.
  bool wait(uint64_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] { return finished_ >= n; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t finished_ = 0;
};

// -- Nova side ------------------------------------------------------------------

/// Sends `target` direct messages to "receiver" in windows, the next window
/// on each "ack"; a "go" from outside starts a run.
class nova_sender : public agent {
public:
  nova_sender(caf::actor_config& cfg, agent_init init, finish_line* line)
    : agent(cfg, std::move(init)),
      line_(line),
      payload_(payload_bytes, 'x') {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload == "go") {
      sent_ = 0;
      target_ = line_->target.load();
      send_window();
    } else if (msg.payload == "ack") {
      send_window();
    }
  }

private:
  void send_window() {
    auto n = std::min(window, target_ - sent_);
    for (uint64_t i = 0; i < n; ++i)
      if (auto err = send(to_, payload_))
        throw std::runtime_error("bench send failed");
    sent_ += n;
  }

  finish_line* line_;
  const std::string to_ = "receiver";
  std::string payload_;
  uint64_t sent_ = 0;
  uint64_t target_ = 0;
};

/// Counts; acks every full window; reports the end of a run.
class nova_receiver : public agent {
public:
  nova_receiver(caf::actor_config& cfg, agent_init init, finish_line* line)
    : agent(cfg, std::move(init)), line_(line) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    if (count_ == 0)
      target_ = line_->target.load();
    if (++count_ == target_) {
      count_ = 0;
      line_->finish();
    } else if (count_ % window == 0) {
      send(msg.from, "ack");
    }
  }

private:
  finish_line* line_;
  uint64_t count_ = 0;
  uint64_t target_ = 0;
};

// -- raw CAF baseline -------------------------------------------------------------

using go_atom = caf::atom_constant<caf::atom("go")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;

struct sender_state {
  caf::actor receiver;
  std::string payload = std::string(payload_bytes, 'x');
  uint64_t sent = 0;
  uint64_t target = 0;
};

struct receiver_state {
  uint64_t count = 0;
  uint64_t target = 0;
};

caf::behavior baseline_sender(caf::stateful_actor<sender_state>* self,
                              finish_line* line) {
  auto send_window = [self] {
    auto& st = self->state;
    auto n = std::min(window, st.target - st.sent);
    for (uint64_t i = 0; i < n; ++i)
      self->send(st.receiver, st.payload);
    st.sent += n;
  };
  return {
    [=](go_atom, caf::actor& receiver) {
      auto& st = self->state;
      st.receiver = std::move(receiver);
      st.sent = 0;
      st.target = line->target.load();
      send_window();
    },
    [=](ack_atom) { send_window(); },
  };
}

caf::behavior baseline_receiver(caf::stateful_actor<receiver_state>* self,
                                finish_line* line) {
  return {
    [=](const std::string&) {
      auto& st = self->state;
      if (st.count == 0)
        st.target = line->target.load();
      if (++st.count == st.target) {
        st.count = 0;
        line->finish();
      } else if (st.count % window == 0) {
        self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                   ack_atom::value);
      }
    },
  };
}

// -- driver -----------------------------------------------------------------------

/// Runs one side once: sets the target, starts, waits. Returns msgs/s, or 0
/// when the run did not finish in time.
template <class Start>
double timed_run(finish_line& line, uint64_t messages, Start start) {
  auto timeout = std::chrono::milliseconds(30'000 + messages / 50);
  auto n = line.finished() + 1;
  line.target.store(messages);
  auto t0 = steady::now();
  start();
  if (!line.wait(n, timeout))
    return 0;
  auto secs = std::chrono::duration<double>(steady::now() - t0).count();
  return static_cast<double>(messages) / secs;
}

void settle() {
  // Idle CAF workers poll for a while before they sleep; let the side that
  // just ran go quiet before the other one starts.
  std::this_thread::sleep_for(100ms);
}

} // namespace

int run_bench_local(bool json, std::ostream& out, size_t messages) {
  messages = std::max<size_t>(messages, 1);
  auto warmup = std::max<uint64_t>(window, messages / 10);

  config cfg;
  cfg.threads = threads;
  cfg.log_level = "warn";
  node n{cfg};
  finish_line nova_line;
  if (!n.spawn<nova_receiver>("receiver", {}, &nova_line)
      || !n.spawn<nova_sender>("sender", {}, &nova_line))
    return 1;

  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", threads);
  // The same scheduler tuning as nova::node, so only the messaging differs.
  sys_cfg.set("work-stealing.moderate-poll-attempts", 0);
  caf::actor_system sys{sys_cfg};
  finish_line caf_line;
  auto receiver = sys.spawn(baseline_receiver, &caf_line);
  auto sender = sys.spawn(baseline_sender, &caf_line);

  auto run_nova = [&](uint64_t count) {
    return timed_run(nova_line, count, [&] {
      if (auto err = n.send("sender", "go"))
        throw std::runtime_error("cannot start the Nova sender");
    });
  };
  auto run_caf = [&](uint64_t count) {
    return timed_run(caf_line, count, [&] {
      caf::anon_send(sender, go_atom::value, receiver);
    });
  };

  bool ok = run_nova(warmup) > 0;
  settle();
  ok = run_caf(warmup) > 0 && ok;
  std::vector<double> nova_runs;
  std::vector<double> caf_runs;
  for (int i = 0; i < rounds && ok; ++i) {
    settle();
    nova_runs.push_back(run_nova(messages));
    settle();
    caf_runs.push_back(run_caf(messages));
    ok = nova_runs.back() > 0 && caf_runs.back() > 0;
  }

  caf::anon_send_exit(sender, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
  n.shutdown();

  auto best = [](const std::vector<double>& xs) {
    return xs.empty() ? 0.0 : *std::max_element(xs.begin(), xs.end());
  };
  auto nova_rate = best(nova_runs);
  auto caf_rate = best(caf_runs);
  auto ratio = caf_rate > 0 ? nova_rate / caf_rate : 0.0;

  if (json) {
    nlohmann::json j{{"nova_msgs_per_s", nova_rate},
                     {"baseline_msgs_per_s", caf_rate},
                     {"ratio", ratio},
                     {"messages", messages},
                     {"payload_bytes", payload_bytes}};
    out << j.dump() << '\n';
  } else {
    out << fmt::format("local direct send: {} messages of {} bytes, windows "
                       "of {}, {} scheduler threads, best of {}\n",
                       messages, payload_bytes, window, threads, rounds);
    for (size_t i = 0; i < nova_runs.size(); ++i)
      out << fmt::format("  run {}: nova {:>12.0f} msgs/s   baseline {:>12.0f} "
                         "msgs/s\n",
                         i + 1, nova_runs[i], caf_runs[i]);
    out << fmt::format("nova:     {:>12.0f} msgs/s\n", nova_rate);
    out << fmt::format("baseline: {:>12.0f} msgs/s (raw CAF send)\n",
                       caf_rate);
    out << fmt::format("ratio:    {:.3f} (nova / baseline); goal >= {:.1f}: "
                       "{}\n",
                       ratio, goal, ratio >= goal ? "met" : "missed");
    if (!ok)
      out << "a run did not finish in time; the figures are incomplete\n";
  }
  return ok ? 0 : 1;
}

} // namespace nova
