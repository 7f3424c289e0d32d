#include "actors/tap.hpp"

namespace nova {

envelope_tap::~envelope_tap() = default;

std::string bus_subject(const envelope& env) {
  switch (env.kind) {
    case kind::broadcast:
      return "broadcast.all";
    case kind::multicast:
      return "group." + env.to;
    case kind::event:
      return "events." + env.subject;
    case kind::emergency:
      return "emergency";
    case kind::presence:
      return "presence." + env.from;
    default:
      return "inbox." + env.to;
  }
}

} // namespace nova
