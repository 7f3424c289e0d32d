#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/response_handle.hpp>

#include "actors/context.hpp"
#include "messages/errc.hpp"
#include "messages/types.hpp"

namespace nova {

/// What a Nova declares about itself when it is spawned.
struct agent_options {
  std::vector<std::string> capabilities;
  std::vector<std::string> groups;
  /// Claims tasks from the queue and runs `on_task` for each.
  bool worker = false;
};

/// Per-message options for outgoing messages.
struct send_options {
  nova::priority priority = priority::normal;
  std::string content_type;
  std::string correlation_id; // set automatically when empty
  nova::headers headers;
  /// Durable delivery: written to the store's stream first, then delivered;
  /// at-least-once, deduplicated by envelope id; a Nova that is offline or
  /// not spawned yet gets it when it comes up. Needs a store (`--store
  /// redis`), else `unsupported`. Not for requests.
  bool durable = false;
};

/// Everything an agent needs from its node; `nova::node::spawn` fills it.
struct agent_init {
  std::string id;
  agent_options options;
  context_ptr ctx;
};

class agent;
class dedup_window;
struct stored_envelope;

/// The pending reply to `agent::request`. Call `then` once, inside the
/// requesting agent; exactly one of the two callbacks runs, in the agent.
class reply_handle {
public:
  using handle_type = caf::response_handle<caf::event_based_actor,
                                           caf::message, false>;

  void then(std::function<void(const envelope&)> on_reply,
            std::function<void(const caf::error&)> on_error = {});

private:
  friend class agent;

  reply_handle(agent* self, handle_type hdl, std::string to,
               caf::timespan timeout, caf::error early)
    : self_(self),
      hdl_(hdl),
      to_(std::move(to)),
      timeout_(timeout),
      early_(std::move(early)),
      start_(std::chrono::steady_clock::now()) {
    // nop
  }

  agent* self_;
  handle_type hdl_;
  std::string to_;
  caf::timespan timeout_;
  caf::error early_;
  std::chrono::steady_clock::time_point start_;
};

/// The base of every Nova: a CAF actor with an id, capabilities and groups.
/// Override the `on_*` handlers you need; send with the member functions.
/// Each handler runs inside the actor, one message at a time; an exception
/// escaping a handler is caught, counted and logged, and the Nova goes on.
class agent : public caf::event_based_actor {
public:
  agent(caf::actor_config& cfg, agent_init init);

  ~agent() override;

  [[nodiscard]] const std::string& id() const noexcept {
    return id_;
  }

  [[nodiscard]] const agent_options& options() const noexcept {
    return options_;
  }

  [[nodiscard]] const runtime_context& context() const noexcept {
    return *ctx_;
  }

  // -- sending ----------------------------------------------------------------

  /// Sends a direct message. Errors (returned at once): `invalid_id`,
  /// `payload_too_large`, `unknown_nova` (no such Nova here or, clustered,
  /// reachable through the gateway).
  caf::error send(const std::string& to, std::string payload,
                  send_options opts = {});

  /// Sends to exactly one Nova that has `capability`, on any node (NATS
  /// queue groups spread the load; embedded, round robin). `unknown_nova`
  /// if no Nova has it.
  caf::error send_any(const std::string& capability, std::string payload,
                      send_options opts = {});

  /// Sends to every Nova, including this one.
  caf::error broadcast(std::string payload, send_options opts = {});

  /// Sends to every member of `group`.
  caf::error multicast(const std::string& group, std::string payload,
                       send_options opts = {});

  /// Publishes an event on `subject` (`<domain>.<action>[.<more>]`).
  caf::error publish(const std::string& subject, std::string payload,
                     send_options opts = {});

  /// Sends on the emergency channel: every Nova gets it ahead of its other
  /// messages.
  caf::error emergency(std::string payload, send_options opts = {});

  /// Sends a request; the reply (or an error: `request_timeout` after
  /// `timeout`, `unknown_nova`, the receiver's own error) arrives through
  /// `then` on the returned handle.
  reply_handle request(const std::string& to, std::string payload,
                       caf::timespan timeout, send_options opts = {});

  reply_handle request(const std::string& to, std::string payload) {
    return request(to, std::move(payload), ctx_->limits.request_timeout);
  }

  /// Sends a request to exactly one Nova that has `capability`.
  reply_handle request_any(const std::string& capability, std::string payload,
                           caf::timespan timeout, send_options opts = {});

  // -- durable streams ---------------------------------------------------------

  using replay_handler
    = std::function<void(caf::expected<std::vector<stored_envelope>>)>;

  /// Reads up to `limit` envelopes of a durable stream (a full key such as
  /// `nova.events.billing`) from `from` (an entry id, unix ms, or "-" for the
  /// start), only those whose subject matches `subject_pattern` when given;
  /// `f` runs inside this Nova with the result. Without a store, `f` gets
  /// `unsupported`. The store is read off this actor: the Nova keeps
  /// handling messages meanwhile.
  void replay(const std::string& stream, const std::string& from,
              replay_handler f, const std::string& subject_pattern = {},
              size_t limit = 1000);

  // -- groups and events -------------------------------------------------------

  void join(const std::string& group);
  void leave(const std::string& group);

  using event_handler = std::function<void(const envelope&)>;

  /// Adds a routing rule: events whose subject matches `pattern` (`*` one
  /// token, `>` the rest) go to `handler`, or to `on_event` when `handler`
  /// is empty. Several rules may match one event; each runs, and one that
  /// throws is counted and does not stop the others.
  caf::error subscribe(const std::string& pattern, event_handler handler = {});

