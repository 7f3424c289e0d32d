#include "runtime/bench_presence.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cluster/naming.hpp"
#include "cluster/presence_store.hpp"
#include "cluster/redis_client.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/bench_support.hpp"

namespace nova {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// Writes per round: the presence monitor writes once per quarter interval.
constexpr size_t ticks = 4;
constexpr auto setup_timeout = 10s;
constexpr const char* node_id = "bench-node";

// -- measuring ----------------------------------------------------------------

template <class T>
T must(caf::expected<T> x, const char* what) {
  if (!x)
    throw std::runtime_error(std::string{what} + ": " + describe(x.error()));
  return std::move(*x);
}

struct round_result {
  double client_cpu_ms = 0;
  double server_cpu_ms = 0;
  double wall_ms = 0;
  /// Scripts or commands sent.
  uint64_t ops = 0;
  int64_t server_commands = 0;
};

/// Measures `body` (which returns the operations it sent).
template <class F>
round_result measure(redis_pool& pool, F body) {
  auto s0 = sample_server(pool);
  auto c0 = process_cpu_ms();
  auto t0 = steady::now();
  round_result r;
  r.ops = body();
  auto t1 = steady::now();
  auto c1 = process_cpu_ms();
  auto s1 = sample_server(pool);
  r.client_cpu_ms = c1 - c0;
  r.server_cpu_ms = s1.cpu_ms - s0.cpu_ms;
  r.wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.server_commands = s1.commands - s0.commands;
  return r;
}

struct side {
  std::vector<round_result> rounds;
  size_t novas = 0;

  double heartbeats() const {
    return static_cast<double>(rounds.size() * novas);
  }

  template <class F>
  double mean(F f) const {
    if (rounds.empty())
      return 0;
    double sum = 0;
    for (const auto& r : rounds)
      sum += f(r);
    return sum / static_cast<double>(rounds.size());
  }

  /// Per 1,000 Novas per round.
  template <class F>
  double per_1000(F f) const {
    return novas == 0 ? 0 : mean(f) * 1000.0 / static_cast<double>(novas);
  }

  double client_cpu() const {
    return per_1000([](const round_result& r) { return r.client_cpu_ms; });
  }

  double server_cpu() const {
    return per_1000([](const round_result& r) { return r.server_cpu_ms; });
  }

  double cpu() const {
    return client_cpu() + server_cpu();
  }

  double wall_ms() const {
    return mean([](const round_result& r) { return r.wall_ms; });
  }

  double ops_per_heartbeat() const {
    double ops = 0;
    for (const auto& r : rounds)
      ops += static_cast<double>(r.ops);
    return heartbeats() > 0 ? ops / heartbeats() : 0;
  }

  double server_commands_per_heartbeat() const {
    double n = 0;
    for (const auto& r : rounds)
      n += static_cast<double>(r.server_commands);
    return heartbeats() > 0 ? n / heartbeats() : 0;
  }
};

std::vector<presence> make_novas(size_t n) {
  std::vector<presence> out;
  out.reserve(n);
  auto started = now_ms();
  for (size_t i = 0; i < n; ++i) {
    presence p;
    p.nova_id = fmt::format("nova-{}", i);
    p.node_id = node_id;
    p.capabilities = {fmt::format("skill-{}", i % 8), "chat"};
    p.groups = {fmt::format("team-{}", i % 16)};
    p.started_at = started;
    out.push_back(std::move(p));
  }
  return out;
}

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs) {
    if (!out.empty())
      out += ',';
    out += x;
  }
  return out;
}

void print_error(const presence_bench_options& opts, std::ostream& out,
                 const std::string& why) {
  if (opts.json)
    out << nlohmann::json{{"error", "bench presence: " + why}}.dump() << '\n';
  else
    out << "bench presence: " << why << '\n';
}

