#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "cluster/naming.hpp"
#include "cluster/redis_client.hpp"
#include "messages/msg_id.hpp"
#include "messages/types.hpp"

namespace nova {

/// One envelope read back from a durable stream.
struct stored_envelope {
  /// The stream entry id ("<ms>-<seq>"): what `ack` takes.
  std::string entry_id;
  envelope env;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stored_envelope& x) {
  return f(caf::meta::type_name("stored_envelope"), x.entry_id, x.env);
}

/// An entry whose `envelope` field is missing or cannot be decoded. It stays
/// in its stream until `durable_store::move_to_dead`.
struct malformed_entry {
  std::string stream;
  std::string entry_id;
  /// Why decoding failed.
  std::string reason;
};

/// Remembers the last `capacity` envelope ids it was asked about, for the
/// receiver side of at-least-once delivery: `seen_before` is O(1), memory is
/// bounded (a ring of ids plus an open-addressing table of ring positions,
/// allocated once), the oldest id is forgotten first. Plain C++, no store
/// involved. Not thread-safe: one per receiver (a Nova's actor state), or
/// guard it.
class dedup_window {
public:
  static constexpr size_t default_capacity = 100'000;

  /// A capacity of 0 counts as 1.
  explicit dedup_window(size_t capacity = default_capacity);

  /// True if `id` is among the last `capacity` ids seen; otherwise records
  /// it (evicting the oldest when full) and returns false. An empty id is
  /// never a duplicate and is not recorded.
  [[nodiscard]] bool seen_before(const msg_id& id);

  /// Whether `id` is remembered, without recording it.
  [[nodiscard]] bool contains(const msg_id& id) const;

  [[nodiscard]] size_t size() const noexcept {
    return size_;
  }

  [[nodiscard]] size_t capacity() const noexcept {
    return ring_.size();
  }

  void clear();

private:
  static uint64_t hash(std::string_view x) noexcept;

  // The table slot holding `id` (hash `h`), or the empty slot that ends its
  // probe sequence.
  size_t find(const msg_id& id, uint64_t h) const noexcept;

  // Empties slot `i`, moving later entries of its probe run back.
  void erase_slot(size_t i) noexcept;

  std::vector<msg_id> ring_;
  // The hash of each id in the ring.
  std::vector<uint64_t> hashes_;
  size_t next_ = 0;
  size_t size_ = 0;
  // 0: empty; else the hash's upper half and ring position + 1.
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

/// The durable delivery class in the store (DragonflyDB, or any server
/// speaking the Redis protocol, restricted to commands Dragonfly supports):
/// envelopes appended to the streams of the wire contract (`<prefix>.inbox.<id>`,
/// `<prefix>.broadcast.all`, `<prefix>.group.<g>`, `<prefix>.events.<domain>`,
/// `<prefix>.emergency`), each entry holding the protobuf envelope in the
/// field `envelope` plus plain `id`, `from`, `kind` and (when set) `subject`
/// fields for `redis-cli`.
///
/// A Nova reads its inbox after its cursor: the last entry it settled,
/// kept in the hash `<prefix>.durable.cursors` (field: its nova id).
/// `pending_and_new` returns what follows the cursor (what it was given
/// before and did not settle, then what is new), or, without pending,
/// what follows the last entry this store handed it; `ack` moves the
/// cursor. Delivery is at-least-once: dedup by envelope id (`dedup_window`).
/// An inbox read through the consumer group `<prefix>.durable` of earlier
/// versions goes on where the group stood.
///
/// Every member function is thread-safe and blocks for at most one round
/// trip per step (`command_timeout`).
class durable_store {
public:
  struct settings {
    /// Approximate bound per stream (`MAXLEN ~` on every XADD).
    size_t max_len = 1'000'000;
    /// When set, entries older than this are trimmed (`XTRIM MINID ~
    /// now - max_age`, sent in the same round trip as the XADD).
    std::optional<caf::timespan> max_age;
    /// Largest payload `append` accepts, in bytes; 0: no limit.
    size_t max_payload = 1024 * 1024;
    /// `ack` also deletes the entries (XDEL); otherwise they stay for
    /// `replay` until trimmed.
    bool delete_on_ack = false;
    /// Approximate bound of the dead stream.
    size_t dead_max_len = 100'000;
    /// Entries `replay` reads per round trip while filtering.
    size_t page = 500;
  };

