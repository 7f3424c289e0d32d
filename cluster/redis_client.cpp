#include "cluster/redis_client.hpp"

#include "cluster/c_handle.hpp"

#include <algorithm>
#include <memory>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <new>
#include <random>
#include <string_view>
#include <unordered_map>

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include "messages/errc.hpp"

namespace nova {

namespace {

using clock_type = std::chrono::steady_clock;

// -- handles ------------------------------------------------------------------

using context_ptr = c_handle<redisContext, redisFree>;

// -- replies ------------------------------------------------------------------

// hiredis builds replies as `redis_value` trees directly (its reader calls
// these for every element), rather than as redisReply objects that would be
// copied into values and freed: half the allocations and no copy of every
// string. The root is allocated here and owned by whoever gets it from
// redisGetReply; an element lives in its parent's `elements`, sized when
// the parent array is made. hiredis frees only roots (`free_value`) and
// treats nullptr as out of memory.
redis_value* place_value(const redisReadTask* task,
                         redis_value::type t) noexcept {
  redis_value* v = nullptr;
  if (task->parent != nullptr) {
    auto* parent = static_cast<redis_value*>(task->parent->obj);
    v = &parent->elements[static_cast<size_t>(task->idx)];
  } else {
    v = new (std::nothrow) redis_value;
    if (v == nullptr)
      return nullptr;
  }
  v->t = t;
  return v;
}

// What hiredis calls a string: a bulk string, a status or an error.
redis_value::type string_type(const redisReadTask* task) noexcept {
  switch (task->type) {
    case REDIS_REPLY_ERROR:
      return redis_value::type::error;
    case REDIS_REPLY_STATUS:
      return redis_value::type::status;
    default:
      return redis_value::type::string;
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  auto* v = place_value(task, string_type(task));
  if (v == nullptr)
    return nullptr;
  try {
    v->str.assign(str, len);
  } catch (const std::bad_alloc&) {
    if (task->parent == nullptr)
      delete v;
    return nullptr;
  }
  return v;
}

void* create_array(const redisReadTask* task, int elements) {
  auto* v = place_value(task, redis_value::type::array);
  if (v == nullptr)
    return nullptr;
  try {
    v->elements.resize(static_cast<size_t>(std::max(elements, 0)));
  } catch (const std::bad_alloc&) {
    if (task->parent == nullptr)
      delete v;
    return nullptr;
  }
  return v;
}

void* create_integer(const redisReadTask* task, long long x) {
  auto* v = place_value(task, redis_value::type::integer);
  if (v != nullptr)
    v->integer = static_cast<int64_t>(x);
  return v;
}

void* create_nil(const redisReadTask* task) {
  return place_value(task, redis_value::type::nil);
}

void free_value(void* p) {
  delete static_cast<redis_value*>(p);
}

redisReplyObjectFunctions value_functions{create_string, create_array,
                                          create_integer, create_nil,
                                          free_value};

using reply_ptr = std::unique_ptr<redis_value>;

// The same parser hands a reply to a `reply_visitor` instead: nothing is
// kept, every object is this marker. The visitor is the one of the calling
// thread's current read (a reader is used by one thread at a time).
thread_local reply_visitor* current_visitor = nullptr;
char visited_marker;

size_t depth_of(const redisReadTask* task) {
  size_t n = 0;
  for (auto* t = task->parent; t != nullptr; t = t->parent)
    ++n;
  return n;
}

size_t index_of(const redisReadTask* task) {
  return task->parent == nullptr ? 0 : static_cast<size_t>(task->idx);
}

void* visit_string(const redisReadTask* task, char* str, size_t len) {
  current_visitor->on_string(depth_of(task), index_of(task), string_type(task),
                             std::string_view{str, len});
  return &visited_marker;
}

void* visit_array(const redisReadTask* task, int elements) {
  current_visitor->on_array(depth_of(task), index_of(task),
                            static_cast<size_t>(std::max(elements, 0)));
  return &visited_marker;
}

void* visit_integer(const redisReadTask* task, long long value) {
  current_visitor->on_integer(depth_of(task), index_of(task),
                              static_cast<int64_t>(value));
  return &visited_marker;
}

void* visit_nil(const redisReadTask* task) {
  current_visitor->on_nil(depth_of(task), index_of(task));
  return &visited_marker;
}

void free_nothing(void*) {
  // The marker is no object.
}

redisReplyObjectFunctions visit_functions{visit_string, visit_array,
                                          visit_integer, visit_nil,
                                          free_nothing};

// hiredis 0.14 writes with write(2), which raises SIGPIPE on a socket the
// server has closed, and SIGPIPE's default action ends the process. Block it
// on this thread for the duration of a call and swallow one we caused (what
// libcurl and OpenSSL do), rather than ignoring it process-wide behind the
// application's back.
class sigpipe_guard {
public:
  sigpipe_guard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }

  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR)
          ; // retry
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

// -- conversions --------------------------------------------------------------

int64_t to_ms(caf::timespan x) noexcept {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(x).count();
  if (duration_cast<nanoseconds>(milliseconds{ms}) < x)
    ++ms;
  return std::max<int64_t>(ms, 1);
}

timeval to_timeval(caf::timespan x) noexcept {
  auto ms = to_ms(x);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

// -- errors -------------------------------------------------------------------

caf::error invalid(std::string what) {
  return make_error(errc::invalid_argument, std::move(what));
}

caf::error unavailable(std::string what) {
  return make_error(errc::backend_unavailable, std::move(what));
}

// The first word of an error reply is its code ("WRONGTYPE", "ERR", ...).
// These ones describe a server state that passes or a setup problem, not a
// bad command.
errc errc_of_reply(std::string_view msg) noexcept {
  auto code = msg.substr(0, msg.find(' '));
  constexpr std::string_view transient[] = {
    "LOADING", "BUSY",   "MASTERDOWN", "READONLY",   "TRYAGAIN", "CLUSTERDOWN",
    "OOM",     "NOAUTH", "WRONGPASS",  "NOREPLICAS", "MISCONF",  "NOPERM",
  };
  for (auto x : transient)
    if (code == x)
      return errc::backend_unavailable;
  return errc::invalid_argument;
}

bool starts_with(std::string_view x, std::string_view prefix) noexcept {
  return x.substr(0, prefix.size()) == prefix;
}

bool has_space_or_control(std::string_view x) noexcept {
  return std::any_of(x.begin(), x.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7f;
  });
}

// redis://user:secret@host -> redis://***@host, for error messages. The user
// info ends at the last '@', so a password may hold '/', '?' or '@'.
std::string redact(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.rfind('@');
  if (at == std::string::npos || at < start)
    return url;
  return url.substr(0, start) + "***" + url.substr(at);
}

std::string where(const redis_settings& s) {
  auto host = s.host.find(':') == std::string::npos ? s.host
                                                    : "[" + s.host + "]";
  return fmt::format("redis at {}:{}/{}", host, s.port, s.db);
}

caf::error check(const redis_settings& s) {
  if (s.host.empty() || has_space_or_control(s.host))
    return invalid(fmt::format("redis host '{}' is empty or contains "
                               "whitespace",
                               s.host));
  if (s.port == 0)
    return invalid("redis port must not be 0");
  if (s.db < 0)
    return invalid(fmt::format("redis database {} is negative", s.db));
  if (s.connect_timeout.count() <= 0 || s.command_timeout.count() <= 0)
    return invalid("redis connect and command timeouts must be positive");
  if (s.reconnect_base.count() <= 0 || s.reconnect_max < s.reconnect_base)
    return invalid("redis reconnect_base must be positive and at most "
                   "reconnect_max");
  if (s.password.empty() && !s.user.empty())
    return invalid(fmt::format("redis user '{}' has no password", s.user));
  return caf::none;
}

// Percent-decoding for the user info of a URL.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size())
      return false;
    unsigned value = 0;
    auto first = in.data() + i + 1;
    auto [ptr, ec] = std::from_chars(first, first + 2, value, 16);
    if (ec != std::errc{} || ptr != first + 2)
      return false;
    out += static_cast<char>(value);
    i += 2;
  }
  return true;
}

