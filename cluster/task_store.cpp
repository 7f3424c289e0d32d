#include "cluster/task_store.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <charconv>

#include <fmt/format.h>

#include "cluster/lua_pack.hpp"
#include "cluster/redis_util.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using redis_util::to_ms;
using redis_util::contains;
using redis_util::is_nogroup;
using redis_util::is_noscript;
using redis_util::unexpected_reply;
using redis_util::field_of;
using redis_util::field_ptr;

using clock_type = std::chrono::steady_clock;

constexpr size_t num_lanes = 4;

// Tasks per script call of the batch operations: Lua's unpack and the
// server's argument buffers stay small.
constexpr size_t max_script_batch = 512;

// Bytes of payload per script call, about: large tasks go in more, smaller
// calls (a bulk argument may not exceed 512 MiB, `proto-max-bulk-len`, and
// one call holds up the server's other clients while it runs). A task
// larger than this goes in a call of its own.
constexpr size_t max_call_bytes = 4 * 1024 * 1024;

// What a task adds to a call beyond its payload (protobuf fields, ids,
// packing), about.
constexpr size_t call_overhead_per_task = 256;

// -- Lua scripts --------------------------------------------------------------
//
// Every key a script touches is in KEYS (Dragonfly refuses others). Scripts
// run atomically, so "in this order" below is about what a reader of the
// script (or MONITOR) sees, and about what survives a script error half way.

// Shared by the scripts that ack lane entries. Acked entries are not
// deleted one by one (XDEL seeks every entry): `trim` cuts the head of the
// lane up to its oldest pending entry, or, with nothing pending, up to
// `keep`, the id right after the newest entry acked (that entry was
// delivered, so every undelivered entry comes after it). `~`: whole stream
// nodes only, so a few acked entries may stay until the next trim.
// `after` is that id for one entry ("ms-seq" -> "ms-(seq+1)"). Without
// the group (the store lost its data) nothing is trimmed: the acks and
// results before it stand.
const std::string trim_lua = R"lua(
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
end
local function trim(lane, group, keep)
  local p = redis.pcall('XPENDING', lane, group)
  if type(p) ~= 'table' or p.err then return end
  redis.call('XTRIM', lane, 'MINID', '~', p[2] or keep)
end
)lua";

// A batch of tasks. The id records are one sorted set, `known`: member =
// task id, score = unix ms when the id is free again (`known_ttl` after the
// enqueue or redrive), whatever happens to the task meanwhile. Expired
// members are cut first, so a member found is an id taken. One ZMSCORE
// looks up the whole batch and one ZADD records the ids added, before
// their entries: a script stopped half way leaves ids taken, never a task
// whose id is free. A lane is full at `max_len` tasks waiting or in
// flight: the group's `lag` (entries not delivered yet) plus its pending
// count, read once per lane and batch (XINFO GROUPS); XLEN where the
// server gives no lag (it also counts acked entries not trimmed yet). No
// MAXLEN on the XADD: this check is what bounds a lane.
// KEYS: stats, known, the four lanes (urgent first)
// ARGV: max_len, expiry (unix ms), group, now (unix ms), then the tasks,
//       packed (lua_pack): per task its lane index (1-4), bytes, id
// Returns per task 1 (added), or 'full' or 'known'.
const std::string enqueue_lua = R"lua(
local max_len = tonumber(ARGV[1])
local function backlog(lane)
  local gs = redis.pcall('XINFO', 'GROUPS', lane)
  if type(gs) == 'table' and not gs.err then
    for _, g in ipairs(gs) do
      local f = {}
      for j = 1, #g - 1, 2 do f[g[j]] = g[j + 1] end
      if f['name'] == ARGV[3] and f['lag'] and f['pending'] then
        return f['lag'] + f['pending']
      end
    end
  end
  return redis.call('XLEN', lane)
end
local t = cmsgpack.unpack(ARGV[5])
local n = #t / 3
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local ids = {}
for i = 1, n do ids[i] = t[3 * i] end
local taken = redis.call('ZMSCORE', KEYS[2], unpack(ids))
local lens = {}
local out = {}
local seen = {}
local record = {}
local added = {}
for i = 1, n do
  local li = t[3 * i - 2]
  local len = lens[li]
  if not len then len = backlog(KEYS[2 + li]) end
  if len >= max_len then
    out[i] = 'full'
  elseif taken[i] or seen[ids[i]] then
    out[i] = 'known'
  else
    seen[ids[i]] = true
    record[#record + 1] = ARGV[2]
    record[#record + 1] = ids[i]
    added[#added + 1] = i
    out[i] = 1
    len = len + 1
  end
  lens[li] = len
end
if #added > 0 then
  redis.call('ZADD', KEYS[2], unpack(record))
  for _, i in ipairs(added) do
    redis.call('XADD', KEYS[2 + t[3 * i - 2]], '*',
      'task', t[3 * i - 1], 'id', ids[i], 'attempts', '0')
  end
  redis.call('HINCRBY', KEYS[1], 'enqueued', #added)
end
return out
)lua";

// What `wait_claim` claims with (`claim_many` reads the lanes directly).
// Strict priority: the first lane with undelivered entries gives what it
// has, up to the count, then the next lanes the rest. Without any entry,
// returns the last entry id of every lane: an entry added later has a
// greater id, so a blocking XREAD after those ids wakes exactly when there
// is something new to claim.
// KEYS: the four lanes, urgent first. ARGV: group, consumer, count
// Returns {1, {{lane index, entry id, fields}, ...}} or {0, positions}.
const std::string claim_lua = R"lua(
local want = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS do
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2],
                       'COUNT', want - #out, 'STREAMS', KEYS[i], '>')
  if r and r[1] then
    for _, e in ipairs(r[1][2]) do out[#out + 1] = {i, e[1], e[2]} end
  end
  if #out >= want then break end
end
if #out > 0 then return {1, out} end
local pos = {}
for i = 1, #KEYS do
  local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  if #last > 0 then pos[i] = last[1][1] else pos[i] = '0-0' end
end
return {0, pos}
)lua";

// A batch of completions. The ack of the entry decides: a task has one live
// lane entry at a time (enqueue refuses a taken id; retry, dead and release
// ack the entry in the script that moves the task), so the delivery whose
// XACK still finds the entry pending is the one that completes the task
// and writes its result. Any other (the entry was completed, retried, dead
// or released meanwhile) is only acked. Then each lane is trimmed once, and
// each results stream (to about `results_max_len`, once per batch rather
// than on every XADD) gets its expiry.
// KEYS: stats, then the lanes and results streams of the batch, each once
// ARGV: group, results_max_len, results_ttl, k, then per lane of the batch
//       (k): its index in KEYS, the id after its newest entry in the batch;
//       last the tasks, packed (lua_pack): per task the index in KEYS of
//       its lane and of its results stream (0 for a task without a
//       session: nothing is written), entry, result bytes, task id
// Returns per task 1 (done now) or 0 (not by this delivery).
const std::string complete_lua = trim_lua + R"lua(
local t = cmsgpack.unpack(ARGV[#ARGV])
local out = {}
local touched = {}
local done = 0
for i = 1, #t, 5 do
  local j = #out + 1
  if redis.call('XACK', KEYS[t[i]], ARGV[1], t[i + 2]) == 1 then
    local r = t[i + 1]
    if r > 0 then
      redis.call('XADD', KEYS[r], '*',
        'result', t[i + 3], 'task_id', t[i + 4], 'status', 'done')
      touched[r] = true
    end
    out[j] = 1
    done = done + 1
  else
    out[j] = 0
  end
end
local k = tonumber(ARGV[4])
for j = 1, k do
  trim(KEYS[tonumber(ARGV[3 + 2 * j])], ARGV[1], ARGV[4 + 2 * j])
end
for r in pairs(touched) do
  redis.call('XTRIM', KEYS[r], 'MAXLEN', '~', ARGV[2])
  redis.call('PEXPIRE', KEYS[r], ARGV[3])
end
if done > 0 then redis.call('HINCRBY', KEYS[1], 'done', done) end
return out
)lua";

// Shared head of the failure scripts: an entry no longer pending was
// completed, retried or given up by another delivery, so this one changes
// nothing (-1).
const std::string fail_head_lua = trim_lua + R"lua(
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) ~= 'table' or p.err or #p == 0 then return -1 end
)lua";

// The retry waits in the delayed set before the entry goes.
// KEYS: lane, delayed, stats. ARGV: group, entry, due ms, member
const std::string retry_lua = fail_head_lua + R"lua(
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
trim(KEYS[1], ARGV[1], after(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'retried', 1)
return 1
)lua";

// XADD to the dead letters BEFORE the XACK of the original: whatever stops
// the script half way, the task is never only gone.
// KEYS: lane, dead, stats[, results]
// ARGV: group, entry, task bytes, id, reason, attempts, type, session,
//       priority, dead_max_len, result bytes, results_max_len, results_ttl
const std::string dead_lua = fail_head_lua + R"lua(
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*',
  'task', ARGV[3], 'id', ARGV[4], 'reason', ARGV[5], 'attempts', ARGV[6],
  'type', ARGV[7], 'session', ARGV[8], 'priority', ARGV[9],
  'entry', ARGV[2], 'lane', KEYS[1])
