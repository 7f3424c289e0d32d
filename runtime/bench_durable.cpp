#include "runtime/bench_durable.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/agent.hpp"
#include "actors/durable_service.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/bench_support.hpp"
#include "runtime/node.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr size_t payload_bytes = 128;
constexpr double goal = 0.4;
/// Sends per turn of the sending Nova; it yields between turns.
constexpr size_t chunk = 1000;

/// Where the receiving Nova reports, and the driver waits.
struct finish_line {
  std::mutex mtx;
  std::condition_variable cv;
  size_t target = 0;
  size_t seen = 0;
  steady::time_point done;
  std::string failure;

  bool wait(std::chrono::seconds timeout) {
    std::unique_lock guard{mtx};
    return cv.wait_for(guard, timeout, [this] {
      return seen >= target || !failure.empty();
    });
  }

  void fail(std::string why) {
    {
      std::lock_guard guard{mtx};
      failure = std::move(why);
    }
    cv.notify_all();
  }
};

class durable_receiver : public agent {
public:
  /// `fl->target` is set before the spawn and fixed for the run.
  durable_receiver(caf::actor_config& cfg, agent_init init, finish_line* fl)
    : agent(cfg, std::move(init)), fl_(fl), target_(fl->target) {
    // nop
  }

protected:
  void on_message(const envelope&) override {
    if (++count_ % 256 != 0 && count_ < target_)
      return;
    {
      std::lock_guard guard{fl_->mtx};
      fl_->seen = count_;
      if (count_ >= fl_->target)
        fl_->done = steady::now();
    }
    fl_->cv.notify_all();
  }

private:
  finish_line* fl_;
  size_t target_;
  size_t count_ = 0;
};

/// Sends durable messages to "bench-sink": a message "<n>" starts a run,
/// `chunk` sends per turn, "more" (sent to itself) continues, so other work
/// interleaves; backs off briefly while the durable outbox is full.
class durable_sender : public agent {
public:
  durable_sender(caf::actor_config& cfg, agent_init init, finish_line* fl)
    : agent(cfg, std::move(init)), fl_(fl) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    if (msg.payload != "more")
      left_ = std::stoull(msg.payload);
    turn();
  }

private:
  void turn() {
    static const std::string payload(payload_bytes, 'd');
    send_options opts;
    opts.durable = true;
    for (size_t i = 0; i < chunk && left_ > 0; ++i) {
      auto err = send("bench-sink", payload, opts);
      if (is(err, errc::queue_full)) {
        delayed_send(caf::actor_cast<caf::actor>(this), 1ms, more());
        return;
      }
      if (err) {
        fl_->fail("durable send failed: " + describe(err));
        return;
      }
      --left_;
    }
    if (left_ > 0)
      caf::event_based_actor::send(caf::actor_cast<caf::actor>(this), more());
  }

  envelope more() const {
    envelope env;
    env.id = next_message_id(&env.created_at);
    env.from = id();
    env.to = id();
    env.kind = kind::direct;
    env.payload = "more";
    return env;
  }

  finish_line* fl_;
  size_t left_ = 0;
};

std::string redis_benchmark_rate(const std::string& binary, uint16_t port,
                                 size_t n) {
  // A 128-byte field, trimmed as Nova's streams are.
  auto cmd = fmt::format("{} -h 127.0.0.1 -p {} -n {} -c 50 -P 64 --csv "
                         "XADD nova-bench-baseline MAXLEN '~' 1000000 '*' "
                         "payload {} 2>&1",
                         binary, port, n, std::string(payload_bytes, 'b'));
  std::unique_ptr<FILE, int (*)(FILE*)> pipe{::popen(cmd.c_str(), "r"),
                                             ::pclose};
  if (!pipe)
    throw std::runtime_error("cannot run redis-benchmark");
  std::string out;
  char buf[4096];
  while (auto got = std::fread(buf, 1, sizeof(buf), pipe.get()))
    out.append(buf, got);
  return out;
}

/// The requests per second of the last CSV line ("name","rps",...).
double parse_rps(const std::string& csv) {
  auto end = csv.find_last_not_of("\r\n");
  if (end == std::string::npos)
    return 0;
  auto start = csv.rfind('\n', end);
  auto line = csv.substr(start == std::string::npos ? 0 : start + 1,
                         end - (start == std::string::npos ? 0 : start + 1)
                           + 1);
  // Skip the first quoted field (the command, which may hold commas).
  auto first_end = line.find("\",\"");
  if (first_end == std::string::npos)
    return 0;
  auto rest = line.substr(first_end + 3);
  try {
    return std::stod(rest.substr(0, rest.find('"')));
  } catch (...) {
    return 0;
  }
}

