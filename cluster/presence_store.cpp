#include "cluster/presence_store.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "cluster/redis_util.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using redis_util::is_noscript;
using redis_util::to_ms;
using redis_util::unexpected_reply;

// -- Lua scripts --------------------------------------------------------------
//
// Every key a script touches is in KEYS (Dragonfly refuses others). A script
// handles several Novas; per Nova it gets its hash key and the capability
// sets it may touch. The capabilities indexed for a Nova so far are in the
// hash KEYS[3]; when one of their sets is not declared the script leaves that
// Nova alone and answers 'caps:<old capabilities>', and the caller runs it
// again declaring them (only happens after a capability change made
// elsewhere).

// KEYS: index, updates, capabilities hash, then per Nova: its hash and
//       `nk` capability sets.
// ARGV: ttl ms, updates max len, capability key prefix, number of Novas, then
//       per Nova: id, status, node, capabilities, current task, last seen,
//       started, groups, data, nk.
// Returns per Nova: 1 (change), 0 (no change) or 'caps:<old>'.
const std::string heartbeat_lua = R"lua(
local ttl, maxlen, cprefix = ARGV[1], ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local a, k = 5, 4
for i = 1, n do
  local id, status, node, caps = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local task, seen, started = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local groups, data = ARGV[a + 7], ARGV[a + 8]
  local nk = tonumber(ARGV[a + 9])
  local hkey = KEYS[k]
  local declared = {}
  for j = 1, nk do
    declared[string.sub(KEYS[k + j], #cprefix + 1)] = KEYS[k + j]
  end
  local old = redis.call('HGET', KEYS[3], id)
  local ok = true
  if old then
    for c in string.gmatch(old, '[^,]+') do
      if not declared[c] then ok = false end
    end
  end
  if not ok then
    out[i] = 'caps:' .. old
  else
    local new = {}
    for c in string.gmatch(caps, '[^,]+') do new[c] = true end
    local prev = redis.call('HMGET', hkey, 'status', 'current_task', 'node')
    local changed = (not prev[1]) or prev[1] ~= status or prev[2] ~= task
                    or prev[3] ~= node
    redis.call('HSET', hkey, 'id', id, 'status', status, 'node', node,
               'capabilities', caps, 'current_task', task, 'last_seen', seen,
               'started', started, 'groups', groups, 'data', data)
    redis.call('PEXPIRE', hkey, ttl)
    if status == 'offline' then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      for _, key in pairs(declared) do redis.call('ZREM', key, id) end
    else
      redis.call('ZADD', KEYS[1], seen, id)
      redis.call('HSET', KEYS[3], id, caps)
      for c, key in pairs(declared) do
        if new[c] then
          redis.call('ZADD', key, seen, id)
        else
          redis.call('ZREM', key, id)
        end
      end
    end
    if changed then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'id', id,
                 'status', status, 'node', node, 'current_task', task,
                 'capabilities', caps, 'last_seen', seen, 'data', data,
                 'reason', 'heartbeat')
      out[i] = 1
    else
      out[i] = 0
    end
  end
  a = a + 10
  k = k + 1 + nk
end
return out
)lua";

// KEYS: index, updates, capabilities hash, then per Nova: its hash and `nk`
//       capability sets.
// ARGV: cutoff (a score below it is stale), updates max len, capability key
//       prefix, number of Novas, then per Nova: id, nk.
// Returns per Nova: 0 (not stale, or swept by someone else), 'caps:<old>' or
// {1, node, data, last seen}.
const std::string sweep_lua = R"lua(
local cutoff, maxlen, cprefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local a, k = 5, 4
for i = 1, n do
  local id, nk = ARGV[a], tonumber(ARGV[a + 1])
  local hkey = KEYS[k]
  local declared = {}
  for j = 1, nk do
    declared[string.sub(KEYS[k + j], #cprefix + 1)] = KEYS[k + j]
  end
  local score = redis.call('ZSCORE', KEYS[1], id)
  if not score or tonumber(score) >= cutoff then
    out[i] = 0
  else
    local old = redis.call('HGET', KEYS[3], id)
    local ok = true
    if old then
      for c in string.gmatch(old, '[^,]+') do
        if not declared[c] then ok = false end
      end
    end
    if not ok then
      out[i] = 'caps:' .. old
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      for _, key in pairs(declared) do redis.call('ZREM', key, id) end
      local h = redis.call('HMGET', hkey, 'status', 'node', 'data')
      if h[1] then
        redis.call('HSET', hkey, 'status', 'offline', 'current_task', '')
      end
      local node, data = h[2] or '', h[3] or ''
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'id', id,
                 'status', 'offline', 'node', node, 'current_task', '',
                 'last_seen', score, 'data', data, 'reason', 'timeout')
      out[i] = {1, node, data, score}
    end
  end
  a = a + 2
  k = k + 1 + nk
end
return out
)lua";