if KEYS[4] then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*',
    'result', ARGV[11], 'task_id', ARGV[4], 'status', 'dead',
    'error', ARGV[5])
  redis.call('PEXPIRE', KEYS[4], ARGV[13])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
trim(KEYS[1], ARGV[1], after(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'dead', 1)
return 1
)lua";

// An undecodable entry: dead letter first, then the ack.
// KEYS: lane, dead, stats. ARGV: group, entry, raw bytes, id, reason,
// dead_max_len
const std::string bury_lua = trim_lua + R"lua(
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
  'task', ARGV[3], 'id', ARGV[4], 'reason', ARGV[5], 'attempts', 0,
  'entry', ARGV[2], 'lane', KEYS[1], 'malformed', 1)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
trim(KEYS[1], ARGV[1], after(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'malformed', 1)
return 1
)lua";

// A claim given back uncounted goes to the end of its lane; one already
// acked by someone else is not brought back.
// KEYS: lane. ARGV: group, entry, task bytes, id, attempts
const std::string release_lua = trim_lua + R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'task', ARGV[3], 'id', ARGV[4],
  'attempts', ARGV[5])
trim(KEYS[1], ARGV[1], after(ARGV[2]))
return 1
)lua";

// ZREM decides which promoter moves a member: only one of several nodes
// promoting at once gets 1.
// KEYS: delayed, lane. ARGV: member (the task bytes), id, attempts
const std::string promote_lua = R"lua(
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'task', ARGV[1], 'id', ARGV[2],
  'attempts', ARGV[3])
return 1
)lua";

// KEYS: delayed, dead, stats. ARGV: member, reason, dead_max_len
const std::string promote_bury_lua = R"lua(
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
  'task', ARGV[1], 'id', '', 'reason', ARGV[2], 'attempts', 0,
  'lane', KEYS[1], 'malformed', 1)
redis.call('HINCRBY', KEYS[3], 'malformed', 1)
return 1
)lua";

// Entries idle longer than ARGV[3] ms move to this consumer; each comes back
// with its delivery count (XAUTOCLAIM raised it).
// KEYS: lane. ARGV: group, consumer, min_idle, count
const std::string reclaim_lua = R"lua(
local out = {}
local cursor = '0-0'
local rounds = 0
local want = tonumber(ARGV[4])
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3],
                       cursor, 'COUNT', want - #out)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
      local n = 1
      if #p > 0 then n = p[1][4] end
      out[#out + 1] = {e[1], e[2], n}
    end
  end
  rounds = rounds + 1
until cursor == '0-0' or #out >= want or rounds >= 10
return out
)lua";

// XDEL decides which caller redrives: only one of several gets 1. The id
// is taken again until the expiry.
// KEYS: dead, lane, known. ARGV: dead entry, task bytes, id, expiry (unix ms)
const std::string redrive_lua = R"lua(
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
redis.call('XADD', KEYS[2], '*', 'task', ARGV[2], 'id', ARGV[3],
  'attempts', 0)
return 1
)lua";

// -- helpers ------------------------------------------------------------------

std::string ms_arg(caf::timespan x) {
  return std::to_string(std::max<int64_t>(to_ms(x), 1));
}

// The place of lane `p` in `lane_keys_`: 0 for urgent to 3 for low (the
// scripts name a lane by this plus one, its place in their KEYS after the
// keys before the lanes). `lane_priority` is the inverse.
size_t lane_slot(priority p) noexcept {
  switch (p) {
    case priority::urgent: return 0;
    case priority::high: return 1;
    case priority::normal: return 2;
    default: return 3;
  }
}

