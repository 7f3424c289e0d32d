#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/agent.hpp"

namespace nova {

/// Replies to every request with the request's payload.
class echo_agent : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_request(const envelope& req) override;
};

/// Prints one line per message, event, emergency and presence change it
/// receives; subscribes to every event (`>`) and watches presence.
class logger_agent : public agent {
public:
  using agent::agent;

protected:
  void on_start() override;
  void on_message(const envelope& msg) override;
  void on_broadcast(const envelope& msg) override;
  void on_multicast(const envelope& msg) override;
  void on_emergency(const envelope& msg) override;
  void on_event(const envelope& msg) override;
  void on_presence(const presence& p) override;
  caf::expected<std::string> on_request(const envelope& req) override;

private:
  void log(const envelope& msg);
};

/// A task worker: completes tasks of any type with their payload as result;
/// a task of type `fail` fails (to exercise retries and dead letters), and a
/// task of type `sleep` waits for the milliseconds in its payload first.
class worker_agent : public agent {
public:
  using agent::agent;

protected:
  caf::expected<std::string> on_task(const nova::task& t) override;
};

/// The built-in agent types by name (echo, logger, worker).
[[nodiscard]] const std::vector<std::string>& builtin_agent_names();

} // namespace nova
