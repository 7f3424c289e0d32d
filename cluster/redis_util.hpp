#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/timespan.hpp>
#include <fmt/format.h>

#include "cluster/redis_client.hpp"
#include "messages/errc.hpp"

/// Small helpers the stores over `redis_pool` share.
namespace nova::redis_util {

inline int64_t to_ms(caf::timespan x) noexcept {
  using namespace std::chrono;
  return std::max<int64_t>(duration_cast<milliseconds>(x).count(), 0);
}

inline bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

/// True for the server's "no such consumer group" error.
inline bool is_nogroup(const caf::error& err) {
  return err && contains(describe(err), "NOGROUP");
}

/// True for the reply to an EVALSHA of a script the server does not have
/// (restarted, SCRIPT FLUSH): the call did not run.
inline bool is_noscript(const redis_value& x) {
  return x.is_error() && x.str.rfind("NOSCRIPT", 0) == 0;
}

inline caf::error unexpected_reply(const char* what, const redis_value& x) {
  return make_error(errc::decode_failed,
                    fmt::format("unexpected reply to {}: {}", what,
                                to_string(x)));
}

/// The value of `name` in a stream entry's [field, value, ...] array, in
/// place; null if there is none.
inline const std::string* field_ptr(const redis_value& fields,
                                    std::string_view name) {
  if (!fields.is_array())
    return nullptr;
  for (size_t i = 0; i + 1 < fields.size(); i += 2)
    if (fields[i].str == name)
      return &fields[i + 1].str;
  return nullptr;
}

/// As `field_ptr`, a copy.
inline std::optional<std::string> field_of(const redis_value& fields,
                                           std::string_view name) {
  if (auto* x = field_ptr(fields, name))
    return *x;
  return std::nullopt;
}

} // namespace nova::redis_util