// Runs `calls` calls of `script` in one pipeline on `conn`: `format(k,
// sha, buf)` appends call k to `buf`. The calls are independent, so calls
// the server answered NOSCRIPT (it forgot the script) run again, once the
// script is loaded, after the others. `replies[k]` is the reply of call k;
// the first error reply is the error.
template <class Format>
caf::error run_scripts(redis_connection& conn, const std::string& script,
                       size_t calls, Format& format,
                       std::vector<redis_value>& replies) {
  replies.clear();
  replies.resize(calls);
  std::vector<size_t> todo(calls);
  for (size_t k = 0; k < calls; ++k)
    todo[k] = k;
  resp_buffer buf;
  std::vector<redis_value> got;
  for (int round = 0; round < 2 && !todo.empty(); ++round) {
    auto sha = conn.script_sha(script);
    if (!sha)
      return std::move(sha.error());
    buf.clear();
    for (auto k : todo)
      format(k, *sha, buf);
    if (auto err = conn.pipeline(buf, got))
      return err;
    std::vector<size_t> again;
    for (size_t j = 0; j < todo.size(); ++j) {
      if (is_noscript(got[j]))
        again.push_back(todo[j]);
      else
        replies[todo[j]] = std::move(got[j]);
    }
    if (!again.empty())
      conn.forget_script(script);
    todo = std::move(again);
  }
  if (!todo.empty())
    return make_error(errc::backend_unavailable,
                      "NOSCRIPT right after SCRIPT LOAD");
  for (auto& r : replies)
    if (r.is_error())
      return r.as_error();
  return caf::none;
}

// Splits `n` tasks into script calls of at most `max_script_batch` tasks
// and about `max_call_bytes` (`payload(i)`: the payload bytes of task i; a
// larger task goes alone): where each call begins, then `n`.
template <class Payload>
std::vector<size_t> call_bounds(size_t n, Payload payload) {
  std::vector<size_t> bounds{0};
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    auto x = payload(i) + call_overhead_per_task;
    if (i > bounds.back()
        && (i - bounds.back() == max_script_batch
            || bytes + x > max_call_bytes)) {
      bounds.push_back(i);
      bytes = 0;
    }
    bytes += x;
  }
  bounds.push_back(n);
  return bounds;
}

priority lane_priority(size_t i) noexcept {
  constexpr priority order[] = {priority::urgent, priority::high,
                                priority::normal, priority::low};
  return order[std::min(i, num_lanes - 1)];
}

// The next possible stream id after `id` ("ms-seq"), for exclusive ranges.
std::string next_stream_id(const std::string& id) {
  auto dash = id.find('-');
  if (dash == std::string::npos)
    return id + "-1";
  uint64_t seq = 0;
  auto s = std::string_view{id}.substr(dash + 1);
  std::from_chars(s.data(), s.data() + s.size(), seq);
  if (seq == UINT64_MAX) {
    uint64_t ms = 0;
    std::from_chars(id.data(), id.data() + dash, ms);
    return std::to_string(ms + 1) + "-0";
  }
  return id.substr(0, dash + 1) + std::to_string(seq + 1);
}

// Stream ids ("ms-seq") in order.
bool stream_id_less(const std::string& x, const std::string& y) {
  auto parse = [](const std::string& id) {
    std::pair<uint64_t, uint64_t> out{0, 0};
    auto dash = id.find('-');
    std::from_chars(id.data(), id.data() + std::min(dash, id.size()),
                    out.first);
    if (dash != std::string::npos)
      std::from_chars(id.data() + dash + 1, id.data() + id.size(),
                      out.second);
    return out;
  };
  return parse(x) < parse(y);
}

// A stream task decoded and checked: its id and session end up in keys.
caf::expected<task> decode_task(const std::string* raw) {
  if (!raw)
    return make_error(errc::decode_failed, "stream entry has no task field");
  auto t = decode<task>(*raw);
  if (!t)
    return t;
  if (auto err = check_id(t->id, "task id"))
    return make_error(errc::decode_failed, describe(err));
  if (!t->session.empty())
    if (auto err = check_id(t->session, "session"))
      return make_error(errc::decode_failed, describe(err));
  return t;
}

// The values of a lane entry: task bytes, id, attempts.
std::vector<std::string> entry_fields(const task& t, const std::string& bytes) {
  return {bytes, t.id, std::to_string(t.attempts)};
}

// What XINFO GROUPS tells about one group of a lane.
struct group_summary {
  uint64_t pending = 0;
  // Entries not delivered to the group yet; unset where the server does not
  // know (or tell) it.
  std::optional<uint64_t> lag;
};

group_summary group_info(const redis_value& groups, const std::string& name) {
  group_summary out;
  if (!groups.is_array())
    return out;
  for (auto& g : groups.elements) {
    if (!g.is_array() || field_of(g, "name") != name)
      continue;
    for (size_t i = 0; i + 1 < g.size(); i += 2) {
      auto n = g[i + 1].as_int();
      if (!n || *n < 0)
        continue;
      if (g[i].str == "pending")
        out.pending = static_cast<uint64_t>(*n);
      else if (g[i].str == "lag")
        out.lag = static_cast<uint64_t>(*n);
    }
  }
  return out;
}

caf::expected<int64_t> int_of(const caf::expected<redis_value>& r) {
  if (!r)
    return r.error();
  return r->as_int();
}

} // namespace

const char* to_string(task_store::completion x) noexcept {
  switch (x) {
    case task_store::completion::done: return "done";
    case task_store::completion::stale: return "stale";
  }
  return "unknown";
}

// -- construction -------------------------------------------------------------

task_store::task_store(std::shared_ptr<redis_pool> pool, redis_pool blocking,
                       naming names, settings s)
  : settings_(std::move(s)),
    names_(std::move(names)),
    pool_(std::move(pool)),
    blocking_(std::move(blocking)) {
  lane_keys_ = lanes();
  stats_key_ = stats_key();
  known_key_ = known_key();
}

caf::expected<std::shared_ptr<task_store>>
task_store::make(std::shared_ptr<redis_pool> pool, naming names, settings s) {
  if (!pool)
    return make_error(errc::invalid_argument, "task_store needs a redis pool");
  if (s.blocking_connections == 0 || s.max_len == 0 || s.batch == 0
      || s.dead_max_len == 0 || s.results_max_len == 0)
    return make_error(errc::invalid_argument,
                      "task_store settings: blocking_connections, max_len, "
                      "dead_max_len, results_max_len and batch must be "
                      "positive");
  if (s.retry_base.count() <= 0 || s.retry_max < s.retry_base
      || s.known_ttl.count() <= 0 || s.results_ttl.count() <= 0)
    return make_error(errc::invalid_argument,
                      "task_store settings: durations must be positive and "
                      "retry_max at least retry_base");
  if (s.delivery_limit == 0)
    s.delivery_limit = 1;
  // Blocking reads get connections of their own: a wait of seconds on a
  // pooled one would starve every short command behind it.
  auto bs = pool->settings();
  bs.pool_size = s.blocking_connections;
  auto blocking = redis_pool::make(std::move(bs));
  if (!blocking)
    return std::move(blocking.error());
  return std::shared_ptr<task_store>{
    new task_store(std::move(pool), std::move(*blocking), std::move(names),
                   std::move(s))};
}