  /// A store over `pool`, with keys from `names`. Connects nothing yet.
  /// `invalid_argument` without a pool or with a zero bound.
  [[nodiscard]] static caf::expected<std::shared_ptr<durable_store>>
  make(std::shared_ptr<redis_pool> pool, naming names, settings s);

  [[nodiscard]] static caf::expected<std::shared_ptr<durable_store>>
  make(std::shared_ptr<redis_pool> pool, naming names) {
    return make(std::move(pool), std::move(names), settings{});
  }

  durable_store(const durable_store&) = delete;
  durable_store& operator=(const durable_store&) = delete;

  /// The stream for `env`: direct, request and response go to
  /// `inbox.<to>`, broadcast to `broadcast.all`, multicast to `group.<to>`,
  /// event to `events.<first subject token>`, emergency to `emergency`.
  /// `invalid_id` for a `to` or domain that cannot be part of a key,
  /// `invalid_argument` for kinds without a durable stream (task, presence).
  [[nodiscard]] caf::expected<std::string>
  stream_for(const envelope& env) const;

  /// XADDs `env` to its stream; returns the entry id. Refuses a payload over
  /// `max_payload` with `payload_too_large` before sending anything.
  [[nodiscard]] caf::expected<std::string> append(const envelope& env);

  /// Appends all envelopes in one pipeline (one round trip); returns their
  /// entry ids in order. Every envelope is checked first: one that would be
  /// refused refuses the whole batch, nothing sent. An error reply for one
  /// XADD fails the call (the others may have been appended).
  [[nodiscard]] caf::expected<std::vector<std::string>>
  append_batch(const std::vector<envelope>& envs);

  /// `append_batch` in two halves, with several batches in flight on one
  /// connection: while the server appends one batch, its writer prepares
  /// the next. One per writer thread, not thread-safe; it holds a pooled
  /// connection while anything is in flight.
  class appender {
  public:
    explicit appender(durable_store& store) : store_(store) {
      // nop
    }

    /// Checks and sends `envs` (as `append_batch`: a refusal sends
    /// nothing); the replies are read by `receive`.
    [[nodiscard]] caf::error send(const std::vector<envelope>& envs);

    /// The entry ids of the oldest batch sent and not received. A
    /// connection error forgets every batch in flight: they may or may
    /// not have been appended, and the caller sends them again.
    [[nodiscard]] caf::expected<std::vector<std::string>> receive();

    /// Batches sent and not received.
    [[nodiscard]] size_t in_flight() const noexcept {
      return batches_.size();
    }

    /// Forgets what is in flight and gives the connection back.
    void reset();

  private:
    struct batch {
      size_t xadds = 0;
      size_t commands = 0;
    };

    durable_store& store_;
    std::optional<redis_lease> lease_;
    std::deque<batch> batches_;
    resp_buffer cmds_;
    std::vector<redis_value> replies_;
  };

  /// Up to `count` entries of `nova_id`'s inbox after its cursor, oldest
  /// first: those handed to it before and not settled, then new ones.
  /// Without `with_pending`, the entries after the last one this store
  /// handed to `nova_id` (one round trip, for a consumer that settles in
  /// order; after the cursor when this store never read for it). Entries
  /// whose envelope cannot be decoded go to `malformed` when given (pass
  /// them to `move_to_dead`), else to the dead stream at once; either way
  /// they count in `malformed()`. `acks` are settled (as `ack` does, without
  /// its forward-only check) first, in the same round trip.
  [[nodiscard]] caf::expected<std::vector<stored_envelope>>
  pending_and_new(const std::string& nova_id, size_t count,
                  std::vector<malformed_entry>* malformed = nullptr,
                  bool with_pending = true,
                  const std::vector<std::string>& acks = {});

  /// Settles entries of `nova_id`'s inbox: its cursor moves to the greatest
  /// of `entry_ids`, which settles every entry up to it (and deletes
  /// `entry_ids` with `delete_on_ack`). A cursor never moves back. Returns
  /// how many of `entry_ids` were not settled before.
  [[nodiscard]] caf::expected<size_t>
  ack(const std::string& nova_id, const std::vector<std::string>& entry_ids);

  /// Copies entry `entry_id` of `stream` (all its fields) to the dead
  /// stream `<prefix>.durable.dead` with `reason`, `stream` and `entry`
  /// fields, then deletes it (and acks it in a consumer group of earlier
  /// versions, if the stream has one), atomically. `not_found` if the entry
  /// is gone.
  [[nodiscard]] caf::error move_to_dead(const std::string& stream,
                                        const std::string& entry_id,
                                        const std::string& reason);

