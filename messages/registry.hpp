#pragma once

#include <caf/actor_system_config.hpp>

namespace nova {

/// Registers every Nova message type and the Nova error category with CAF.
/// `nova::node` calls it; call it yourself only for a hand-made actor system.
void register_types(caf::actor_system_config& cfg);

} // namespace nova