// -- keys ---------------------------------------------------------------------

std::string task_store::known_key() const {
  return names_.prefix() + ".tasks.known";
}

std::string task_store::known_until(int64_t now) const {
  return std::to_string(now + to_ms(settings_.known_ttl));
}

std::string task_store::delayed_key() const {
  return names_.prefix() + ".tasks.delayed";
}

std::string task_store::stats_key() const {
  return names_.prefix() + ".tasks.stats";
}

std::vector<std::string> task_store::lanes() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < num_lanes; ++i)
    out.push_back(names_.task_lane(lane_priority(i)));
  return out;
}

const std::string& task_store::lane_key(priority p) const {
  return lane_keys_[lane_slot(p)];
}

caf::error task_store::track(caf::error err) {
  if (is(err, errc::backend_unavailable))
    store_errors_.fetch_add(1, std::memory_order_relaxed);
  return err;
}

caf::timespan task_store::backoff(uint32_t attempts) const noexcept {
  auto d = settings_.retry_base;
  for (uint32_t i = 1; i < attempts && d < settings_.retry_max; ++i)
    d *= 2;
  return std::min(d, settings_.retry_max);
}

// -- groups and enqueue -------------------------------------------------------

caf::error task_store::ensure_groups() {
  for (auto& lane : lanes()) {
    auto r = pool_->command({"XGROUP", "CREATE", lane, names_.workers_group(),
                             "0", "MKSTREAM"});
    if (!r && !contains(describe(r.error()), "BUSYGROUP"))
      return track(std::move(r.error()));
  }
  return caf::none;
}

caf::expected<std::string> task_store::enqueue(task t) {
  std::vector<task> ts;
  ts.push_back(std::move(t));
  auto r = enqueue_many(ts);
  if (!r)
    return std::move(r.error());
  return std::move(r->front());
}

caf::expected<std::vector<caf::expected<std::string>>>
task_store::enqueue_many(std::vector<task>& ts) {
  std::vector<caf::expected<std::string>> out;
  out.reserve(ts.size());
  // The tasks that pass the checks, by their index in `ts`.
  std::vector<size_t> sent;
  for (size_t i = 0; i < ts.size(); ++i) {
    auto& t = ts[i];
    out.emplace_back(caf::error{});
    if (t.id.empty()) {
      t.id = new_message_id();
    } else if (auto err = check_id(t.id, "task id")) {
      out.back() = std::move(err);
      continue;
    }
    if (!t.session.empty())
      if (auto err = check_id(t.session, "session")) {
        out.back() = std::move(err);
        continue;
      }
    t.attempts = 0;
    sent.push_back(i);
  }
  if (sent.empty())
    return out;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  auto bounds = call_bounds(sent.size(),
                            [&](size_t j) { return ts[sent[j]].payload.size(); });
  const auto keys = std::array<const std::string*, 2 + num_lanes>{
    &stats_key_, &known_key_, &lane_keys_[0], &lane_keys_[1], &lane_keys_[2],
    &lane_keys_[3]};
  const auto max_len = std::to_string(settings_.max_len);
  lua_pack pack;
  auto format = [&](size_t k, const std::string& sha, resp_buffer& buf) {
    auto now = now_ms();
    pack.clear();
    pack.array(3 * (bounds[k + 1] - bounds[k]));
    for (auto j = bounds[k]; j < bounds[k + 1]; ++j)
      pack.uint(lane_slot(ts[sent[j]].priority) + 1)
        .str(encode(ts[sent[j]]))
        .str(ts[sent[j]].id);
    buf.begin(3 + keys.size() + 5);
    buf.arg("EVALSHA").arg(sha).arg(uint64_t{keys.size()});
    for (auto* key : keys)
      buf.arg(*key);
    buf.arg(max_len)
      .arg(known_until(now))
      .arg(names_.workers_group())
      .arg(std::to_string(now))
      .arg(pack.bytes());
  };
  // The calls go in one pipeline and run in order (FIFO within a lane);
  // a call answered NOSCRIPT runs again after the others.
  std::vector<redis_value> replies;
  if (auto err = run_scripts(**conn, enqueue_lua, bounds.size() - 1, format,
                             replies))
    return track(std::move(err));
  for (size_t k = 0; k + 1 < bounds.size(); ++k) {
    auto& r = replies[k];
    if (!r.is_array() || r.size() != bounds[k + 1] - bounds[k])
      return unexpected_reply("the enqueue script", r);
    for (auto j = bounds[k]; j < bounds[k + 1]; ++j) {
      auto& t = ts[sent[j]];
      auto& why = r[j - bounds[k]].str;
      if (why == "full")
        out[sent[j]] = make_error(errc::queue_full,
                                  fmt::format("lane '{}' holds {} tasks, its "
                                              "limit",
                                              names_.task_lane(t.priority),
                                              settings_.max_len));
      else if (why == "known")
        out[sent[j]] = make_error(errc::duplicate_id,
                                  fmt::format("task '{}' is already queued, "
                                              "in flight, waiting for a "
                                              "retry, dead or done",
                                              t.id));
      else
        out[sent[j]] = t.id;
    }
  }
  return out;
}

// -- claims -------------------------------------------------------------------

caf::error task_store::bury(redis_connection& conn, size_t lane,
                            const std::string& entry_id,
                            const std::string& raw, const std::string& id,
                            const std::string& reason) {
  malformed_.fetch_add(1, std::memory_order_relaxed);
  auto r = conn.eval(bury_lua,
                     {names_.task_lane(lane_priority(lane)),
                      names_.tasks_dead(), stats_key()},
                     {names_.workers_group(), entry_id, raw, id, reason,
                      std::to_string(settings_.dead_max_len)});
  if (!r)
    return track(std::move(r.error()));
  return caf::none;
}