// KEYS: index, updates, capabilities hash, the Nova's hash, its capability
//       sets.
// ARGV: now, updates max len, capability key prefix, id.
// Returns 'caps:<old>', {0} (unknown or offline already) or {1, node, data}.
const std::string leave_lua = R"lua(
local cprefix, id = ARGV[3], ARGV[4]
local declared = {}
for j = 5, #KEYS do declared[string.sub(KEYS[j], #cprefix + 1)] = KEYS[j] end
local old = redis.call('HGET', KEYS[3], id)
if old then
  for c in string.gmatch(old, '[^,]+') do
    if not declared[c] then return 'caps:' .. old end
  end
end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[3], id)
for _, key in pairs(declared) do redis.call('ZREM', key, id) end
local h = redis.call('HMGET', KEYS[4], 'status', 'node', 'data')
if not h[1] or h[1] == 'offline' then return {0} end
redis.call('HSET', KEYS[4], 'status', 'offline', 'current_task', '',
           'last_seen', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id,
           'status', 'offline', 'node', h[2] or '', 'current_task', '',
           'last_seen', ARGV[1], 'data', h[3] or '', 'reason', 'leave')
return {1, h[2] or '', h[3] or ''}
)lua";

// -- helpers ------------------------------------------------------------------

constexpr int max_attempts = 3;

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (auto& x : xs) {
    if (!out.empty())
      out += ',';
    out += x;
  }
  return out;
}

std::vector<std::string> split(const std::string& x) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= x.size()) {
    auto end = x.find(',', pos);
    if (end == std::string::npos)
      end = x.size();
    if (end > pos)
      out.push_back(x.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// Unique, in first-seen order.
std::vector<std::string> unique(const std::vector<std::string>& xs) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (auto& x : xs)
    if (seen.insert(x).second)
      out.push_back(x);
  return out;
}

// 'caps:a,b' -> {a, b}; nullopt for any other reply.
std::optional<std::vector<std::string>> caps_request(const redis_value& x) {
  if (x.t != redis_value::type::string || x.str.rfind("caps:", 0) != 0)
    return std::nullopt;
  return split(x.str.substr(5));
}

using script_call = std::pair<std::vector<std::string>,
                              std::vector<std::string>>;

} // namespace

// -- construction -------------------------------------------------------------

presence_store::presence_store(std::shared_ptr<redis_pool> pool, naming names,
                               settings s)
  : settings_(std::move(s)), names_(std::move(names)), pool_(std::move(pool)) {
  // nop
}

caf::expected<std::shared_ptr<presence_store>>
presence_store::make(std::shared_ptr<redis_pool> pool, naming names,
                     settings s) {
  if (!pool)
    return make_error(errc::invalid_argument,
                      "presence_store needs a redis pool");
  if (to_ms(s.heartbeat_interval) < 2)
    return make_error(errc::invalid_argument,
                      "presence_store settings: heartbeat_interval must be at "
                      "least 2 ms");
  if (s.updates_max_len == 0 || s.batch == 0)
    return make_error(errc::invalid_argument,
                      "presence_store settings: updates_max_len and batch "
                      "must be positive");
  return std::shared_ptr<presence_store>{
    new presence_store(std::move(pool), std::move(names), std::move(s))};
}

// -- keys and settings --------------------------------------------------------

int64_t presence_store::offline_after_ms() const noexcept {
  return to_ms(settings_.heartbeat_interval) * 3 / 2;
}

int64_t presence_store::ttl_ms() const noexcept {
  return to_ms(settings_.heartbeat_interval) * 3;
}