void print_error(const durable_bench_options& opts, std::ostream& out,
                 const std::string& why) {
  if (opts.json)
    out << nlohmann::json{{"error", "bench durable: " + why}}.dump() << '\n';
  else
    out << "bench durable: " << why << '\n';
}

int run(const durable_bench_options& opts, std::ostream& out) {
  if (opts.messages == 0)
    throw std::runtime_error("--messages must be positive");
  auto server_path = require_server_binary(
    opts.redis_server, "NOVA_REDIS_SERVER", "redis-server");
  auto bench_path = require_server_binary(
    opts.redis_benchmark, "NOVA_REDIS_BENCHMARK", "redis-benchmark");
  redis_child server{server_path};
  server.wait_ready(10s);
  // Baseline first: the same number of XADDs through redis-benchmark.
  auto csv = redis_benchmark_rate(bench_path, server.port(), opts.messages);
  auto baseline = parse_rps(csv);
  if (baseline <= 0)
    throw std::runtime_error("cannot read redis-benchmark's result:\n" + csv);
  // Nova: one node, durable sends between two Novas.
  config cfg;
  cfg.node_id = "bench-durable";
  cfg.store = store_kind::redis;
  cfg.dragonfly_url = server.url();
  cfg.prefix = "novabench" + std::to_string(::getpid());
  cfg.log_level = opts.json ? "error" : "warn";
  cfg.drain_timeout = 5s;
  node n{cfg};
  finish_line fl;
  fl.target = opts.messages;
  if (!n.spawn<durable_receiver>("bench-sink", {}, &fl))
    throw std::runtime_error("cannot spawn the receiving Nova");
  if (!n.spawn<durable_sender>("bench-send", {}, &fl))
    throw std::runtime_error("cannot spawn the sending Nova");
  auto probe = server.pool(1, 5000ms);
  auto s0 = sample_server(*probe);
  auto c0 = process_cpu_ms();
  auto t0 = steady::now();
  if (auto err = n.send("bench-send", std::to_string(opts.messages)))
    throw std::runtime_error("cannot start the run: " + describe(err));
  auto timeout = std::chrono::seconds(30 + opts.messages / 5'000);
  if (!fl.wait(timeout))
    throw std::runtime_error(fmt::format("the receiving Nova got {} of {} "
                                         "messages within {} s",
                                         fl.seen, fl.target,
                                         timeout.count()));
  if (!fl.failure.empty())
    throw std::runtime_error(fl.failure);
  auto c1 = process_cpu_ms();
  auto s1 = sample_server(*probe);
  auto secs = std::chrono::duration<double>(fl.done - t0).count();
  auto per_msg = [&](double ms) {
    return ms * 1e3 / static_cast<double>(opts.messages);
  };
  auto server_us = per_msg(s1.cpu_ms - s0.cpu_ms);
  auto node_us = per_msg(c1 - c0);
  auto nova_rate = static_cast<double>(opts.messages) / secs;
  auto ratio = nova_rate / baseline;
  if (opts.json) {
    out << nlohmann::json{{"messages", opts.messages},
                          {"payload_bytes", payload_bytes},
                          {"nova_msgs_per_s", nova_rate},
                          {"baseline_msgs_per_s", baseline},
                          {"ratio", ratio},
                          {"goal", goal},
                          {"server_cpu_us_per_msg", server_us},
                          {"node_cpu_us_per_msg", node_us},
                          {"duplicates",
                           n.stats().get(counter::durable_duplicates)}}
             .dump()
        << '\n';
  } else {
    out << fmt::format("durable Nova -> Nova, {} messages of {} bytes, one "
                       "node, redis store\n",
                       opts.messages, payload_bytes);
    out << fmt::format("  Nova (XADD, notify, XREAD, deliver, settle):   "
                       "{:>12.0f} msgs/s\n",
                       nova_rate);
    out << fmt::format("  redis-benchmark XADD, 50 clients, pipeline 64:  "
                       "{:>12.0f} msgs/s\n",
                       baseline);
    out << fmt::format("  ratio {:.2f} (goal >= {:.1f})\n", ratio, goal);
    out << fmt::format("  CPU per message: redis-server {:.2f} us, this "
                       "process {:.2f} us\n",
                       server_us, node_us);
  }
  return 0;
}

} // namespace

int run_bench_durable(const durable_bench_options& opts, std::ostream& out) {
  try {
    return run(opts, out);
  } catch (const std::exception& e) {
    print_error(opts, out, e.what());
    return 1;
  }
}

} // namespace nova