bool all_digits(std::string_view x) noexcept {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

} // namespace

// -- resp_buffer --------------------------------------------------------------

void resp_buffer::head(char tag, size_t n) {
  char num[24];
  buf_.push_back(tag);
  auto r = std::to_chars(num, num + sizeof num, n);
  buf_.append(num, r.ptr);
  buf_.append("\r\n", 2);
}

resp_buffer& resp_buffer::begin(size_t args) {
  head('*', args);
  ++commands_;
  return *this;
}

resp_buffer& resp_buffer::arg(std::string_view x) {
  head('$', x.size());
  buf_.append(x.data(), x.size());
  buf_.append("\r\n", 2);
  return *this;
}

resp_buffer& resp_buffer::arg(uint64_t x) {
  char num[24];
  auto r = std::to_chars(num, num + sizeof num, x);
  return arg(std::string_view{num, static_cast<size_t>(r.ptr - num)});
}

resp_buffer&
resp_buffer::command(std::initializer_list<std::string_view> args) {
  begin(args.size());
  for (auto x : args)
    arg(x);
  return *this;
}

resp_buffer& resp_buffer::command(const std::vector<std::string>& argv) {
  begin(argv.size());
  for (auto& x : argv)
    arg(x);
  return *this;
}

reply_visitor::~reply_visitor() = default;

