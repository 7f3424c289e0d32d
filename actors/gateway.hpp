#pragma once

#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/error.hpp>

#include "actors/context.hpp"
#include "cluster/nats_client.hpp"

namespace nova {

/// NATS headers Nova sets on every envelope it publishes.
namespace nats_headers {
constexpr const char* msg_id = "Nova-Msg-Id";
constexpr const char* correlation_id = "Nova-Correlation-Id";
/// The node that published: a node ignores its own broadcasts, multicasts,
/// events and emergencies (it delivered them locally already).
constexpr const char* node = "Nova-Node";
constexpr const char* from = "Nova-From";
/// How long the requester waits, so the replying side can stop waiting too.
constexpr const char* timeout_ms = "Nova-Timeout-Ms";
/// Set on error replies: the `errc` name and a readable message.
constexpr const char* error = "Nova-Error";
constexpr const char* error_message = "Nova-Error-Message";
constexpr const char* content_type = "Content-Type";
} // namespace nats_headers

constexpr const char* json_content_type = "application/json";

/// Connects the node to NATS: creates the remote bus (`ctx->bus`) and the
/// gateway actor (`ctx->gateway`), and subscribes to the node-wide subjects.
/// With `retry_on_failed_connect` (the default) the node starts while NATS
/// is down and connects later, degraded meanwhile.
caf::error start_nats_gateway(caf::actor_system& sys, const context_ptr& ctx,
                              nats_settings settings, const std::string& prefix);

/// Tells the gateway that a local Nova came up (subscribes its inbox and
/// capability queue groups, then announces it) or went away.
void gateway_nova_up(const runtime_context& ctx, const std::string& id,
                     const std::vector<std::string>& capabilities);
void gateway_nova_down(const runtime_context& ctx, const std::string& id);

struct gateway_info {
  std::string server_id;
  std::optional<caf::timespan> rtt;
};

/// The NATS server the gateway talks to and the round trip to it; nothing
/// when running embedded.
std::optional<gateway_info> gateway_client_info(const runtime_context& ctx);

/// Stops the gateway: unsubscribes, closes the connection and waits until no
/// callback runs. The bus stays in `ctx` (disconnected) for late readers.
void stop_nats_gateway(caf::actor_system& sys, runtime_context& ctx);

} // namespace nova