std::string presence_store::index_key() const {
  return names_.prefix() + ".index.presence";
}

std::string presence_store::capabilities_key() const {
  return names_.prefix() + ".index.presence.capabilities";
}

std::string presence_store::capability_key(const std::string& cap) const {
  return names_.prefix() + ".index.capability." + cap;
}

caf::error presence_store::track(caf::error err) {
  if (is(err, errc::backend_unavailable))
    store_errors_.fetch_add(1, std::memory_order_relaxed);
  return err;
}

// -- scripts ------------------------------------------------------------------

caf::expected<std::string> presence_store::script_sha(const std::string& src,
                                                      bool reload) {
  {
    std::lock_guard<std::mutex> guard{sha_mtx_};
    auto i = shas_.find(&src);
    if (!reload && i != shas_.end())
      return i->second;
  }
  scripts_run_.fetch_add(1, std::memory_order_relaxed);
  auto r = pool_->command({"SCRIPT", "LOAD", src});
  if (!r)
    return track(std::move(r.error()));
  auto sha = r->as_string();
  if (!sha)
    return unexpected_reply("SCRIPT LOAD", *r);
  std::lock_guard<std::mutex> guard{sha_mtx_};
  shas_[&src] = *sha;
  return *sha;
}

caf::expected<std::vector<redis_value>>
presence_store::run_scripts(const std::string& src,
                            const std::vector<script_call>& calls) {
  std::vector<redis_value> out;
  if (calls.empty())
    return out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto sha = script_sha(src, attempt > 0);
    if (!sha)
      return std::move(sha.error());
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(calls.size());
    for (auto& [keys, args] : calls) {
      std::vector<std::string> cmd;
      cmd.reserve(3 + keys.size() + args.size());
      cmd.emplace_back("EVALSHA");
      cmd.push_back(*sha);
      cmd.push_back(std::to_string(keys.size()));
      cmd.insert(cmd.end(), keys.begin(), keys.end());
      cmd.insert(cmd.end(), args.begin(), args.end());
      cmds.push_back(std::move(cmd));
    }
    scripts_run_.fetch_add(calls.size(), std::memory_order_relaxed);
    auto r = pool_->pipeline(cmds);
    if (!r)
      return track(std::move(r.error()));
    // NOSCRIPT: the server lost its scripts (restart, SCRIPT FLUSH), so none
    // of them ran: load again and send all again.
    if (std::any_of(r->begin(), r->end(), is_noscript))
      continue;
    for (auto& x : *r)
      if (x.is_error())
        return track(x.as_error());
    return std::move(*r);
  }
  return make_error(errc::backend_unavailable,
                    "the store keeps forgetting the presence scripts");
}

// -- heartbeats ---------------------------------------------------------------

caf::expected<bool> presence_store::heartbeat(const presence& p,
                                              int64_t now_ms) {
  auto changes = heartbeat_batch({p}, now_ms);
  if (!changes)
    return std::move(changes.error());
  return !changes->empty();
}

