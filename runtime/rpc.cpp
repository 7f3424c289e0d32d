#include "runtime/rpc.hpp"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "actors/durable_service.hpp"
#include "cluster/naming.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/node.hpp"
#include "runtime/ops.hpp"

namespace nova {

using json = nlohmann::json;

namespace {

constexpr const char* version = "0.1.0";

json error_object(int code, const std::string& message,
                  const json& data = nullptr) {
  json e = {{"code", code}, {"message", message}};
  if (!data.is_null())
    e["data"] = data;
  return e;
}

json response_error(const json& id, int code, const std::string& message,
                    const json& data = nullptr) {
  return {{"jsonrpc", "2.0"},
          {"id", id},
          {"error", error_object(code, message, data)}};
}

// -- params -------------------------------------------------------------------

const json* find_param(const json& params, const char* name) {
  if (!params.is_object())
    return nullptr;
  auto i = params.find(name);
  return i == params.end() || i->is_null() ? nullptr : &*i;
}

std::string str_param(const json& params, const char* name, bool required,
                      std::string fallback = {}) {
  auto* p = find_param(params, name);
  if (p == nullptr) {
    if (required)
      throw rpc_error{rpc_code::invalid_params,
                      std::string{"missing param '"} + name + "'"};
    return fallback;
  }
  if (!p->is_string())
    throw rpc_error{rpc_code::invalid_params,
                    std::string{"param '"} + name + "' must be a string"};
  return p->get<std::string>();
}

uint64_t uint_param(const json& params, const char* name, uint64_t fallback,
                    uint64_t max) {
  auto* p = find_param(params, name);
  if (p == nullptr)
    return fallback;
  if (!p->is_number_unsigned() || p->get<uint64_t>() > max)
    throw rpc_error{rpc_code::invalid_params,
                    std::string{"param '"} + name
                      + "' must be an integer from 0 to "
                      + std::to_string(max)};
  return p->get<uint64_t>();
}

bool bool_param(const json& params, const char* name) {
  auto* p = find_param(params, name);
  if (p == nullptr)
    return false;
  if (!p->is_boolean())
    throw rpc_error{rpc_code::invalid_params,
                    std::string{"param '"} + name + "' must be a boolean"};
  return p->get<bool>();
}

/// The `payload` param as envelope bytes: a string travels as its text,
/// anything else as JSON.
std::string payload_param(const json& params, send_options* opts,
                          bool required = true) {
  auto* p = find_param(params, "payload");
  if (p == nullptr) {
    if (required)
      throw rpc_error{rpc_code::invalid_params, "missing param 'payload'"};
    return {};
  }
  if (p->is_string())
    return p->get<std::string>();
  if (opts != nullptr)
    opts->content_type = "application/json";
  return dump_json(*p);
}

priority priority_param(const json& params) {
  auto name = str_param(params, "priority", false, "normal");
  auto prio = parse_priority(name);
  if (!prio)
    throw rpc_error{rpc_code::invalid_params,
                    "param 'priority' must be low|normal|high|urgent, not '"
                      + name + "'"};
  return *prio;
}

void check_params_shape(const json& params) {
  if (!params.is_null() && !params.is_object())
    throw rpc_error{rpc_code::invalid_params,
                    "params must be an object (by name)"};
}

/// Turns a runtime error into the JSON-RPC error for it: bad input is
/// invalid params, everything else an internal error naming the reason.
[[noreturn]] void fail(const caf::error& err) {
  auto code = code_of(err);
  json data = {{"reason", to_string(code)}};
  switch (code) {
    case errc::invalid_id:
    case errc::invalid_argument:
    case errc::payload_too_large:
    case errc::unknown_nova:
      throw rpc_error{rpc_code::invalid_params, describe(err), data};
    default:
      throw rpc_error{rpc_code::internal_error, describe(err), data};
  }
}

template <class T>
T value_or_fail(caf::expected<T>&& x) {
  if (!x)
    fail(x.error());
  return std::move(*x);
}

void ok_or_fail(const caf::error& err) {
  if (err)
    fail(err);
}

bool valid_id(const json& id) {
  return id.is_string() || id.is_number() || id.is_null();
}

} // namespace

// -- rpc_service ---------------------------------------------------------------

rpc_service::rpc_service(node& n, limits lim, hooks h)
  : node_(n), limits_(lim), hooks_(std::move(h)) {
  add_methods();
}

std::vector<std::string> rpc_service::methods() const {
  std::vector<std::string> out;
  for (auto& [name, _] : methods_)
    out.push_back(name);
  return out;
}

std::string rpc_service::error_response(int code, const std::string& message) {
  return dump_json(response_error(nullptr, code, message));
}

size_t rpc_service::nesting_depth(std::string_view text, size_t stop_at) {
  size_t depth = 0;
  size_t max_depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          max_depth = depth;
          if (max_depth > stop_at)
            return max_depth;
        }
        break;
      case ']':
      case '}':
        if (depth > 0)
          --depth;
        break;
      default:
        break;
    }
  }
  return max_depth;
}

