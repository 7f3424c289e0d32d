#include "cluster/nats_client.hpp"

#include "cluster/c_handle.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include "messages/errc.hpp"

// nats_Close is deliberately never called. It tears down process-wide state
// (the callback thread, timers, the delivery pool) shared by every
// connection; calling it from a static destructor or atexit would race with
// connections that CAF actors or other statics still hold, and nats_Open
// fails while a close is in progress. The OS reclaims everything at exit.

namespace nova {

namespace {

// -- handles ------------------------------------------------------------------

void free_c_array(const char** p) noexcept {
  std::free(static_cast<void*>(p));
}

using options_ptr = c_handle<natsOptions, natsOptions_Destroy>;
using connection_ptr = c_handle<natsConnection, natsConnection_Destroy>;
using subscription_ptr = c_handle<natsSubscription, natsSubscription_Destroy>;
// -- messages without the garbage collector ------------------------------------
//
// nats.c hands every destroyed natsMsg to its garbage-collector thread and
// wakes that thread through a futex, and its header setter builds a hash map
// with three allocations per header. At a few hundred thousand messages a
// second both cost more than the rest of a publish. nats.c 3.x exports the two
// functions beneath its public ones: `natsMsg_create` (a message from a buffer
// holding the encoded headers and the payload, exactly as it arrives from the
// wire) and `natsMsg_free` (free at once, on this thread). They are not in
// nats.h, so they are declared here, used only with the 3.x series they were
// read from, and checked once at first use (headers, payload, subject and
// reply read back through the public API). If the check fails, the public API
// is used instead.

#if NATS_VERSION_MAJOR == 3
extern "C" {
natsStatus natsMsg_create(natsMsg** msg, const char* subject, int subject_len,
                          const char* reply, int reply_len, const char* buf,
                          int buf_len, int hdr_len);
void natsMsg_free(void* msg);
}
#endif

constexpr std::string_view header_line = "NATS/1.0\r\n";

/// The encoded header block of a message ("NATS/1.0\r\n...\r\n\r\n"),
/// read in place: `natsMsg_create` lays a message out as `subject\0`,
/// `reply\0` (if any), the header block and `\0` (if any), then the data.
/// An empty view: no headers. Nothing when the layout is not that (or the
/// status line carries a status, which nats.c turns into headers): then
/// the public API has to lift the headers.
std::optional<std::string_view> raw_headers(natsMsg* m) noexcept {
  const char* subject = natsMsg_GetSubject(m);
  const char* reply = natsMsg_GetReply(m);
  const char* data = natsMsg_GetData(m);
  if (subject == nullptr || data == nullptr)
    return std::nullopt;
  const char* after = reply != nullptr ? reply + std::strlen(reply) + 1
                                       : subject + std::strlen(subject) + 1;
  if (after == data)
    return std::string_view{};
  constexpr std::ptrdiff_t max_block = 1 << 20;
  if (data < after || data - after > max_block || data[-1] != '\0')
    return std::nullopt;
  std::string_view block{after, static_cast<size_t>(data - 1 - after)};
  if (block.size() < header_line.size() + 2
      || block.substr(0, header_line.size()) != header_line
      || block.substr(block.size() - 4) != "\r\n\r\n")
    return std::nullopt;
  return block;
}

/// Calls `f(key, value)` for each header line of a block `raw_headers`
/// returned. False if a line is not `Key: Value` (folded lines, say).
template <class F>
bool for_each_header(std::string_view block, F f) {
  auto rest = block.substr(header_line.size());
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    if (eol == std::string_view::npos)
      return false;
    auto line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (line.empty())
      return rest.empty();
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line[0] == ' '
        || line[0] == '\t')
      return false;
    auto key = line.substr(0, colon);
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    f(key, value);
  }
  return false;
}

struct direct_support {
  /// `natsMsg_create` and `natsMsg_free` work as declared.
  bool create = false;
  /// `raw_headers` finds the header block of a created message.
  bool read_headers = false;
};

direct_support check_direct_msgs() noexcept {
  direct_support out;
#if NATS_VERSION_MAJOR == 3
  std::string buf{header_line};
  buf += "Nova-Check: yes\r\nNova-Other: two words\r\n\r\n";
  auto hdr_len = static_cast<int>(buf.size());
  buf += "data";
  natsMsg* m = nullptr;
  if (natsMsg_create(&m, "a.b", 3, "r.s", 3, buf.data(),
                     static_cast<int>(buf.size()), hdr_len)
        != NATS_OK
      || m == nullptr)
    return out;
  auto equals = [](const char* x, std::string_view y) {
    return x != nullptr && std::string_view{x} == y;
  };
  auto raw = raw_headers(m);
  out.read_headers = raw && *raw == std::string_view{buf}.substr(0, hdr_len);
  const char* a = nullptr;
  const char* b = nullptr;
  auto data = natsMsg_GetData(m);
  out.create = natsMsgHeader_Get(m, "Nova-Check", &a) == NATS_OK
               && equals(a, "yes")
               && natsMsgHeader_Get(m, "Nova-Other", &b) == NATS_OK
               && equals(b, "two words") && natsMsg_GetDataLength(m) == 4
               && data != nullptr && std::string_view{data, 4} == "data"
               && equals(natsMsg_GetSubject(m), "a.b")
               && equals(natsMsg_GetReply(m), "r.s");
  natsMsg_free(m);
  out.read_headers = out.read_headers && out.create;
#endif
  return out;
}

