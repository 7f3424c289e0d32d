#pragma once

#include <cstddef>
#include <ostream>

namespace nova {

/// Measures, in one process, direct-send throughput between two local Novas
/// against the same traffic between two plain CAF actors: `messages`
/// messages of 128 bytes, sent in windows of 10,000 that the receiver acks,
/// on two scheduler threads each. After a warm-up, each side runs three
/// times, alternating; the best run of each counts. Prints msgs/s for both,
/// their ratio (nova / baseline) and the goal (>= 0.7), readable or as one
/// JSON object. Returns 0, or 1 when a run did not finish in time.
int run_bench_local(bool json, std::ostream& out, size_t messages = 2'000'000);

} // namespace nova
