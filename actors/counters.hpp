#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace nova {

/// Node-wide counters. Increments land in one of a few cache-line-sized
/// shards picked per thread, so hot paths on different threads do not share
/// a line; reads add the shards up.
enum class counter : uint8_t {
  sent_direct,
  sent_broadcast,
  sent_multicast,
  sent_event,
  sent_request,
  sent_response,
  sent_emergency,
  received_direct,
  received_broadcast,
  received_multicast,
  received_event,
  received_request,
  received_emergency,
  received_presence,
  dead_letters,
  handler_errors,
  request_timeouts,
  rejected_invalid_id,
  rejected_oversized,
  rejected_unknown_nova,
  tasks_enqueued,
  tasks_done,
  tasks_retried,
  tasks_dead,
  presence_changes,
  wire_in,
  wire_out,
  decode_errors,
  wire_rejected,
  slow_consumer_drops,
  reconnects,
  outbox_full,
  durable_sent,
  durable_received,
  durable_duplicates,
  count_, // number of counters
};

[[nodiscard]] const char* to_string(counter x) noexcept;

class counters {
public:
  static constexpr size_t num_counters = static_cast<size_t>(counter::count_);

  void add(counter c, uint64_t n = 1) noexcept {
    shards_[shard_index()].v[static_cast<size_t>(c)].fetch_add(
      n, std::memory_order_relaxed);
  }

  [[nodiscard]] uint64_t get(counter c) const noexcept {
    uint64_t sum = 0;
    for (const auto& s : shards_)
      sum += s.v[static_cast<size_t>(c)].load(std::memory_order_relaxed);
    return sum;
  }

private:
  static constexpr size_t num_shards = 8;

  struct alignas(64) shard {
    std::array<std::atomic<uint64_t>, num_counters> v{};
  };

  static size_t shard_index() noexcept;

  std::array<shard, num_shards> shards_;
};

/// A latency histogram with fixed buckets (Prometheus style, in seconds),
/// safe to record into from any thread.
class latency_histogram {
public:
  static constexpr std::array<double, 14> bounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

  void record(std::chrono::nanoseconds d) noexcept;

  struct snapshot {
    /// Cumulative counts per bound; `count` is the +Inf bucket.
    std::array<uint64_t, bounds.size()> buckets{};
    uint64_t count = 0;
    double sum_s = 0;
  };

  [[nodiscard]] snapshot read() const noexcept;

private:
  std::array<std::atomic<uint64_t>, bounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

} // namespace nova