const direct_support& direct() noexcept {
  static const direct_support x = check_direct_msgs();
  return x;
}

bool direct_msgs() noexcept {
  return direct().create;
}

void release_msg(natsMsg* m) noexcept {
#if NATS_VERSION_MAJOR == 3
  if (direct_msgs()) {
    natsMsg_free(m);
    return;
  }
#endif
  natsMsg_Destroy(m);
}

using msg_ptr = c_handle<natsMsg, release_msg>;
using inbox_ptr = c_handle<natsInbox, natsInbox_Destroy>;
// Arrays nats.c allocates and the caller frees with free().
using c_array_ptr = c_handle<const char*, free_c_array>;

// How long ~nats_subscription waits for a running handler to return.
constexpr auto handler_grace = std::chrono::seconds(10);

// Slack on top of drain_timeout for the closed callback to arrive.
constexpr auto close_grace = std::chrono::seconds(3);

// -- errors -------------------------------------------------------------------

std::string status_text(natsStatus s) {
  std::string out = natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  // The thread's last error may be stale: use it only when it is this one.
  if (last == s && detail != nullptr && *detail != '\0' && out != detail)
    out += fmt::format(" ({})", detail);
  return out;
}

errc errc_of(natsStatus s) noexcept {
  switch (s) {
    case NATS_TIMEOUT:
      return errc::request_timeout;
    case NATS_NO_RESPONDERS:
      return errc::unknown_nova;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
    case NATS_INVALID_QUEUE_NAME:
    case NATS_INVALID_TIMEOUT:
    case NATS_ADDRESS_MISSING:
      return errc::invalid_argument;
    case NATS_MAX_PAYLOAD:
      return errc::payload_too_large;
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_SLOW_CONSUMER:
      return errc::queue_full;
    case NATS_DRAINING:
      return errc::shutting_down;
    case NATS_NO_SERVER_SUPPORT:
      return errc::unsupported;
    default:
      return errc::backend_unavailable;
  }
}

caf::error to_error(natsStatus s, const std::string& what) {
  return make_error(errc_of(s), fmt::format("{}: {}", what, status_text(s)));
}

caf::error invalid(std::string what) {
  return make_error(errc::invalid_argument, std::move(what));
}

caf::error open_library() {
  static std::once_flag flag;
  static natsStatus status = NATS_OK;
  std::call_once(flag, [] { status = nats_Open(-1); });
  if (status != NATS_OK)
    return to_error(status, "cannot initialise nats.c");
  return caf::none;
}

int64_t to_ms(caf::timespan x) noexcept {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(x).count();
  if (duration_cast<nanoseconds>(milliseconds{ms}) < x)
    ++ms;
  return std::max<int64_t>(ms, 1);
}

int clamp_int(int64_t x) noexcept {
  return static_cast<int>(std::clamp<int64_t>(x, 0, INT_MAX));
}

// user:secret@host -> ***@host, for logs and error messages.
std::string redact(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  if (at == std::string::npos || url.find('/', start) < at)
    return url;
  return url.substr(0, start) + "***" + url.substr(at);
}

std::string redact(const std::vector<std::string>& urls) {
  std::string out;
  for (auto& url : urls) {
    if (!out.empty())
      out += ',';
    out += redact(url);
  }
  return out;
}

// -- validation ---------------------------------------------------------------

bool has_space_or_control(std::string_view x) noexcept {
  return std::any_of(x.begin(), x.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7f;
  });
}

caf::error check_subject(const char* what, std::string_view x, bool wildcards) {
  if (x.empty())
    return invalid(fmt::format("{} is empty", what));
  if (has_space_or_control(x))
    return invalid(fmt::format("{} '{}' contains whitespace or control "
                               "characters",
                               what, x));
  size_t pos = 0;
  for (;;) {
    auto dot = x.find('.', pos);
    auto token = x.substr(pos, dot == std::string_view::npos ? dot : dot - pos);
    if (token.empty())
      return invalid(fmt::format("{} '{}' has an empty token", what, x));
    auto wild = token.find_first_of("*>") != std::string_view::npos;
    if (wild && !wildcards)
      return invalid(fmt::format("{} '{}' must not contain wildcards", what, x));
    if (wild && token != "*" && token != ">")
      return invalid(fmt::format("{} '{}': a wildcard must be a whole token",
                                 what, x));
    if (token == ">" && dot != std::string_view::npos)
      return invalid(fmt::format("{} '{}': '>' must be the last token", what,
                                 x));
    if (dot == std::string_view::npos)
      return caf::none;
    pos = dot + 1;
  }
}

caf::error check_headers(const nova::headers& hdrs) {
  for (auto& [key, value] : hdrs) {
    if (key.empty())
      return invalid("a NATS header name is empty");
    auto bad_key = std::any_of(key.begin(), key.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u <= ' ' || u >= 0x7f || c == ':';
    });
    if (bad_key)
      return invalid(fmt::format("NATS header name '{}' must be printable "
                                 "ASCII without spaces or ':'",
                                 key));
    if (value.find_first_of(std::string_view{"\r\n\0", 3}) != std::string::npos)
      return invalid(fmt::format("NATS header '{}' has a CR, LF or NUL in its "
                                 "value",
                                 key));
  }
  return caf::none;
}

caf::error check_payload(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX))
    return make_error(errc::payload_too_large,
                      fmt::format("{} bytes exceed what nats.c can send",
                                  data.size()));
  return caf::none;
}

// -- messages -----------------------------------------------------------------

