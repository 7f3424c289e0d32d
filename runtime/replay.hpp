#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "cluster/durable_store.hpp"
#include "cluster/naming.hpp"

namespace nova {

/// What `nova replay` reads and how it prints it.
struct replay_options {
  /// A full stream key (`nova.inbox.bob`) or the part after the prefix
  /// (`inbox.bob`, `events.billing`, `broadcast.all`, `group.ops`,
  /// `emergency`).
  std::string stream;
  /// Where to start; see `parse_since`.
  std::string since = "-";
  /// Only envelopes whose subject matches (NATS wildcards); empty: all.
  std::string subject;
  /// Most envelopes printed.
  size_t limit = 100;
  /// One JSON object per line instead of readable lines.
  bool json = false;
  std::string dragonfly_url = "redis://127.0.0.1:6379";
  std::string prefix = "nova";
  /// The CLI fails fast: one connection attempt bounded by this.
  std::chrono::milliseconds connect_timeout{2000};
};

/// Exit codes of `nova replay`: those of the other client subcommands.
namespace replay_exit {
constexpr int ok = 0;
/// The store is unreachable or answered with an error.
constexpr int failure = 1;
/// Bad input; nothing was read.
constexpr int usage = 2;
} // namespace replay_exit

/// The largest `limit` `run_replay` accepts.
constexpr size_t max_replay_limit = 1'000'000;

/// The start of a replay for `durable_store::replay`, from what a user
/// wrote: `-`, `start` or empty (the beginning: "-"); an entry id
/// (`1700000000000-0`, kept); unix milliseconds (`1700000000000`, as
/// "<ms>-0"); an age (`30s`, `10m`, `2h`, `1d`: `now_ms` minus that, as
/// "<ms>-0", never before 0); an ISO-8601 time with a zone
/// (`2026-11-22T10:00:00Z`, `...10:00:00.250Z`, `...10:00+02:00`, or a bare
/// date `2026-11-22` for midnight UTC, as "<ms>-0"). Anything else is
/// `invalid_argument` with a message listing these forms.
[[nodiscard]] caf::expected<std::string> parse_since(std::string_view when,
                                                     int64_t now_ms);

/// The stream key for `stream`, a full key under `names`' prefix or the part
/// after it: `inbox.<id>`, `group.<id>`, `events.<domain>`, `broadcast.all`,
/// `emergency`, or `durable.dead` (the dead stream of the durable inboxes).
/// `invalid_id` for a bad id, `invalid_argument` for anything else.
[[nodiscard]] caf::expected<std::string>
resolve_replay_stream(const naming& names, std::string_view stream);

/// Unix milliseconds as `2026-11-22T10:00:00.000Z`.
[[nodiscard]] std::string iso_time(int64_t unix_ms);

/// One readable line (no newline): entry id, time (ISO, UTC), kind,
/// `from -> to` (`*` without a recipient), subject (`-` without one), and
/// the payload, control characters escaped and cut at 80 characters (then
/// `...`), or `<N bytes>` when it is not text.
[[nodiscard]] std::string format_replay_line(const stored_envelope& x);

/// One JSON object (no newline): `"entry"` and the envelope's fields in
/// protobuf's canonical JSON mapping.
[[nodiscard]] std::string format_replay_json(const stored_envelope& x);

/// Checks the options, reads the stream and prints one line per envelope
/// to `out`, oldest first, then (readable mode only) a footer saying how
/// many were shown and, when the limit cut the output, the `--since` that
/// continues. Diagnostics, prefixed `nova replay:`, go to `err`. Returns a
/// `replay_exit` code.
[[nodiscard]] int run_replay(const replay_options& opts, std::ostream& out,
                             std::ostream& err);

} // namespace nova
