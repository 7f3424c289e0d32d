#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace nova {

/// Settings shared by the benchmarks between node processes.
struct remote_bench_options {
  /// Print one JSON object instead of the readable report.
  bool json = false;
  /// Messages per measured throughput run (`remote`, `basp`).
  size_t messages = 1'000'000;
  /// Round trips per measured latency run (`request`).
  size_t requests = 20'000;
  /// The nats-server binary; empty: `$NOVA_NATS_SERVER`, else the first of
  /// /usr/bin, /usr/sbin, /usr/local/bin that has one.
  std::string nats_server;
  /// The `nova` binary the peer processes run as `<self_exe> bench peer
  /// <role> ...`; empty: this process's own executable.
  std::string self_exe;
};

/// One-way throughput between two node processes through one local
/// nats-server: a Nova on this node sends 128-byte direct messages to a Nova
/// on a peer node, against raw nats.c publish/subscribe of the same payloads
/// between this process and a peer process. The receiver acks every 10,000
/// messages and the sender keeps at most four windows in flight; a run ends
/// when the last message has arrived. After a warm-up each side runs three
/// times, alternating, and the best run counts. Prints msgs/s for both and
/// their ratio (nova / baseline; goal >= 0.5). Starts and stops its own
/// nats-server and peers. Returns 0, or 1 when a run did not complete.
int run_bench_remote(const remote_bench_options& opts, std::ostream& out);

/// Request-reply round trips, one at a time, from a Nova on this node to an
/// echoing Nova on a peer node, against raw nats.c request-reply (send-asap
/// on both ends). Prints p50, p99 and p999 for both and the ratios
/// (nova / baseline; goals: p50 ratio <= 1.3, nova p99 < 1 ms); the run with
/// the lowest p50 of each side counts.
int run_bench_request(const remote_bench_options& opts, std::ostream& out);

/// The traffic of `run_bench_remote` between a Nova pair over NATS against
/// the same between two plain CAF actors over CAF's own remoting (the
/// middleman's BASP over TCP). Prints both rates and their ratio
/// (nova / baseline; goal >= 3).
int run_bench_basp(const remote_bench_options& opts, std::ostream& out);

/// The peer process side of the benchmarks: `nova bench peer <role>
/// [args...]` with `args` = role and its arguments (nova-sink, nova-echo
/// `<nats-url> <prefix>`; nats-sink, nats-echo `<nats-url> <subject>`;
/// basp-sink). Prints `ready ...` on `out` once it serves, then serves until
/// its standard input closes (the benchmark holds the other end) or ten
/// minutes pass. Returns 0, or 2 for bad arguments or a failed setup.
int run_bench_peer(const std::vector<std::string>& args, std::ostream& out);

} // namespace nova