/// A message with `count` headers from `key(i)`/`value(i)`, validated by the
/// caller: built straight from the encoded bytes when nats.c allows it.
template <class Key, class Value>
caf::expected<msg_ptr> build_msg(const std::string& subject,
                                 const std::string& reply,
                                 std::string_view data, size_t count, Key key,
                                 Value value) {
  natsMsg* raw = nullptr;
#if NATS_VERSION_MAJOR == 3
  if (direct_msgs()) {
    thread_local std::string buf;
    buf.clear();
    if (count > 0) {
      buf += header_line;
      for (size_t i = 0; i < count; ++i) {
        buf += key(i);
        buf += ": ";
        buf += value(i);
        buf += "\r\n";
      }
      buf += "\r\n";
    }
    auto hdr_len = static_cast<int>(buf.size());
    buf += data;
    if (buf.size() > static_cast<size_t>(INT_MAX))
      return make_error(errc::payload_too_large,
                        fmt::format("{} bytes exceed what nats.c can send",
                                    buf.size()));
    auto s = natsMsg_create(&raw, subject.data(),
                            static_cast<int>(subject.size()), reply.data(),
                            static_cast<int>(reply.size()), buf.data(),
                            static_cast<int>(buf.size()), hdr_len);
    msg_ptr msg{raw};
    if (buf.capacity() > 64 * 1024)
      std::string{}.swap(buf); // keep no large body around per thread
    if (s != NATS_OK)
      return to_error(s, fmt::format("cannot build a message for '{}'",
                                     subject));
    return msg;
  }
#endif
  auto s = natsMsg_Create(&raw, subject.c_str(),
                          reply.empty() ? nullptr : reply.c_str(), data.data(),
                          static_cast<int>(data.size()));
  msg_ptr msg{raw};
  if (s != NATS_OK)
    return to_error(s, fmt::format("cannot build a message for '{}'", subject));
  for (size_t i = 0; i < count; ++i) {
    std::string k{key(i)};
    std::string v{value(i)};
    if (auto hs = natsMsgHeader_Set(msg.get(), k.c_str(), v.c_str());
        hs != NATS_OK)
      return to_error(hs, fmt::format("cannot set NATS header '{}'", k));
  }
  return msg;
}

caf::expected<msg_ptr> make_msg(const std::string& subject,
                                const std::string& reply, std::string_view data,
                                const nova::headers& hdrs) {
  std::vector<std::pair<std::string_view, std::string_view>> flat;
  flat.reserve(hdrs.size());
  for (auto& [key, value] : hdrs)
    flat.emplace_back(key, value);
  return build_msg(
    subject, reply, data, flat.size(),
    [&](size_t i) { return flat[i].first; },
    [&](size_t i) { return flat[i].second; });
}

/// `keys`: the headers to copy (all when empty).
/// With `borrow`, `borrowed` points into `msg`, which must outlive it.
nats_message to_message(natsMsg* msg, const std::vector<std::string>& keys,
                        bool borrow = false) {
  nats_message out;
  if (auto subject = natsMsg_GetSubject(msg))
    out.subject = subject;
  if (auto reply = natsMsg_GetReply(msg))
    out.reply = reply;
  auto data = natsMsg_GetData(msg);
  auto len = natsMsg_GetDataLength(msg);
  if (borrow)
    out.borrowed = std::string_view{data != nullptr ? data : "",
                                    static_cast<size_t>(std::max(len, 0))};
  else if (data != nullptr && len > 0)
    out.data.assign(data, static_cast<size_t>(len));
  std::optional<std::string_view> block;
  if (direct().read_headers)
    block = raw_headers(msg);
  if (block) {
    bool ok = block->empty()
              || for_each_header(*block, [&](std::string_view k,
                                             std::string_view v) {
      if (keys.empty()
          || std::find(keys.begin(), keys.end(), k) != keys.end())
        out.headers.emplace(std::string{k}, std::string{v});
    });
    if (ok) {
      out.no_responders = false; // a status line would have no block here
      return out;
    }
    out.headers.clear(); // odd lines: let nats.c parse them
  }
  if (!keys.empty()) {
    for (const auto& key : keys) {
      const char* value = nullptr;
      // NATS_NOT_FOUND: no such header (or none at all).
      if (natsMsgHeader_Get(msg, key.c_str(), &value) == NATS_OK)
        out.headers.emplace(key, value != nullptr ? value : "");
    }
  } else {
    const char** all = nullptr;
    int count = 0;
    if (natsMsgHeader_Keys(msg, &all, &count) == NATS_OK) {
      c_array_ptr guard{all};
      for (int i = 0; i < count; ++i) {
        const char* value = nullptr;
        if (natsMsgHeader_Get(msg, all[i], &value) == NATS_OK)
          out.headers.emplace(all[i], value != nullptr ? value : "");
      }
    }
  }
  out.no_responders = natsMsg_IsNoResponders(msg);
  return out;
}

// -- callback state -----------------------------------------------------------

// The state whose user callback runs on this thread, so that a callback
// destroying its own subscription or client does not wait for itself.
thread_local const void* running_state = nullptr;

class running_guard {
public:
  explicit running_guard(const void* x) noexcept : prev_(running_state) {
    running_state = x;
  }
  running_guard(const running_guard&) = delete;
  running_guard& operator=(const running_guard&) = delete;
  ~running_guard() {
    running_state = prev_;
  }

private:
  const void* prev_;
};

