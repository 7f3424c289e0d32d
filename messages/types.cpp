#include "messages/types.hpp"

#include <tuple>

namespace nova {

namespace {

template <class Enum, size_t N>
std::optional<Enum> parse_enum(std::string_view x,
                               const std::pair<const char*, Enum> (&names)[N]) {
  for (const auto& [name, value] : names)
    if (x == name)
      return value;
  return std::nullopt;
}

constexpr std::pair<const char*, kind> kind_names[] = {
  {"direct", kind::direct},       {"broadcast", kind::broadcast},
  {"multicast", kind::multicast}, {"task", kind::task},
  {"presence", kind::presence},   {"event", kind::event},
  {"request", kind::request},     {"response", kind::response},
  {"emergency", kind::emergency},
};

constexpr std::pair<const char*, priority> priority_names[] = {
  {"low", priority::low},
  {"normal", priority::normal},
  {"high", priority::high},
  {"urgent", priority::urgent},
};

constexpr std::pair<const char*, presence_status> status_names[] = {
  {"online", presence_status::online},
  {"busy", presence_status::busy},
  {"away", presence_status::away},
  {"offline", presence_status::offline},
};

template <class Enum, size_t N>
const char* name_of(Enum x, const std::pair<const char*, Enum> (&names)[N]) {
  for (const auto& [name, value] : names)
    if (x == value)
      return name;
  return "unknown";
}

} // namespace

const char* to_string(kind x) noexcept {
  return name_of(x, kind_names);
}

const char* to_string(priority x) noexcept {
  return name_of(x, priority_names);
}

const char* to_string(presence_status x) noexcept {
  return name_of(x, status_names);
}

const char* to_string(task_status x) noexcept {
  switch (x) {
    case task_status::done: return "done";
    case task_status::failed: return "failed";
    case task_status::dead: return "dead";
  }
  return "unknown";
}

std::optional<kind> parse_kind(std::string_view x) noexcept {
  return parse_enum(x, kind_names);
}

std::optional<priority> parse_priority(std::string_view x) noexcept {
  return parse_enum(x, priority_names);
}

std::optional<presence_status>
parse_presence_status(std::string_view x) noexcept {
  return parse_enum(x, status_names);
}

bool operator==(const envelope& x, const envelope& y) {
  auto tie = [](const envelope& e) {
    return std::tie(e.id, e.from, e.to, e.kind, e.priority, e.correlation_id,
                    e.created_at, e.subject, e.content_type, e.payload,
                    e.headers);
  };
  return tie(x) == tie(y);
}

bool operator==(const task& x, const task& y) {
  auto tie = [](const task& t) {
    return std::tie(t.id, t.session, t.type, t.priority, t.payload,
                    t.created_by, t.created_at, t.attempts, t.max_attempts,
                    t.last_error, t.headers);
  };
  return tie(x) == tie(y);
}

bool operator==(const task_result& x, const task_result& y) {
  auto tie = [](const task_result& r) {
    return std::tie(r.task_id, r.session, r.status, r.worker, r.payload,
                    r.error, r.attempts, r.completed_at);
  };
  return tie(x) == tie(y);
}

bool operator==(const presence& x, const presence& y) {
  auto tie = [](const presence& p) {
    return std::tie(p.nova_id, p.node_id, p.status, p.capabilities,
                    p.current_task, p.last_seen, p.started_at, p.groups);
  };
  return tie(x) == tie(y);
}

bool operator==(const event& x, const event& y) {
  auto tie = [](const event& e) {
    return std::tie(e.id, e.source, e.subject, e.domain, e.action,
                    e.created_at, e.content_type, e.payload, e.headers);
  };
  return tie(x) == tie(y);
}

event to_event(const envelope& env) {
  event ev;
  ev.id = env.id;
  ev.source = env.from;
  ev.subject = env.subject;
  auto dot = env.subject.find('.');
  ev.domain = env.subject.substr(0, dot);
  if (dot != std::string::npos) {
    auto next = env.subject.find('.', dot + 1);
    ev.action = env.subject.substr(dot + 1, next == std::string::npos
                                              ? std::string::npos
                                              : next - dot - 1);
  }
  ev.created_at = env.created_at;
  ev.content_type = env.content_type;
  ev.payload = env.payload;
  ev.headers = env.headers;
  return ev;
}

envelope to_envelope(const event& ev) {
  envelope env;
  env.id = ev.id;
  env.from = ev.source;
  env.kind = kind::event;
  env.created_at = ev.created_at;
  env.subject = ev.subject;
  env.content_type = ev.content_type;
  env.payload = ev.payload;
  env.headers = ev.headers;
  return env;
}

} // namespace nova
