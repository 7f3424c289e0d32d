// The `nova` command: run a node, the demo, and the benchmarks.
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "actors/builtin.hpp"
#include "messages/errc.hpp"
#include "runtime/bench.hpp"
#include "runtime/demo.hpp"
#include "runtime/node.hpp"

namespace {

constexpr const char* nova_version = "0.1.0";

struct spawn_spec {
  std::string type;
  std::string id;
};

caf::expected<spawn_spec> parse_spawn(const std::string& x) {
  auto colon = x.find(':');
  spawn_spec s;
  s.type = x.substr(0, colon);
  s.id = colon == std::string::npos ? s.type : x.substr(colon + 1);
  const auto& names = nova::builtin_agent_names();
  if (std::find(names.begin(), names.end(), s.type) == names.end())
    return nova::make_error(nova::errc::invalid_argument,
                            "unknown agent type '" + s.type
                              + "' (built-in: echo, logger, worker)");
  return s;
}

caf::error spawn_builtin(nova::node& n, const spawn_spec& s) {
  nova::agent_options opts;
  opts.capabilities = {s.type};
  caf::expected<caf::actor> r{caf::error{}};
  if (s.type == "echo") {
    r = n.spawn<nova::echo_agent>(s.id, opts);
  } else if (s.type == "logger") {
    r = n.spawn<nova::logger_agent>(s.id, opts);
  } else {
    opts.worker = true;
    r = n.spawn<nova::worker_agent>(s.id, opts);
  }
  return r ? caf::error{} : r.error();
}

int run_node(nova::config cfg, const std::vector<std::string>& spawns) {
  std::vector<spawn_spec> specs;
  for (const auto& x : spawns) {
    auto s = parse_spawn(x);
    if (!s) {
      std::cerr << "nova node: " << nova::describe(s.error()) << "\n";
      return 2;
    }
    specs.push_back(*s);
  }
  try {
    nova::node n{cfg};
    for (const auto& s : specs)
      if (auto err = spawn_builtin(n, s)) {
        std::cerr << "nova node: cannot spawn '" << s.id
                  << "': " << nova::describe(err) << "\n";
        return 2;
      }
    spdlog::info("node '{}' running on the {} bus with {} Novas; Ctrl-C "
                 "stops it",
                 cfg.node_id, nova::to_string(cfg.bus), n.novas().size());
    return n.run();
  } catch (const std::exception& e) {
    std::cerr << "nova node: " << e.what() << "\n";
    return 2;
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Nova: an actor runtime for multi-node agent clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", nova_version);

  // -- nova node ----------------------------------------------------------
  auto env_cfg = nova::config::from_env();
  if (!env_cfg) {
    std::cerr << "nova: " << nova::describe(env_cfg.error()) << "\n";
    return 2;
  }
  nova::config cfg = *env_cfg;
  std::vector<std::string> spawns;
  auto* node_cmd = app.add_subcommand("node", "Run one node until SIGINT/SIGTERM");
  cfg.add_flags(*node_cmd);
  node_cmd->add_option("--spawn", spawns,
                       "Spawn a built-in Nova, TYPE[:ID] with TYPE one of "
                       "echo, logger, worker (repeatable)");

  // -- nova demo ----------------------------------------------------------
  nova::demo_options demo;
  auto* demo_cmd = app.add_subcommand(
    "demo", "Run a small agent simulation on the embedded backend");
  demo_cmd->add_option("--novas", demo.novas, "Number of Novas")
    ->capture_default_str()
    ->check(CLI::Range(4, 10000));
  demo_cmd->add_option("--groups", demo.groups, "Number of groups")
    ->capture_default_str()
    ->check(CLI::Range(1, 1000));
  demo_cmd->add_option("--messages", demo.messages_per_nova,
                       "Messages each Nova sends")
    ->capture_default_str();
  demo_cmd->add_option("--tasks", demo.tasks, "Tasks on the queue")
    ->capture_default_str();
  demo_cmd->add_option("--failure-rate", demo.task_failure_rate,
                       "Share of tasks that always fail")
    ->capture_default_str()
    ->check(CLI::Range(0.0, 1.0));
  demo_cmd->add_flag("--json", demo.json, "Print one JSON object");

  // -- nova bench ---------------------------------------------------------
  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks against a "
                                                "baseline measured in the "
                                                "same run");
  bench_cmd->require_subcommand(1);
  bool bench_json = false;
  size_t bench_messages = 2'000'000;
  auto* local_cmd = bench_cmd->add_subcommand(
    "local", "Nova direct sends vs raw CAF sends between two local actors");
  local_cmd->add_flag("--json", bench_json, "Print one JSON object");
  local_cmd->add_option("--messages", bench_messages,
                        "Messages per measured run")
    ->capture_default_str()
    ->check(CLI::Range(size_t{10'000}, size_t{100'000'000}));

  CLI11_PARSE(app, argc, argv);

  if (node_cmd->parsed())
    return run_node(cfg, spawns);
  if (demo_cmd->parsed()) {
    auto summary = nova::run_demo(demo, std::cout);
    return summary.completed ? 0 : 1;
  }
  if (local_cmd->parsed())
    return nova::run_bench_local(bench_json, std::cout, bench_messages);
  return 0;
}