template <class F>
void guarded(const char* what, F&& f) noexcept {
  // An exception must never unwind into nats.c.
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("NATS {} handler threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("NATS {} handler threw an unknown exception", what);
  }
}

struct sub_state {
  sub_state(nats_client::message_handler f, std::string subj,
            std::vector<std::string> keys)
    : fn(std::move(f)), subject(std::move(subj)), header_keys(std::move(keys)) {
    // nop
  }

  nats_client::message_handler fn;
  const std::string subject;
  const std::vector<std::string> header_keys;
  bool borrow = false;
  // Messages known to be queued behind the last one delivered; used only by
  // the subscription's delivery, which nats.c runs one message at a time.
  uint64_t known_pending = 0;
  std::atomic<bool> closing{false};
  std::mutex mtx;
  std::condition_variable cv;
  bool completed = false;       // guarded by mtx
  int64_t reported_drops = 0;   // guarded by conn_state::mtx
  std::atomic<int64_t> last_dropped{0};
};

struct conn_state {
  nats_client::event_handler on_event;
  nats_client::error_handler on_slow;
  std::string servers; // redacted, for logs

  // Held while a user callback runs; `detached` stops callbacks for good.
  std::mutex cb_mtx;
  bool detached = false;

  std::mutex mtx;
  std::condition_variable cv;
  bool closed = false;
  std::unordered_map<natsSubscription*, sub_state*> subs;

  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> drops{0};
  // Set by the destructor: the disconnect that follows is no news.
  std::atomic<bool> closing{false};

  // Runs `f` holding cb_mtx, which serialises user callbacks with the drop
  // accounting and with `detach`; re-entrant on the thread of a callback.
  template <class F>
  void exclusive(F&& f) {
    if (running_state == this) {
      f();
      return;
    }
    std::lock_guard<std::mutex> guard{cb_mtx};
    running_guard rg{this};
    f();
  }

  // Only inside `exclusive`.
  template <class F>
  void call_user(const char* what, F&& f) {
    if (!detached)
      guarded(what, f);
  }

  void detach() {
    exclusive([this] { detached = true; });
  }

  void emit(nats_event e) {
    switch (e) {
      case nats_event::disconnected:
        if (closing)
          spdlog::debug("NATS disconnected on close ({})", servers);
        else
          spdlog::warn("NATS disconnected ({})", servers);
        break;
      case nats_event::connected:
      case nats_event::reconnected:
        spdlog::info("NATS {} ({})", to_string(e), servers);
        break;
      case nats_event::closed:
        spdlog::debug("NATS connection closed ({})", servers);
        break;
    }
    exclusive([&] {
      call_user("event", [&] {
        if (on_event)
          on_event(e);
      });
    });
  }

  // Reports the drops of `st` up to `total` not reported before. Only inside
  // `exclusive`, so that a report never overtakes or outlives the
  // subscription's final one.
  void account_drops(sub_state& st, int64_t total) {
    uint64_t delta = 0;
    {
      std::lock_guard<std::mutex> guard{mtx};
      st.last_dropped = total;
      if (total > st.reported_drops) {
        delta = static_cast<uint64_t>(total - st.reported_drops);
        st.reported_drops = total;
      }
    }
    if (delta == 0)
      return;
    drops.fetch_add(delta);
    spdlog::warn("NATS slow consumer on '{}': {} message(s) dropped ({} in "
                 "total on this subscription)",
                 st.subject, delta, total);
    call_user("slow-consumer", [&] {
      if (on_slow)
        on_slow(st.subject, delta);
    });
  }

  void slow_consumer(natsSubscription* sub) {
    int64_t total = 0;
    // A closed subscription reports nothing; its destructor has reported.
    if (natsSubscription_GetDropped(sub, &total) != NATS_OK)
      return;
    exclusive([&] {
      sub_state* st = nullptr;
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (auto i = subs.find(sub); i != subs.end())
          st = i->second;
      }
      // Registered subscriptions are erased only inside `exclusive`.
      if (st != nullptr)
        account_drops(*st, total);
    });
  }
};

// nats.c keeps one `void* closure` per connection and per subscription. We
// hand it a heap-allocated shared_ptr that the last callback nats.c makes
// (closed, on-complete) deletes, so the state outlives every callback even
// when the owning C++ object is gone first.
using conn_keepalive = std::shared_ptr<conn_state>;
using sub_keepalive = std::shared_ptr<sub_state>;

conn_state& conn_of(void* closure) noexcept {
  return **static_cast<conn_keepalive*>(closure);
}

void on_connected(natsConnection*, void* closure) {
  conn_of(closure).emit(nats_event::connected);
}

void on_disconnected(natsConnection*, void* closure) {
  conn_of(closure).emit(nats_event::disconnected);
}

void on_reconnected(natsConnection*, void* closure) {
  auto& st = conn_of(closure);
  st.reconnects.fetch_add(1);
  st.emit(nats_event::reconnected);
}

void on_closed(natsConnection*, void* closure) {
  // The last callback for a connection: nats.c joins its reader and
  // reconnect threads before posting it.
  std::unique_ptr<conn_keepalive> keep{static_cast<conn_keepalive*>(closure)};
  auto st = std::move(*keep);
  keep.reset();
  st->emit(nats_event::closed);
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->closed = true;
  }
  st->cv.notify_all();
}

