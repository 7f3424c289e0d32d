#include "runtime/ops.hpp"

#include <map>

#include <fmt/format.h>

#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "runtime/node.hpp"
#include "runtime/replay.hpp"

namespace nova {

using json = nlohmann::json;

// -- store_probe ----------------------------------------------------------------

store_probe::store_probe(std::string url, std::chrono::milliseconds warning,
                         std::chrono::milliseconds critical,
                         std::chrono::milliseconds interval)
  : url_(std::move(url)),
    warning_(warning),
    critical_(critical),
    interval_(interval) {
  // nop
}

store_probe::result store_probe::check() {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = std::chrono::steady_clock::now();
  if (checked_ && now - last_ < interval_)
    return last_result_;
  checked_ = true;
  last_ = now;
  result r;
  if (!conn_) {
    auto s = redis_settings::from_url(url_);
    if (s) {
      s->connect_timeout = critical_;
      s->command_timeout = critical_;
      auto c = redis_connection::connect(*s);
      if (c)
        conn_.emplace(std::move(*c));
    }
  }
  if (conn_) {
    if (auto rtt = conn_->ping()) {
      r.reachable = true;
      r.latency = std::chrono::duration_cast<std::chrono::microseconds>(*rtt);
      if (*rtt > critical_)
        r.status = "critical";
      else if (*rtt > warning_)
        r.status = "warning";
      else
        r.status = "healthy";
    } else {
      conn_.reset(); // connect again next time
    }
  }
  last_result_ = r;
  return r;
}

// -- health -------------------------------------------------------------------

namespace {

double to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

} // namespace

health_report health_of(node& n, store_probe* probe,
                        std::chrono::steady_clock::time_point started) {
  auto h = n.health();
  auto& ctx = n.context();
  auto status = h.status;
  json nats = {{"enabled", h.bus == "nats"},
               {"connected", h.bus_connected},
               {"server_id", h.server_id},
               {"rtt_ms", h.rtt ? json(to_ms(*h.rtt)) : json(nullptr)}};
  json store = {{"kind", h.store},
                {"reachable", h.store_reachable},
                {"latency_ms", nullptr},
                {"status", h.store_reachable ? "healthy" : "critical"},
                {"backlog", h.store_backlog}};
  if (probe != nullptr) {
    auto r = probe->check();
    store["reachable"] = h.store_reachable && r.reachable;
    store["status"] = h.store_reachable ? r.status : "critical";
    if (r.latency)
      store["latency_ms"] = to_ms(*r.latency);
    if (!r.reachable || r.status == "critical")
      status = "degraded";
  }
  auto capacity = ctx.limits.outbox_capacity;
  if (h.outbox_depth * 2 > capacity)
    status = "degraded";
  if (!ctx.accepting.load())
    status = "unhealthy";
  auto uptime = std::chrono::duration<double>(
                  std::chrono::steady_clock::now() - started)
                  .count();
  json body = {{"status", status},
               {"node_id", n.cfg().node_id},
               {"novas", h.novas},
               {"uptime_s", uptime},
               {"nats", std::move(nats)},
               {"store", std::move(store)},
               {"outbox", {{"depth", h.outbox_depth}, {"capacity", capacity}}}};
  return {std::move(body), std::move(status)};
}

// -- metrics ------------------------------------------------------------------

namespace {

class prom_writer {
public:
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }

  template <class T>
  void sample(const char* name, T value, const std::string& labels = {}) {
    if (labels.empty())
      out_ += fmt::format("{} {}\n", name, value);
    else
      out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }

  std::string take() {
    return std::move(out_);
  }

private:
  std::string out_;
};

std::string label(const char* key, std::string_view value) {
  return fmt::format("{}=\"{}\"", key, value);
}

} // namespace

