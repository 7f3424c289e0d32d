#pragma once

#include <string>

#include <caf/scheduled_actor.hpp>

namespace nova {

/// Makes an actor drop unexpected messages without answering (CAF's default
/// answers with an error, which kills a sender that does not handle it) and
/// log error messages instead of terminating on them.
void make_quiet(caf::scheduled_actor* self, std::string name);

} // namespace nova