void on_async_error(natsConnection* nc, natsSubscription* sub, natsStatus err,
                    void* closure) {
  auto& st = conn_of(closure);
  if (err == NATS_SLOW_CONSUMER && sub != nullptr) {
    st.slow_consumer(sub);
    return;
  }
  const char* text = nullptr;
  natsConnection_GetLastError(nc, &text);
  spdlog::warn("NATS asynchronous error ({}): {}{}", st.servers,
               natsStatus_GetText(err),
               text != nullptr && *text != '\0' ? fmt::format(" ({})", text)
                                                : std::string{});
}

void on_message(natsConnection*, natsSubscription* sub, natsMsg* raw,
                void* closure) {
  msg_ptr msg{raw};
  auto* st = static_cast<sub_keepalive*>(closure)->get();
  if (st->closing.load())
    return;
  running_guard rg{st};
  guarded("message", [&] {
    auto m = to_message(msg.get(), st->header_keys, st->borrow);
    if (!st->borrow)
      msg.reset();
    // What was queued behind the previous message is still queued behind
    // this one: ask nats.c (a lock the reader thread contends for) only
    // when that count is used up.
    if (st->known_pending > 0) {
      m.pending = --st->known_pending;
    } else {
      int pending = 0;
      if (natsSubscription_GetPending(sub, &pending, nullptr) == NATS_OK
          && pending > 0)
        m.pending = st->known_pending = static_cast<uint64_t>(pending);
    }
    st->fn(std::move(m));
  });
}

void on_sub_complete(void* closure) {
  std::unique_ptr<sub_keepalive> keep{static_cast<sub_keepalive*>(closure)};
  auto st = std::move(*keep);
  keep.reset();
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->completed = true;
  }
  st->cv.notify_all();
}

} // namespace

// -- nats_settings ------------------------------------------------------------

caf::expected<nats_settings> nats_settings::from_url(const std::string& urls) {
  nats_settings out;
  out.servers.clear();
  size_t pos = 0;
  for (;;) {
    auto comma = urls.find(',', pos);
    auto item = urls.substr(pos, comma == std::string::npos ? comma
                                                            : comma - pos);
    auto first = item.find_first_not_of(" \t");
    auto last = item.find_last_not_of(" \t");
    item = first == std::string::npos ? std::string{}
                                      : item.substr(first, last - first + 1);
    if (item.empty())
      return invalid(fmt::format("NATS URL list '{}' has an empty entry",
                                 redact(urls)));
    if (has_space_or_control(item))
      return invalid(fmt::format("NATS URL '{}' contains whitespace",
                                 redact(item)));
    auto scheme = item.find("://");
    if (scheme != std::string::npos) {
      auto name = item.substr(0, scheme);
      if (name == "tls")
        out.tls = true;
      else if (name != "nats")
        return invalid(fmt::format("NATS URL '{}': scheme must be nats:// or "
                                   "tls://",
                                   redact(item)));
      if (item.size() == scheme + 3)
        return invalid(fmt::format("NATS URL '{}' has no host", redact(item)));
    }
    out.servers.push_back(std::move(item));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

const char* to_string(nats_event x) noexcept {
  switch (x) {
    case nats_event::connected:
      return "connected";
    case nats_event::disconnected:
      return "disconnected";
    case nats_event::reconnected:
      return "reconnected";
    case nats_event::closed:
      return "closed";
  }
  return "unknown";
}

// -- nats_subscription --------------------------------------------------------

struct nats_subscription::impl {
  std::shared_ptr<sub_state> state;
  std::shared_ptr<conn_state> conn;
  subscription_ptr sub;

  impl(std::shared_ptr<sub_state> st, std::shared_ptr<conn_state> cs,
       subscription_ptr s)
    : state(std::move(st)), conn(std::move(cs)), sub(std::move(s)) {
    // nop
  }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    if (!sub)
      return;
    state->closing = true;
    // A closed subscription no longer reports drops: read them first.
    int64_t total = 0;
    auto have_total = natsSubscription_GetDropped(sub.get(), &total) == NATS_OK;
    conn->exclusive([&] {
      if (have_total)
        conn->account_drops(*state, total);
      std::lock_guard<std::mutex> guard{conn->mtx};
      conn->subs.erase(sub.get());
    });
    auto s = natsSubscription_Unsubscribe(sub.get());
    if (s != NATS_OK && s != NATS_CONNECTION_CLOSED
        && s != NATS_INVALID_SUBSCRIPTION)
      spdlog::debug("NATS unsubscribe from '{}': {}", state->subject,
                    natsStatus_GetText(s));
    // The on-complete callback runs once the handler has returned for the
    // last time; a handler destroying its own subscription can't wait.
    if (running_state != state.get()) {
      std::unique_lock<std::mutex> guard{state->mtx};
      if (!state->cv.wait_for(guard, handler_grace,
                              [this] { return state->completed; }))
        spdlog::error("NATS subscription '{}': its handler still runs {} s "
                      "after unsubscribing",
                      state->subject, handler_grace.count());
    }
  }
};

nats_subscription::nats_subscription(std::unique_ptr<impl> x) noexcept
  : impl_(std::move(x)) {
  // nop
}

nats_subscription::~nats_subscription() = default;

const std::string& nats_subscription::subject() const noexcept {
  return impl_->state->subject;
}

uint64_t nats_subscription::dropped() const {
  int64_t total = 0;
  if (natsSubscription_GetDropped(impl_->sub.get(), &total) == NATS_OK)
    return static_cast<uint64_t>(total);
  return static_cast<uint64_t>(impl_->state->last_dropped.load());
}

// -- nats_client --------------------------------------------------------------

struct nats_client::impl {
  nats_settings settings;
  std::shared_ptr<conn_state> state;
  connection_ptr conn;

  impl(nats_settings s, std::shared_ptr<conn_state> st, connection_ptr c)
    : settings(std::move(s)), state(std::move(st)), conn(std::move(c)) {
    // nop
  }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    if (!conn)
      return;
    state->closing = true;
    auto drain_ms = to_ms(settings.drain_timeout);
    // Drain lets in-flight messages reach live subscriptions; it fails when
    // not connected, and then there is nothing to drain.
    if (natsConnection_DrainTimeout(conn.get(), drain_ms) != NATS_OK)
      natsConnection_Close(conn.get());
    if (running_state != state.get()) {
      std::unique_lock<std::mutex> guard{state->mtx};
      auto done = [this] { return state->closed; };
      if (!state->cv.wait_for(guard,
                              std::chrono::milliseconds(drain_ms) + close_grace,
                              done)) {
        guard.unlock();
        natsConnection_Close(conn.get());
        guard.lock();
        if (!state->cv.wait_for(guard, close_grace, done))
          spdlog::error("NATS connection ({}) did not report closing",
                        state->servers);
      }
    }
    state->detach();
    conn.reset();
  }
};

