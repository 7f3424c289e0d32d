#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include "messages/msg_id.hpp"

namespace nova {

enum class kind : uint8_t {
  direct = 1,
  broadcast,
  multicast,
  task,
  presence,
  event,
  request,
  response,
  emergency,
};

enum class priority : uint8_t { low = 1, normal, high, urgent };

enum class presence_status : uint8_t { online = 1, busy, away, offline };

[[nodiscard]] const char* to_string(kind x) noexcept;
[[nodiscard]] const char* to_string(priority x) noexcept;
[[nodiscard]] const char* to_string(presence_status x) noexcept;
[[nodiscard]] std::optional<kind> parse_kind(std::string_view x) noexcept;
[[nodiscard]] std::optional<priority> parse_priority(std::string_view x) noexcept;
[[nodiscard]] std::optional<presence_status>
parse_presence_status(std::string_view x) noexcept;

using headers = std::map<std::string, std::string>;

/// One message between Novas. `payload` holds bytes; Nova never looks inside.
struct envelope {
  msg_id id;
  std::string from;
  std::string to;
  nova::kind kind = kind::direct;
  nova::priority priority = priority::normal;
  msg_id correlation_id;
  int64_t created_at = 0; // unix ms
  std::string subject;
  std::string content_type;
  std::string payload;
  nova::headers headers;
};

bool operator==(const envelope& x, const envelope& y);
inline bool operator!=(const envelope& x, const envelope& y) {
  return !(x == y);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, envelope& x) {
  return f(caf::meta::type_name("nova::envelope"), x.id, x.from, x.to, x.kind,
           x.priority, x.correlation_id, x.created_at, x.subject,
           x.content_type, x.payload, x.headers);
}

struct task {
  std::string id;
  std::string session;
  std::string type;
  nova::priority priority = priority::normal;
  std::string payload;
  std::string created_by;
  int64_t created_at = 0;
  uint32_t attempts = 0;
  uint32_t max_attempts = 0; // 0: the queue's delivery limit
  std::string last_error;
  nova::headers headers;
};

bool operator==(const task& x, const task& y);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task& x) {
  return f(caf::meta::type_name("nova::task"), x.id, x.session, x.type,
           x.priority, x.payload, x.created_by, x.created_at, x.attempts,
           x.max_attempts, x.last_error, x.headers);
}

enum class task_status : uint8_t { done = 1, failed, dead };

[[nodiscard]] const char* to_string(task_status x) noexcept;

struct task_result {
  std::string task_id;
  std::string session;
  task_status status = task_status::done;
  std::string worker;
  std::string payload;
  std::string error;
  uint32_t attempts = 0;
  int64_t completed_at = 0;
};

bool operator==(const task_result& x, const task_result& y);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_result& x) {
  return f(caf::meta::type_name("nova::task_result"), x.task_id, x.session,
           x.status, x.worker, x.payload, x.error, x.attempts, x.completed_at);
}

struct presence {
  std::string nova_id;
  std::string node_id;
  presence_status status = presence_status::online;
  std::vector<std::string> capabilities;
  std::string current_task;
  int64_t last_seen = 0;
  int64_t started_at = 0;
  std::vector<std::string> groups;
};

bool operator==(const presence& x, const presence& y);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, presence& x) {
  return f(caf::meta::type_name("nova::presence"), x.nova_id, x.node_id,
           x.status, x.capabilities, x.current_task, x.last_seen,
           x.started_at, x.groups);
}

/// An event as stored in an event stream. On the bus an event travels as an
/// envelope of kind `event` whose subject is `<domain>.<action>[.<more>]`.
struct event {
  std::string id;
  std::string source;
  std::string subject;
  std::string domain;
  std::string action;
  int64_t created_at = 0;
  std::string content_type;
  std::string payload;
  nova::headers headers;
};

bool operator==(const event& x, const event& y);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event& x) {
  return f(caf::meta::type_name("nova::event"), x.id, x.source, x.subject,
           x.domain, x.action, x.created_at, x.content_type, x.payload,
           x.headers);
}

/// Turns an event envelope into the stored event form and back.
[[nodiscard]] event to_event(const envelope& env);
[[nodiscard]] envelope to_envelope(const event& ev);

/// Queue statistics for one node's view of the task queue.
struct queue_stats {
  std::vector<uint64_t> depth; // per lane: urgent, high, normal, low
  uint64_t in_flight = 0;
  uint64_t delayed = 0; // waiting for a retry backoff
  uint64_t dead = 0;
  uint64_t done = 0;
  uint64_t retried = 0;
  uint64_t enqueued = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_stats& x) {
  return f(caf::meta::type_name("nova::queue_stats"), x.depth, x.in_flight,
           x.delayed, x.dead, x.done, x.retried, x.enqueued);
}

/// What a task queue answers to `(enqueue_atom, std::vector<task>)`: per
/// task, in order, its id and the error that refused it (none when it was
/// queued; then the id is set).
struct enqueue_results {
  std::vector<std::string> ids;
  std::vector<caf::error> errors;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, enqueue_results& x) {
  return f(caf::meta::type_name("nova::enqueue_results"), x.ids, x.errors);
}

// Atoms for the messages between Nova's own actors.
using request_atom = caf::atom_constant<caf::atom("request")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using enqueue_atom = caf::atom_constant<caf::atom("enqueue")>;
using claim_atom = caf::atom_constant<caf::atom("claim")>;
using complete_atom = caf::atom_constant<caf::atom("complete")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;
using collect_atom = caf::atom_constant<caf::atom("collect")>;
using dead_atom = caf::atom_constant<caf::atom("dead")>;
using redrive_atom = caf::atom_constant<caf::atom("redrive")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using presence_atom = caf::atom_constant<caf::atom("presence")>;
using discover_atom = caf::atom_constant<caf::atom("discover")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using republish_atom = caf::atom_constant<caf::atom("republish")>;
/// A request from another node: `(wire_request_atom, envelope, reply
/// subject, json)`, answered through `remote_bus::reply`.
using wire_request_atom = caf::atom_constant<caf::atom("wirereq")>;

} // namespace nova
