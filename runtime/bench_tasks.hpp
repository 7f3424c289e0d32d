#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace nova {

/// Settings of `nova bench tasks`.
struct tasks_bench_options {
  /// Print one JSON object instead of the readable report.
  bool json = false;
  /// Tasks per measured throughput run.
  size_t tasks = 200'000;
  /// Worker node processes, and worker Novas on each.
  size_t nodes = 2;
  size_t workers = 4;
  /// The redis-server binary; empty: `$NOVA_REDIS_SERVER`, else the first
  /// of /usr/bin, /usr/sbin, /usr/local/bin that has one.
  std::string redis_server;
  /// A running server to use instead (e.g. a DragonflyDB), as
  /// `redis://host:port`; keys get a fresh prefix and the baseline a fresh
  /// stream, both left behind.
  std::string redis_url;
  /// Skip the raw baseline runs (ratio 0): the server then only does the
  /// queue's work, for measuring its CPU per task.
  bool no_baseline = false;
  /// Give the benchmark's own redis-server the last CPU this process may
  /// use, and this process and the worker nodes the others (as a
  /// deployment gives the store cores of its own). Needs two CPUs and no
  /// `redis_url`.
  bool pin_server = false;
  /// The `nova` binary the worker nodes run as `<self_exe> bench
  /// tasks-peer ...`; empty: this process's own executable.
  std::string self_exe;
};

/// End-to-end throughput of the cluster-wide task queue: this process runs
/// a node that enqueues no-op tasks (through its queue service, as
/// `node::enqueue` and agents do) into a redis-server started on a free
/// loopback port, `nodes` node processes with `workers` worker Novas each
/// claim and complete them, and this node collects the results. A run ends
/// when every result arrived; each task id must come back exactly once.
/// Then a run paced at a quarter of that rate measures the claim latency
/// (enqueue to the worker's `on_task`, both stamped with the system
/// clock). The baseline,
/// measured in the same run against the same server: raw hiredis, one
/// producer pipelining XADD, one consumer doing XREADGROUP COUNT and XACK of
/// the same number of entries. Prints tasks/s, claim p50/p99, the baseline
/// and the ratio, and the goal (100,000 tasks/s). Returns 0, or 1 when a
/// run did not complete.
int run_bench_tasks(const tasks_bench_options& opts, std::ostream& out);

/// The worker node process of `nova bench tasks`: `nova bench tasks-peer
/// <redis-url> <prefix> <node-id> <workers>`. Prints `ready` once its
/// workers run, then serves until its standard input closes. Returns 0, or
/// 2 for bad arguments or a failed setup.
int run_bench_tasks_peer(const std::vector<std::string>& args,
                         std::ostream& out);

} // namespace nova