nats_client::nats_client(std::unique_ptr<impl> x) noexcept
  : impl_(std::move(x)) {
  // nop
}

nats_client::~nats_client() = default;

caf::expected<std::unique_ptr<nats_client>>
nats_client::connect(nats_settings s, event_handler on_event,
                     error_handler on_slow) {
  if (auto err = open_library())
    return err;
  if (s.servers.empty())
    return invalid("no NATS server URL given");
  for (auto& url : s.servers)
    if (url.empty() || has_space_or_control(url))
      return invalid(fmt::format("NATS URL '{}' is empty or contains "
                                 "whitespace",
                                 redact(url)));
  if (s.pending_msgs_limit <= 0 || s.pending_bytes_limit <= 0)
    return invalid("NATS pending limits must be positive");
  if (s.connect_timeout.count() <= 0)
    return invalid("NATS connect timeout must be positive");
  auto servers = redact(s.servers);
  auto state = std::make_shared<conn_state>();
  state->on_event = std::move(on_event);
  state->on_slow = std::move(on_slow);
  state->servers = servers;
  natsOptions* raw_opts = nullptr;
  if (auto st = natsOptions_Create(&raw_opts); st != NATS_OK)
    return to_error(st, "cannot create NATS options");
  options_ptr opts{raw_opts};
  auto keep = std::make_unique<conn_keepalive>(state);
  std::vector<const char*> urls;
  for (auto& url : s.servers)
    urls.push_back(url.c_str());
  auto jitter = s.reconnect_jitter.count() > 0 ? to_ms(s.reconnect_jitter) : 0;
  std::pair<natsStatus, const char*> steps[] = {
    {natsOptions_SetServers(opts.get(), urls.data(),
                            static_cast<int>(urls.size())),
     "servers"},
    {natsOptions_SetName(opts.get(), s.name.c_str()), "name"},
    {s.user.empty() && s.password.empty()
       ? NATS_OK
       : natsOptions_SetUserInfo(opts.get(), s.user.c_str(),
                                 s.password.c_str()),
     "user"},
    {s.token.empty() ? NATS_OK : natsOptions_SetToken(opts.get(), s.token.c_str()),
     "token"},
    {natsOptions_SetTimeout(opts.get(), to_ms(s.connect_timeout)),
     "connect_timeout"},
    {natsOptions_SetAllowReconnect(opts.get(), true), "reconnect"},
    {natsOptions_SetMaxReconnect(opts.get(), s.max_reconnects),
     "max_reconnects"},
    {natsOptions_SetReconnectWait(opts.get(),
                                  s.reconnect_wait.count() > 0
                                    ? to_ms(s.reconnect_wait)
                                    : 0),
     "reconnect_wait"},
    {natsOptions_SetReconnectJitter(opts.get(), jitter, jitter),
     "reconnect_jitter"},
    {natsOptions_SetReconnectBufSize(opts.get(),
                                     clamp_int(s.reconnect_buffer_bytes)),
     "reconnect_buffer_bytes"},
    {natsOptions_SetSendAsap(opts.get(), s.send_asap), "send_asap"},
    // Also the limit of nats.c's internal subscriptions (request replies).
    {natsOptions_SetMaxPendingMsgs(opts.get(), s.pending_msgs_limit),
     "pending_msgs_limit"},
    {natsOptions_SetDisconnectedCB(opts.get(), on_disconnected, keep.get()),
     "disconnected callback"},
    {natsOptions_SetReconnectedCB(opts.get(), on_reconnected, keep.get()),
     "reconnected callback"},
    {natsOptions_SetClosedCB(opts.get(), on_closed, keep.get()),
     "closed callback"},
    {natsOptions_SetErrorHandler(opts.get(), on_async_error, keep.get()),
     "error handler"},
    // With a connected callback nats.c connects asynchronously instead of
    // blocking in natsConnection_Connect.
    {natsOptions_SetRetryOnFailedConnect(
       opts.get(), s.retry_on_failed_connect,
       s.retry_on_failed_connect ? on_connected : nullptr, keep.get()),
     "retry_on_failed_connect"},
  };
  for (auto& [st, what] : steps)
    if (st != NATS_OK)
      return make_error(errc::invalid_argument,
                        fmt::format("NATS option {}: {}", what,
                                    status_text(st)));
  if (s.tls) {
    if (auto st = natsOptions_SetSecure(opts.get(), true); st != NATS_OK)
      return make_error(errc::unsupported,
                        fmt::format("NATS TLS: {}", status_text(st)));
    if (!s.ca_file.empty())
      if (auto st = natsOptions_LoadCATrustedCertificates(opts.get(),
                                                          s.ca_file.c_str());
          st != NATS_OK)
        return invalid(fmt::format("NATS TLS ca_file '{}': {}", s.ca_file,
                                   status_text(st)));
    if (!s.cert_file.empty() || !s.key_file.empty())
      if (auto st = natsOptions_LoadCertificatesChain(opts.get(),
                                                      s.cert_file.c_str(),
                                                      s.key_file.c_str());
          st != NATS_OK)
        return invalid(fmt::format("NATS TLS cert_file '{}' / key_file '{}': "
                                   "{}",
                                   s.cert_file, s.key_file, status_text(st)));
    if (auto st = natsOptions_SkipServerVerification(opts.get(),
                                                     s.tls_skip_verify);
        st != NATS_OK)
      return invalid(fmt::format("NATS TLS skip verify: {}", status_text(st)));
  }
  natsConnection* raw_conn = nullptr;
  auto st = natsConnection_Connect(&raw_conn, opts.get());
  if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
    auto err = make_error(errc::backend_unavailable,
                          fmt::format("cannot connect to NATS at {}: {}",
                                      servers, status_text(st)));
    // Without retry nats.c posts no callback for a failed connect, so the
    // closure is ours to free. With retry a failing setup may still post
    // "closed": leave the (small) state to that callback.
    if (s.retry_on_failed_connect)
      static_cast<void>(keep.release());
    return err;
  }
  // From here on the closed callback owns the closure.
  static_cast<void>(keep.release());
  if (st == NATS_NOT_YET_CONNECTED)
    spdlog::info("NATS not reachable yet at {}; connecting in the background",
                 servers);
  return std::make_unique<nats_client>(std::make_unique<impl>(
    std::move(s), std::move(state), connection_ptr{raw_conn}));
}

