#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

#include "messages/msg_id.hpp"

namespace nova {

/// The largest id Nova accepts; ids match [A-Za-z0-9_-]{1,64}.
constexpr size_t max_id_length = 64;

[[nodiscard]] bool is_valid_id(std::string_view id) noexcept;

/// Returns `errc::invalid_id` naming `what` and the offending id, or none.
[[nodiscard]] caf::error check_id(std::string_view id,
                                  std::string_view what = "id");

/// A new unique, time-ordered message id: a 26-character ULID (48 bits of
/// unix milliseconds, 80 bits random, monotonic within one thread), so ids
/// sort by creation time and serve as dedup keys.
[[nodiscard]] std::string new_message_id();

/// The same as an inline `msg_id`, allocating nothing; the id's unix
/// milliseconds go to `*ms` when given.
[[nodiscard]] msg_id next_message_id(int64_t* ms = nullptr);

/// The unix time in milliseconds encoded in a ULID, or 0 if malformed.
[[nodiscard]] int64_t message_id_time(std::string_view id) noexcept;

/// Unix time in milliseconds.
[[nodiscard]] int64_t now_ms() noexcept;

} // namespace nova