// -- redis_settings -----------------------------------------------------------

caf::expected<redis_settings> redis_settings::from_url(const std::string& url) {
  auto bad = [shown = redact(url)](std::string_view why) {
    return invalid(fmt::format("redis URL '{}' {}", shown, why));
  };
  if (url.empty())
    return invalid("redis URL is empty");
  if (has_space_or_control(url))
    return bad("contains whitespace or control characters");
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return bad("must start with redis://");
  std::string scheme = url.substr(0, scheme_end);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme == "rediss")
    return make_error(errc::unsupported,
                      fmt::format("redis URL '{}': TLS (rediss://) is not "
                                  "supported (hiredis 0.14 has no TLS)",
                                  redact(url)));
  if (scheme != "redis")
    return bad("must start with redis://");
  redis_settings out;
  std::string_view rest{url};
  rest.remove_prefix(scheme_end + 3);
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      return bad("has a user but no password: use redis://:password@host or "
                 "redis://user:password@host");
    if (!percent_decode(userinfo.substr(0, colon), out.user)
        || !percent_decode(userinfo.substr(colon + 1), out.password))
      return bad("has a malformed %-escape in its user info");
    if (out.password.empty())
      return bad("has an empty password");
  }
  if (rest.find_first_of("?#") != std::string_view::npos)
    return bad("has a query or fragment; only redis://[[user]:password@]host"
               "[:port][/db] is supported");
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return bad("has an unterminated '[' in its host");
    out.host = std::string{authority.substr(1, close - 1)};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return bad("has garbage after its IPv6 host");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    auto colon = authority.find(':');
    if (colon != authority.rfind(':'))
      return bad("has several ':' in its host; put an IPv6 host in brackets");
    out.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (out.host.empty())
    return bad("has no host");
  if (has_port) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(),
                                     value);
    if (!all_digits(port) || ec != std::errc{}
        || ptr != port.data() + port.size() || value == 0 || value > 65535)
      return bad(fmt::format("has port '{}'; expected a number in 1..65535",
                             port));
    out.port = static_cast<uint16_t>(value);
  }
  if (slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty()) {
      int value = 0;
      auto [ptr, ec] = std::from_chars(db.data(), db.data() + db.size(),
                                       value);
      if (!all_digits(db) || ec != std::errc{} || ptr != db.data() + db.size())
        return bad(fmt::format("has database '{}'; expected a non-negative "
                               "integer",
                               db));
      out.db = value;
    }
  }
  return out;
}

// -- redis_value --------------------------------------------------------------

caf::expected<std::string> redis_value::as_string() const {
  if (t == type::string || t == type::status)
    return str;
  return make_error(errc::decode_failed,
                    fmt::format("expected a redis string, got {}",
                                to_string(*this)));
}

caf::expected<int64_t> redis_value::as_int() const {
  if (t == type::integer)
    return integer;
  if (t == type::string) {
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(str.data(), str.data() + str.size(),
                                     value);
    if (!str.empty() && ec == std::errc{} && ptr == str.data() + str.size())
      return value;
  }
  return make_error(errc::decode_failed,
                    fmt::format("expected a redis integer, got {}",
                                to_string(*this)));
}

caf::expected<double> redis_value::as_double() const {
  if (t == type::integer)
    return static_cast<double>(integer);
  if (t == type::string && !str.empty()) {
    // std::from_chars for double is missing from GCC 10's library.
    errno = 0;
    char* end = nullptr;
    auto value = std::strtod(str.c_str(), &end);
    if (errno == 0 && end == str.c_str() + str.size())
      return value;
  }
  return make_error(errc::decode_failed,
                    fmt::format("expected a redis number, got {}",
                                to_string(*this)));
}

caf::expected<std::vector<std::string>> redis_value::as_strings() const {
  if (t != type::array)
    return make_error(errc::decode_failed,
                      fmt::format("expected a redis array of strings, got {}",
                                  to_string(*this)));
  std::vector<std::string> out;
  out.reserve(elements.size());
  for (auto& x : elements) {
    if (x.t != type::string && x.t != type::status)
      return make_error(errc::decode_failed,
                        fmt::format("expected a redis array of strings, got "
                                    "{}",
                                    to_string(*this)));
    out.push_back(x.str);
  }
  return out;
}

caf::error redis_value::as_error() const {
  if (t != type::error)
    return caf::none;
  return make_error(errc_of_reply(str), str);
}

bool operator==(const redis_value& x, const redis_value& y) {
  if (x.t != y.t)
    return false;
  switch (x.t) {
    case redis_value::type::nil:
      return true;
    case redis_value::type::integer:
      return x.integer == y.integer;
    case redis_value::type::array:
      return x.elements == y.elements;
    default:
      return x.str == y.str;
  }
}

