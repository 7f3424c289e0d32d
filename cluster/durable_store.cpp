#include "cluster/durable_store.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "cluster/redis_util.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using redis_util::to_ms;
using redis_util::unexpected_reply;
using redis_util::field_ptr;

// -- Lua scripts --------------------------------------------------------------
//
// Every key a script touches is in KEYS (Dragonfly refuses others).

// The dead copy first, then ack and delete: whatever stops the script half
// way, the entry is never only gone. XACK goes through pcall: a broadcast or
// event stream read by `replay` may have no group.
// KEYS: stream, dead. ARGV: group, entry, reason, dead_max_len
const std::string move_to_dead_lua = R"lua(
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then
  pcall(redis.call, 'XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*'}
local fields = e[1][2]
if type(fields) == 'table' then
  for _, v in ipairs(fields) do args[#args + 1] = v end
end
args[#args + 1] = 'reason'
args[#args + 1] = ARGV[3]
args[#args + 1] = 'stream'
args[#args + 1] = KEYS[1]
args[#args + 1] = 'entry'
args[#args + 1] = ARGV[2]
redis.call(unpack(args))
pcall(redis.call, 'XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
)lua";

// -- helpers ------------------------------------------------------------------

bool all_digits(std::string_view x) {
  return !x.empty()
         && std::all_of(x.begin(), x.end(),
                        [](char c) { return c >= '0' && c <= '9'; });
}

// "<ms>-<seq>", both decimal.
bool is_entry_id(std::string_view x) {
  auto dash = x.find('-');
  return dash != std::string_view::npos && all_digits(x.substr(0, dash))
         && all_digits(x.substr(dash + 1));
}

// An entry id ("ms-seq", or "ms" for "ms-0") as numbers, for ordering.
std::pair<uint64_t, uint64_t> entry_id_parts(const std::string& id) {
  auto dash = id.find('-');
  uint64_t ms = 0;
  uint64_t seq = 0;
  std::from_chars(id.data(), id.data() + std::min(dash, id.size()), ms);
  if (dash != std::string::npos)
    std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  return {ms, seq};
}

std::string entry_id_of(uint64_t ms, uint64_t seq) {
  return std::to_string(ms) + "-" + std::to_string(seq);
}

// The next possible stream id after `id`, for exclusive ranges.
std::string next_stream_id(const std::string& id) {
  auto [ms, seq] = entry_id_parts(id);
  if (id.find('-') == std::string::npos)
    return entry_id_of(ms, 1);
  if (seq == UINT64_MAX)
    return entry_id_of(ms + 1, 0);
  return entry_id_of(ms, seq + 1);
}

// The stream id just before `id`, for a read after it.
std::string previous_stream_id(const std::string& id) {
  auto [ms, seq] = entry_id_parts(id);
  if (seq > 0)
    return entry_id_of(ms, seq - 1);
  if (ms == 0)
    return "0-0";
  return entry_id_of(ms - 1, UINT64_MAX);
}

// Entry ids in stream order.
bool entry_id_less(const std::string& x, const std::string& y) {
  return entry_id_parts(x) < entry_id_parts(y);
}

// The greatest of `ids` (not empty); each parsed once.
const std::string& last_entry_id(const std::vector<std::string>& ids) {
  const std::string* best = &ids.front();
  auto best_parts = entry_id_parts(*best);
  for (auto& id : ids) {
    auto parts = entry_id_parts(id);
    if (best_parts < parts) {
      best = &id;
      best_parts = parts;
    }
  }
  return *best;
}

// An envelope from an entry's fields, or why not.
caf::expected<envelope> decode_entry(const redis_value& fields) {
  auto* raw = field_ptr(fields, "envelope");
  if (raw == nullptr)
    return make_error(errc::decode_failed,
                      "stream entry has no envelope field");
  return decode<envelope>(*raw);
}

/// Appends the envelope of one stream entry (`[id, fields]`) to `out` when
/// it decodes and its subject matches `subject_pattern` (empty: all);
/// counts what does not decode in `malformed`.
void collect_entry(const redis_value& e, std::vector<stored_envelope>& out,
                   const std::string& subject_pattern,
                   std::atomic<uint64_t>& malformed) {
  if (!subject_pattern.empty()) {
    // The plain field spares decoding what the filter drops.
    auto* subject = field_ptr(e[1], "subject");
    if (subject != nullptr && !subject_matches(subject_pattern, *subject))
      return;
  }
  auto env = decode_entry(e[1]);
  if (!env) {
    malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!subject_pattern.empty()
      && !subject_matches(subject_pattern, env->subject))
    return;
  out.push_back({e[0].str, std::move(*env)});
}

// Reads an XREAD reply of one stream straight into envelopes: the
// `envelope` field of each entry is decoded from the parser's bytes, the
// other fields are skipped. Reply shape: [[stream, [[id, [field, value,
// ...]], ...]]], or nil when nothing is new.
class entry_reader final : public reply_visitor {
public:
  entry_reader(std::vector<stored_envelope>& out,
               std::vector<std::pair<std::string, std::string>>& bad)
    : out_(out), bad_(bad) {
    // nop
  }

  void on_array(size_t depth, size_t index, size_t elements) override {
    if (depth == 3) {
      finish_entry();
      out_.emplace_back();
      open_ = true;
      found_ = false;
      reason_.clear();
    } else if (depth == 2 && index == 1) {
      out_.reserve(out_.size() + elements);
    } else if (depth > 4 || (depth == 4 && index != 1)) {
      shape_error_ = true;
    }
  }

  void on_string(size_t depth, size_t index, redis_value::type t,
                 std::string_view bytes) override {
    if (depth == 0 && t == redis_value::type::error) {
      error_.assign(bytes.data(), bytes.size());
      return;
    }
    if (depth == 4 && index == 0 && open_) {
      out_.back().entry_id.assign(bytes.data(), bytes.size());
      last_.assign(bytes.data(), bytes.size());
      return;
    }
    if (depth == 5 && open_) {
      if (index % 2 == 0) {
        in_envelope_ = bytes == "envelope";
      } else if (in_envelope_ && !found_) {
        found_ = true;
        if (auto err = decode_into(bytes, out_.back().env))
          reason_ = describe(err);
      }
      return;
    }
    if (depth != 2 || index != 0) // the stream name
      shape_error_ = true;
  }

  void on_integer(size_t, size_t, int64_t) override {
    shape_error_ = true;
  }

  void on_nil(size_t depth, size_t index) override {
    if (depth == 4 && index == 1 && open_) {
      reason_ = "stream entry has no fields";
      return;
    }
    if (depth != 0)
      shape_error_ = true;
  }

  // Settles the last entry; call once the reply is read.
  void finish() {
    finish_entry();
  }

  [[nodiscard]] const std::string& error() const noexcept {
    return error_;
  }

  [[nodiscard]] bool shape_error() const noexcept {
    return shape_error_;
  }

  // The id of the last entry read, malformed or not; empty if none.
  [[nodiscard]] std::string& last() noexcept {
    return last_;
  }

private:
  void finish_entry() {
    if (!open_)
      return;
    open_ = false;
    if (!found_ && reason_.empty())
      reason_ = "stream entry has no envelope field";
    if (reason_.empty())
      return;
    bad_.emplace_back(std::move(out_.back().entry_id), std::move(reason_));
    out_.pop_back();
  }

  std::vector<stored_envelope>& out_;
  std::vector<std::pair<std::string, std::string>>& bad_;
  std::string error_;
  std::string last_;
  std::string reason_;
  bool open_ = false;
  bool found_ = false;
  bool in_envelope_ = false;
  bool shape_error_ = false;
};

} // namespace

// -- dedup_window -------------------------------------------------------------

dedup_window::dedup_window(size_t capacity)
  : ring_(std::max<size_t>(capacity, 1)), hashes_(ring_.size()) {
  // At most half full: probe runs stay short.
  size_t n = 16;
  while (n < ring_.size() * 2)
    n *= 2;
  slots_.assign(n, 0);
  mask_ = n - 1;
}

uint64_t dedup_window::hash(std::string_view x) noexcept {
  // 8 bytes at a time, multiply-xorshift mixing; ids are short.
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ x.size();
  size_t i = 0;
  for (; i + 8 <= x.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, x.data() + i, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
  }
  if (i < x.size()) {
    uint64_t w = 0;
    std::memcpy(&w, x.data() + i, x.size() - i);
    h = (h ^ w) * 0x94d049bb133111ebULL;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 32);
}

size_t dedup_window::find(const msg_id& id, uint64_t h) const noexcept {
  // The upper half of the hash is both the tag in the slot and the home
  // position: probing and shifting never need the ids themselves.
  auto tag = h >> 32;
  for (auto i = static_cast<size_t>(tag) & mask_;; i = (i + 1) & mask_) {
    auto slot = slots_[i];
    if (slot == 0)
      return i;
    if ((slot >> 32) == tag
        && ring_[static_cast<uint32_t>(slot) - 1].view() == id.view())
      return i;
  }
}

void dedup_window::erase_slot(size_t i) noexcept {
  // Backward shift: an entry further on whose home is not between the hole
  // and itself moves into the hole.
  for (auto j = (i + 1) & mask_;; j = (j + 1) & mask_) {
    auto slot = slots_[j];
    if (slot == 0)
      break;
    auto home = static_cast<size_t>(slot >> 32) & mask_;
    if (((j - home) & mask_) >= ((j - i) & mask_)) {
      slots_[i] = slot;
      i = j;
    }
  }
  slots_[i] = 0;
}

bool dedup_window::seen_before(const msg_id& id) {
  if (id.empty())
    return false;
  auto h = hash(id.view());
  auto i = find(id, h);
  if (slots_[i] != 0)
    return true;
  if (size_ == ring_.size()) {
    // Forget the oldest, then look for the place again: the shift may have
    // moved the run this id belongs to.
    erase_slot(find(ring_[next_], hashes_[next_]));
    --size_;
    i = find(id, h);
  }
  ring_[next_] = id;
  hashes_[next_] = h;
  slots_[i] = (h >> 32 << 32) | (static_cast<uint64_t>(next_) + 1);
  next_ = (next_ + 1) % ring_.size();
  ++size_;
  return false;
}

bool dedup_window::contains(const msg_id& id) const {
  return !id.empty() && slots_[find(id, hash(id.view()))] != 0;
}

void dedup_window::clear() {
  std::fill(slots_.begin(), slots_.end(), 0);
  for (auto& x : ring_)
    x.clear();
  next_ = 0;
  size_ = 0;
}

// -- construction -------------------------------------------------------------

durable_store::durable_store(std::shared_ptr<redis_pool> pool, naming names,
                             settings s)
  : settings_(std::move(s)), names_(std::move(names)), pool_(std::move(pool)) {
  // nop
}

caf::expected<std::shared_ptr<durable_store>>
durable_store::make(std::shared_ptr<redis_pool> pool, naming names,
                    settings s) {
  if (!pool)
    return make_error(errc::invalid_argument,
                      "durable_store needs a redis pool");
  if (s.max_len == 0 || s.dead_max_len == 0 || s.page == 0)
    return make_error(errc::invalid_argument,
                      "durable_store settings: max_len, dead_max_len and "
                      "page must be positive");
  if (s.max_age && s.max_age->count() <= 0)
    return make_error(errc::invalid_argument,
                      "durable_store settings: max_age must be positive");
  return std::shared_ptr<durable_store>{
    new durable_store(std::move(pool), std::move(names), std::move(s))};
}

std::string durable_store::group() const {
  return names_.prefix() + ".durable";
}

std::string durable_store::cursors_key() const {
  return names_.prefix() + ".durable.cursors";
}

std::string durable_store::dead_stream() const {
  return names_.prefix() + ".durable.dead";
}

caf::error durable_store::track(caf::error err) {
  if (is(err, errc::backend_unavailable))
    store_errors_.fetch_add(1, std::memory_order_relaxed);
  return err;
}

caf::error durable_store::check_stream(const std::string& stream) const {
  auto& p = names_.prefix();
  if (stream.size() <= p.size() + 1 || stream.compare(0, p.size(), p) != 0
      || stream[p.size()] != '.')
    return make_error(errc::invalid_argument,
                      "stream '" + stream.substr(0, 80)
                        + "' is not a key under prefix '" + p + "'");
  return caf::none;
}

// -- append -------------------------------------------------------------------

caf::expected<std::string>
durable_store::stream_for(const envelope& env) const {
  switch (env.kind) {
    case kind::direct:
    case kind::request:
    case kind::response:
      return names_.inbox(env.to);
    case kind::broadcast:
      return names_.broadcast();
    case kind::multicast:
      return names_.group(env.to);
    case kind::event: {
      auto domain = std::string_view{env.subject};
      domain = domain.substr(0, domain.find('.'));
      return names_.event_stream(domain);
    }
    case kind::emergency:
      return names_.emergency();
    default:
      break;
  }
  return make_error(errc::invalid_argument,
                    fmt::format("no durable stream for envelopes of kind {}",
                                to_string(env.kind)));
}

std::vector<std::string>
durable_store::minid_trim(const std::string& stream, bool exact) const {
  auto min_ms = std::to_string(
    std::max<int64_t>(now_ms() - to_ms(*settings_.max_age), 0));
  if (exact)
    return {"XTRIM", stream, "MINID", min_ms};
  return {"XTRIM", stream, "MINID", "~", min_ms};
}

caf::expected<std::string> durable_store::append(const envelope& env) {
  resp_buffer cmds;
  if (auto n = format_batch(&env, 1, cmds); !n)
    return std::move(n.error());
  std::vector<redis_value> replies;
  if (auto err = pool_->pipeline(cmds, replies))
    return track(std::move(err));
  auto& x = replies[0];
  if (x.is_error())
    return track(x.as_error());
  return x.as_string();
}

caf::expected<size_t> durable_store::format_batch(const envelope* envs,
                                                  size_t count,
                                                  resp_buffer& cmds) const {
  // Written straight into RESP: per envelope the encoded bytes once, no
  // argument vector.
  thread_local std::string encoded;
  auto max_len = std::to_string(settings_.max_len);
  std::vector<std::string> trims;
  const envelope* prev = nullptr;
  std::string stream;
  for (size_t i = 0; i < count; ++i) {
    const auto& env = envs[i];
    if (settings_.max_payload > 0
        && env.payload.size() > settings_.max_payload)
      return make_error(errc::payload_too_large,
                        fmt::format("payload of {} bytes exceeds max_payload "
                                    "of {} bytes (envelope {})",
                                    env.payload.size(), settings_.max_payload,
                                    env.id.view()));
    // Most of a batch goes to few streams: name one once per run.
    if (prev == nullptr || prev->kind != env.kind || prev->to != env.to
        || (env.kind == kind::event && prev->subject != env.subject)) {
      auto s = stream_for(env);
      if (!s)
        return std::move(s.error());
      stream = std::move(*s);
      if (settings_.max_age
          && std::find(trims.begin(), trims.end(), stream) == trims.end())
        trims.push_back(stream);
    }
    prev = &env;
    encoded.clear();
    encode_to(env, encoded);
    cmds.begin(env.subject.empty() ? 14 : 16)
      .arg("XADD")
      .arg(stream)
      .arg("MAXLEN")
      .arg("~")
      .arg(max_len)
      .arg("*")
      .arg("envelope")
      .arg(encoded)
      .arg("id")
      .arg(env.id.view())
      .arg("from")
      .arg(env.from)
      .arg("kind")
      .arg(to_string(env.kind));
    // Direct sends mostly have none; every field costs the server time on
    // each write and read.
    if (!env.subject.empty())
      cmds.arg("subject").arg(env.subject);
  }
  for (auto& t : trims) {
    auto argv = minid_trim(t);
    cmds.begin(argv.size());
    for (auto& x : argv)
      cmds.arg(x);
  }
  return count;
}

caf::expected<std::vector<std::string>>
durable_store::entry_ids_of(std::vector<redis_value>& replies, size_t n) {
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n && i < replies.size(); ++i) {
    auto& x = replies[i];
    if (x.is_error())
      return make_error(errc::invalid_argument,
                        fmt::format("XADD {} of {} in the batch failed ({} "
                                    "appended before it): {}",
                                    i + 1, n, out.size(), x.str));
    if (x.t != redis_value::type::string)
      return unexpected_reply("XADD", x);
    out.push_back(std::move(x.str));
  }
  return out;
}

caf::expected<std::vector<std::string>>
durable_store::append_batch(const std::vector<envelope>& envs) {
  if (envs.empty())
    return std::vector<std::string>{};
  thread_local resp_buffer cmds;
  thread_local std::vector<redis_value> replies;
  cmds.clear();
  auto n = format_batch(envs.data(), envs.size(), cmds);
  if (!n)
    return std::move(n.error());
  if (auto err = pool_->pipeline(cmds, replies))
    return track(std::move(err));
  return entry_ids_of(replies, *n);
}

caf::error durable_store::appender::send(const std::vector<envelope>& envs) {
  if (envs.empty())
    return caf::none;
  cmds_.clear();
  auto n = store_.format_batch(envs.data(), envs.size(), cmds_);
  if (!n)
    return std::move(n.error());
  if (!lease_) {
    auto conn = store_.pool_->lease();
    if (!conn)
      return store_.track(std::move(conn.error()));
    lease_.emplace(std::move(*conn));
  }
  if (auto err = (*lease_)->send(cmds_)) {
    reset();
    return store_.track(std::move(err));
  }
  batches_.push_back(batch{*n, cmds_.commands()});
  return caf::none;
}

caf::expected<std::vector<std::string>> durable_store::appender::receive() {
  if (batches_.empty() || !lease_)
    return make_error(errc::invalid_argument, "no batch in flight");
  auto b = batches_.front();
  batches_.pop_front();
  if (auto err = (*lease_)->receive(b.commands, replies_)) {
    reset();
    return store_.track(std::move(err));
  }
  if (batches_.empty())
    lease_.reset(); // idle: the connection goes back to the pool
  return entry_ids_of(replies_, b.xadds);
}

void durable_store::appender::reset() {
  batches_.clear();
  lease_.reset();
}

// -- catch-up -----------------------------------------------------------------

std::optional<std::string>
durable_store::delivered(const std::string& nova_id) {
  std::lock_guard guard{delivered_mtx_};
  auto i = delivered_.find(nova_id);
  if (i == delivered_.end())
    return std::nullopt;
  return i->second;
}

void durable_store::set_delivered(const std::string& nova_id,
                                  std::string entry_id) {
  std::lock_guard guard{delivered_mtx_};
  delivered_[nova_id] = std::move(entry_id);
}

caf::expected<std::string>
durable_store::settled_position(redis_connection& conn,
                                const std::string& stream,
                                const std::string& nova_id) {
  auto r = conn.pipeline({{"HGET", cursors_key(), nova_id},
                          {"XINFO", "GROUPS", stream}});
  if (!r)
    return track(std::move(r.error()));
  auto& cursor = (*r)[0];
  if (cursor.is_error())
    return cursor.as_error();
  if (!cursor.is_nil())
    return cursor.str;
  // No cursor. An error here is "no such key": nothing was ever sent.
  auto& groups = (*r)[1];
  if (!groups.is_array())
    return std::string{"0-0"};
  for (auto& g : groups.elements) {
    std::string name;
    std::string last;
    for (size_t i = 0; i + 1 < g.size(); i += 2) {
      if (g[i].str == "name")
        name = g[i + 1].str;
      else if (g[i].str == "last-delivered-id")
        last = g[i + 1].str;
    }
    if (name != group() || last.empty())
      continue;
    // Summary form: [count, smallest id, greatest id, consumers].
    auto pel = conn.command({"XPENDING", stream, group()});
    if (!pel)
      return track(std::move(pel.error()));
    if (pel->size() >= 2 && is_entry_id((*pel)[1].str))
      return previous_stream_id((*pel)[1].str);
    return last;
  }
  return std::string{"0-0"};
}

caf::expected<std::vector<stored_envelope>>
durable_store::pending_and_new(const std::string& nova_id, size_t count,
                               std::vector<malformed_entry>* malformed,
                               bool with_pending,
                               const std::vector<std::string>& acks) {
  auto stream = names_.inbox(nova_id);
  if (!stream)
    return std::move(stream.error());
  std::vector<stored_envelope> out;
  if (count == 0)
    return out;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  resp_buffer cmds;
  std::vector<redis_value> replies;
  auto check = [&]() -> caf::error {
    for (auto& x : replies)
      if (x.is_error())
        return x.as_error();
    return caf::none;
  };
  if (!acks.empty()) {
    cmds.command({"HSET", cursors_key(), nova_id, last_entry_id(acks)});
    if (settings_.delete_on_ack) {
      cmds.begin(acks.size() + 2).arg("XDEL").arg(*stream);
      for (auto& id : acks)
        cmds.arg(id);
    }
  }
  // Without pending entries: after what this store handed out last (one
  // round trip with the settling). Else, or when this node never read
  // this inbox: after the cursor.
  auto from = with_pending ? std::nullopt : delivered(nova_id);
  if (!from) {
    if (!cmds.empty()) {
      if (auto err = (*conn)->pipeline(cmds, replies))
        return track(std::move(err));
      if (auto err = check())
        return err;
      cmds.clear();
    }
    auto pos = settled_position(**conn, *stream, nova_id);
    if (!pos)
      return std::move(pos.error());
    from = std::move(*pos);
  }
  cmds.command(
    {"XREAD", "COUNT", std::to_string(count), "STREAMS", *stream, *from});
  std::vector<std::pair<std::string, std::string>> bad_entries;
  entry_reader reader{out, bad_entries};
  if (auto err = (*conn)->pipeline(cmds, replies, &reader))
    return track(std::move(err));
  reader.finish();
  if (auto err = check())
    return err;
  if (!reader.error().empty())
    return redis_value{redis_value::type::error, 0, reader.error(), {}}
      .as_error();
  if (reader.shape_error())
    return make_error(errc::decode_failed,
                      "unexpected reply to XREAD of " + *stream);
  set_delivered(nova_id, reader.last().empty() ? std::move(*from)
                                               : std::move(reader.last()));
  std::vector<malformed_entry> bad;
  for (auto& [id, reason] : bad_entries) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    bad.push_back({*stream, std::move(id), std::move(reason)});
  }
  if (malformed) {
    malformed->insert(malformed->end(), bad.begin(), bad.end());
  } else {
    { auto done = std::move(*conn); } // give the connection back first
    for (auto& m : bad)
      if (auto err = move_to_dead(m.stream, m.entry_id, m.reason))
        return err;
  }
  return out;
}

caf::expected<size_t>
durable_store::ack(const std::string& nova_id,
                   const std::vector<std::string>& entry_ids) {
  auto stream = names_.inbox(nova_id);
  if (!stream)
    return std::move(stream.error());
  if (entry_ids.empty())
    return size_t{0};
  for (auto& id : entry_ids)
    if (!is_entry_id(id))
      return make_error(errc::invalid_argument,
                        "'" + id.substr(0, 80) + "' is no stream entry id");
  auto last = last_entry_id(entry_ids);
  // A cursor only moves forward: a late ack of older entries changes
  // nothing. One reader per node and Nova settles in order; the check is
  // for a Nova that moved between nodes.
  auto r = pool_->pipeline({{"HGET", cursors_key(), nova_id}});
  if (!r)
    return track(std::move(r.error()));
  auto& old = (*r)[0];
  if (old.is_error())
    return old.as_error();
  size_t fresh = 0;
  for (auto& id : entry_ids)
    if (old.is_nil() || entry_id_less(old.str, id))
      ++fresh;
  if (fresh == 0)
    return fresh;
  std::vector<std::vector<std::string>> cmds{
    {"HSET", cursors_key(), nova_id, last}};
  if (settings_.delete_on_ack) {
    cmds.push_back({"XDEL", *stream});
    cmds.back().insert(cmds.back().end(), entry_ids.begin(), entry_ids.end());
  }
  auto w = pool_->pipeline(cmds);
  if (!w)
    return track(std::move(w.error()));
  for (auto& x : *w)
    if (x.is_error())
      return x.as_error();
  return fresh;
}

caf::error durable_store::move_to_dead(const std::string& stream,
                                       const std::string& entry_id,
                                       const std::string& reason) {
  if (auto err = check_stream(stream))
    return err;
  if (!is_entry_id(entry_id))
    return make_error(errc::invalid_argument,
                      "'" + entry_id.substr(0, 80) + "' is no stream entry id");
  auto r = pool_->eval(move_to_dead_lua, {stream, dead_stream()},
                       {group(), entry_id, reason,
                        std::to_string(settings_.dead_max_len)});
  if (!r)
    return track(std::move(r.error()));
  auto n = r->as_int();
  if (!n)
    return unexpected_reply("the move_to_dead script", *r);
  if (*n == 0)
    return make_error(errc::not_found, "no entry " + entry_id + " in stream "
                                         + stream);
  return caf::none;
}

// -- replay, trim, length -----------------------------------------------------

caf::expected<std::vector<stored_envelope>>
durable_store::replay(const std::string& stream, const std::string& from,
                      const std::string& subject_pattern, size_t limit) {
  if (auto err = check_stream(stream))
    return err;
  if (!subject_pattern.empty())
    if (auto err = check_subject(subject_pattern, true))
      return err;
  std::string start;
  if (from.empty() || from == "-")
    start = "-";
  else if (all_digits(from))
    start = from + "-0";
  else if (is_entry_id(from))
    start = from;
  else
    return make_error(errc::invalid_argument,
                      "replay start '" + from.substr(0, 80)
                        + "' is neither an entry id nor unix milliseconds");
  std::vector<stored_envelope> out;
  if (limit == 0)
    return out;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  // Without a filter every entry counts, so one page of `limit` does.
  auto page = subject_pattern.empty() ? limit : settings_.page;
  for (;;) {
    auto r = (*conn)->command({"XRANGE", stream, start, "+", "COUNT",
                               std::to_string(page)});
    if (!r)
      return track(std::move(r.error()));
    if (!r->is_array())
      return unexpected_reply("XRANGE", *r);
    for (auto& e : r->elements) {
      if (!e.is_array() || e.size() != 2)
        return unexpected_reply("XRANGE", *r);
      start = next_stream_id(e[0].str);
      if (out.size() >= limit)
        break;
      collect_entry(e, out, subject_pattern, malformed_);
    }
    if (out.size() >= limit || r->size() < page)
      break;
  }
  return out;
}

caf::expected<size_t> durable_store::trim(const std::string& stream) {
  if (auto err = check_stream(stream))
    return err;
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back({"XTRIM", stream, "MAXLEN", "~",
                  std::to_string(settings_.max_len)});
  if (settings_.max_age)
    cmds.push_back(minid_trim(stream, true));
  auto r = pool_->pipeline(cmds);
  if (!r)
    return track(std::move(r.error()));
  size_t removed = 0;
  for (auto& x : *r) {
    if (x.is_error())
      return x.as_error();
    auto n = x.as_int();
    if (!n)
      return unexpected_reply("XTRIM", x);
    removed += static_cast<size_t>(std::max<int64_t>(*n, 0));
  }
  return removed;
}

caf::expected<size_t> durable_store::length(const std::string& stream) {
  if (auto err = check_stream(stream))
    return err;
  auto r = pool_->command({"XLEN", stream});
  if (!r)
    return track(std::move(r.error()));
  auto n = r->as_int();
  if (!n)
    return unexpected_reply("XLEN", *r);
  return static_cast<size_t>(std::max<int64_t>(*n, 0));
}

namespace {

/// Appends the decodable entries of an XRANGE/XREVRANGE reply to `out`.
void collect_entries(const redis_value& r, std::vector<stored_envelope>& out,
                     const std::string& subject_pattern,
                     std::atomic<uint64_t>& malformed) {
  for (auto& e : r.elements)
    if (e.is_array() && e.size() == 2)
      collect_entry(e, out, subject_pattern, malformed);
}

} // namespace

caf::expected<std::vector<stored_envelope>>
durable_store::recent_events(const std::string& subject_pattern, size_t limit,
                             size_t scan_limit, size_t max_streams) {
  auto pattern = subject_pattern.empty() ? std::string{">"} : subject_pattern;
  if (auto err = check_subject(pattern, true))
    return err;
  std::vector<stored_envelope> out;
  if (limit == 0)
    return out;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  std::vector<std::string> streams;
  auto domain = pattern.substr(0, pattern.find('.'));
  if (domain != "*" && domain != ">") {
    auto stream = names_.event_stream(domain);
    if (!stream)
      return stream.error();
    streams.push_back(std::move(*stream));
  } else {
    auto match = names_.prefix() + ".events.*";
    std::string cursor = "0";
    do {
      auto r = (*conn)->command(
        {"SCAN", cursor, "MATCH", match, "COUNT", "1000", "TYPE", "stream"});
      if (!r)
        return track(std::move(r.error()));
      if (!r->is_array() || r->size() != 2 || !(*r)[1].is_array())
        return unexpected_reply("SCAN", *r);
      cursor = (*r)[0].str;
      for (auto& k : (*r)[1].elements)
        if (streams.size() < max_streams)
          streams.push_back(k.str);
    } while (cursor != "0" && streams.size() < max_streams);
  }
  auto page = std::min(scan_limit, std::max<size_t>(limit, 1));
  for (const auto& stream : streams) {
    // Newest first, page by page, until `limit` matches or `scan_limit`.
    std::vector<stored_envelope> found;
    std::string end = "+";
    size_t scanned = 0;
    while (found.size() < limit && scanned < scan_limit) {
      auto r = (*conn)->command({"XREVRANGE", stream, end, "-", "COUNT",
                                 std::to_string(page)});
      if (!r)
        return track(std::move(r.error()));
      if (!r->is_array())
        return unexpected_reply("XREVRANGE", *r);
      if (r->size() == 0)
        break;
      scanned += r->size();
      collect_entries(*r, found, pattern, malformed_);
      auto& last = r->elements.back();
      if (!last.is_array() || last.size() != 2 || r->size() < page)
        break;
      // The entry before the last one read: "(" makes the range exclusive.
      end = "(" + last[0].str;
    }
    if (found.size() > limit)
      found.resize(limit);
    out.insert(out.end(), std::make_move_iterator(found.begin()),
               std::make_move_iterator(found.end()));
  }
  // Oldest first, by entry id across streams (ids are times).
  auto key = [](const stored_envelope& x) {
    auto dash = x.entry_id.find('-');
    return std::make_pair(std::stoull(x.entry_id.substr(0, dash)),
                          std::stoull(x.entry_id.substr(dash + 1)));
  };
  std::sort(out.begin(), out.end(),
            [&](const auto& x, const auto& y) { return key(x) < key(y); });
  if (out.size() > limit)
    out.erase(out.begin(), out.end() - static_cast<ptrdiff_t>(limit));
  return out;
}

caf::expected<std::vector<stored_envelope>>
durable_store::pending(const std::string& nova_id, size_t limit) {
  auto stream = names_.inbox(nova_id);
  if (!stream)
    return stream.error();
  std::vector<stored_envelope> out;
  if (limit == 0)
    return out;
  auto conn = pool_->lease();
  if (!conn)
    return track(std::move(conn.error()));
  auto from = settled_position(**conn, *stream, nova_id);
  if (!from)
    return std::move(from.error());
  auto r = (*conn)->command({"XRANGE", *stream, "(" + *from, "+", "COUNT",
                             std::to_string(limit)});
  if (!r)
    return track(std::move(r.error()));
  if (r->is_array())
    collect_entries(*r, out, {}, malformed_);
  return out;
}

} // namespace nova