caf::expected<std::vector<presence>>
presence_store::heartbeat_batch(std::vector<presence> ps, int64_t now_ms) {
  // Check everything before writing anything.
  std::vector<std::string> hash_keys;
  hash_keys.reserve(ps.size());
  for (auto& p : ps) {
    auto key = names_.presence(p.nova_id);
    if (!key)
      return std::move(key.error());
    hash_keys.push_back(std::move(*key));
    if (!p.node_id.empty())
      if (auto err = check_id(p.node_id, "node id"))
        return err;
    p.capabilities = unique(p.capabilities);
    for (auto& c : p.capabilities)
      if (auto err = check_id(c, "capability"))
        return err;
    for (auto& g : p.groups)
      if (auto err = check_id(g, "group"))
        return err;
    p.last_seen = now_ms;
  }
  // Per Nova: the fixed arguments, and old capabilities to declare as well.
  struct item {
    size_t index;
    std::vector<std::string> extra_caps;
  };
  std::vector<item> todo;
  todo.reserve(ps.size());
  for (size_t i = 0; i < ps.size(); ++i)
    todo.push_back(item{i, {}});
  std::vector<std::string> data(ps.size());
  for (size_t i = 0; i < ps.size(); ++i)
    data[i] = encode(ps[i]);
  std::vector<presence> changes;
  auto ttl = std::to_string(std::max<int64_t>(ttl_ms(), 1));
  auto max_len = std::to_string(settings_.updates_max_len);
  auto cprefix = capability_key("");
  for (int attempt = 0; attempt < max_attempts && !todo.empty(); ++attempt) {
    std::vector<script_call> calls;
    std::vector<std::vector<size_t>> call_items; // indexes into todo
    for (size_t first = 0; first < todo.size(); first += settings_.batch) {
      auto last = std::min(todo.size(), first + settings_.batch);
      script_call c;
      auto& [keys, args] = c;
      keys = {index_key(), names_.presence_updates(), capabilities_key()};
      args = {ttl, max_len, cprefix, std::to_string(last - first)};
      std::vector<size_t> members;
      for (size_t j = first; j < last; ++j) {
        auto& p = ps[todo[j].index];
        auto caps = p.capabilities;
        for (auto& e : todo[j].extra_caps)
          if (std::find(caps.begin(), caps.end(), e) == caps.end())
            caps.push_back(e);
        keys.push_back(hash_keys[todo[j].index]);
        for (auto& cap : caps)
          keys.push_back(capability_key(cap));
        args.push_back(p.nova_id);
        args.emplace_back(to_string(p.status));
        args.push_back(p.node_id);
        args.push_back(join(p.capabilities));
        args.push_back(p.current_task);
        args.push_back(std::to_string(p.last_seen));
        args.push_back(std::to_string(p.started_at));
        args.push_back(join(p.groups));
        args.push_back(data[todo[j].index]);
        args.push_back(std::to_string(caps.size()));
        members.push_back(j);
      }
      calls.push_back(std::move(c));
      call_items.push_back(std::move(members));
    }
    auto r = run_scripts(heartbeat_lua, calls);
    if (!r)
      return std::move(r.error());
    std::vector<item> again;
    for (size_t ci = 0; ci < r->size(); ++ci) {
      auto& reply = (*r)[ci];
      if (!reply.is_array() || reply.size() != call_items[ci].size())
        return unexpected_reply("the heartbeat script", reply);
      for (size_t j = 0; j < reply.size(); ++j) {
        auto& it = todo[call_items[ci][j]];
        if (auto old = caps_request(reply[j])) {
          for (auto& c : *old)
            if (!is_valid_id(c))
              return make_error(errc::decode_failed,
                                "invalid capability in the store: " + c);
          again.push_back(item{it.index, std::move(*old)});
        } else if (reply[j].t == redis_value::type::integer) {
          if (reply[j].integer == 1)
            changes.push_back(ps[it.index]);
        } else {
          return unexpected_reply("the heartbeat script", reply);
        }
      }
    }
    todo = std::move(again);
  }
  if (!todo.empty())
    return make_error(errc::backend_unavailable,
                      "capabilities of Nova '" + ps[todo.front().index].nova_id
                        + "' keep changing concurrently");
  return changes;
}

// -- leave and sweep ----------------------------------------------------------

caf::expected<std::optional<presence>>
presence_store::leave(const std::string& nova_id, int64_t now_ms) {
  auto hkey = names_.presence(nova_id);
  if (!hkey)
    return std::move(hkey.error());
  auto old = pool_->command({"HGET", capabilities_key(), nova_id});
  if (!old)
    return track(std::move(old.error()));
  auto caps = old->is_nil() ? std::vector<std::string>{} : split(old->str);
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    for (auto& c : caps)
      if (!is_valid_id(c))
        return make_error(errc::decode_failed,
                          "invalid capability in the store: " + c);
    script_call c;
    auto& [keys, args] = c;
    keys = {index_key(), names_.presence_updates(), capabilities_key(), *hkey};
    for (auto& cap : caps)
      keys.push_back(capability_key(cap));
    args = {std::to_string(now_ms), std::to_string(settings_.updates_max_len),
            capability_key(""), nova_id};
    auto r = run_scripts(leave_lua, {c});
    if (!r)
      return std::move(r.error());
    auto& reply = r->front();
    if (auto more = caps_request(reply)) {
      caps = std::move(*more);
      continue;
    }
    if (!reply.is_array() || reply.size() < 1)
      return unexpected_reply("the leave script", reply);
    if (reply[0].integer != 1)
      return std::optional<presence>{};
    if (reply.size() != 3)
      return unexpected_reply("the leave script", reply);
    presence p;
    if (auto d = decode<presence>(reply[2].str)) {
      p = std::move(*d);
    } else {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      p.node_id = reply[1].str;
    }
    p.nova_id = nova_id;
    p.status = presence_status::offline;
    p.current_task.clear();
    p.last_seen = now_ms;
    return std::optional<presence>{std::move(p)};
  }
  return make_error(errc::backend_unavailable,
                    "capabilities of Nova '" + nova_id
                      + "' keep changing concurrently");
}