std::optional<std::string> rpc_service::handle(std::string_view body) {
  // Depth first: a 10,000-deep document is refused before anything parses
  // it.
  if (nesting_depth(body, limits_.max_depth) > limits_.max_depth)
    return error_response(rpc_code::invalid_request,
                          "nesting deeper than "
                            + std::to_string(limits_.max_depth) + " levels");
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded())
    return error_response(rpc_code::parse_error,
                          "parse error: the body is not valid JSON (UTF-8)");
  if (doc.is_array()) {
    if (doc.empty())
      return error_response(rpc_code::invalid_request, "empty batch");
    if (doc.size() > limits_.max_batch)
      return error_response(rpc_code::invalid_request,
                            "batch of " + std::to_string(doc.size())
                              + " calls exceeds the limit of "
                              + std::to_string(limits_.max_batch));
    json out = json::array();
    for (auto& req : doc) {
      bool notification = false;
      auto r = call(req, notification);
      if (!notification)
        out.push_back(std::move(r));
    }
    if (out.empty())
      return std::nullopt;
    return dump_json(out);
  }
  bool notification = false;
  auto r = call(doc, notification);
  if (notification)
    return std::nullopt;
  return dump_json(r);
}

json rpc_service::call(const json& req, bool& notification) {
  notification = false;
  if (!req.is_object())
    return response_error(nullptr, rpc_code::invalid_request,
                          "a call must be an object");
  json id = nullptr;
  auto id_it = req.find("id");
  bool has_id = id_it != req.end();
  if (has_id) {
    if (!valid_id(*id_it))
      return response_error(nullptr, rpc_code::invalid_request,
                            "id must be a string, a number or null");
    id = *id_it;
  }
  auto v = req.find("jsonrpc");
  if (v == req.end() || *v != "2.0")
    return response_error(id, rpc_code::invalid_request,
                          "jsonrpc must be \"2.0\"");
  auto m = req.find("method");
  if (m == req.end() || !m->is_string())
    return response_error(id, rpc_code::invalid_request,
                          "method must be a string");
  json params = nullptr;
  if (auto p = req.find("params"); p != req.end()) {
    if (!p->is_object() && !p->is_array())
      return response_error(id, rpc_code::invalid_request,
                            "params must be an object or an array");
    params = *p;
  }
  notification = !has_id;
  auto name = m->get<std::string>();
  auto fn = methods_.find(name);
  if (fn == methods_.end())
    return response_error(id, rpc_code::method_not_found,
                          "Method not found: " + name,
                          {{"available_methods", methods()}});
  try {
    check_params_shape(params);
    auto result = fn->second(params.is_null() ? json::object() : params);
    return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
  } catch (const rpc_error& e) {
    return response_error(id, e.code, e.message, e.data);
  } catch (const std::exception& e) {
    spdlog::warn("rpc {}: {}", name, e.what());
    return response_error(id, rpc_code::internal_error,
                          std::string{"internal error: "} + e.what());
  }
}

