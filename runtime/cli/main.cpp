// The `nova` command: run a node, talk to Novas over NATS as a client or to a
// node over its JSON-RPC, the demo, and the benchmarks.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/builtin.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/bench.hpp"
#include "runtime/bench_presence.hpp"
#include "runtime/bench_remote.hpp"
#include "runtime/bench_durable.hpp"
#include "runtime/bench_tasks.hpp"
#include "runtime/client.hpp"
#include "runtime/demo.hpp"
#include "runtime/node.hpp"
#include "runtime/progress.hpp"
#include "runtime/ops_client.hpp"
#include "runtime/replay.hpp"

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

caf::error spawn_builtin(nova::node& n, const spawn_spec& s,
                         const std::vector<std::string>& groups) {
  nova::agent_options opts;
  opts.capabilities = {s.type};
  opts.groups = groups;
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

int run_node(nova::config cfg, const std::vector<std::string>& spawns,
             const std::vector<std::string>& groups) {
  for (const auto& g : groups)
    if (auto err = nova::check_id(g, "--group")) {
      std::cerr << "nova node: " << nova::describe(err) << "\n";
      return 2;
    }
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
      if (auto err = spawn_builtin(n, s, groups)) {
        std::cerr << "nova node: cannot spawn '" << s.id
                  << "': " << nova::describe(err) << "\n";
        return 2;
      }
    spdlog::info("node '{}' running on the {} bus with {} Novas (task "
                 "store: {}); Ctrl-C stops it",
                 cfg.node_id, nova::to_string(cfg.bus), n.novas().size(),
                 nova::to_string(cfg.store));
    return n.run();
  } catch (const std::exception& e) {
    std::cerr << "nova node: " << e.what() << "\n";
    return 2;
  }
}

/// Adds the flags every client subcommand shares.
void add_connection_flags(CLI::App& cmd, nova::client_options& opts) {
  cmd.add_option("--nats-url", opts.nats_url,
                 "NATS server URL, or a comma-separated list of a cluster's "
                 "servers")
    ->envname("NATS_URL")
    ->capture_default_str();
  cmd.add_option("--prefix", opts.prefix,
                 "Subject prefix of the Nova cluster")
    ->envname("NOVA_PREFIX")
    ->capture_default_str();
}

/// Adds the flags of the subcommands that send an envelope.
void add_sender_flags(CLI::App& cmd, nova::client_options& opts,
                      bool with_priority = true) {
  add_connection_flags(cmd, opts);
  cmd.add_option("--from", opts.from,
                 "Sender id in the envelope, [A-Za-z0-9_-]{1,64}")
    ->capture_default_str();
  cmd.add_flag("--json", opts.json,
               "The payload is JSON: sent as the body with Content-Type: "
               "application/json (the receiver sees it from 'anonymous')");
  if (with_priority)
    cmd.add_option("--priority", opts.priority, "Envelope priority")
      ->check(CLI::IsMember({"low", "normal", "high", "urgent"}))
      ->capture_default_str();
  cmd.add_flag("-v,--verbose", opts.verbose,
               "Also print what was sent (and who replied) to stderr");
}

/// Adds the flags of the subcommands that call a node's JSON-RPC.
void add_rpc_flags(CLI::App& cmd, nova::ops_options& opts,
                   int64_t& timeout_ms) {
  cmd.add_option("--url", opts.target.url,
                 "The node's HTTP address (nova node --http): "
                 "http://host:port[/base]")
    ->envname("NOVA_HTTP_URL")
    ->capture_default_str();
  cmd.add_option("--token", opts.target.token,
                 "Bearer token, when the node was started with --http-token")
    ->envname("NOVA_HTTP_TOKEN");
  cmd.add_option("--timeout-ms", timeout_ms,
                 "How long to wait for the node's answer")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  cmd.add_flag("--json", opts.json,
               "Print the result as one line of JSON instead of for humans");
  cmd.footer("Exit codes: 0 done, 1 the node is unreachable, timed out or "
             "answered with an error, 2 bad input (nothing sent).");
}

/// `TO PAYLOAD`, or just `PAYLOAD` with `--any CAPABILITY`.
struct addressed {
  std::string first;
  std::string second;
  std::string any;
  CLI::Option* first_opt = nullptr;
  CLI::Option* second_opt = nullptr;
  CLI::Option* any_opt = nullptr;