std::string metrics_text(node& n, const http_figures& http) {
  auto& ctx = n.context();
  auto& st = ctx.stats;
  auto get = [&](counter c) { return st.get(c); };
  prom_writer w;
  w.family("nova_messages_sent_total", "counter",
           "Envelopes sent by this node's Novas and API, by kind");
  for (auto [k, c] : {std::pair{"direct", counter::sent_direct},
                      {"broadcast", counter::sent_broadcast},
                      {"multicast", counter::sent_multicast},
                      {"event", counter::sent_event},
                      {"request", counter::sent_request},
                      {"response", counter::sent_response},
                      {"emergency", counter::sent_emergency}})
    w.sample("nova_messages_sent_total", get(c), label("kind", k));
  w.family("nova_messages_received_total", "counter",
           "Envelopes handled by this node's Novas, by kind");
  for (auto [k, c] : {std::pair{"direct", counter::received_direct},
                      {"broadcast", counter::received_broadcast},
                      {"multicast", counter::received_multicast},
                      {"event", counter::received_event},
                      {"request", counter::received_request},
                      {"emergency", counter::received_emergency},
                      {"presence", counter::received_presence}})
    w.sample("nova_messages_received_total", get(c), label("kind", k));
  w.family("nova_wire_messages_total", "counter",
           "Messages to and from NATS");
  w.sample("nova_wire_messages_total", get(counter::wire_in),
           label("direction", "in"));
  w.sample("nova_wire_messages_total", get(counter::wire_out),
           label("direction", "out"));
  struct plain {
    const char* name;
    const char* help;
    counter c;
  };
  for (auto& p : {
         plain{"nova_decode_errors_total", "Inbound messages that could not "
               "be decoded", counter::decode_errors},
         plain{"nova_slow_consumer_drops_total", "Messages NATS dropped "
               "because a subscription fell behind",
               counter::slow_consumer_drops},
         plain{"nova_reconnects_total", "Reconnections to NATS",
               counter::reconnects},
         plain{"nova_dead_letters_total", "Envelopes no Nova could take",
               counter::dead_letters},
         plain{"nova_handler_errors_total", "Exceptions thrown by handlers",
               counter::handler_errors},
         plain{"nova_request_timeouts_total", "Requests without a reply in "
               "time", counter::request_timeouts},
         plain{"nova_outbox_full_total", "Sends refused because the outbox "
               "was full", counter::outbox_full},
       }) {
    w.family(p.name, "counter", p.help);
    w.sample(p.name, get(p.c));
  }
  w.family("nova_rejected_total", "counter", "Envelopes refused, by reason");
  for (auto [r, c] : {std::pair{"invalid_id", counter::rejected_invalid_id},
                      {"oversized", counter::rejected_oversized},
                      {"unknown_nova", counter::rejected_unknown_nova},
                      {"wire", counter::wire_rejected}})
    w.sample("nova_rejected_total", get(c), label("reason", r));
  w.family("nova_tasks_total", "counter", "Tasks by outcome");
  for (auto [o, c] : {std::pair{"enqueued", counter::tasks_enqueued},
                      {"done", counter::tasks_done},
                      {"retried", counter::tasks_retried},
                      {"dead", counter::tasks_dead}})
    w.sample("nova_tasks_total", get(c), label("outcome", o));
  w.family("nova_durable_total", "counter", "Durable envelopes");
  for (auto [o, c] : {std::pair{"sent", counter::durable_sent},
                      {"received", counter::durable_received},
                      {"duplicates", counter::durable_duplicates}})
    w.sample("nova_durable_total", get(c), label("what", o));
  w.family("nova_presence_changes_total", "counter",
           "Presence changes seen by this node");
  w.sample("nova_presence_changes_total", get(counter::presence_changes));
  // Request latency.
  auto hist = ctx.request_latency.read();
  w.family("nova_request_duration_seconds", "histogram",
           "Time from sending a request to its reply");
  for (size_t i = 0; i < latency_histogram::bounds.size(); ++i)
    w.sample("nova_request_duration_seconds_bucket", hist.buckets[i],
             fmt::format("le=\"{}\"", latency_histogram::bounds[i]));
  w.sample("nova_request_duration_seconds_bucket", hist.count,
           "le=\"+Inf\"");
  w.sample("nova_request_duration_seconds_sum", hist.sum_s);
  w.sample("nova_request_duration_seconds_count", hist.count);
  // Gauges.
  auto h = n.health();
  w.family("nova_novas", "gauge", "Novas running on this node");
  w.sample("nova_novas", h.novas);
  w.family("nova_mailbox_depth", "gauge",
           "Messages waiting in the Novas' mailboxes (sampled at heartbeats)");
  w.sample("nova_mailbox_depth", std::max<int64_t>(ctx.mailbox_depth.load(), 0));
  w.family("nova_outbox_depth", "gauge",
           "Envelopes waiting for NATS to come back");
  w.sample("nova_outbox_depth", h.outbox_depth);
  w.family("nova_store_backlog", "gauge",
           "Durable sends and tasks waiting for the store");
  w.sample("nova_store_backlog", h.store_backlog);
  w.family("nova_up", "gauge", "1 while the node is healthy, 0.5 degraded");
  w.sample("nova_up", h.status == "healthy" ? 1.0 : 0.5);
  if (auto qs = n.task_stats()) {
    static constexpr const char* lanes[] = {"urgent", "high", "normal", "low"};
    w.family("nova_tasks_queue_depth", "gauge", "Tasks waiting, by lane");
    for (size_t i = 0; i < qs->depth.size() && i < 4; ++i)
      w.sample("nova_tasks_queue_depth", qs->depth[i], label("lane", lanes[i]));
    w.family("nova_tasks_in_flight", "gauge", "Tasks claimed, not finished");
    w.sample("nova_tasks_in_flight", qs->in_flight);
    w.family("nova_tasks_delayed", "gauge", "Tasks waiting for a retry");
    w.sample("nova_tasks_delayed", qs->delayed);
    w.family("nova_tasks_dead", "gauge", "Dead-lettered tasks");
    w.sample("nova_tasks_dead", qs->dead);
  }
  if (auto ps = n.presence_list()) {
    std::map<std::string, size_t> by_status{
      {"online", 0}, {"busy", 0}, {"away", 0}, {"offline", 0}};
    for (auto& p : *ps)
      ++by_status[to_string(p.status)];
    w.family("nova_presence", "gauge", "Novas in the cluster, by status");
    for (auto& [s, c] : by_status)
      w.sample("nova_presence", c, label("status", s));
  }
  w.family("nova_ws_clients", "gauge", "WebSocket clients connected");
  w.sample("nova_ws_clients", http.ws_clients);
  w.family("nova_ws_dropped_total", "counter",
           "Frames dropped for WebSocket clients that read too slowly");
  w.sample("nova_ws_dropped_total", http.ws_dropped);
  return w.take();
}