caf::error nats_client::publish(const std::string& subject,
                                std::string_view data,
                                const nova::headers& hdrs,
                                const std::string& reply) {
  if (auto err = check_subject("NATS subject", subject, false))
    return err;
  if (!reply.empty())
    if (auto err = check_subject("NATS reply subject", reply, false))
      return err;
  if (auto err = check_payload(data))
    return err;
  if (auto err = check_headers(hdrs))
    return err;
  auto* nc = impl_->conn.get();
  natsStatus st;
  if (hdrs.empty()) {
    auto len = static_cast<int>(data.size());
    st = reply.empty()
           ? natsConnection_Publish(nc, subject.c_str(), data.data(), len)
           : natsConnection_PublishRequest(nc, subject.c_str(), reply.c_str(),
                                           data.data(), len);
  } else {
    auto msg = make_msg(subject, reply, data, hdrs);
    if (!msg)
      return std::move(msg.error());
    st = natsConnection_PublishMsg(nc, msg->get());
  }
  if (st != NATS_OK)
    return to_error(st, fmt::format("publish to '{}'", subject));
  return caf::none;
}

caf::error nats_client::publish_trusted(const std::string& subject,
                                        std::string_view data,
                                        const header_ref* hdrs, size_t count,
                                        const std::string& reply) {
  if (auto err = check_payload(data))
    return err;
  auto msg = build_msg(
    subject, reply, data, count,
    [hdrs](size_t i) { return std::string_view{hdrs[i].key}; },
    [hdrs](size_t i) { return std::string_view{hdrs[i].value}; });
  if (!msg)
    return std::move(msg.error());
  auto st = natsConnection_PublishMsg(impl_->conn.get(), msg->get());
  if (st != NATS_OK)
    return to_error(st, fmt::format("publish to '{}'", subject));
  return caf::none;
}

caf::expected<std::unique_ptr<nats_subscription>>
nats_client::subscribe(const std::string& subject, message_handler f,
                       const std::string& queue_group) {
  return subscribe(subject, std::move(f), queue_group,
                   nats_pending_limits{impl_->settings.pending_msgs_limit,
                                       impl_->settings.pending_bytes_limit});
}

caf::expected<std::unique_ptr<nats_subscription>>
nats_client::subscribe_borrowed(const std::string& subject, message_handler f,
                                const std::string& queue_group) {
  return subscribe_impl(subject, std::move(f), queue_group,
                        nats_pending_limits{
                          impl_->settings.pending_msgs_limit,
                          impl_->settings.pending_bytes_limit},
                        true);
}

caf::expected<std::unique_ptr<nats_subscription>>
nats_client::subscribe(const std::string& subject, message_handler f,
                       const std::string& queue_group,
                       nats_pending_limits limits) {
  return subscribe_impl(subject, std::move(f), queue_group, limits, false);
}

