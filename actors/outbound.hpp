#pragma once

#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "actors/context.hpp"
#include "messages/types.hpp"

namespace nova {

struct send_options;

/// Checks and fills a new envelope: `to` (an id for direct, request and
/// multicast; a subject for events), payload size, id, timestamps and
/// correlation id. Counts rejections. Shared by agents and the node's own
/// senders so both apply the same rules.
[[nodiscard]] caf::error make_envelope(runtime_context& ctx, envelope& out,
                                       kind k, std::string from,
                                       const std::string& to,
                                       std::string payload,
                                       send_options& opts);

/// Fills a new envelope without checking anything; for callers that know
/// `to` and the payload are fine (a recipient found in the directory).
void fill_envelope(envelope& out, kind k, std::string from,
                   const std::string& to, std::string payload,
                   send_options& opts);

/// The local Novas an envelope of kind broadcast, multicast, event or
/// emergency goes to.
[[nodiscard]] std::vector<caf::actor> local_targets(runtime_context& ctx,
                                                    const envelope& env);

/// Delivers a checked broadcast, multicast, event or emergency envelope to
/// the local targets through `local` and, clustered, to other nodes.
/// Urgent envelopes use the high-priority mailbox lane.
template <class LocalSend>
caf::error fan_out(runtime_context& ctx, const envelope& env,
                   LocalSend&& local) {
  if (ctx.bus)
    if (auto err = ctx.bus->publish(env))
      return err;
  for (const auto& dest : local_targets(ctx, env))
    local(dest, env);
  return caf::none;
}

/// Durable delivery of a new envelope (see `send_options::durable`): checks
/// it like `make_envelope`, then hands it to the node's durable service.
/// `unsupported` without a store, `queue_full` while the store is away and
/// too much waits. Unlike real-time sends, the recipient need not be known.
[[nodiscard]] caf::error send_durable(runtime_context& ctx, kind k,
                                      std::string from, const std::string& to,
                                      std::string payload, send_options& opts);

/// For a checked direct envelope whose target does not run here: hands it
/// to the bus when the target runs on another node, else `unknown_nova`.
[[nodiscard]] caf::error send_remote(runtime_context& ctx, const envelope& env);

/// A local Nova with `capability`, chosen round robin; invalid if none.
[[nodiscard]] caf::actor pick_local(runtime_context& ctx,
                                    const std::string& capability);

/// The header that carries the capability of a `send_any`/`request_any`.
constexpr const char* capability_header = "Nova-Capability";

/// The counter for a sent envelope of kind `k`.
[[nodiscard]] counter sent_counter(kind k) noexcept;

} // namespace nova
