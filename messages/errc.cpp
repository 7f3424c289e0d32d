#include "messages/errc.hpp"

#include <caf/sec.hpp>
#include <caf/to_string.hpp>

namespace nova {

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::none: return "none";
    case errc::invalid_id: return "invalid_id";
    case errc::unknown_nova: return "unknown_nova";
    case errc::duplicate_id: return "duplicate_id";
    case errc::payload_too_large: return "payload_too_large";
    case errc::request_timeout: return "request_timeout";
    case errc::no_handler: return "no_handler";
    case errc::handler_failed: return "handler_failed";
    case errc::queue_full: return "queue_full";
    case errc::not_found: return "not_found";
    case errc::shutting_down: return "shutting_down";
    case errc::decode_failed: return "decode_failed";
    case errc::invalid_argument: return "invalid_argument";
    case errc::backend_unavailable: return "backend_unavailable";
    case errc::unsupported: return "unsupported";
    case errc::unknown: return "unknown";
  }
  return "unknown";
}

errc parse_errc(std::string_view name) noexcept {
  for (int i = 0; i <= static_cast<int>(errc::unsupported); ++i)
    if (name == to_string(static_cast<errc>(i)))
      return static_cast<errc>(i);
  return errc::unknown;
}

errc code_of(const caf::error& err) noexcept {
  if (!err)
    return errc::none;
  if (err.category() == errc_category)
    return static_cast<errc>(err.code());
  if (err == caf::sec::request_timeout)
    return errc::request_timeout;
  if (err == caf::sec::request_receiver_down)
    return errc::unknown_nova;
  return errc::handler_failed;
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), errc_category};
}

caf::error make_error(errc x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), errc_category,
                    caf::make_message(std::move(context))};
}

bool is(const caf::error& err, errc x) noexcept {
  return err && err.category() == errc_category
         && err.code() == static_cast<uint8_t>(x);
}

std::string describe(const caf::error& err) {
  if (!err)
    return "none";
  std::string out;
  if (err.category() == errc_category) {
    out = to_string(static_cast<errc>(err.code()));
  } else if (err.category() == caf::atom("system")) {
    out = caf::to_string(static_cast<caf::sec>(err.code()));
  } else {
    out = caf::to_string(err.category()) + ":" + std::to_string(err.code());
  }
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    out += ": " + ctx.get_as<std::string>(0);
  else if (!ctx.empty())
    out += ": " + caf::to_string(ctx);
  return out;
}

} // namespace nova