caf::expected<std::unique_ptr<nats_subscription>>
nats_client::subscribe_impl(const std::string& subject, message_handler f,
                            const std::string& queue_group,
                            nats_pending_limits limits, bool borrow) {
  if (auto err = check_subject("NATS subject", subject, true))
    return err;
  if (!queue_group.empty() && has_space_or_control(queue_group))
    return invalid(fmt::format("NATS queue group '{}' contains whitespace or "
                               "control characters",
                               queue_group));
  if (limits.msgs <= 0 || limits.bytes <= 0)
    return invalid(fmt::format("NATS pending limits for '{}' must be "
                               "positive",
                               subject));
  if (!f)
    return invalid(fmt::format("no message handler for '{}'", subject));
  auto state = std::make_shared<sub_state>(std::move(f), subject,
                                           impl_->settings.header_keys);
  state->borrow = borrow;
  auto keep = std::make_unique<sub_keepalive>(state);
  auto* nc = impl_->conn.get();
  natsSubscription* raw = nullptr;
  auto st = queue_group.empty()
              ? natsConnection_Subscribe(&raw, nc, subject.c_str(), on_message,
                                         keep.get())
              : natsConnection_QueueSubscribe(&raw, nc, subject.c_str(),
                                              queue_group.c_str(), on_message,
                                              keep.get());
  if (st != NATS_OK)
    return to_error(st, fmt::format("subscribe to '{}'", subject));
  subscription_ptr sub{raw};
  if (auto cs = natsSubscription_SetOnCompleteCB(raw, on_sub_complete,
                                                 keep.get());
      cs != NATS_OK) {
    // Closed in between (the connection closed): its dispatcher may still
    // hold the closure, and without an on-complete callback we can't know
    // when it lets go. Leak the small state rather than risk a dangling one.
    state->closing = true;
    static_cast<void>(keep.release());
    natsSubscription_Unsubscribe(raw);
    return to_error(cs, fmt::format("subscribe to '{}'", subject));
  }
  static_cast<void>(keep.release());
  {
    std::lock_guard<std::mutex> guard{impl_->state->mtx};
    impl_->state->subs.emplace(raw, state.get());
  }
  auto result = std::make_unique<nats_subscription>(
    std::make_unique<nats_subscription::impl>(state, impl_->state,
                                              std::move(sub)));
  if (auto ls = natsSubscription_SetPendingLimits(raw, limits.msgs,
                                                  clamp_int(limits.bytes));
      ls != NATS_OK)
    return to_error(ls, fmt::format("pending limits for '{}'", subject));
  return result;
}

caf::expected<nats_message>
nats_client::request(const std::string& subject, std::string_view data,
                     const nova::headers& hdrs, caf::timespan timeout) {
  if (auto err = check_subject("NATS subject", subject, false))
    return err;
  if (auto err = check_payload(data))
    return err;
  if (auto err = check_headers(hdrs))
    return err;
  auto* nc = impl_->conn.get();
  auto ms = to_ms(timeout);
  natsMsg* raw = nullptr;
  natsStatus st;
  if (hdrs.empty()) {
    st = natsConnection_Request(&raw, nc, subject.c_str(), data.data(),
                                static_cast<int>(data.size()), ms);
  } else {
    auto msg = make_msg(subject, {}, data, hdrs);
    if (!msg)
      return std::move(msg.error());
    st = natsConnection_RequestMsg(&raw, nc, msg->get(), ms);
  }
  msg_ptr reply{raw};
  switch (st) {
    case NATS_OK:
      return to_message(reply.get(), impl_->settings.header_keys);
    case NATS_TIMEOUT:
      return make_error(errc::request_timeout,
                        fmt::format("no reply from '{}' within {} ms", subject,
                                    ms));
    case NATS_NO_RESPONDERS:
      return make_error(errc::unknown_nova,
                        fmt::format("no responders on '{}'", subject));
    default:
      return to_error(st, fmt::format("request to '{}'", subject));
  }
}

caf::error nats_client::flush(caf::timespan timeout) {
  auto ms = to_ms(timeout);
  auto st = natsConnection_FlushTimeout(impl_->conn.get(), ms);
  if (st == NATS_OK)
    return caf::none;
  if (st == NATS_TIMEOUT)
    return make_error(errc::backend_unavailable,
                      fmt::format("flush: no PONG from the NATS server within "
                                  "{} ms",
                                  ms));
  return to_error(st, "flush");
}

bool nats_client::connected() const {
  return natsConnection_Status(impl_->conn.get())
         == NATS_CONN_STATUS_CONNECTED;
}

std::string nats_client::server_id() const {
  char buf[256];
  if (natsConnection_GetConnectedServerId(impl_->conn.get(), buf, sizeof(buf))
      != NATS_OK)
    return {};
  return buf;
}

std::string nats_client::connected_url() const {
  char buf[1024];
  if (natsConnection_GetConnectedUrl(impl_->conn.get(), buf, sizeof(buf))
      != NATS_OK)
    return {};
  return redact(std::string{buf});
}

caf::expected<caf::timespan> nats_client::rtt() {
  int64_t ns = 0;
  if (auto st = natsConnection_GetRTT(impl_->conn.get(), &ns); st != NATS_OK)
    return make_error(errc::backend_unavailable,
                      fmt::format("rtt: {}", status_text(st)));
  return caf::timespan{ns};
}

uint64_t nats_client::reconnects() const {
  return impl_->state->reconnects.load();
}

uint64_t nats_client::slow_consumer_drops() const {
  return impl_->state->drops.load();
}

std::string nats_client::new_inbox() const {
  natsInbox* raw = nullptr;
  if (auto st = natsInbox_Create(&raw); st != NATS_OK) {
    spdlog::error("cannot create a NATS inbox: {}", status_text(st));
    return {};
  }
  inbox_ptr inbox{raw};
  return inbox.get();
}

int64_t nats_client::max_payload() const {
  return natsConnection_GetMaxPayload(impl_->conn.get());
}

} // namespace nova