caf::expected<std::vector<presence>> presence_store::sweep(int64_t now_ms) {
  std::vector<presence> changes;
  auto cutoff = now_ms - offline_after_ms();
  auto max_len = std::to_string(settings_.updates_max_len);
  auto cprefix = capability_key("");
  // Each round removes every candidate it saw from the index (or finds it
  // heartbeating again), so the rounds end; the bound is a safety net.
  for (size_t round = 0; round < 1'000'000; ++round) {
    auto r = pool_->command({"ZRANGEBYSCORE", index_key(), "-inf",
                             "(" + std::to_string(cutoff), "LIMIT", "0",
                             std::to_string(settings_.batch)});
    if (!r)
      return track(std::move(r.error()));
    auto ids = r->as_strings();
    if (!ids)
      return unexpected_reply("ZRANGEBYSCORE", *r);
    if (ids->empty())
      break;
    std::vector<std::string> cmd{"HMGET", capabilities_key()};
    cmd.insert(cmd.end(), ids->begin(), ids->end());
    auto caps_reply = pool_->command(cmd);
    if (!caps_reply)
      return track(std::move(caps_reply.error()));
    if (!caps_reply->is_array() || caps_reply->size() != ids->size())
      return unexpected_reply("HMGET", *caps_reply);
    struct item {
      std::string id;
      std::string hkey;
      std::vector<std::string> caps;
    };
    std::vector<item> todo;
    for (size_t i = 0; i < ids->size(); ++i) {
      auto hkey = names_.presence((*ids)[i]);
      if (!hkey) {
        // Not written by a presence_store; drop it from the index.
        malformed_.fetch_add(1, std::memory_order_relaxed);
        auto z = pool_->command({"ZREM", index_key(), (*ids)[i]});
        if (!z)
          return track(std::move(z.error()));
        continue;
      }
      auto& cr = (*caps_reply)[i];
      todo.push_back(item{(*ids)[i], std::move(*hkey),
                          cr.is_nil() ? std::vector<std::string>{}
                                      : split(cr.str)});
    }
    for (int attempt = 0; attempt < max_attempts && !todo.empty(); ++attempt) {
      script_call c;
      auto& [keys, args] = c;
      keys = {index_key(), names_.presence_updates(), capabilities_key()};
      args = {std::to_string(cutoff), max_len, cprefix,
              std::to_string(todo.size())};
      for (auto& it : todo) {
        keys.push_back(it.hkey);
        size_t nk = 0;
        for (auto& cap : it.caps) {
          if (!is_valid_id(cap))
            return make_error(errc::decode_failed,
                              "invalid capability in the store: " + cap);
          keys.push_back(capability_key(cap));
          ++nk;
        }
        args.push_back(it.id);
        args.push_back(std::to_string(nk));
      }
      auto res = run_scripts(sweep_lua, {c});
      if (!res)
        return std::move(res.error());
      auto& reply = res->front();
      if (!reply.is_array() || reply.size() != todo.size())
        return unexpected_reply("the sweep script", reply);
      std::vector<item> again;
      for (size_t i = 0; i < reply.size(); ++i) {
        auto& x = reply[i];
        if (auto more = caps_request(x)) {
          todo[i].caps = std::move(*more);
          again.push_back(std::move(todo[i]));
          continue;
        }
        if (!x.is_array())
          continue; // 0: not stale, or another node swept it
        if (x.size() != 4)
          return unexpected_reply("the sweep script", reply);
        presence p;
        if (!x[2].str.empty()) {
          if (auto d = decode<presence>(x[2].str))
            p = std::move(*d);
          else
            malformed_.fetch_add(1, std::memory_order_relaxed);
        }
        p.nova_id = todo[i].id;
        if (p.node_id.empty())
          p.node_id = x[1].str;
        p.status = presence_status::offline;
        p.current_task.clear();
        if (auto seen = x[3].as_double())
          p.last_seen = static_cast<int64_t>(*seen);
        changes.push_back(std::move(p));
      }
      todo = std::move(again);
    }
    if (!todo.empty())
      return make_error(errc::backend_unavailable,
                        "capabilities of Nova '" + todo.front().id
                          + "' keep changing concurrently");
    if (ids->size() < settings_.batch)
      break;
  }
  return changes;
}