caf::expected<std::vector<claimed_task>>
task_store::claim_on(redis_connection& conn, const std::string& consumer,
                     size_t n, std::vector<std::string>* positions) {
  std::vector<claimed_task> out;
  if (positions)
    positions->clear();
  if (n == 0)
    return out;
  auto keys = lanes();
  std::vector<std::string> args{names_.workers_group(), consumer,
                                std::to_string(n)};
  auto r = conn.eval(claim_lua, keys, args);
  if (!r && is_nogroup(r.error())) {
    if (auto err = ensure_groups())
      return err;
    r = conn.eval(claim_lua, keys, args);
  }
  if (!r)
    return track(std::move(r.error()));
  if (!r->is_array() || r->size() != 2 || !(*r)[1].is_array())
    return unexpected_reply("the claim script", *r);
  if ((*r)[0].integer == 0) {
    if (positions) {
      auto pos = (*r)[1].as_strings();
      if (!pos || pos->size() != num_lanes)
        return unexpected_reply("the claim script", *r);
      *positions = std::move(*pos);
    }
    return out;
  }
  for (auto& e : (*r)[1].elements) {
    if (!e.is_array() || e.size() != 3 || e[0].integer < 1
        || e[0].integer > static_cast<int64_t>(num_lanes))
      return unexpected_reply("the claim script", *r);
    auto index = static_cast<size_t>(e[0].integer - 1);
    if (auto taken = take_entry(conn, index, e[1].str, e[2], out); !taken)
      return std::move(taken.error());
  }
  return out;
}

caf::expected<bool>
task_store::take_entry(redis_connection& conn, size_t lane,
                       const std::string& entry_id, const redis_value& fields,
                       std::vector<claimed_task>& out) {
  auto raw = field_ptr(fields, "task");
  auto t = decode_task(raw);
  if (!t) {
    // Malformed entries are buried and the others handed out.
    if (auto err = bury(conn, lane, entry_id, raw ? *raw : std::string{},
                        field_of(fields, "id").value_or(""),
                        describe(t.error())))
      return err;
    return false;
  }
  claimed_task c;
  c.task = std::move(*t);
  c.task.attempts += 1;
  c.lane = lane_priority(lane);
  c.entry_id = entry_id;
  out.push_back(std::move(c));
  return true;
}

caf::expected<std::optional<claimed_task>>
task_store::claim(const std::string& consumer) {
  auto xs = read_lanes(consumer, 1, false);
  if (!xs)
    return std::move(xs.error());
  if (xs->empty())
    return std::optional<claimed_task>{};
  return std::optional<claimed_task>{std::move(xs->front())};
}

caf::expected<std::vector<claimed_task>>
task_store::claim_many(const std::string& consumer, size_t n) {
  return read_lanes(consumer, n, true);
}

caf::expected<std::vector<claimed_task>>
task_store::read_lanes(const std::string& consumer, size_t n, bool combined) {
  if (auto err = check_id(consumer, "consumer"))
    return err;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  // Plain XREADGROUP, not the claim script: a script would copy every
  // entry into Lua and back, the main cost of a large batch. Combined, the
  // lanes down to the one the last claim needed go into one XREADGROUP
  // (one round trip instead of one per lane; COUNT is per stream, so a
  // higher lane that got entries since gives them as well); the lanes below
  // it are read one by one for what is left. An entry that arrives in a
  // higher lane after its read waits for the next claim, as if it had
  // arrived a moment later.
  std::vector<claimed_task> out;
  auto last = combined ? std::min(claim_hint_.load(), num_lanes - 1) : 0;
  // A read is made again after burying undecodable entries (bounded, so
  // that a lane full of garbage cannot keep one call busy).
  size_t rounds = 0;
  for (size_t first = 0; first < num_lanes && out.size() < n;) {
    std::vector<std::string> argv{"XREADGROUP", "GROUP",
                                  names_.workers_group(), consumer, "COUNT",
                                  std::to_string(n - out.size()), "STREAMS"};
    for (auto i = first; i <= last; ++i)
      argv.push_back(lane_keys_[i]);
    argv.insert(argv.end(), last - first + 1, ">");
    auto r = (*conn)->command(argv);
    if (!r && is_nogroup(r.error())) {
      if (auto err = ensure_groups())
        return err;
      r = (*conn)->command(argv);
    }
    if (!r)
      return track(std::move(r.error()));
    size_t buried = 0;
    if (!r->is_nil() && !r->is_array())
      return unexpected_reply("XREADGROUP", *r);
    // One element per stream that gave entries, in the order asked.
    for (auto& stream : r->elements) {
      if (!stream.is_array() || stream.size() != 2 || !stream[1].is_array())
        return unexpected_reply("XREADGROUP", *r);
      auto k = std::find(lane_keys_.begin() + first,
                         lane_keys_.begin() + last + 1, stream[0].str);
      if (k == lane_keys_.begin() + last + 1)
        return unexpected_reply("XREADGROUP", *r);
      auto i = static_cast<size_t>(k - lane_keys_.begin());
      for (auto& e : stream[1].elements) {
        if (!e.is_array() || e.size() != 2)
          return unexpected_reply("XREADGROUP", *r);
        auto taken = take_entry(**conn, i, e[0].str, e[1], out);
        if (!taken)
          return std::move(taken.error());
        if (!*taken)
          ++buried;
      }
    }
    if (buried > 0 && ++rounds < settings_.batch)
      continue;
    first = last + 1;
    last = first;
  }
  // The next combined read goes down to the lane this claim needed: where
  // the count was reached, else the last lane that gave.
  if (combined && !out.empty())
    claim_hint_ = lane_slot(out[std::min(n, out.size()) - 1].lane);
  return out;
}

caf::expected<std::optional<claimed_task>>
task_store::wait_claim(const std::string& consumer, caf::timespan timeout) {
  auto xs = wait_claim_many(consumer, 1, timeout);
  if (!xs)
    return std::move(xs.error());
  if (xs->empty())
    return std::optional<claimed_task>{};
  return std::optional<claimed_task>{std::move(xs->front())};
}

caf::expected<std::vector<claimed_task>>
task_store::wait_claim_many(const std::string& consumer, size_t n,
                            caf::timespan timeout) {
  if (auto err = check_id(consumer, "consumer"))
    return err;
  auto deadline = clock_type::now() + timeout;
  auto conn = blocking_.lease();
  if (!conn)
    return track(std::move(conn.error()));
  auto keys = lanes();
  std::vector<std::string> positions;
  for (;;) {
    auto xs = claim_on(**conn, consumer, n, &positions);
    if (!xs || !xs->empty())
      return xs;
    auto left = std::chrono::duration_cast<caf::timespan>(deadline
                                                          - clock_type::now());
    if (left < std::chrono::milliseconds(1))
      return xs;
    // Only undecodable entries were read: look again at once.
    if (positions.empty())
      continue;
    // A plain XREAD, no group: it only tells that a lane grew past what the
    // claim saw; the claim script then takes the best entries in priority
    // order, or finds that another consumer was faster.
    std::vector<std::string> argv{"XREAD", "COUNT", "1", "BLOCK",
                                  std::to_string(to_ms(left)), "STREAMS"};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), positions.begin(), positions.end());
    auto r = (*conn)->blocking(argv, left);
    if (!r)
      return track(std::move(r.error()));
    if (r->is_nil())
      return std::vector<claimed_task>{};
  }
}