int run(const presence_bench_options& opts, std::ostream& out) {
  if (opts.novas == 0 || opts.rounds == 0)
    throw std::runtime_error("--novas and --rounds must be positive");
  auto path = require_server_binary(opts.redis_server, "NOVA_REDIS_SERVER",
                                    "redis-server");
  redis_child server{path};
  server.wait_ready(setup_timeout);
  auto pool = server.pool(1, 30s);
  auto version = info_field(must(pool->command({"INFO", "server"}), "INFO")
                              .str,
                            "redis_version")
                   .value_or("?");
  presence_store::settings ps;
  // Long enough that nothing turns stale while the benchmark runs.
  ps.heartbeat_interval = 60s;
  auto store = must(presence_store::make(pool, must(naming::make("bench"),
                                                    "naming"),
                                         ps),
                    "presence store");
  auto novas = make_novas(opts.novas);
  auto ttl = std::to_string(
    std::chrono::duration_cast<std::chrono::milliseconds>(3 * ps.heartbeat_interval)
      .count());

  auto slice = [&](size_t tick) {
    auto first = novas.size() * tick / ticks;
    auto last = novas.size() * (tick + 1) / ticks;
    return std::vector<presence>(novas.begin() + first, novas.begin() + last);
  };
  auto nova_round = [&] {
    auto before = store->scripts_run();
    for (size_t t = 0; t < ticks; ++t) {
      auto batch = slice(t);
      if (batch.empty())
        continue;
      must(store->heartbeat_batch(std::move(batch), now_ms()),
           "heartbeat_batch");
    }
    return store->scripts_run() - before;
  };
  auto baseline_round = [&] {
    uint64_t sent = 0;
    for (size_t t = 0; t < ticks; ++t) {
      auto batch = slice(t);
      if (batch.empty())
        continue;
      auto now = std::to_string(now_ms());
      std::vector<std::vector<std::string>> cmds;
      cmds.reserve(2 * batch.size());
      for (auto& p : batch) {
        auto key = "benchbase.presence." + p.nova_id;
        cmds.push_back({"HSET", key, "id", p.nova_id, "status", "online",
                        "node", p.node_id, "capabilities",
                        joined(p.capabilities), "current_task",
                        p.current_task, "last_seen", now, "started",
                        std::to_string(p.started_at), "groups",
                        joined(p.groups), "data", encode(p)});
        cmds.push_back({"PEXPIRE", std::move(key), ttl});
      }
      auto r = must(pool->pipeline(cmds), "baseline pipeline");
      for (auto& x : r)
        if (x.is_error())
          throw std::runtime_error("baseline pipeline: " + x.str);
      sent += cmds.size();
    }
    return sent;
  };

  // Warm-up: the first heartbeats are all news (updates stream entries,
  // index inserts), loads the scripts, and brings both paths up to speed.
  nova_round();
  baseline_round();
  side nova{{}, opts.novas};
  side base{{}, opts.novas};
  for (size_t i = 0; i < opts.rounds; ++i) {
    nova.rounds.push_back(measure(*pool, nova_round));
    base.rounds.push_back(measure(*pool, baseline_round));
  }
  // The heartbeats really went through the store: every Nova is listed.
  auto listed = must(store->discover("chat", now_ms()), "discover");
  if (listed.size() != opts.novas)
    throw std::runtime_error(fmt::format("discover found {} of {} Novas",
                                         listed.size(), opts.novas));
  auto ratio = base.cpu() > 0 ? nova.cpu() / base.cpu() : 0.0;

  if (opts.json) {
    nlohmann::json j{
      {"novas", opts.novas},
      {"rounds", opts.rounds},
      {"writes_per_round", ticks},
      {"batch", ps.batch},
      {"redis_version", version},
      {"ops_per_heartbeat", nova.ops_per_heartbeat()},
      {"server_commands_per_heartbeat", nova.server_commands_per_heartbeat()},
      {"cpu_ms_per_1000_novas", nova.cpu()},
      {"client_cpu_ms_per_1000_novas", nova.client_cpu()},
      {"server_cpu_ms_per_1000_novas", nova.server_cpu()},
      {"wall_ms_per_round", nova.wall_ms()},
      {"baseline_ops_per_heartbeat", base.ops_per_heartbeat()},
      {"baseline_server_commands_per_heartbeat",
       base.server_commands_per_heartbeat()},
      {"baseline_cpu_ms_per_1000_novas", base.cpu()},
      {"baseline_client_cpu_ms_per_1000_novas", base.client_cpu()},
      {"baseline_server_cpu_ms_per_1000_novas", base.server_cpu()},
      {"baseline_wall_ms_per_round", base.wall_ms()},
      {"ratio", ratio}};
    out << j.dump() << '\n';
    return 0;
  }
  out << fmt::format(
    "presence heartbeats: {} Novas (2 capabilities, 1 group each), {} "
    "rounds per side after a warm-up, {} writes per round, redis-server {}\n",
    opts.novas, opts.rounds, ticks, version);
  out << fmt::format("{:<40} {:>16} {:>16}\n", "", "presence store",
                     "baseline");
  out << fmt::format("{:<40} {:>16.4f} {:>16.4f}\n",
                     "store operations sent per heartbeat",
                     nova.ops_per_heartbeat(), base.ops_per_heartbeat());
  out << fmt::format("{:<40} {:>16.2f} {:>16.2f}\n",
                     "commands run by the server per heartbeat",
                     nova.server_commands_per_heartbeat(),
                     base.server_commands_per_heartbeat());
  out << fmt::format("{:<40} {:>16.3f} {:>16.3f}\n",
                     "CPU ms per 1,000 Novas per round", nova.cpu(),
                     base.cpu());
  out << fmt::format("{:<40} {:>16.3f} {:>16.3f}\n", "  of it this process",
                     nova.client_cpu(), base.client_cpu());
  out << fmt::format("{:<40} {:>16.3f} {:>16.3f}\n", "  of it redis-server",
                     nova.server_cpu(), base.server_cpu());
  out << fmt::format("{:<40} {:>16.2f} {:>16.2f}\n", "wall ms per round",
                     nova.wall_ms(), base.wall_ms());
  out << fmt::format("ratio: {:.2f} (CPU, presence store / baseline: plain "
                     "HSET + PEXPIRE per Nova, no indexes, no updates "
                     "stream)\n",
                     ratio);
  return 0;
}

} // namespace

int run_bench_presence(const presence_bench_options& opts, std::ostream& out) {
  try {
    return run(opts, out);
  } catch (const std::exception& e) {
    print_error(opts, out, e.what());
    return 1;
  }
}

} // namespace nova