  /// Removes every rule for `pattern`.
  void unsubscribe(const std::string& pattern);

  // -- tasks --------------------------------------------------------------------

  /// Puts a task on the queue; returns its id.
  caf::expected<std::string> enqueue(nova::task t);

  caf::expected<std::string> enqueue(std::string type, std::string payload,
                                     nova::priority prio = priority::normal,
                                     std::string session = {});

  /// As `enqueue` for every task of `ts`, in one message to the queue
  /// service (the tasks of one call enter their lanes in order): per task,
  /// its id, or the error that refused it here (`prepare_task`). A refusal
  /// by the queue itself (a duplicate id, a full lane) is logged, as for
  /// `enqueue`.
  std::vector<caf::expected<std::string>>
  enqueue_many(std::vector<nova::task> ts);

  /// Collects up to `n` results of `session`, or what arrived when
  /// `timeout` expires.
  template <class F>
  void collect(const std::string& session, size_t n, caf::timespan timeout,
               F on_results) {
    caf::event_based_actor::request(ctx_->tasks, caf::infinite, collect_atom::value,
                    session, static_cast<uint64_t>(n), timeout)
      .then([f = std::move(on_results)](std::vector<task_result>& xs) mutable {
        f(xs);
      });
  }

  // -- presence -------------------------------------------------------------

  /// Publishes this Nova's status and current task.
  void set_presence(presence_status status, std::string current_task = {});

  [[nodiscard]] presence_status status() const noexcept {
    return status_;
  }

  /// Asks for the Novas that are not offline and have `capability`
  /// (all of them when empty); the list arrives in `f`.
  template <class F>
  void discover(const std::string& capability, F f) {
    caf::event_based_actor::request(ctx_->presence, ctx_->limits.request_timeout,
                    discover_atom::value, capability)
      .then([f = std::move(f)](std::vector<presence>& xs) mutable { f(xs); });
  }

  /// The presence of every known Nova, then every change, arrives in
  /// `on_presence`.
  void watch_presence();

protected:
  // -- handlers to override ---------------------------------------------------

  /// Runs once before the first message.
  virtual void on_start();

  /// Runs once when the Nova stops (node shutdown or `stop()`).
  virtual void on_stop();

  virtual void on_message(const envelope& msg);
  virtual void on_broadcast(const envelope& msg);
  virtual void on_multicast(const envelope& msg);
  virtual void on_emergency(const envelope& msg);

  /// Events matching a rule added by `subscribe(pattern)` without a handler.
  virtual void on_event(const envelope& msg);

  /// Returns the reply payload, or an error that becomes the requester's.
  /// The default replies `no_handler`.
  virtual caf::expected<std::string> on_request(const envelope& req);

  /// Runs a claimed task (workers only). An error or exception fails this
  /// attempt; the queue retries with backoff up to the delivery limit.
  virtual caf::expected<std::string> on_task(const nova::task& t);

  virtual void on_presence(const presence& p);

  /// Stops this Nova: `on_stop`, presence offline, leave the directory.
  void stop();

  caf::behavior make_behavior() final;

private:
  friend class reply_handle;

  caf::actor resolve(const std::string& id);
  /// Checks `t` and sets what the agent fills in (id, creator, time).
  caf::error prepare_task(nova::task& t);
  template <class Envelope>
  void deliver(const caf::actor& dest, Envelope&& env) {
    if (env.priority == priority::urgent || env.kind == kind::emergency)
      caf::event_based_actor::send<caf::message_priority::high>(
        dest, std::forward<Envelope>(env));
    else
      caf::event_based_actor::send(dest, std::forward<Envelope>(env));
  }
  caf::error fan_out_kind(kind k, const std::string& to, std::string payload,
                          send_options& opts);
  reply_handle start_request(caf::actor dest, envelope env, std::string to,
                             caf::timespan timeout, caf::error err);
  void dispatch(envelope& env);
  caf::expected<envelope> answer(envelope& req);
  /// Runs `f`; an exception escaping it is counted and logged.
  template <class F>
  void guarded(const char* what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      report_failure(what, e.what());
    } catch (...) {
      report_failure(what, "an exception not derived from std::exception");
    }
  }
  void report_failure(const char* what, const char* why);
  void claim_next();
  void read_durable(bool with_pending);
  void on_replay(uint64_t token,
                 caf::expected<std::vector<stored_envelope>> r);
  void on_durable(std::vector<stored_envelope>& batch, bool more);
  void run_task(nova::task& t);
  void heartbeat();
  presence make_presence() const;

  std::string id_;
  agent_options options_;
  context_ptr ctx_;
  presence_status status_ = presence_status::online;
  std::string current_task_;
  int64_t started_at_ = 0;
  /// Mailbox size at the last heartbeat, counted in `ctx_->mailbox_depth`.
  int64_t mailbox_sampled_ = 0;
  bool stopped_ = false;
  bool durable_reading_ = false;
  bool durable_again_ = false;
  std::unique_ptr<dedup_window> dedup_;
  uint64_t next_replay_ = 0;
  std::unordered_map<uint64_t, replay_handler> replays_;
  std::vector<std::pair<std::string, event_handler>> rules_;
  // Resolved local handles, valid while the directory version is unchanged.
  std::unordered_map<std::string, caf::actor> cache_;
  uint64_t cache_version_ = 0;
};

} // namespace nova
