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

/// The local Novas an envelope of kind broadcast, multicast, event or
/// emergency goes to.
[[nodiscard]] std::vector<caf::actor> local_targets(runtime_context& ctx,
                                                    const envelope& env);

/// The counter for a sent envelope of kind `k`.
[[nodiscard]] counter sent_counter(kind k) noexcept;

} // namespace nova
