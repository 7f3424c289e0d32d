#pragma once

#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "messages/nova.pb.h"
#include "messages/types.hpp"

namespace nova {

// Conversions between Nova's value types and the protobuf wire schema.

[[nodiscard]] v1::Envelope to_proto(const envelope& x);
[[nodiscard]] v1::Task to_proto(const task& x);
[[nodiscard]] v1::TaskResult to_proto(const task_result& x);
[[nodiscard]] v1::Presence to_proto(const presence& x);
[[nodiscard]] v1::Event to_proto(const event& x);

[[nodiscard]] caf::expected<envelope> from_proto(const v1::Envelope& x);
[[nodiscard]] caf::expected<task> from_proto(const v1::Task& x);
[[nodiscard]] caf::expected<task_result> from_proto(const v1::TaskResult& x);
[[nodiscard]] caf::expected<presence> from_proto(const v1::Presence& x);
[[nodiscard]] caf::expected<event> from_proto(const v1::Event& x);

/// Protobuf binary encoding, as it travels on NATS and in streams.
template <class T>
[[nodiscard]] std::string encode(const T& x) {
  return to_proto(x).SerializeAsString();
}

/// The same bytes protobuf writes for `to_proto(x)`, written straight from
/// the envelope: the hot path of every remote send skips the copy into a
/// `v1::Envelope`.
[[nodiscard]] std::string encode(const envelope& x);

/// As `encode(envelope)`, appending to `out` (a buffer a hot path reuses).
void encode_to(const envelope& x, std::string& out);

/// Decodes protobuf binary; `errc::decode_failed` on malformed bytes or
/// values out of range (unknown enum values). Ids are not checked here:
/// whoever routes on them does that, with context.
template <class T>
[[nodiscard]] caf::expected<T> decode(std::string_view bytes);

/// Envelopes are read straight from the wire bytes (the hot path of every
/// remote receive), with the same checks as `from_proto`.
template <>
[[nodiscard]] caf::expected<envelope> decode<envelope>(std::string_view bytes);

/// As `decode<envelope>`, into an envelope the caller holds (e.g. the next
/// slot of a batch): `out` must be default-constructed; on error it is left
/// partly filled.
[[nodiscard]] caf::error decode_into(std::string_view bytes, envelope& out);

/// Protobuf's canonical JSON mapping (lowerCamelCase names, enums by name,
/// bytes as base64, int64 as strings).
template <class T>
[[nodiscard]] std::string to_json(const T& x);

/// Parses canonical JSON (also accepts original field names and ignores
/// unknown fields, as the mapping allows).
template <class T>
[[nodiscard]] caf::expected<T> from_json(std::string_view json);

} // namespace nova