// -- JSON shapes -----------------------------------------------------------------

std::string dump_json(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json payload_json(const std::string& payload, const std::string& content_type) {
  if (content_type.find("json") != std::string::npos) {
    auto j = json::parse(payload, nullptr, false);
    if (!j.is_discarded())
      return j;
  }
  // Round-trip through dump's replacement to get valid UTF-8.
  return json::parse(dump_json(json(payload)));
}

json envelope_json(const envelope& env) {
  auto j = json::parse(to_json(env), nullptr, false);
  if (j.is_discarded())
    return json::object();
  return j;
}

json event_json(const envelope& env) {
  return {{"id", std::string{env.id.view()}},
          {"subject", env.subject},
          {"origin", {{"nova_id", env.from}}},
          {"correlation_id", std::string{env.correlation_id.view()}},
          {"payload", payload_json(env.payload, env.content_type)},
          {"timestamp", iso_time(env.created_at)}};
}

json presence_json(const presence& p) {
  return {{"nova_id", p.nova_id},
          {"node_id", p.node_id},
          {"status", to_string(p.status)},
          {"capabilities", p.capabilities},
          {"groups", p.groups},
          {"current_task", p.current_task},
          {"last_seen", p.last_seen},
          {"started_at", p.started_at}};
}

json task_json(const task& t) {
  return {{"id", t.id},
          {"session", t.session},
          {"type", t.type},
          {"priority", to_string(t.priority)},
          {"payload", payload_json(t.payload, "application/json")},
          {"created_by", t.created_by},
          {"created_at", t.created_at},
          {"attempts", t.attempts},
          {"last_error", t.last_error}};
}

json task_result_json(const task_result& r) {
  const char* status = r.status == task_status::done     ? "done"
                       : r.status == task_status::failed ? "failed"
                                                         : "dead";
  return {{"task_id", r.task_id},
          {"session", r.session},
          {"status", status},
          {"worker", r.worker},
          {"payload", payload_json(r.payload, "application/json")},
          {"error", r.error},
          {"attempts", r.attempts},
          {"completed_at", r.completed_at}};
}

json queue_stats_json(const queue_stats& s) {
  static constexpr const char* lanes[] = {"urgent", "high", "normal", "low"};
  json l = json::object();
  for (size_t i = 0; i < 4; ++i)
    l[lanes[i]] = i < s.depth.size() ? s.depth[i] : 0;
  return {{"lanes", std::move(l)}, {"in_flight", s.in_flight},
          {"delayed", s.delayed},  {"dead", s.dead},
          {"done", s.done},        {"retried", s.retried},
          {"enqueued", s.enqueued}};
}

} // namespace nova