// -- completion and failure ---------------------------------------------------

caf::expected<task_store::completion>
task_store::complete(const claimed_task& c, const std::string& payload,
                     const std::string& worker) {
  std::vector<completion_request> xs;
  xs.push_back(completion_request{c, payload, worker});
  auto r = complete_many(xs);
  if (!r)
    return std::move(r.error());
  return r->front();
}

caf::expected<std::vector<task_store::completion>>
task_store::complete_many(const std::vector<completion_request>& xs) {
  std::vector<completion> out;
  out.reserve(xs.size());
  for (auto& x : xs) {
    if (auto err = check_id(x.claim.task.id, "task id"))
      return err;
    if (!x.claim.task.session.empty())
      if (auto err = check_id(x.claim.task.session, "session"))
        return err;
  }
  if (xs.empty())
    return out;
  auto now = now_ms();
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  // All calls in one pipeline: the server runs them back to back, after
  // one wait in its queue rather than one per call.
  auto bounds = call_bounds(xs.size(),
                            [&](size_t i) { return xs[i].payload.size(); });
  auto calls = bounds.size() - 1;
  std::string bytes;
  lua_pack pack;
  std::vector<std::string_view> keys;
  auto key_index = [&](std::string_view key) -> uint64_t {
    // KEYS[1] is the stats key; a batch has few distinct keys.
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key)
        return i + 2;
    keys.push_back(key);
    return keys.size() + 1;
  };
  // A deque: `keys` views its strings.
  std::deque<std::string> results_keys;
  auto format = [&](size_t k, const std::string& sha, resp_buffer& buf) {
    auto first = bounds[k];
    auto last = bounds[k + 1];
    keys.clear();
    results_keys.clear();
    // The newest entry of the batch per lane, for the trim.
    std::array<const std::string*, num_lanes> newest{};
    for (size_t i = first; i < last; ++i) {
      auto& entry = xs[i].claim.entry_id;
      auto& x = newest[lane_slot(xs[i].claim.lane)];
      if (x == nullptr || stream_id_less(*x, entry))
        x = &entry;
    }
    auto lanes = static_cast<uint64_t>(
      std::count_if(newest.begin(), newest.end(),
                    [](auto* x) { return x != nullptr; }));
    pack.clear();
    pack.array(5 * (last - first));
    task_result r;
    r.status = task_status::done;
    r.completed_at = now;
    const std::string* last_session = nullptr;
    uint64_t results = 0;
    for (size_t i = first; i < last; ++i) {
      const auto& t = xs[i].claim.task;
      pack.uint(key_index(lane_key(xs[i].claim.lane)));
      // Checked above; a batch is mostly of one session.
      if (t.session.empty()) {
        pack.uint(0);
      } else {
        if (last_session == nullptr || *last_session != t.session) {
          last_session = &t.session;
          results_keys.push_back(*names_.task_results(t.session));
          results = key_index(results_keys.back());
        }
        pack.uint(results);
      }
      r.task_id = t.id;
      r.session = t.session;
      r.worker = xs[i].worker;
      r.payload = xs[i].payload;
      r.attempts = t.attempts;
      bytes = encode(r);
      pack.str(xs[i].claim.entry_id).str(bytes).str(t.id);
    }
    std::array<uint64_t, num_lanes> lane_index{};
    for (size_t slot = 0; slot < num_lanes; ++slot)
      if (newest[slot] != nullptr)
        lane_index[slot] = key_index(lane_keys_[slot]);
    buf.begin(3 + (1 + keys.size()) + (5 + 2 * lanes));
    buf.arg("EVALSHA").arg(sha).arg(uint64_t{1 + keys.size()});
    buf.arg(stats_key_);
    for (auto key : keys)
      buf.arg(key);
    buf.arg(names_.workers_group())
      .arg(uint64_t{settings_.results_max_len})
      .arg(ms_arg(settings_.results_ttl))
      .arg(lanes);
    for (size_t slot = 0; slot < num_lanes; ++slot)
      if (newest[slot] != nullptr)
        buf.arg(lane_index[slot]).arg(next_stream_id(*newest[slot]));
    // Last: the server reads a large bulk argument in one go.
    buf.arg(pack.bytes());
  };
  std::vector<redis_value> replies;
  if (auto err = run_scripts(**conn, complete_lua, calls, format, replies))
    return track(std::move(err));
  for (size_t k = 0; k < calls; ++k) {
    auto n = bounds[k + 1] - bounds[k];
    auto& r = replies[k];
    if (!r.is_array() || r.size() != n)
      return unexpected_reply("the complete script", r);
    for (auto& x : r.elements)
      out.push_back(x.integer == 1 ? completion::done
                                   : completion::stale);
  }
  return out;
}

caf::expected<task_store::failure>
task_store::bury_task(redis_connection& conn, const claimed_task& c, task t,
                      const std::string& worker) {
  failure out;
  task_result r;
  r.task_id = t.id;
  r.session = t.session;
  r.status = task_status::dead;
  r.worker = worker;
  r.error = t.last_error;
  r.attempts = t.attempts;
  r.completed_at = now_ms();
  std::vector<std::string> keys{names_.task_lane(c.lane), names_.tasks_dead(),
                                stats_key()};
  if (!t.session.empty()) {
    auto results = names_.task_results(t.session);
    if (!results)
      return std::move(results.error());
    keys.push_back(std::move(*results));
  }
  auto n = int_of(conn.eval(
    dead_lua, keys,
    {names_.workers_group(), c.entry_id, encode(t), t.id, t.last_error,
     std::to_string(t.attempts), t.type, t.session, to_string(t.priority),
     std::to_string(settings_.dead_max_len), encode(r),
     std::to_string(settings_.results_max_len),
     ms_arg(settings_.results_ttl)}));
  if (!n)
    return track(std::move(n.error()));
  if (*n == 1)
    out.dead = std::move(r);
  else
    out.stale = true;
  return out;
}

caf::expected<task_store::failure>
task_store::fail(const claimed_task& c, const std::string& reason,
                 int64_t now_ms, const std::string& worker) {
  auto t = c.task;
  if (auto err = check_id(t.id, "task id"))
    return err;
  t.last_error = reason;
  auto limit = t.max_attempts > 0 ? t.max_attempts : settings_.delivery_limit;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  if (t.attempts >= limit)
    return bury_task(**conn, c, std::move(t), worker);
  auto due = now_ms + to_ms(backoff(t.attempts));
  auto n = int_of((*conn)->eval(retry_lua,
                                {names_.task_lane(c.lane), delayed_key(),
                                 stats_key()},
                                {names_.workers_group(), c.entry_id,
                                 std::to_string(due), encode(t)}));
  if (!n)
    return track(std::move(n.error()));
  failure out;
  if (*n == 1)
    out.retry_at = due;
  else
    out.stale = true;
  return out;
}