std::string to_string(const redis_value& x) {
  switch (x.t) {
    case redis_value::type::nil:
      return "(nil)";
    case redis_value::type::integer:
      return fmt::format("(integer) {}", x.integer);
    case redis_value::type::status:
      return x.str;
    case redis_value::type::error:
      return "(error) " + x.str;
    case redis_value::type::string: {
      std::string out = "\"";
      for (char c : x.str) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\')
          out += {'\\', c};
        else if (u < 0x20 || u >= 0x7f)
          out += fmt::format("\\x{:02x}", u);
        else
          out += c;
      }
      return out + '"';
    }
    case redis_value::type::array: {
      std::string out = "[";
      for (size_t i = 0; i < x.elements.size(); ++i) {
        if (i > 0)
          out += ", ";
        out += to_string(x.elements[i]);
      }
      return out + ']';
    }
  }
  return "(unknown)";
}

// -- redis_connection ---------------------------------------------------------

struct redis_connection::impl {
  redis_settings settings;
  std::string name;
  context_ptr ctx;
  bool ever_connected = false;
  uint64_t reconnects = 0;
  // Failed connects in a row, and when the next one may start.
  uint32_t failures = 0;
  clock_type::time_point retry_at{};
  std::string last_error;
  // Script text -> SHA1 the server reported when loading it.
  std::unordered_map<std::string, std::string> scripts;
  std::minstd_rand rng{std::random_device{}()};
  // The commands of the call in progress; kept between calls so that a
  // batch does not allocate (and fault in) its buffer again.
  resp_buffer wbuf;

  explicit impl(redis_settings s)
    : settings(std::move(s)), name(where(settings)) {
    // nop
  }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  bool usable() const noexcept {
    return ctx != nullptr && ctx->err == 0;
  }

  // Replies of commands sent with `send` and not read yet.
  size_t unread = 0;

