#include "actors/quiet.hpp"

#include <caf/deep_to_string.hpp>
#include <spdlog/spdlog.h>

#include "messages/errc.hpp"

namespace nova {

void make_quiet(caf::scheduled_actor* self, std::string name) {
  self->set_default_handler(
    [name](caf::scheduled_actor*,
           caf::message_view& x) -> caf::result<caf::message> {
      spdlog::debug("{}: dropped an unexpected message {}", name,
                    caf::deep_to_string(x.copy_content_to_message()));
      return caf::delegated<caf::message>{};
    });
  self->set_error_handler([name](caf::error& err) {
    spdlog::warn("{}: {}", name, describe(err));
  });
}

} // namespace nova