caf::expected<bool> task_store::release(const claimed_task& c) {
  auto t = c.task;
  t.attempts = t.attempts > 0 ? t.attempts - 1 : 0;
  auto args = entry_fields(t, encode(t));
  args.insert(args.begin(), {names_.workers_group(), c.entry_id});
  auto n = int_of(pool_->eval(release_lua, {names_.task_lane(c.lane)}, args));
  if (!n)
    return track(std::move(n.error()));
  return *n == 1;
}

// -- retries ------------------------------------------------------------------

caf::expected<size_t> task_store::promote_due(int64_t now_ms) {
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  size_t moved = 0;
  for (;;) {
    auto r = (*conn)->command({"ZRANGEBYSCORE", delayed_key(), "-inf",
                               std::to_string(now_ms), "LIMIT", "0",
                               std::to_string(settings_.batch)});
    if (!r)
      return track(std::move(r.error()));
    auto members = r->as_strings();
    if (!members)
      return unexpected_reply("ZRANGEBYSCORE", *r);
    for (auto& m : *members) {
      auto t = decode_task(&m);
      caf::expected<redis_value> x{redis_value{}};
      if (!t) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        x = (*conn)->eval(promote_bury_lua,
                          {delayed_key(), names_.tasks_dead(), stats_key()},
                          {m, describe(t.error()),
                           std::to_string(settings_.dead_max_len)});
      } else {
        auto args = entry_fields(*t, m);
        x = (*conn)->eval(promote_lua,
                          {delayed_key(), names_.task_lane(t->priority)},
                          args);
      }
      if (!x)
        return track(std::move(x.error()));
      if (t && x->integer == 1)
        ++moved;
    }
    if (members->size() < settings_.batch)
      return moved;
  }
}

caf::expected<std::optional<int64_t>> task_store::next_due() {
  auto r = pool_->command({"ZRANGE", delayed_key(), "0", "0", "WITHSCORES"});
  if (!r)
    return track(std::move(r.error()));
  if (!r->is_array() || r->size() < 2)
    return std::optional<int64_t>{};
  auto score = (*r)[1].as_double();
  if (!score)
    return std::move(score.error());
  return std::optional<int64_t>{static_cast<int64_t>(*score)};
}

// -- reclaim ------------------------------------------------------------------

caf::expected<task_store::reclaimed>
task_store::reclaim(const std::string& consumer, caf::timespan min_idle) {
  if (auto err = check_id(consumer, "consumer"))
    return err;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  reclaimed out;
  for (size_t i = 0; i < num_lanes; ++i) {
    std::vector<std::string> keys{names_.task_lane(lane_priority(i))};
    std::vector<std::string> args{names_.workers_group(), consumer,
                                  std::to_string(to_ms(min_idle)),
                                  std::to_string(settings_.batch)};
    auto r = (*conn)->eval(reclaim_lua, keys, args);
    if (!r && is_nogroup(r.error())) {
      // Nothing can be pending in a group that does not exist.
      if (auto err = ensure_groups())
        return err;
      continue;
    }
    if (!r)
      return track(std::move(r.error()));
    if (!r->is_array())
      return unexpected_reply("the reclaim script", *r);
    for (auto& e : r->elements) {
      if (!e.is_array() || e.size() != 3)
        return unexpected_reply("the reclaim script", *r);
      auto& entry_id = e[0].str;
      auto raw = field_ptr(e[1], "task");
      auto t = decode_task(raw);
      if (!t) {
        if (auto err = bury(**conn, i, entry_id, raw ? *raw : std::string{},
                            field_of(e[1], "id").value_or(""),
                            describe(t.error())))
          return err;
        continue;
      }
      claimed_task c;
      c.task = std::move(*t);
      c.task.attempts += static_cast<uint32_t>(std::max<int64_t>(e[2].integer,
                                                                 1));
      c.lane = lane_priority(i);
      c.entry_id = entry_id;
      auto limit = c.task.max_attempts > 0 ? c.task.max_attempts
                                           : settings_.delivery_limit;
      if (c.task.attempts <= limit) {
        out.tasks.push_back(std::move(c));
        continue;
      }
      // The deliveries that happened, not the one this reclaim would be.
      auto dead = c.task;
      dead.attempts -= 1;
      dead.last_error = fmt::format("delivery limit of {} reached: delivery "
                                    "{} was not finished within {} ms (its "
                                    "worker or node stopped answering)",
                                    limit, dead.attempts, to_ms(min_idle));
      auto f = bury_task(**conn, c, std::move(dead), consumer);
      if (!f)
        return std::move(f.error());
      if (f->dead)
        out.dead.push_back(std::move(*f->dead));
    }
  }
  return out;
}

// -- dead letters -------------------------------------------------------------

caf::expected<std::vector<task>> task_store::dead_letters(size_t limit) {
  std::vector<task> out;
  if (limit == 0)
    return out;
  auto r = pool_->command({"XRANGE", names_.tasks_dead(), "-", "+", "COUNT",
                           std::to_string(limit)});
  if (!r)
    return track(std::move(r.error()));
  for (auto& e : r->elements) {
    if (!e.is_array() || e.size() != 2)
      return unexpected_reply("XRANGE", *r);
    auto raw = field_ptr(e[1], "task");
    auto t = decode_task(raw);
    if (t) {
      out.push_back(std::move(*t));
      continue;
    }
    task bad;
    bad.id = field_of(e[1], "id").value_or("");
    bad.payload = raw ? *raw : std::string{};
    bad.last_error = field_of(e[1], "reason").value_or(describe(t.error()));
    bad.headers["dead_entry"] = e[0].str;
    bad.headers["malformed"] = "true";
    out.push_back(std::move(bad));
  }
  return out;
}

