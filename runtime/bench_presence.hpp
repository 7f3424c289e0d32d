#pragma once

#include <cstddef>
#include <ostream>
#include <string>

namespace nova {

/// Settings of `nova bench presence`.
struct presence_bench_options {
  /// Print one JSON object instead of the readable report.
  bool json = false;
  /// Novas heartbeating.
  size_t novas = 10'000;
  /// Measured heartbeat rounds per side.
  size_t rounds = 10;
  /// The redis-server binary; empty: `$NOVA_REDIS_SERVER`, else the first of
  /// /usr/bin, /usr/sbin, /usr/local/bin that has one.
  std::string redis_server;
};

/// Cluster presence in the store under load: `novas` Novas (two capabilities
/// and a group each) heartbeat against a redis-server the benchmark starts
/// on a free loopback port. A round is one heartbeat of every Nova, written
/// as the presence monitor writes them: one `presence_store::heartbeat_batch`
/// per quarter interval (four per round), each one pipeline of scripts that
/// also keep the indexes. The baseline, measured in the same run and
/// alternating with it after a warm-up round each, writes the same
/// heartbeats as plain pipelined `HSET` (the same fields) + `PEXPIRE` per
/// Nova, without indexes. Prints, per side: store operations sent per
/// heartbeat (scripts, resp. commands), commands the server ran per
/// heartbeat (`INFO commandstats`, those inside scripts included), and CPU
/// time per 1,000 Novas per round (this process from getrusage plus
/// redis-server from `INFO cpu`, mean of the rounds), then the CPU ratio
/// (presence store / baseline). Returns 0, or 1 when the setup or a round
/// failed.
int run_bench_presence(const presence_bench_options& opts, std::ostream& out);

} // namespace nova