  /// Up to `limit` entries of `stream` from `from` on (inclusive): `from` is
  /// an entry id ("<ms>-<seq>"), unix milliseconds (digits only, read as
  /// "<ms>-0"), or "-"/empty for the start. With `subject_pattern` (NATS
  /// wildcards `*` and `>`), only envelopes whose subject matches. Undecodable
  /// entries are skipped and counted in `malformed()`.
  [[nodiscard]] caf::expected<std::vector<stored_envelope>>
  replay(const std::string& stream, const std::string& from,
         const std::string& subject_pattern = {}, size_t limit = 1000);

  /// The newest `limit` envelopes of the event streams whose subject
  /// matches `subject_pattern` (NATS wildcards over `<domain>.<action>`),
  /// oldest first. A literal domain reads one stream; a wildcard domain
  /// finds the event streams with SCAN (at most `max_streams`). Reads at
  /// most `scan_limit` entries per stream, newest first (XREVRANGE).
  [[nodiscard]] caf::expected<std::vector<stored_envelope>>
  recent_events(const std::string& subject_pattern, size_t limit,
                size_t scan_limit = 10'000, size_t max_streams = 100);

  /// What waits for `nova_id` in its durable inbox, without taking it: the
  /// entries after its cursor, at most `limit`, oldest first.
  [[nodiscard]] caf::expected<std::vector<stored_envelope>>
  pending(const std::string& nova_id, size_t limit);

  /// Trims `stream` to about `max_len` (`MAXLEN ~`) and, with `max_age`,
  /// drops every entry older than that exactly (`MINID`); returns how many
  /// entries went.
  [[nodiscard]] caf::expected<size_t> trim(const std::string& stream);

  /// XLEN of `stream`.
  [[nodiscard]] caf::expected<size_t> length(const std::string& stream);

  /// The consumer group of the durable inboxes of earlier versions
  /// (`<prefix>.durable`): where a Nova without a cursor starts.
  [[nodiscard]] std::string group() const;

  /// The hash of the inbox cursors: `<prefix>.durable.cursors`.
  [[nodiscard]] std::string cursors_key() const;

  /// The dead stream: `<prefix>.durable.dead`.
  [[nodiscard]] std::string dead_stream() const;

  /// Undecodable entries met so far (catch-up and replay).
  [[nodiscard]] uint64_t malformed() const noexcept {
    return malformed_.load(std::memory_order_relaxed);
  }

  /// Calls that failed because the store was unreachable.
  [[nodiscard]] uint64_t store_errors() const noexcept {
    return store_errors_.load(std::memory_order_relaxed);
  }

  [[nodiscard]] const settings& config() const noexcept {
    return settings_;
  }

  [[nodiscard]] const nova::naming& names() const noexcept {
    return names_;
  }

private:
  durable_store(std::shared_ptr<redis_pool> pool, naming names, settings s);

  // Refuses keys outside this prefix.
  caf::error check_stream(const std::string& stream) const;

  // The XADDs of `count` envelopes from `envs` (and an XTRIM per stream
  // with `max_age`) into `cmds`; returns how many XADDs. When one envelope
  // is refused, `cmds` is left half written: send none of it.
  caf::expected<size_t> format_batch(const envelope* envs, size_t count,
                                     resp_buffer& cmds) const;

  // The entry ids in the first `n` of `replies` (XADD replies).
  static caf::expected<std::vector<std::string>>
  entry_ids_of(std::vector<redis_value>& replies, size_t n);

  // XTRIM MINID for `max_age`: approximate on the append path.
  std::vector<std::string> minid_trim(const std::string& stream,
                                      bool exact = false) const;

  // Where a Nova's reading starts when nothing of this node says so: its
  // cursor, else where an inbox read through the consumer group of earlier
  // versions stands (before its first pending entry, else after its last
  // delivered one), else the start of the stream.
  caf::expected<std::string> settled_position(redis_connection& conn,
                                              const std::string& stream,
                                              const std::string& nova_id);

  // The last entry id handed to `nova_id` by this store, if any.
  std::optional<std::string> delivered(const std::string& nova_id);

  void set_delivered(const std::string& nova_id, std::string entry_id);

  caf::error track(caf::error err);

  settings settings_;
  naming names_;
  std::shared_ptr<redis_pool> pool_;
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> store_errors_{0};
  std::mutex delivered_mtx_;
  std::unordered_map<std::string, std::string> delivered_;
};

} // namespace nova