caf::expected<size_t> task_store::redrive(const std::string& task_id) {
  if (!task_id.empty())
    if (auto err = check_id(task_id, "task id"))
      return err;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  size_t moved = 0;
  std::string from = "-";
  for (;;) {
    auto r = (*conn)->command({"XRANGE", names_.tasks_dead(), from, "+",
                               "COUNT", std::to_string(settings_.batch)});
    if (!r)
      return track(std::move(r.error()));
    for (auto& e : r->elements) {
      if (!e.is_array() || e.size() != 2)
        return unexpected_reply("XRANGE", *r);
      from = next_stream_id(e[0].str);
      if (!task_id.empty() && field_of(e[1], "id") != task_id)
        continue;
      // Undecodable dead letters stay for an operator to inspect.
      auto t = decode_task(field_ptr(e[1], "task"));
      if (!t)
        continue;
      t->attempts = 0;
      auto bytes = encode(*t);
      auto args = entry_fields(*t, bytes);
      args.pop_back(); // attempts: the script writes 0
      args.insert(args.begin(), e[0].str);
      args.push_back(known_until(now_ms()));
      auto n = int_of((*conn)->eval(redrive_lua,
                                    {names_.tasks_dead(),
                                     names_.task_lane(t->priority),
                                     known_key_},
                                    args));
      if (!n)
        return track(std::move(n.error()));
      if (*n == 1)
        ++moved;
    }
    if (r->size() < settings_.batch)
      break;
  }
  if (moved == 0 && !task_id.empty())
    return make_error(errc::not_found,
                      "no dead letter with task id '" + task_id + "'");
  return moved;
}

// -- statistics ---------------------------------------------------------------

caf::expected<queue_stats> task_store::stats() {
  std::vector<std::vector<std::string>> cmds;
  auto keys = lanes();
  for (auto& lane : keys) {
    cmds.push_back({"XLEN", lane});
    cmds.push_back({"XINFO", "GROUPS", lane});
  }
  cmds.push_back({"ZCARD", delayed_key()});
  cmds.push_back({"XLEN", names_.tasks_dead()});
  cmds.push_back({"HGETALL", stats_key()});
  auto r = pool_->pipeline(cmds);
  if (!r)
    return track(std::move(r.error()));
  auto& xs = *r;
  auto num = [](const redis_value& x) -> uint64_t {
    if (x.is_error())
      return 0;
    auto n = x.as_int();
    return n && *n > 0 ? static_cast<uint64_t>(*n) : 0;
  };
  queue_stats s;
  for (size_t i = 0; i < num_lanes; ++i) {
    // A missing lane or group (not created yet) holds nothing.
    auto g = group_info(xs[2 * i + 1], names_.workers_group());
    s.in_flight += g.pending;
    if (g.lag) {
      s.depth.push_back(*g.lag);
      continue;
    }
    // No lag from this server: XLEN also counts acked entries that are not
    // trimmed yet, so this depth may be a little high.
    auto len = num(xs[2 * i]);
    s.depth.push_back(len > g.pending ? len - g.pending : 0);
  }
  s.delayed = num(xs[2 * num_lanes]);
  s.dead = num(xs[2 * num_lanes + 1]);
  auto& h = xs[2 * num_lanes + 2];
  for (size_t i = 0; h.is_array() && i + 1 < h.size(); i += 2) {
    auto v = num(h[i + 1]);
    if (h[i].str == "done")
      s.done = v;
    else if (h[i].str == "retried")
      s.retried = v;
    else if (h[i].str == "enqueued")
      s.enqueued = v;
  }
  return s;
}

caf::expected<std::map<std::string, uint64_t>>
task_store::pending_per_consumer() {
  std::vector<std::vector<std::string>> cmds;
  for (auto& lane : lanes())
    cmds.push_back({"XPENDING", lane, names_.workers_group()});
  auto r = pool_->pipeline(cmds);
  if (!r)
    return track(std::move(r.error()));
  std::map<std::string, uint64_t> out;
  for (auto& p : *r) {
    if (!p.is_array() || p.size() < 4 || !p[3].is_array())
      continue;
    for (auto& c : p[3].elements) {
      if (!c.is_array() || c.size() != 2)
        continue;
      auto n = c[1].as_int();
      if (n && *n > 0)
        out[c[0].str] += static_cast<uint64_t>(*n);
    }
  }
  return out;
}

// -- results ------------------------------------------------------------------

namespace {

// Appends the results of an XREAD/XRANGE entry list; returns the last id.
std::string append_results(const redis_value& entries,
                           std::vector<task_result>& out, size_t limit,
                           std::atomic<uint64_t>& malformed) {
  std::string last;
  for (auto& e : entries.elements) {
    if (out.size() >= limit)
      break;
    if (!e.is_array() || e.size() != 2)
      continue;
    last = e[0].str;
    auto raw = field_ptr(e[1], "result");
    auto r = raw ? decode<task_result>(*raw)
                 : caf::expected<task_result>{
                   make_error(errc::decode_failed, "no result field")};
    if (!r) {
      malformed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    out.push_back(std::move(*r));
  }
  return last;
}

} // namespace

caf::expected<task_store::result_batch>
task_store::results_since(const std::string& session,
                          const std::string& last_id, size_t limit) {
  auto key = names_.task_results(session);
  if (!key)
    return std::move(key.error());
  result_batch out;
  out.last_id = last_id.empty() || last_id == "0" ? "0-0" : last_id;
  if (limit == 0)
    return out;
  auto r = pool_->command({"XRANGE", *key, next_stream_id(out.last_id), "+",
                           "COUNT", std::to_string(limit)});
  if (!r)
    return track(std::move(r.error()));
  auto last = append_results(*r, out.results, limit, malformed_);
  if (!last.empty())
    out.last_id = std::move(last);
  return out;
}

caf::expected<task_store::result_batch>
task_store::collect(const std::string& session, size_t n,
                    caf::timespan timeout, const std::string& from) {
  auto key = names_.task_results(session);
  if (!key)
    return std::move(key.error());
  result_batch out;
  out.last_id = from.empty() || from == "0" ? "0-0" : from;
  if (n == 0)
    return out;
  auto deadline = clock_type::now() + timeout;
  auto conn = blocking_.lease();
  if (!conn)
    return track(std::move(conn.error()));
  while (out.results.size() < n) {
    auto left = std::chrono::duration_cast<caf::timespan>(deadline
                                                          - clock_type::now());
    auto want = std::to_string(n - out.results.size());
    caf::expected<redis_value> r{redis_value{}};
    if (left < std::chrono::milliseconds(1))
      r = (*conn)->command({"XREAD", "COUNT", want, "STREAMS", *key,
                            out.last_id});
    else
      r = (*conn)->blocking({"XREAD", "COUNT", want, "BLOCK",
                             std::to_string(to_ms(left)), "STREAMS", *key,
                             out.last_id},
                            left);
    if (!r)
      return track(std::move(r.error()));
    if (r->is_nil() || !r->is_array() || r->size() == 0) {
      if (left < std::chrono::milliseconds(1))
        break;
      continue;
    }
    auto& stream = (*r)[0];
    if (!stream.is_array() || stream.size() != 2)
      return unexpected_reply("XREAD", *r);
    auto last = append_results(stream[1], out.results, n, malformed_);
    if (!last.empty())
      out.last_id = std::move(last);
    if (left < std::chrono::milliseconds(1))
      break;
  }
  return out;
}

} // namespace nova