void rpc_service::add_methods() {
  auto& n = node_;
  methods_["bus.publish"] = [&n](const json& p) {
    auto topic = str_param(p, "topic", false);
    if (topic.empty())
      topic = str_param(p, "subject", true);
    send_options opts;
    opts.correlation_id = str_param(p, "correlation_id", false);
    if (opts.correlation_id.size() > msg_id::capacity)
      throw rpc_error{rpc_code::invalid_params,
                      "param 'correlation_id' is longer than 64 characters"};
    if (opts.correlation_id.empty())
      opts.correlation_id = std::string{next_message_id().view()};
    auto payload = payload_param(p, &opts);
    auto corr = opts.correlation_id;
    ok_or_fail(n.publish(topic, std::move(payload), opts));
    return json{{"published", true},
                {"subject", n.cfg().prefix + ".events." + topic},
                {"correlation_id", corr}};
  };
  methods_["bus.subscribe"] = [this, &n](const json& p) {
    auto pattern = str_param(p, "subject", false, ">");
    auto limit = uint_param(p, "limit", 50, 1000);
    if (auto err = check_subject(pattern, true))
      fail(err);
    // Durable events from the streams, and what this node saw in real time
    // (events are only written to the streams when sent durable).
    std::vector<envelope> found;
    if (n.context().durable) {
      auto stored = value_or_fail(
        n.context().durable->store()->recent_events(pattern, limit));
      for (auto& s : stored)
        found.push_back(std::move(s.env));
    }
    if (hooks_.recent_events)
      for (auto& env : hooks_.recent_events(pattern, limit))
        found.push_back(std::move(env));
    std::stable_sort(found.begin(), found.end(),
                     [](const envelope& x, const envelope& y) {
                       return x.created_at < y.created_at;
                     });
    std::vector<msg_id> seen;
    json events = json::array();
    for (auto i = found.rbegin(); i != found.rend() && events.size() < limit;
         ++i) {
      if (std::find(seen.begin(), seen.end(), i->id) != seen.end())
        continue;
      seen.push_back(i->id);
      events.push_back(event_json(*i));
    }
    std::reverse(events.begin(), events.end());
    auto count = events.size();
    return json{{"events", std::move(events)}, {"count", count}};
  };
  methods_["hub.info"] = [this, &n](const json&) {
    auto h = n.health();
    auto uptime = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - hooks_.started)
                    .count();
    return json{{"hub_id", n.cfg().node_id},
                {"node_id", n.cfg().node_id},
                {"version", version},
                {"status", n.context().accepting.load() ? "running"
                                                        : "stopping"},
                {"bus", h.bus},
                {"store", h.store},
                {"prefix", n.cfg().prefix},
                {"novas", h.novas},
                {"uptime_s", uptime}};
  };
  methods_["hub.health"] = [this](const json&) {
    auto body = hooks_.health ? hooks_.health() : json::object();
    // The seed's shape: a status per service, next to the full report.
    json services = json::object();
    if (body.contains("nats"))
      services["nats"] = !body["nats"]["enabled"].get<bool>()
                           ? "disabled"
                           : body["nats"]["connected"].get<bool>()
                               ? "healthy"
                               : "unhealthy";
    if (body.contains("store"))
      services["store"] = body["store"]["status"];
    body["services"] = std::move(services);
    return body;
  };
  methods_["nova.list"] = [&n](const json&) {
    auto ids = n.novas();
    auto count = ids.size();
    return json{{"novas", std::move(ids)}, {"count", count}};
  };
  methods_["nova.send"] = [&n](const json& p) {
    auto to = str_param(p, "to", true);
    send_options opts;
    opts.priority = priority_param(p);
    opts.durable = bool_param(p, "durable");
    auto payload = payload_param(p, &opts);
    ok_or_fail(n.send(to, std::move(payload), opts));
    return json{{"sent", true}, {"to", to}};
  };
  methods_["nova.broadcast"] = [&n](const json& p) {
    send_options opts;
    opts.priority = priority_param(p);
    auto payload = payload_param(p, &opts);
    ok_or_fail(n.broadcast(std::move(payload), opts));
    return json{{"sent", true}};
  };
  methods_["nova.request"] = [&n](const json& p) {
    auto to = str_param(p, "to", true);
    auto timeout = std::chrono::milliseconds(
      uint_param(p, "timeout_ms", 5000, 60'000));
    send_options opts;
    opts.priority = priority_param(p);
    auto payload = payload_param(p, &opts);
    auto start = std::chrono::steady_clock::now();
    auto reply = value_or_fail(n.request(to, std::move(payload), timeout,
                                         opts));
    auto latency = std::chrono::duration<double, std::milli>(
                     std::chrono::steady_clock::now() - start)
                     .count();
    return json{{"from", reply.from},
                {"payload", payload_json(reply.payload, reply.content_type)},
                {"correlation_id",
                 std::string{reply.correlation_id.view()}},
                {"latency_ms", latency}};
  };
  methods_["tasks.enqueue"] = [&n](const json& p) {
    task t;
    t.type = str_param(p, "type", true);
    t.priority = priority_param(p);
    t.session = str_param(p, "session", false);
    t.payload = payload_param(p, nullptr, false);
    t.created_by = "rpc";
    auto id = value_or_fail(n.enqueue(std::move(t)));
    return json{{"task_id", id}};
  };
  methods_["tasks.stats"] = [&n](const json&) {
    return queue_stats_json(value_or_fail(n.task_stats()));
  };
  methods_["tasks.collect"] = [&n](const json& p) {
    auto session = str_param(p, "session", true);
    auto count = uint_param(p, "count", 1, 100'000);
    auto timeout = std::chrono::milliseconds(
      uint_param(p, "timeout_ms", 5000, 60'000));
    auto rs = value_or_fail(n.collect(session, count, timeout));
    json out = json::array();
    for (auto& r : rs)
      out.push_back(task_result_json(r));
    auto c = out.size();
    return json{{"results", std::move(out)}, {"count", c}};
  };
  methods_["tasks.dead.list"] = [&n](const json& p) {
    auto limit = uint_param(p, "limit", 100, 10'000);
    auto ts = value_or_fail(n.dead_letters(limit));
    json out = json::array();
    for (auto& t : ts)
      out.push_back(task_json(t));
    auto c = out.size();
    return json{{"tasks", std::move(out)}, {"count", c}};
  };
  methods_["tasks.dead.redrive"] = [&n](const json& p) {
    auto id = str_param(p, "task_id", false);
    return json{{"redriven", value_or_fail(n.redrive(id))}};
  };
  methods_["presence.list"] = [&n](const json& p) {
    auto capability = str_param(p, "capability", false);
    auto status = str_param(p, "status", false);
    if (!status.empty() && !parse_presence_status(status))
      throw rpc_error{rpc_code::invalid_params,
                      "param 'status' must be online|busy|away|offline"};
    auto ps = value_or_fail(capability.empty() ? n.presence_list()
                                               : n.discover(capability));
    json out = json::array();
    for (auto& x : ps)
      if (status.empty() || status == to_string(x.status))
        out.push_back(presence_json(x));
    auto c = out.size();
    return json{{"novas", std::move(out)}, {"count", c}};
  };
}

} // namespace nova