  void add(CLI::App& cmd) {
    any_opt = cmd.add_option(
      "--any", any,
      "Send to exactly one of the Novas with this capability (NATS queue "
      "group) instead of naming one");
    first_opt = cmd.add_option("to", first,
                               "Recipient Nova id (leave out with --any)");
    second_opt = cmd.add_option("payload", second, "The message payload");
  }

  /// The recipient and payload, or an exit code after a usage error.
  std::optional<int> resolve(const char* name, nova::recipient& to,
                             std::string& payload) const {
    auto given = first_opt->count() + second_opt->count();
    if (any_opt->count() > 0) {
      if (given != 1) {
        std::cerr << name << ": with --any give only the payload\n";
        return 2;
      }
      to = nova::recipient{any, true};
      payload = first_opt->count() > 0 ? first : second;
      return std::nullopt;
    }
    if (given != 2) {
      std::cerr << name << ": give the recipient and the payload (or --any "
                           "CAPABILITY and the payload)\n";
      return 2;
    }
    to = nova::recipient{first, false};
    payload = second;
    return std::nullopt;
  }
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Nova: an actor runtime for multi-node agent clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", nova_version);

  // -- nova node ----------------------------------------------------------
  // An invalid environment only matters to `nova node`; other subcommands
  // read the variables they use themselves.
  auto env_cfg = nova::config::from_env();
  nova::config cfg = env_cfg ? *env_cfg : nova::config{};
  std::vector<std::string> spawns;
  std::vector<std::string> node_groups;
  auto* node_cmd = app.add_subcommand("node", "Run one node until SIGINT/SIGTERM");
  cfg.add_flags(*node_cmd);
  node_cmd->add_option("--spawn", spawns,
                       "Spawn a built-in Nova, TYPE[:ID] with TYPE one of "
                       "echo, logger, worker (repeatable)");
  node_cmd->add_option("--group", node_groups,
                       "Put every spawned Nova in this group (repeatable)");
  node_cmd->footer("Exit codes: 0 stopped by SIGINT/SIGTERM, 2 invalid "
                   "configuration, flag or --spawn.");

  // -- client subcommands: talk to a running cluster over NATS -------------
  nova::client_options client;
  const char* client_footer
    = "Exit codes: 0 done, 1 runtime failure (NATS unreachable, nobody "
      "listening, timeout, error reply), 2 bad input (nothing sent).";

  addressed send_args;
  auto* send_cmd = app.add_subcommand(
    "send", "Send a direct message to a Nova (or to any Nova with a "
            "capability)");
  add_sender_flags(*send_cmd, client);
  send_args.add(*send_cmd);
  send_cmd->footer(client_footer);

  addressed request_args;
  auto* request_cmd = app.add_subcommand(
    "request", "Send a request to a Nova and print the reply's payload");
  add_sender_flags(*request_cmd, client);
  int64_t request_timeout_ms = client.timeout.count();
  request_cmd->add_option("--timeout-ms", request_timeout_ms,
                          "How long to wait for the reply")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  request_args.add(*request_cmd);
  request_cmd->footer(client_footer);

  std::string event_subject;
  std::string payload;
  auto* pub_cmd = app.add_subcommand(
    "pub", "Publish an event on <domain>.<action>[.<more>]");
  add_sender_flags(*pub_cmd, client);
  pub_cmd->add_option("subject", event_subject,
                      "Event subject, e.g. orders.eu.created")
    ->required();
  pub_cmd->add_option("payload", payload, "The event payload")->required();
  pub_cmd->footer(client_footer);

  auto* broadcast_cmd = app.add_subcommand("broadcast",
                                           "Send a message to every Nova");
  add_sender_flags(*broadcast_cmd, client);
  broadcast_cmd->add_option("payload", payload, "The message payload")
    ->required();
  broadcast_cmd->footer(client_footer);

  std::string group;
  auto* multicast_cmd = app.add_subcommand(
    "multicast", "Send a message to every Nova in a group");
  add_sender_flags(*multicast_cmd, client);
  multicast_cmd->add_option("group", group, "The group")->required();
  multicast_cmd->add_option("payload", payload, "The message payload")
    ->required();
  multicast_cmd->footer(client_footer);

