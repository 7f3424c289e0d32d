#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "messages/types.hpp"

namespace nova {

class node;

/// JSON-RPC 2.0 error codes.
namespace rpc_code {
constexpr int parse_error = -32700;
constexpr int invalid_request = -32600;
constexpr int method_not_found = -32601;
constexpr int invalid_params = -32602;
constexpr int internal_error = -32603;
} // namespace rpc_code

/// What a method throws to answer with an error object.
struct rpc_error {
  int code;
  std::string message;
  nlohmann::json data = nullptr;
};

/// The node's JSON-RPC 2.0 endpoint without the transport (docs/http.md):
/// takes a request body, returns the response body. Thread safe; methods
/// that wait (requests, store reads) block the calling thread.
class rpc_service {
public:
  using method = std::function<nlohmann::json(const nlohmann::json& params)>;

  struct limits {
    size_t max_batch = 100;
    size_t max_depth = 64;
  };

  /// What the methods need besides the node: `health` answers
  /// `hub.health`; `recent_events(pattern, limit)` the events `bus.subscribe`
  /// falls back to without a store.
  struct hooks {
    std::function<nlohmann::json()> health;
    std::function<std::vector<envelope>(const std::string&, size_t)>
      recent_events;
    std::chrono::steady_clock::time_point started
      = std::chrono::steady_clock::now();
  };

  rpc_service(node& n, limits lim, hooks h);

  /// The response body for `body`, or none when it held only notifications.
  [[nodiscard]] std::optional<std::string> handle(std::string_view body);

  /// The method names, sorted.
  [[nodiscard]] std::vector<std::string> methods() const;

  /// A response carrying one error, with a null id.
  [[nodiscard]] static std::string error_response(int code,
                                                  const std::string& message);

  /// How deep `text` nests arrays and objects (strings skipped), stopping
  /// early once past `stop_at`; no parsing, no recursion.
  [[nodiscard]] static size_t nesting_depth(std::string_view text,
                                            size_t stop_at);

private:
  nlohmann::json call(const nlohmann::json& request, bool& notification);
  void add_methods();

  node& node_;
  limits limits_;
  hooks hooks_;
  std::map<std::string, method> methods_;
};

} // namespace nova