  // A connection must be quiet between calls: readable means the server
  // closed it (restart, idle timeout) or sent something we never asked for.
  // Either way it is stale, and finding out before sending keeps a command
  // from failing on it.
  bool stale() const noexcept {
    pollfd p{ctx->fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

  caf::timespan next_backoff() {
    auto delay = settings.reconnect_base;
    for (uint32_t i = 0; i < failures && delay < settings.reconnect_max; ++i)
      delay *= 2;
    delay = std::min(delay, settings.reconnect_max);
    // Half fixed, half random: nodes that lost the store together come back
    // spread out.
    std::uniform_int_distribution<int64_t> half{0, delay.count() / 2};
    return caf::timespan{delay.count() - delay.count() / 2 + half(rng)};
  }

  // The connection broke in the middle of a call: drop it; the next call
  // connects again at once.
  caf::error fail_io(std::string_view cmd, caf::timespan waited,
                     int saved_errno) {
    std::string msg;
    auto code = errc::backend_unavailable;
    if (ctx->err == REDIS_ERR_IO
        && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
      msg = fmt::format("{}: no reply to {} within {} ms", name, cmd,
                        to_ms(waited));
    else if (ctx->err == REDIS_ERR_EOF)
      msg = fmt::format("{}: the server closed the connection during {}", name,
                        cmd);
    else if (ctx->err == REDIS_ERR_PROTOCOL) {
      code = errc::decode_failed;
      msg = fmt::format("{}: cannot parse the reply to {}: {}", name, cmd,
                        ctx->errstr);
    } else
      msg = fmt::format("{}: {} failed: {}", name, cmd, ctx->errstr);
    ctx.reset();
    retry_at = {};
    last_error = msg;
    return make_error(code, std::move(msg));
  }

  // Sends `wbuf` on the socket itself: hiredis would first copy it into
  // an output buffer of its own, allocated anew for every call. That buffer
  // stays empty, so redisGetReply only reads. A failure is recorded on the
  // context as hiredis records its own (`fail_io` reads it).
  bool send_wbuf() {
    auto ok = send_bytes(wbuf.bytes());
    trim_wbuf();
    return ok;
  }

  // A huge batch once should not pin its buffer for good.
  void trim_wbuf() {
    if (wbuf.bytes().capacity() > max_kept_wbuf)
      wbuf = resp_buffer{};
  }

  bool send_bytes(std::string_view bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      auto n = ::send(ctx->fd, bytes.data() + done, bytes.size() - done,
                      MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      auto saved_errno = errno;
      ctx->err = REDIS_ERR_IO;
      std::snprintf(ctx->errstr, sizeof(ctx->errstr), "%s",
                    n == 0 ? "send wrote nothing" : std::strerror(errno));
      errno = saved_errno;
      return false;
    }
    return true;
  }

  static constexpr size_t max_kept_wbuf = 4 * 1024 * 1024;

  // Writes `cmds` on a live context; their replies are due after those
  // already due.
  caf::error transmit(const resp_buffer& cmds) {
    sigpipe_guard guard;
    errno = 0;
    if (!send_bytes(cmds.bytes())) {
      unread = 0;
      return fail_io(fmt::format("a pipeline of {} commands", cmds.commands()),
                     settings.command_timeout, errno);
    }
    unread += cmds.commands();
    return caf::none;
  }

  // One command on a live context; error replies come back as values.
  caf::expected<redis_value> roundtrip(const std::vector<std::string>& argv,
                                       caf::timespan timeout) {
    wbuf.clear();
    wbuf.command(argv);
    void* raw = nullptr;
    int saved_errno = 0;
    {
      sigpipe_guard guard;
      errno = 0;
      if (send_wbuf())
        static_cast<void>(redisGetReply(ctx.get(), &raw));
      saved_errno = errno;
    }
    if (raw == nullptr)
      return fail_io(argv.front(), timeout, saved_errno);
    reply_ptr reply{static_cast<redis_value*>(raw)};
    return std::move(*reply);
  }

  // The handshake: connect, then AUTH and SELECT, or a PING if neither.
  caf::error open() {
    auto tv = to_timeval(settings.connect_timeout);
    context_ptr c{redisConnectWithTimeout(settings.host.c_str(), settings.port,
                                          tv)};
    if (c == nullptr)
      return unavailable(fmt::format("{}: cannot allocate a hiredis context",
                                     name));
    if (c->err != 0)
      return unavailable(fmt::format("cannot connect to {}: {}", name,
                                     c->errstr));
    // redisConnectWithTimeout bounds the connect only; reads and writes
    // would block forever without a socket timeout.
    if (redisSetTimeout(c.get(), to_timeval(settings.command_timeout))
        != REDIS_OK)
      return unavailable(fmt::format("{}: cannot set the socket timeout: {}",
                                     name, c->errstr));
    // Best effort: finds a dead peer on a connection idle for long.
    static_cast<void>(redisEnableKeepAlive(c.get()));
    // Keep the reply buffer: by default hiredis frees it whenever it is
    // empty and over 16 KiB, so every batch reply would allocate it again.
    c->reader->maxbuf = 0;
    c->reader->fn = &value_functions;
    ctx = std::move(c);
    auto step = [this](std::vector<std::string> argv,
                       std::string_view what) -> caf::error {
      auto reply = roundtrip(argv, settings.command_timeout);
      if (!reply)
        return std::move(reply.error());
      if (reply->is_error()) {
        ctx.reset();
        // The reply text never contains the password.
        return unavailable(fmt::format("{} rejected {}: {}", name, what,
                                       reply->str));
      }
      // AUTH, SELECT and PING answer with a status. Anything else is not a
      // Redis-speaking server, or a socket connected to itself (a loopback
      // connect to a free port can pick that very port as its own).
      if (reply->t != redis_value::type::status) {
        ctx.reset();
        return unavailable(fmt::format("{} answered {} with {}", name, what,
                                       to_string(*reply)));
      }
      return caf::none;
    };
    if (!settings.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!settings.user.empty())
        auth.push_back(settings.user);
      auth.push_back(settings.password);
      if (auto err = step(std::move(auth), "the credentials (AUTH)"))
        return err;
    }
    if (settings.db != 0)
      return step({"SELECT", std::to_string(settings.db)},
                  fmt::format("database {} (SELECT)", settings.db));
    // Nothing sent yet: make sure a Redis-speaking server answers and lets
    // us in (a server with a password answers NOAUTH).
    if (settings.password.empty())
      return step({"PING"}, "the connection (PING)");
    return caf::none;
  }

  caf::error ensure() {
    if (usable()) {
      if (!stale())
        return caf::none;
      last_error = "the server closed the connection";
    }
    ctx.reset();
    auto now = clock_type::now();
    if (now < retry_at) {
      auto left = std::chrono::duration_cast<caf::timespan>(retry_at - now);
      return unavailable(fmt::format("{} is unavailable ({}); next attempt in "
                                     "{} ms",
                                     name, last_error, to_ms(left)));
    }
    if (auto err = open()) {
      ctx.reset();
      last_error = describe(err);
      retry_at = clock_type::now() + next_backoff();
      if (failures < UINT32_MAX)
        ++failures;
      return err;
    }
    failures = 0;
    retry_at = {};
    if (ever_connected)
      ++reconnects;
    ever_connected = true;
    return caf::none;
  }

  caf::expected<redis_value> exec(const std::vector<std::string>& argv,
                                  caf::timespan timeout) {
    if (argv.empty())
      return invalid("empty redis command");
    if (argv.size() > static_cast<size_t>(INT_MAX))
      return invalid("too many arguments for one redis command");
    if (auto err = ensure())
      return err;
    return roundtrip(argv, timeout);
  }

  caf::expected<redis_value> check_reply(const std::string& cmd,
                                         caf::expected<redis_value> reply) {
    if (!reply || !reply->is_error())
      return reply;
    return make_error(errc_of_reply(reply->str),
                      fmt::format("{}: {}: {}", name, cmd, reply->str));
  }

  caf::expected<std::string> load(const std::string& script) {
    auto reply = check_reply("SCRIPT LOAD",
                             exec({"SCRIPT", "LOAD", script},
                                  settings.command_timeout));
    if (!reply)
      return std::move(reply.error());
    auto sha = reply->as_string();
    if (!sha)
      return std::move(sha.error());
    scripts[script] = *sha;
    return sha;
  }
};

redis_connection::redis_connection(std::unique_ptr<impl> x) noexcept
  : impl_(std::move(x)) {
  // nop
}

redis_connection::redis_connection(redis_connection&&) noexcept = default;

redis_connection&
redis_connection::operator=(redis_connection&&) noexcept = default;

redis_connection::~redis_connection() = default;

caf::expected<redis_connection>
redis_connection::connect(const redis_settings& s) {
  if (auto err = check(s))
    return err;
  auto x = std::make_unique<impl>(s);
  if (auto err = x->ensure())
    return err;
  return redis_connection{std::move(x)};
}

caf::expected<redis_value>
redis_connection::command(const std::vector<std::string>& argv) {
  auto reply = impl_->exec(argv, impl_->settings.command_timeout);
  return impl_->check_reply(argv.empty() ? std::string{} : argv.front(),
                            std::move(reply));
}

caf::error redis_connection::pipeline(const resp_buffer& cmds,
                                     std::vector<redis_value>& out,
                                     reply_visitor* last) {
  out.clear();
  if (cmds.empty())
    return caf::none;
  if (auto err = send(cmds))
    return err;
  return receive(cmds.commands(), out, last);
}

caf::error redis_connection::send(const resp_buffer& cmds) {
  if (cmds.empty())
    return caf::none;
  auto& x = *impl_;
  if (x.unread == 0) {
    if (auto err = x.ensure())
      return err;
  } else if (!x.usable()) {
    // Replies are due: a connection made now would not carry them.
    x.unread = 0;
    return unavailable(fmt::format("{}: the connection broke with replies "
                                   "outstanding",
                                   x.name));
  }
  // With replies due the socket is readable, which `ensure` would take for
  // a stale connection: it is checked once, before the first send.
  return x.transmit(cmds);
}

caf::error redis_connection::receive(size_t n, std::vector<redis_value>& out,
                                     reply_visitor* last) {
  out.clear();
  if (n == 0)
    return caf::none;
  auto& x = *impl_;
  if (!x.usable() || x.unread < n) {
    x.unread = 0;
    return unavailable(fmt::format("{}: no replies of {} commands to read "
                                   "(the connection broke, or they were "
                                   "never sent)",
                                   x.name, n));
  }
  x.unread -= n;
  out.reserve(last ? n - 1 : n);
  sigpipe_guard guard;
  for (size_t i = 0; i < n; ++i) {
    void* raw = nullptr;
    errno = 0;
    auto* reader = x.ctx->reader;
    bool visit = last != nullptr && i + 1 == n;
    if (visit) {
      reader->fn = &visit_functions;
      current_visitor = last;
    }
    auto rc = redisGetReply(x.ctx.get(), &raw);
    if (visit) {
      // A reply cut short leaves the marker as the reader's partial reply;
      // the value functions must never be asked to free it.
      if (reader->reply == &visited_marker)
        reader->reply = nullptr;
      reader->fn = &value_functions;
      current_visitor = nullptr;
    }
    if (rc != REDIS_OK || raw == nullptr) {
      auto saved_errno = errno;
      x.unread = 0;
      return x.fail_io(fmt::format("a pipeline of {} commands (at {})", n, i),
                       x.settings.command_timeout, saved_errno);
    }
    if (!visit) {
      reply_ptr reply{static_cast<redis_value*>(raw)};
      out.push_back(std::move(*reply));
    }
  }
  return caf::none;
}

caf::expected<std::vector<redis_value>>
redis_connection::pipeline(const std::vector<std::vector<std::string>>& cmds) {
  std::vector<redis_value> out;
  if (cmds.empty())
    return out;
  for (auto& argv : cmds) {
    if (argv.empty())
      return invalid("empty redis command in a pipeline");
    if (argv.size() > static_cast<size_t>(INT_MAX))
      return invalid("too many arguments for one redis command");
  }
  // Connected first: the handshake writes its commands into `wbuf` too.
  auto& x = *impl_;
  if (auto err = x.ensure())
    return err;
  // All commands go out in one write; then the replies are read in order.
  x.wbuf.clear();
  for (auto& argv : cmds)
    x.wbuf.command(argv);
  auto err = x.transmit(x.wbuf);
  x.trim_wbuf();
  if (!err)
    err = receive(cmds.size(), out);
  if (err)
    return err;
  return out;
}

caf::expected<redis_value>
redis_connection::blocking(const std::vector<std::string>& argv,
                           caf::timespan timeout) {
  if (timeout.count() <= 0)
    return invalid("a blocking redis command needs a positive timeout");
  auto& x = *impl_;
  if (argv.empty())
    return invalid("empty redis command");
  if (auto err = x.ensure())
    return err;
  auto total = timeout + x.settings.command_timeout;
  if (redisSetTimeout(x.ctx.get(), to_timeval(total)) != REDIS_OK)
    return x.fail_io(argv.front(), total, errno);
  auto reply = x.roundtrip(argv, total);
  if (x.usable()
      && redisSetTimeout(x.ctx.get(), to_timeval(x.settings.command_timeout))
           != REDIS_OK) {
    // The reply is fine, but the connection would keep the long timeout.
    x.ctx.reset();
    x.retry_at = {};
  }
  return x.check_reply(argv.front(), std::move(reply));
}

caf::expected<redis_value>
redis_connection::eval(const std::string& script,
                       const std::vector<std::string>& keys,
                       const std::vector<std::string>& args) {
  auto& x = *impl_;
  auto sha = script_sha(script);
  if (!sha)
    return std::move(sha.error());
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(std::move(*sha));
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto reply = x.exec(argv, x.settings.command_timeout);
  // The server forgot the script (restart, failover, SCRIPT FLUSH).
  if (reply && reply->is_error() && starts_with(reply->str, "NOSCRIPT")) {
    forget_script(script);
    auto loaded = script_sha(script);
    if (!loaded)
      return std::move(loaded.error());
    argv[1] = std::move(*loaded);
    reply = x.exec(argv, x.settings.command_timeout);
  }
  return x.check_reply("EVALSHA", std::move(reply));
}

caf::expected<std::string>
redis_connection::script_sha(const std::string& script) {
  auto& x = *impl_;
  if (auto i = x.scripts.find(script); i != x.scripts.end())
    return i->second;
  return x.load(script);
}

void redis_connection::forget_script(const std::string& script) {
  impl_->scripts.erase(script);
}

caf::expected<caf::timespan> redis_connection::ping() {
  auto& x = *impl_;
  if (auto err = x.ensure())
    return err;
  auto start = clock_type::now();
  auto reply = x.check_reply("PING", x.roundtrip({"PING"},
                                                 x.settings.command_timeout));
  auto elapsed = clock_type::now() - start;
  if (!reply)
    return std::move(reply.error());
  if (reply->t != redis_value::type::status || reply->str != "PONG")
    return make_error(errc::decode_failed,
                      fmt::format("{}: PING answered {}", x.name,
                                  to_string(*reply)));
  return std::chrono::duration_cast<caf::timespan>(elapsed);
}

bool redis_connection::ok() const noexcept {
  return impl_->usable();
}

uint64_t redis_connection::reconnects() const noexcept {
  return impl_->reconnects;
}

const redis_settings& redis_connection::settings() const noexcept {
  return impl_->settings;
}

// -- redis_lease and redis_pool -----------------------------------------------

struct redis_lease::shared_state {
  redis_settings settings;
  // Fixed size: a lease refers to its connection by index, without the lock.
  std::vector<redis_connection> conns;
  mutable std::mutex mtx;
  std::condition_variable cv;
  // Indices of connections not leased; the last one is handed out first, so
  // a lightly loaded pool keeps using the same warm connections.
  std::vector<size_t> idle;
  // Tickets of waiting callers, served first come, first served: without
  // it a thread that gives a connection back and asks again at once can
  // starve a waiter past its deadline.
  std::deque<uint64_t> waiters;
  uint64_t next_ticket = 0;

  // Requires the lock and an idle connection.
  size_t take() {
    // Prefer a live connection over one that would have to reconnect.
    auto live = std::find_if(idle.rbegin(), idle.rend(),
                             [this](size_t i) { return conns[i].ok(); });
    if (live != idle.rend())
      std::iter_swap(live, idle.rbegin());
    auto index = idle.back();
    idle.pop_back();
    return index;
  }

  explicit shared_state(redis_settings s) : settings(std::move(s)) {
    // nop
  }
};

redis_lease::redis_lease(std::shared_ptr<shared_state> pool,
                         size_t index) noexcept
  : pool_(std::move(pool)), index_(index) {
  // nop
}

redis_lease::redis_lease(redis_lease&& other) noexcept
  : pool_(std::move(other.pool_)), index_(other.index_) {
  // nop
}

redis_lease& redis_lease::operator=(redis_lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::move(other.pool_);
    index_ = other.index_;
  }
  return *this;
}

redis_lease::~redis_lease() {
  release();
}

void redis_lease::release() noexcept {
  if (!pool_)
    return;
  bool waiters = false;
  {
    std::lock_guard<std::mutex> guard{pool_->mtx};
    pool_->idle.push_back(index_);
    waiters = !pool_->waiters.empty();
  }
  // All: only the oldest waiter may take it, and notify_one may pick another.
  if (waiters)
    pool_->cv.notify_all();
  pool_.reset();
}

redis_connection& redis_lease::operator*() const noexcept {
  return pool_->conns[index_];
}

redis_connection* redis_lease::operator->() const noexcept {
  return &pool_->conns[index_];
}

redis_pool::redis_pool(std::shared_ptr<redis_lease::shared_state> x) noexcept
  : state_(std::move(x)) {
  // nop
}

redis_pool::~redis_pool() = default;

caf::expected<redis_pool> redis_pool::make(redis_settings s) {
  if (auto err = check(s))
    return err;
  if (s.pool_size == 0)
    return invalid("redis pool_size must be at least 1");
  auto st = std::make_shared<redis_lease::shared_state>(std::move(s));
  st->conns.reserve(st->settings.pool_size);
  for (size_t i = 0; i < st->settings.pool_size; ++i) {
    st->conns.emplace_back(
      std::make_unique<redis_connection::impl>(st->settings));
    st->idle.push_back(st->settings.pool_size - 1 - i);
  }
  return redis_pool{std::move(st)};
}

caf::expected<redis_pool> redis_pool::connect(redis_settings s) {
  auto pool = make(std::move(s));
  if (!pool)
    return pool;
  for (auto& conn : pool->state_->conns)
    if (auto rtt = conn.ping(); !rtt)
      return std::move(rtt.error());
  return pool;
}

caf::expected<redis_lease> redis_pool::lease() {
  return lease(state_->settings.command_timeout);
}

caf::expected<redis_lease> redis_pool::lease(caf::timespan wait) {
  auto& st = *state_;
  std::unique_lock<std::mutex> guard{st.mtx};
  if (st.waiters.empty() && !st.idle.empty())
    return redis_lease{state_, st.take()};
  auto ticket = st.next_ticket++;
  st.waiters.push_back(ticket);
  auto served = st.cv.wait_for(guard, std::max(wait, caf::timespan{0}), [&] {
    return !st.idle.empty() && st.waiters.front() == ticket;
  });
  if (!served) {
    st.waiters.erase(std::find(st.waiters.begin(), st.waiters.end(), ticket));
    auto next = !st.waiters.empty() && !st.idle.empty();
    guard.unlock();
    if (next)
      st.cv.notify_all();
    return unavailable(fmt::format("redis pool exhausted: all {} connections "
                                   "to {} busy for {} ms",
                                   st.conns.size(), where(st.settings),
                                   to_ms(wait)));
  }
  st.waiters.pop_front();
  auto index = st.take();
  auto next = !st.waiters.empty() && !st.idle.empty();
  guard.unlock();
  if (next)
    st.cv.notify_all();
  return redis_lease{state_, index};
}

caf::expected<redis_value>
redis_pool::command(const std::vector<std::string>& argv) {
  return with([&](redis_connection& c) { return c.command(argv); });
}

caf::expected<std::vector<redis_value>>
redis_pool::pipeline(const std::vector<std::vector<std::string>>& cmds) {
  return with([&](redis_connection& c) { return c.pipeline(cmds); });
}

caf::error redis_pool::pipeline(const resp_buffer& cmds,
                               std::vector<redis_value>& out,
                               reply_visitor* last) {
  return with([&](redis_connection& c) { return c.pipeline(cmds, out, last); });
}

caf::expected<redis_value>
redis_pool::blocking(const std::vector<std::string>& argv,
                     caf::timespan timeout) {
  return with([&](redis_connection& c) { return c.blocking(argv, timeout); });
}

caf::expected<redis_value>
redis_pool::eval(const std::string& script,
                 const std::vector<std::string>& keys,
                 const std::vector<std::string>& args) {
  return with([&](redis_connection& c) { return c.eval(script, keys, args); });
}

caf::expected<caf::timespan> redis_pool::ping() {
  return with([](redis_connection& c) { return c.ping(); });
}

size_t redis_pool::size() const noexcept {
  return state_->conns.size();
}

size_t redis_pool::idle() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->idle.size();
}

const redis_settings& redis_pool::settings() const noexcept {
  return state_->settings;
}

} // namespace nova
