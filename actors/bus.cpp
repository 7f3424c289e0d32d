#include "actors/bus.hpp"

namespace nova {

remote_bus::~remote_bus() = default;

} // namespace nova
