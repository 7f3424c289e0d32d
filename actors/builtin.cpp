#include "actors/builtin.hpp"

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "messages/errc.hpp"

namespace nova {

caf::expected<std::string> echo_agent::on_request(const envelope& req) {
  return req.payload;
}

void logger_agent::on_start() {
  static_cast<void>(subscribe(">"));
  watch_presence();
}

void logger_agent::log(const envelope& msg) {
  std::string shown = msg.payload.substr(0, 200);
  if (msg.payload.size() > 200)
    shown += "...";
  spdlog::info("[{}] {} {} -> {}{}{}: {}", id(), to_string(msg.kind),
               msg.from, msg.to.empty() ? "*" : msg.to,
               msg.subject.empty() ? "" : " ", msg.subject, shown);
}

void logger_agent::on_message(const envelope& msg) {
  log(msg);
}

void logger_agent::on_broadcast(const envelope& msg) {
  log(msg);
}

void logger_agent::on_multicast(const envelope& msg) {
  log(msg);
}

void logger_agent::on_emergency(const envelope& msg) {
  log(msg);
}

void logger_agent::on_event(const envelope& msg) {
  log(msg);
}

caf::expected<std::string> logger_agent::on_request(const envelope& req) {
  log(req);
  return std::string{"logged"};
}

void logger_agent::on_presence(const presence& p) {
  spdlog::info("[{}] presence {} on {}: {}{}{}", id(), p.nova_id, p.node_id,
               to_string(p.status), p.current_task.empty() ? "" : " ",
               p.current_task);
}

caf::expected<std::string> worker_agent::on_task(const nova::task& t) {
  if (t.type == "fail")
    return make_error(errc::handler_failed,
                      "task type 'fail' always fails");
  if (t.type == "sleep") {
    auto ms = std::strtoul(t.payload.c_str(), nullptr, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 60000ul)));
  }
  return t.payload;
}

const std::vector<std::string>& builtin_agent_names() {
  static const std::vector<std::string> names{"echo", "logger", "worker"};
  return names;
}

} // namespace nova