  auto* emergency_cmd = app.add_subcommand(
    "emergency", "Send on the emergency channel: every Nova gets it ahead of "
                 "its other messages (priority urgent)");
  add_sender_flags(*emergency_cmd, client, false);
  emergency_cmd->add_option("payload", payload, "The message payload")
    ->required();
  emergency_cmd->footer(client_footer);

  nova::sub_options sub;
  auto* sub_cmd = app.add_subcommand(
    "sub", "Tail live traffic: one line per message on <prefix>.<pattern>");
  add_connection_flags(*sub_cmd, client);
  sub_cmd->add_option("pattern", sub.pattern,
                      "Subject relative to the prefix; NATS wildcards "
                      "allowed: '>' (everything), 'events.orders.*', "
                      "'inbox.bob', 'presence.*'")
    ->capture_default_str();
  sub_cmd->add_flag("--json", sub.json,
                    "Print one JSON object per message: {\"subject\": ..., "
                    "\"envelope\": <canonical JSON>}");
  sub_cmd->add_option("--count", sub.count,
                      "Exit after this many messages (0: never)")
    ->capture_default_str();
  int64_t sub_timeout_ms = 0;
  sub_cmd->add_option("--timeout-ms", sub_timeout_ms,
                      "Exit (with 0) after this long (0: never)")
    ->capture_default_str()
    ->check(CLI::NonNegativeNumber);
  sub_cmd->footer("Prints \"listening on <subject>\" to stderr once the "
                  "server knows the subscription. Ctrl-C exits with 0.");

  // -- JSON-RPC subcommands: talk to a node's HTTP surface ------------------
  nova::ops_options ops;
  int64_t ops_timeout_ms = ops.target.timeout.count();
  std::string rpc_method;
  std::string rpc_params;
  auto* rpc_cmd = app.add_subcommand(
    "rpc", "Call a node's JSON-RPC method and print the result");
  add_rpc_flags(*rpc_cmd, ops, ops_timeout_ms);
  rpc_cmd->add_option("method", rpc_method,
                      "The method, e.g. hub.info, nova.list, tasks.stats")
    ->required();
  rpc_cmd->add_option("params", rpc_params,
                      "The params: a JSON object, e.g. '{\"to\": \"e1\", "
                      "\"payload\": \"hi\"}'");

  nova::presence_filter presence_filter;
  auto* presence_cmd = app.add_subcommand(
    "presence", "List the Novas a node knows with their presence");
  add_rpc_flags(*presence_cmd, ops, ops_timeout_ms);
  presence_cmd->add_option("--capability", presence_filter.capability,
                           "Only Novas with this capability");
  presence_cmd->add_option("--status", presence_filter.status,
                           "Only Novas with this status")
    ->check(CLI::IsMember({"online", "busy", "away", "offline"}));

