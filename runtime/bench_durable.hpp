#pragma once

#include <cstddef>
#include <ostream>
#include <string>

namespace nova {

/// Settings of `nova bench durable`.
struct durable_bench_options {
  /// Print one JSON object instead of the readable report.
  bool json = false;
  /// Durable messages per measured run (each side).
  size_t messages = 200'000;
  /// The redis-server and redis-benchmark binaries; empty: the environment
  /// (`$NOVA_REDIS_SERVER`, `$NOVA_REDIS_BENCHMARK`), else the first of
  /// /usr/bin, /usr/sbin, /usr/local/bin that has one.
  std::string redis_server;
  std::string redis_benchmark;
};

/// Durable Nova-to-Nova throughput: one node with the redis store (started
/// by the benchmark on a free loopback port), a Nova sending `messages`
/// durable 128-byte messages to another, timed until the receiver handled
/// the last one (written to its stream, notified, read after the receiver's
/// cursor, settled). The baseline, against the same server in the same run, is
/// `redis-benchmark` doing the same number of XADDs (128-byte field, MAXLEN
/// ~ 1,000,000 as Nova trims) with 50 clients and pipeline depth 64. Prints
/// both rates and the ratio (Nova / baseline; `--json`: `ratio`), and the
/// CPU the server and this process spent per message during the Nova run
/// (`server_cpu_us_per_msg`, `node_cpu_us_per_msg`). Returns 0,
/// or 1 when the setup or a run failed.
int run_bench_durable(const durable_bench_options& opts, std::ostream& out);

} // namespace nova