// -- reads --------------------------------------------------------------------

std::optional<presence> presence_store::from_fields(const redis_value& f) {
  // HMGET data status current_task last_seen
  if (!f.is_array() || f.size() != 4 || f[0].is_nil())
    return std::nullopt;
  auto p = decode<presence>(f[0].str);
  if (!p) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  if (!f[1].is_nil()) {
    auto st = parse_presence_status(f[1].str);
    if (!st) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    p->status = *st;
  }
  if (!f[2].is_nil())
    p->current_task = f[2].str;
  if (auto seen = f[3].as_int())
    p->last_seen = *seen;
  return std::move(*p);
}

caf::expected<std::optional<presence>>
presence_store::get(const std::string& nova_id) {
  auto hkey = names_.presence(nova_id);
  if (!hkey)
    return std::move(hkey.error());
  auto r = pool_->command({"HMGET", *hkey, "data", "status", "current_task",
                           "last_seen"});
  if (!r)
    return track(std::move(r.error()));
  return from_fields(*r);
}

caf::expected<std::vector<presence>>
presence_store::discover(const std::string& capability, int64_t now_ms) {
  std::string key = index_key();
  if (!capability.empty()) {
    if (auto err = check_id(capability, "capability"))
      return err;
    key = capability_key(capability);
  }
  auto r = pool_->command({"ZREVRANGEBYSCORE", key, "+inf",
                           std::to_string(now_ms - offline_after_ms())});
  if (!r)
    return track(std::move(r.error()));
  auto ids = r->as_strings();
  if (!ids)
    return unexpected_reply("ZREVRANGEBYSCORE", *r);
  std::vector<std::vector<std::string>> cmds;
  std::vector<std::string> kept;
  for (auto& id : *ids) {
    auto hkey = names_.presence(id);
    if (!hkey) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    cmds.push_back({"HMGET", *hkey, "data", "status", "current_task",
                    "last_seen"});
    kept.push_back(id);
  }
  std::vector<presence> out;
  if (cmds.empty())
    return out;
  auto fields = pool_->pipeline(cmds);
  if (!fields)
    return track(std::move(fields.error()));
  for (size_t i = 0; i < fields->size(); ++i) {
    auto p = from_fields((*fields)[i]);
    if (!p || p->status == presence_status::offline || p->nova_id != kept[i])
      continue;
    if (!capability.empty()
        && std::find(p->capabilities.begin(), p->capabilities.end(),
                     capability)
             == p->capabilities.end())
      continue;
    out.push_back(std::move(*p));
  }
  return out;
}

caf::expected<std::vector<presence>> presence_store::list(size_t limit) {
  std::vector<presence> out;
  if (limit == 0)
    return out;
  auto r = pool_->command({"ZREVRANGE", index_key(), "0",
                           std::to_string(limit - 1)});
  if (!r)
    return track(std::move(r.error()));
  auto ids = r->as_strings();
  if (!ids)
    return unexpected_reply("ZREVRANGE", *r);
  std::vector<std::vector<std::string>> cmds;
  for (auto& id : *ids) {
    auto hkey = names_.presence(id);
    if (!hkey) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    cmds.push_back({"HMGET", *hkey, "data", "status", "current_task",
                    "last_seen"});
  }
  if (cmds.empty())
    return out;
  auto fields = pool_->pipeline(cmds);
  if (!fields)
    return track(std::move(fields.error()));
  for (auto& f : *fields)
    if (auto p = from_fields(f))
      out.push_back(std::move(*p));
  return out;
}

} // namespace nova