  auto* tasks_cmd = app.add_subcommand(
    "tasks", "Enqueue tasks and inspect the task queue through a node");
  tasks_cmd->require_subcommand(1);
  nova::enqueue_options enqueue;
  auto* enqueue_cmd = tasks_cmd->add_subcommand(
    "enqueue", "Put a task (or --count copies) on the queue; prints its id");
  add_rpc_flags(*enqueue_cmd, ops, ops_timeout_ms);
  enqueue_cmd->add_option("type", enqueue.type, "The task type")->required();
  enqueue_cmd->add_option("payload", enqueue.payload, "The task payload")
    ->required();
  enqueue_cmd->add_flag("--payload-json", enqueue.payload_json,
                        "PAYLOAD is JSON (it travels as application/json), "
                        "not text");
  enqueue_cmd->add_option("--priority", enqueue.priority, "The task's lane")
    ->check(CLI::IsMember({"low", "normal", "high", "urgent"}))
    ->capture_default_str();
  enqueue_cmd->add_option("--session", enqueue.session,
                          "Results go to tasks.results.<session>");
  enqueue_cmd->add_option("--count", enqueue.count,
                          "Enqueue this many copies (progress on stderr "
                          "from 100)")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  auto* stats_cmd = tasks_cmd->add_subcommand(
    "stats", "Print the queue's lanes and counters");
  add_rpc_flags(*stats_cmd, ops, ops_timeout_ms);
  size_t dead_limit = 100;
  auto* dead_cmd = tasks_cmd->add_subcommand(
    "dead", "List the dead-letter tasks (failed past their delivery limit)");
  add_rpc_flags(*dead_cmd, ops, ops_timeout_ms);
  dead_cmd->add_option("--limit", dead_limit, "Most tasks listed")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{10'000}));
  std::string redrive_id;
  auto* redrive_cmd = tasks_cmd->add_subcommand(
    "redrive", "Put dead tasks back on the queue: one by id, else all");
  add_rpc_flags(*redrive_cmd, ops, ops_timeout_ms);
  auto* redrive_id_opt = redrive_cmd->add_option(
    "task_id", redrive_id, "The dead task's id (all dead tasks when left out)");

  // -- nova replay: read a durable stream back from the store --------------
  nova::replay_options replay;
  auto* replay_cmd = app.add_subcommand(
    "replay", "Print the envelopes of a durable stream (DragonflyDB), oldest "
              "first");
  replay_cmd->add_option("stream", replay.stream,
                         "The stream: inbox.<id>, group.<group>, "
                         "events.<domain>, broadcast.all, emergency, "
                         "durable.dead, or its full key (nova.inbox.bob)")
    ->required();
  replay_cmd->add_option("--since", replay.since,
                         "Where to start: an entry id (1700000000000-0), unix "
                         "ms, an age (30s, 10m, 2h, 1d), an ISO-8601 time "
                         "(2026-11-22T10:00:00Z), or -/start")
    ->capture_default_str();
  replay_cmd->add_option("--subject", replay.subject,
                         "Only envelopes whose subject matches this pattern "
                         "(NATS wildcards * and >)");
  replay_cmd->add_option("--limit", replay.limit, "Most envelopes printed")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, nova::max_replay_limit));
  replay_cmd->add_flag("--json", replay.json,
                       "Print one JSON object per envelope: \"entry\" and "
                       "the envelope in canonical JSON");
  replay_cmd->add_option("--dragonfly-url", replay.dragonfly_url,
                         "redis://[:password@]host:port[/db]")
    ->envname("DRAGONFLY_URL")
    ->capture_default_str();
  replay_cmd->add_option("--prefix", replay.prefix,
                         "Subject and key prefix")
    ->envname("NOVA_PREFIX")
    ->capture_default_str();
  replay_cmd->footer("Exit codes: 0 done (also when nothing matched), 1 the "
                     "store is unreachable or failed, 2 bad input.");

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
  demo_cmd->footer("Exit codes: 0 the simulation completed, 1 it did not.");

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
  nova::remote_bench_options remote;
  auto* bench_remote_cmd = bench_cmd->add_subcommand(
    "remote", "Nova-to-Nova throughput between two node processes over NATS "
              "vs raw nats.c publish/subscribe");
  auto* bench_request_cmd = bench_cmd->add_subcommand(
    "request", "Nova request-reply latency between two node processes vs raw "
               "nats.c request-reply");
  auto* bench_basp_cmd = bench_cmd->add_subcommand(
    "basp", "Nova over NATS vs CAF remote actors (middleman/BASP) throughput");
  for (auto* cmd : {bench_remote_cmd, bench_request_cmd, bench_basp_cmd}) {
    cmd->add_flag("--json", remote.json, "Print one JSON object");
    cmd->add_option("--nats-server", remote.nats_server,
                    "The nats-server binary (default: $NOVA_NATS_SERVER, "
                    "else /usr/bin, /usr/sbin, /usr/local/bin)");
  }
  for (auto* cmd : {bench_remote_cmd, bench_basp_cmd})
    cmd
      ->add_option("--messages", remote.messages,
                   "Messages per measured run, at most (a run also stops "
                   "growing beyond about 3 s)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{10'000}, size_t{100'000'000}));
  bench_request_cmd
    ->add_option("--requests", remote.requests,
                 "Round trips per measured run, at most (a run also stops "
                 "growing beyond about 3 s)")
    ->capture_default_str()
    ->check(CLI::Range(size_t{100}, size_t{10'000'000}));
  auto* bench_peer_cmd = bench_cmd->add_subcommand(
    "peer", "Internal: the peer process of bench remote, request and basp");
  bench_peer_cmd->group("");         // hidden from --help
  bench_peer_cmd->prefix_command();  // the rest goes to remaining() unparsed

  // -- nova bench presence --------------------------------------------------
  nova::presence_bench_options presence_bench;
  auto* bench_presence_cmd = bench_cmd->add_subcommand(
    "presence", "Presence heartbeats of many Novas through the presence "
                "store (redis-server) vs plain HSET + PEXPIRE per Nova");
  bench_presence_cmd->add_flag("--json", presence_bench.json,
                               "Print one JSON object");
  bench_presence_cmd
    ->add_option("--novas", presence_bench.novas, "Novas heartbeating")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{1'000'000}));
  bench_presence_cmd
    ->add_option("--rounds", presence_bench.rounds,
                 "Measured heartbeat rounds per side")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{10'000}));
  bench_presence_cmd->add_option(
    "--redis-server", presence_bench.redis_server,
    "The redis-server binary (default: $NOVA_REDIS_SERVER, else /usr/bin, "
    "/usr/sbin, /usr/local/bin)");

  // -- nova bench durable ---------------------------------------------------
  nova::durable_bench_options durable_bench;
  auto* bench_durable_cmd = bench_cmd->add_subcommand(
    "durable", "Durable Nova-to-Nova sends through the store (redis-server) "
               "vs redis-benchmark XADD with pipeline depth 64");
  bench_durable_cmd->add_flag("--json", durable_bench.json,
                              "Print one JSON object");
  bench_durable_cmd
    ->add_option("--messages", durable_bench.messages,
                 "Durable messages per measured run")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1'000}, size_t{10'000'000}));
  bench_durable_cmd->add_option(
    "--redis-server", durable_bench.redis_server,
    "The redis-server binary (default: $NOVA_REDIS_SERVER, else /usr/bin, "
    "/usr/sbin, /usr/local/bin)");
  bench_durable_cmd->add_option(
    "--redis-benchmark", durable_bench.redis_benchmark,
    "The redis-benchmark binary (default: $NOVA_REDIS_BENCHMARK, else "
    "/usr/bin, /usr/sbin, /usr/local/bin)");

  // -- nova bench tasks -----------------------------------------------------
  nova::tasks_bench_options tasks_bench;
  auto* bench_tasks_cmd = bench_cmd->add_subcommand(
    "tasks", "Task queue throughput end to end (enqueue, claim, complete) "
             "with worker node processes on redis-server vs raw hiredis "
             "XADD + XREADGROUP + XACK");
  bench_tasks_cmd->add_flag("--json", tasks_bench.json,
                            "Print one JSON object");
  bench_tasks_cmd
    ->add_option("--tasks", tasks_bench.tasks,
                 "Tasks per measured run, at most (a run also stops growing "
                 "beyond about 5 s)")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1'000}, size_t{10'000'000}));
  bench_tasks_cmd
    ->add_option("--nodes", tasks_bench.nodes, "Worker node processes")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{16}));
  bench_tasks_cmd
    ->add_option("--workers", tasks_bench.workers,
                 "Worker Novas per node process")
    ->capture_default_str()
    ->check(CLI::Range(size_t{1}, size_t{256}));
  bench_tasks_cmd->add_option(
    "--redis-server", tasks_bench.redis_server,
    "The redis-server binary (default: $NOVA_REDIS_SERVER, else /usr/bin, "
    "/usr/sbin, /usr/local/bin)");
  bench_tasks_cmd->add_option(
    "--redis-url", tasks_bench.redis_url,
    "Use this running server (e.g. DragonflyDB, on 127.0.0.1) instead of "
    "starting redis-server");
  bench_tasks_cmd->add_flag("--no-baseline", tasks_bench.no_baseline,
                            "Skip the raw hiredis runs (to measure the "
                            "server's CPU per task of the queue alone)");
  bench_tasks_cmd->add_flag(
    "--pin-server", tasks_bench.pin_server,
    "Give the benchmark's redis-server the last CPU of this process and run "
    "the nodes on the others, as a deployment gives the store cores of its "
    "own (needs 2 CPUs; not with --redis-url)");
  auto* bench_tasks_peer_cmd = bench_cmd->add_subcommand(
    "tasks-peer", "Internal: a worker node process of bench tasks");
  bench_tasks_peer_cmd->group("");
  bench_tasks_peer_cmd->prefix_command();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit with 0; every usage error with 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (node_cmd->parsed()) {
    if (!env_cfg) {
      std::cerr << "nova node: " << nova::describe(env_cfg.error()) << "\n";
      return 2;
    }
    if (cfg.http.off) {
      cfg.http.address.clear();
    } else if (cfg.http.address.empty()) {
      cfg.http.address = nova::default_http_address;
      cfg.http.optional = true;
    }
    return run_node(cfg, spawns, node_groups);
  }
  if (demo_cmd->parsed()) {
    auto summary = nova::run_demo(demo, std::cout);
    return summary.completed ? 0 : 1;
  }
  // The benchmarks run for seconds to minutes: an elapsed-time line on a
  // terminal's stderr shows they are alive (results go to stdout).
  std::optional<nova::progress_ticker> ticker;
  for (auto* b : bench_cmd->get_subcommands())
    if (b->parsed() && b->get_name().find("peer") == std::string::npos)
      ticker.emplace("nova bench " + b->get_name());
  if (local_cmd->parsed())
    return nova::run_bench_local(bench_json, std::cout, bench_messages);
  if (bench_remote_cmd->parsed())
    return nova::run_bench_remote(remote, std::cout);
  if (bench_request_cmd->parsed())
    return nova::run_bench_request(remote, std::cout);
  if (bench_basp_cmd->parsed())
    return nova::run_bench_basp(remote, std::cout);
  if (bench_peer_cmd->parsed())
    return nova::run_bench_peer(bench_peer_cmd->remaining(), std::cout);
  if (bench_presence_cmd->parsed())
    return nova::run_bench_presence(presence_bench, std::cout);
  if (bench_durable_cmd->parsed())
    return nova::run_bench_durable(durable_bench, std::cout);
  if (bench_tasks_cmd->parsed())
    return nova::run_bench_tasks(tasks_bench, std::cout);
  if (bench_tasks_peer_cmd->parsed())
    return nova::run_bench_tasks_peer(bench_tasks_peer_cmd->remaining(),
                                      std::cout);

  // The client subcommands keep stdout for results: library logs go to
  // stderr, warnings and up only.
  auto log = spdlog::stderr_color_mt("nova-cli");
  log->set_level(spdlog::level::warn);
  spdlog::set_default_logger(log);
  auto& out = std::cout;
  auto& err = std::cerr;
  client.timeout = std::chrono::milliseconds(request_timeout_ms);
  sub.timeout = std::chrono::milliseconds(sub_timeout_ms);
  nova::recipient to;
  if (send_cmd->parsed()) {
    if (auto code = send_args.resolve("nova send", to, payload))
      return *code;
    return nova::client_send(client, to, payload, out, err);
  }
  if (request_cmd->parsed()) {
    if (auto code = request_args.resolve("nova request", to, payload))
      return *code;
    return nova::client_request(client, to, payload, out, err);
  }
  if (pub_cmd->parsed())
    return nova::client_publish(client, event_subject, payload, out, err);
  if (broadcast_cmd->parsed())
    return nova::client_broadcast(client, payload, out, err);
  if (multicast_cmd->parsed())
    return nova::client_multicast(client, group, payload, out, err);
  if (emergency_cmd->parsed())
    return nova::client_emergency(client, payload, out, err);
  if (sub_cmd->parsed())
    return nova::client_sub(client, sub, out, err);
  if (replay_cmd->parsed())
    return nova::run_replay(replay, out, err);
  ops.target.timeout = std::chrono::milliseconds(ops_timeout_ms);
  if (rpc_cmd->parsed())
    return nova::ops_rpc(ops, rpc_method, rpc_params, out, err);
  if (presence_cmd->parsed())
    return nova::ops_presence(ops, presence_filter, out, err);
  if (enqueue_cmd->parsed())
    return nova::ops_tasks_enqueue(ops, enqueue, out, err);
  if (stats_cmd->parsed())
    return nova::ops_tasks_stats(ops, out, err);
  if (dead_cmd->parsed())
    return nova::ops_tasks_dead(ops, dead_limit, out, err);
  if (redrive_cmd->parsed())
    return nova::ops_tasks_redrive(
      ops,
      redrive_id_opt->count() > 0 ? std::optional{redrive_id} : std::nullopt,
      out, err);
  return 0;
}
