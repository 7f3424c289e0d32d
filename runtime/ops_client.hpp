#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/rpc_client.hpp"

namespace nova {

// The subcommands that go through a node's JSON-RPC (`nova rpc`,
// `presence`, `tasks ...`). Each returns an exit code (`client_exit`):
// 0 done, 1 the node is unreachable or answered with an error, 2 bad input
// (nothing was sent). Results go to `out`; diagnostics and progress, prefixed
// with the command name, go to `err`.

/// What every JSON-RPC subcommand shares.
struct ops_options {
  rpc_target target;
  /// Print the result as one compact JSON line instead of for humans.
  bool json = false;
};

/// `nova rpc METHOD [PARAMS]`: prints the result (pretty JSON, or one line
/// with `json`); a JSON-RPC error prints "<code> <message>" and its data to
/// `err` and gives 1; `params` that is not a JSON object or array gives 2.
[[nodiscard]] int ops_rpc(const ops_options& opts, const std::string& method,
                          const std::string& params, std::ostream& out,
                          std::ostream& err);

/// `nova presence`: `presence.list`, as a table (id, node, status,
/// capabilities, last seen as an age) or the raw result with `json`.
struct presence_filter {
  std::string capability;
  std::string status;
};

[[nodiscard]] int ops_presence(const ops_options& opts,
                               const presence_filter& filter,
                               std::ostream& out, std::ostream& err);

/// `nova tasks enqueue`.
struct enqueue_options {
  std::string type;
  std::string payload;
  /// The payload is JSON (it travels as `application/json`), not text.
  bool payload_json = false;
  std::string priority = "normal";
  std::string session;
  /// Enqueue this many copies; progress goes to `err` every 10% from
  /// `progress_from` on.
  size_t count = 1;
  size_t progress_from = 100;
};

[[nodiscard]] int ops_tasks_enqueue(const ops_options& opts,
                                    const enqueue_options& task,
                                    std::ostream& out, std::ostream& err);

[[nodiscard]] int ops_tasks_stats(const ops_options& opts, std::ostream& out,
                                  std::ostream& err);

/// `nova tasks dead [--limit N]`.
[[nodiscard]] int ops_tasks_dead(const ops_options& opts, size_t limit,
                                 std::ostream& out, std::ostream& err);

/// `nova tasks redrive [TASK_ID]`: one dead task, or all of them.
[[nodiscard]] int ops_tasks_redrive(const ops_options& opts,
                                    const std::optional<std::string>& task_id,
                                    std::ostream& out, std::ostream& err);

/// "5s", "3m", "2h", "4d" since `unix_ms` as seen at `now_ms`; "-" for 0,
/// "now" for the future.
[[nodiscard]] std::string format_age(int64_t unix_ms, int64_t now_ms);

} // namespace nova
