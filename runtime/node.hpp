#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include "actors/agent.hpp"
#include "actors/context.hpp"
#include "cluster/durable_store.hpp"
#include "messages/types.hpp"
#include "runtime/config.hpp"

namespace nova {

struct stream_task_queue_health;
class http_server;

/// How a node is doing, for health checks.
struct node_health {
  /// healthy, or degraded while the message bus is unreachable.
  std::string status = "healthy";
  std::string bus = "memory";
  bool bus_connected = true;
  std::string server_id;
  /// Round trip to the NATS server, when connected.
  std::optional<caf::timespan> rtt;
  size_t outbox_depth = 0;
  /// The store (`--store redis`): reachable, and what waits for it
  /// (durable sends and tasks accepted while it was away).
  std::string store = "memory";
  bool store_reachable = true;
  size_t store_backlog = 0;
  size_t novas = 0;
};

/// One Nova node: owns the CAF actor system, the local directory, the task
/// queue and presence services, and the Novas spawned on it. Embedded
/// (`bus_kind::memory`) everything runs in this process.
///
/// The blocking member functions (`request`, `enqueue`, `collect`, ...) are
/// for code outside actors (main, tests, the CLI); Novas use the agent API.
class node {
public:
  /// Starts the node. Throws `std::invalid_argument` for an invalid config.
  explicit node(config cfg = {});

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Shuts down if `shutdown` was not called yet.
  ~node();

  /// Spawns a Nova of type `Agent` (derived from `nova::agent`) named `id`;
  /// extra arguments go to its constructor after the `agent_init`. Errors:
  /// `invalid_id` (id, group or capability), `duplicate_id`, `shutting_down`.
  template <class Agent = agent, class... Ts>
  caf::expected<caf::actor> spawn(const std::string& id,
                                  agent_options opts = {}, Ts&&... xs) {
    if (auto err = reserve(id, opts))
      return err;
    auto hdl = system_->spawn<Agent>(agent_init{id, opts, ctx_},
                                     std::forward<Ts>(xs)...);
    bind(id, hdl, opts.capabilities);
    return hdl;
  }

  /// Asks one Nova to stop after the messages already in its mailbox.
  caf::error stop(const std::string& id);

  // -- sending from outside any Nova (the sender is `anonymous`) -------------

  caf::error send(const std::string& to, std::string payload,
                  send_options opts = {});
  caf::error broadcast(std::string payload, send_options opts = {});
  caf::error multicast(const std::string& group, std::string payload,
                       send_options opts = {});
  caf::error publish(const std::string& subject, std::string payload,
                     send_options opts = {});
  caf::error emergency(std::string payload, send_options opts = {});

  /// Sends a request and waits for the reply.
  caf::expected<envelope> request(const std::string& to, std::string payload,
                                  caf::timespan timeout,
                                  send_options opts = {});

  // -- tasks ------------------------------------------------------------------

  caf::expected<std::string> enqueue(task t);
  caf::expected<std::string> enqueue(std::string type, std::string payload,
                                     priority prio = priority::normal,
                                     std::string session = {});

  /// As `enqueue` for every task of `ts`, in one message to the queue
  /// service (and, clustered, as few round trips to the store): per task,
  /// in order, its id or the error that refused it. Tasks enqueued by one
  /// call enter their lanes in order.
  std::vector<caf::expected<std::string>> enqueue_many(std::vector<task> ts);

  /// Waits for `n` results of `session` or until `timeout`; returns what
  /// arrived.
  caf::expected<std::vector<task_result>>
  collect(const std::string& session, size_t n, caf::timespan timeout);

  caf::expected<std::vector<task>> dead_letters(size_t limit = 100);

  /// Re-drives one dead letter, or all of them for an empty id.
  caf::expected<uint64_t> redrive(const std::string& task_id = {});

  caf::expected<queue_stats> task_stats();

  /// Reads up to `limit` envelopes of a durable stream (a full key) from
  /// `from` (an entry id, unix ms, or "-"), filtered by subject pattern when
  /// given. Blocks for the store round trips; `unsupported` without a store.
  caf::expected<std::vector<stored_envelope>>
  replay(const std::string& stream, const std::string& from,
         const std::string& subject_pattern = {}, size_t limit = 1000);

  // -- presence -----------------------------------------------------------------

  caf::expected<std::vector<presence>> presence_list();
  caf::expected<std::vector<presence>> discover(const std::string& capability);

  // -- node ---------------------------------------------------------------------

  /// Ids of the Novas running here, sorted.
  [[nodiscard]] std::vector<std::string> novas() const;

  [[nodiscard]] node_health health();

  [[nodiscard]] const nova::config& cfg() const noexcept {
    return cfg_;
  }

  [[nodiscard]] runtime_context& context() noexcept {
    return *ctx_;
  }

  [[nodiscard]] const counters& stats() const noexcept {
    return ctx_->stats;
  }

  [[nodiscard]] caf::actor_system& system() noexcept {
    return *system_;
  }

  /// `host:port` the HTTP surface serves on (`config::http`), or empty.
  [[nodiscard]] std::string http_address() const;

  /// Blocks until SIGINT, SIGTERM or `request_shutdown`, then shuts down.
  /// Returns the process exit code.
  int run();

  /// Wakes `run` from any thread.
  void request_shutdown();

  /// True while `run` waits for a signal (its handlers are installed).
  [[nodiscard]] bool running() const noexcept {
    return running_.load();
  }

  /// Stops intake (sends from outside fail with `shutting_down`), lets every
  /// Nova finish the messages already in its mailbox, stops the Novas, then
  /// the services. Novas still running after `drain_timeout` are killed.
  void shutdown();

private:
  caf::error reserve(const std::string& id, const agent_options& opts);
  /// Checks `t` and sets what the node fills in (id, creator, time).
  caf::error prepare(task& t);
  void bind(const std::string& id, const caf::actor& hdl,
            const std::vector<std::string>& caps);
  caf::error outbound(kind k, const std::string& to, std::string payload,
                      send_options& opts);

  nova::config cfg_;
  caf::actor_system_config sys_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  context_ptr ctx_;
  std::shared_ptr<stream_task_queue_health> task_health_;
  std::unique_ptr<http_server> http_;
  bool down_ = false;
  std::atomic<bool> running_{false};
  int wake_fds_[2] = {-1, -1};
};

} // namespace nova
