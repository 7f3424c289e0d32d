#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

namespace nova {

/// How to reach and talk to DragonflyDB (or any server speaking the Redis
/// protocol, RESP2).
struct redis_settings {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  /// ACL user for `AUTH user password`; empty: `AUTH password`.
  std::string user;
  /// Empty: no AUTH.
  std::string password;
  int db = 0;
  caf::timespan connect_timeout = std::chrono::seconds(2);
  /// Bound on every round trip; `blocking` adds its own timeout on top.
  caf::timespan command_timeout = std::chrono::seconds(5);
  /// Connections of a `redis_pool`.
  size_t pool_size = 4;
  /// After a failed connect the next attempt waits `reconnect_base`,
  /// doubling per failure up to `reconnect_max`.
  caf::timespan reconnect_base = std::chrono::milliseconds(100);
  caf::timespan reconnect_max = std::chrono::seconds(5);

  /// Parses `redis://[[user]:password@]host[:port][/db]`; user and password
  /// may be percent-encoded, an IPv6 host goes in brackets. `rediss://` is
  /// `unsupported` (no TLS in hiredis 0.14), anything else malformed is
  /// `invalid_argument`.
  [[nodiscard]] static caf::expected<redis_settings>
  from_url(const std::string& url);
};

/// One reply, copied out of hiredis.
struct redis_value {
  enum class type : uint8_t { nil, integer, string, status, array, error };

  type t = type::nil;
  int64_t integer = 0;
  /// Bytes of a string; the text of a status or error reply.
  std::string str;
  std::vector<redis_value> elements;

  [[nodiscard]] bool is_nil() const noexcept {
    return t == type::nil;
  }

  [[nodiscard]] bool is_error() const noexcept {
    return t == type::error;
  }

  [[nodiscard]] bool is_array() const noexcept {
    return t == type::array;
  }

  /// A string or status; `decode_failed` for anything else (nil included).
  [[nodiscard]] caf::expected<std::string> as_string() const;

  /// An integer, or a string holding a decimal integer (HGET, XPENDING);
  /// `decode_failed` otherwise.
  [[nodiscard]] caf::expected<int64_t> as_int() const;

  /// A string holding a number (ZSCORE) or an integer.
  [[nodiscard]] caf::expected<double> as_double() const;

  /// An array of strings (SMEMBERS, a stream entry's fields).
  [[nodiscard]] caf::expected<std::vector<std::string>> as_strings() const;

  /// What an error reply stands for (see `redis_connection::command`);
  /// none for any other type.
  [[nodiscard]] caf::error as_error() const;

  /// Number of elements of an array, else 0.
  [[nodiscard]] size_t size() const noexcept {
    return elements.size();
  }

  /// Element `i` of an array; throws `std::out_of_range` beyond the end.
  [[nodiscard]] const redis_value& operator[](size_t i) const {
    return elements.at(i);
  }

  friend bool operator==(const redis_value& x, const redis_value& y);
  friend bool operator!=(const redis_value& x, const redis_value& y) {
    return !(x == y);
  }
};

/// Renders a reply for logs and test output, `redis-cli` style on one line.
[[nodiscard]] std::string to_string(const redis_value& x);

/// Commands written in RESP as they are built, for a pipeline: no vector of
/// argument strings per command (the hot paths append thousands at once).
/// Arguments are binary-safe.
class resp_buffer {
public:
  /// Starts a command of `args` arguments (the command name included);
  /// exactly that many `arg` calls follow.
  resp_buffer& begin(size_t args);

  resp_buffer& arg(std::string_view x);

  /// A decimal number.
  resp_buffer& arg(uint64_t x);

  /// A whole command.
  resp_buffer& command(std::initializer_list<std::string_view> args);
  resp_buffer& command(const std::vector<std::string>& argv);

  /// Commands begun so far.
  [[nodiscard]] size_t commands() const noexcept {
    return commands_;
  }

  [[nodiscard]] const std::string& bytes() const noexcept {
    return buf_;
  }

  [[nodiscard]] bool empty() const noexcept {
    return commands_ == 0;
  }

  void clear() noexcept {
    buf_.clear();
    commands_ = 0;
  }

private:
  void head(char tag, size_t n);

  std::string buf_;
  size_t commands_ = 0;
};

/// Takes one reply piece by piece, as hiredis parses it, instead of a
/// `redis_value` tree: for replies read into something else (stream entries
/// into envelopes) without a copy of every field. `depth` 0 is the reply
/// itself; `index` is the place in the enclosing array (0 at depth 0).
/// Arrays come before their elements, in order. Must not throw.
class reply_visitor {
public:
  virtual ~reply_visitor();

  virtual void on_array(size_t depth, size_t index, size_t elements) = 0;

  /// A string, status or error (`t`); `bytes` lives for the call only.
  virtual void on_string(size_t depth, size_t index, redis_value::type t,
                         std::string_view bytes)
    = 0;

  virtual void on_integer(size_t depth, size_t index, int64_t value) = 0;

  virtual void on_nil(size_t depth, size_t index) = 0;
};

/// One connection to the server (the RAII adapter over a hiredis context).
/// Not thread-safe: one user at a time, or go through `redis_pool`.
///
/// After a connection error the next call connects again: at once the first
/// time, then no sooner than the settings' backoff allows. A call made while
/// backing off fails at once with `backend_unavailable`. A connection the
/// server closed while idle (restart, idle timeout) is replaced before
/// anything is sent on it. Calls are never retried: a command whose
/// connection broke may or may not have run. A moved-from connection may
/// only be destroyed or assigned to.
class redis_connection {
public:
  struct impl;

  /// Connects, authenticates and selects the database.
  /// `backend_unavailable` when the server does not answer, refuses the
  /// password or the database; `invalid_argument` for malformed settings.
  [[nodiscard]] static caf::expected<redis_connection>
  connect(const redis_settings& s);

  explicit redis_connection(std::unique_ptr<impl> x) noexcept;
  redis_connection(redis_connection&&) noexcept;
  redis_connection& operator=(redis_connection&&) noexcept;
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;
  ~redis_connection();

  /// Sends one command; arguments are binary-safe. An error reply becomes a
  /// `caf::error` with the server's message: `backend_unavailable` for
  /// server states that pass (LOADING, BUSY, READONLY, OOM, NOAUTH, ...),
  /// `invalid_argument` for the rest (ERR, WRONGTYPE, NOGROUP, ...). No
  /// reply within `command_timeout` or a broken connection is
  /// `backend_unavailable`; a reply hiredis 0.14 cannot parse (arrays
  /// nested more than 8 deep) is `decode_failed` and drops the connection.
  [[nodiscard]] caf::expected<redis_value>
  command(const std::vector<std::string>& argv);

  /// Sends all commands before reading any reply: one round trip. Error
  /// replies stay in the result as `type::error` values. A connection error
  /// fails the whole pipeline, and then it is unknown which commands ran;
  /// inside MULTI ... EXEC they run all or none.
  [[nodiscard]] caf::expected<std::vector<redis_value>>
  pipeline(const std::vector<std::vector<std::string>>& cmds);

  /// As `pipeline`, for commands already in RESP: the replies replace the
  /// contents of `out`, in order; with `last`, the last reply goes to it
  /// instead (and `out` holds one reply less).
  [[nodiscard]] caf::error pipeline(const resp_buffer& cmds,
                                    std::vector<redis_value>& out,
                                    reply_visitor* last = nullptr);

  /// The two halves of that `pipeline`, for a caller that keeps several
  /// pipelines in flight on this connection: `send` writes the commands,
  /// `receive` reads the replies of the next `n` commands sent before, in
  /// order. After an error the connection is closed: what was in flight
  /// may or may not have run, and `receive` fails until the next `send`
  /// connects again.
  [[nodiscard]] caf::error send(const resp_buffer& cmds);

  [[nodiscard]] caf::error receive(size_t n, std::vector<redis_value>& out,
                                   reply_visitor* last = nullptr);

  /// As `command`, for a command that blocks on the server for up to
  /// `timeout` (`XREADGROUP ... BLOCK <ms>`, the same duration): waits for
  /// `timeout` plus `command_timeout`. `timeout` must be positive.
  [[nodiscard]] caf::expected<redis_value>
  blocking(const std::vector<std::string>& argv, caf::timespan timeout);

  /// Runs a Lua script with EVALSHA. The first call per script loads it
  /// (SCRIPT LOAD) and caches its SHA1; a NOSCRIPT reply (server restarted,
  /// SCRIPT FLUSH) loads it again. Every key the script touches must be in
  /// `keys` (Dragonfly enforces this).
  [[nodiscard]] caf::expected<redis_value>
  eval(const std::string& script, const std::vector<std::string>& keys,
       const std::vector<std::string>& args);

  /// The SHA1 that EVALSHA runs `script` by, for scripts sent through a
  /// `resp_buffer`: loaded (SCRIPT LOAD) on the first call, cached after.
  /// A NOSCRIPT reply to such an EVALSHA means the server forgot it:
  /// `forget_script`, then ask again.
  [[nodiscard]] caf::expected<std::string>
  script_sha(const std::string& script);

  void forget_script(const std::string& script);

  /// Round-trip time of a PING.
  [[nodiscard]] caf::expected<caf::timespan> ping();

  /// Connected, and no error seen since. Does no I/O.
  [[nodiscard]] bool ok() const noexcept;

  /// Successful connects after the first one.
  [[nodiscard]] uint64_t reconnects() const noexcept;

  [[nodiscard]] const redis_settings& settings() const noexcept;

private:
  std::unique_ptr<impl> impl_;
};

class redis_pool;

/// A connection borrowed from a `redis_pool`; the destructor returns it.
/// Safe to outlive the pool.
class redis_lease {
public:
  struct shared_state;

  redis_lease(std::shared_ptr<shared_state> pool, size_t index) noexcept;
  redis_lease(redis_lease&& other) noexcept;
  redis_lease& operator=(redis_lease&& other) noexcept;
  redis_lease(const redis_lease&) = delete;
  redis_lease& operator=(const redis_lease&) = delete;
  ~redis_lease();

  [[nodiscard]] redis_connection& operator*() const noexcept;
  [[nodiscard]] redis_connection* operator->() const noexcept;

private:
  void release() noexcept;

  std::shared_ptr<shared_state> pool_;
  size_t index_ = 0;
};

/// `pool_size` connections shared by any number of threads. Every member
/// function is thread-safe. Connections come up on first use and reconnect
/// on their own (see `redis_connection`). A moved-from pool may only be
/// destroyed or assigned to.
class redis_pool {
public:
  /// Checks the settings; connects nothing yet, so a node can start while
  /// the store is down.
  [[nodiscard]] static caf::expected<redis_pool> make(redis_settings s);

  /// As `make`, then connects every connection now: `backend_unavailable`
  /// when that fails.
  [[nodiscard]] static caf::expected<redis_pool> connect(redis_settings s);

  redis_pool(redis_pool&&) noexcept = default;
  redis_pool& operator=(redis_pool&&) noexcept = default;
  redis_pool(const redis_pool&) = delete;
  redis_pool& operator=(const redis_pool&) = delete;
  ~redis_pool();

  /// Waits at most `command_timeout` for a free connection, then fails with
  /// `backend_unavailable` ("pool exhausted"). Waiters are served first
  /// come, first served.
  [[nodiscard]] caf::expected<redis_lease> lease();
  [[nodiscard]] caf::expected<redis_lease> lease(caf::timespan wait);

  /// Calls `f(redis_connection&)` with a leased connection. `f` returns a
  /// `caf::expected<T>` or `caf::error`; a failed lease returns its error
  /// without calling `f`.
  template <class F>
  auto with(F f) -> decltype(f(std::declval<redis_connection&>())) {
    using result = decltype(f(std::declval<redis_connection&>()));
    auto conn = lease();
    if (!conn)
      return result{std::move(conn.error())};
    return f(**conn);
  }

  [[nodiscard]] caf::expected<redis_value>
  command(const std::vector<std::string>& argv);

  [[nodiscard]] caf::expected<std::vector<redis_value>>
  pipeline(const std::vector<std::vector<std::string>>& cmds);

  [[nodiscard]] caf::error pipeline(const resp_buffer& cmds,
                                    std::vector<redis_value>& out,
                                    reply_visitor* last = nullptr);

  [[nodiscard]] caf::expected<redis_value>
  blocking(const std::vector<std::string>& argv, caf::timespan timeout);

  [[nodiscard]] caf::expected<redis_value>
  eval(const std::string& script, const std::vector<std::string>& keys,
       const std::vector<std::string>& args);

  /// Round-trip time of a PING on a pooled connection.
  [[nodiscard]] caf::expected<caf::timespan> ping();

  [[nodiscard]] size_t size() const noexcept;
  /// Connections not leased right now.
  [[nodiscard]] size_t idle() const;
  [[nodiscard]] const redis_settings& settings() const noexcept;

private:
  explicit redis_pool(std::shared_ptr<redis_lease::shared_state> x) noexcept;

  std::shared_ptr<redis_lease::shared_state> state_;
};

static_assert(std::is_nothrow_move_constructible_v<redis_value>);
static_assert(std::is_nothrow_move_constructible_v<redis_connection>);
static_assert(std::is_nothrow_move_constructible_v<redis_lease>);
static_assert(!std::is_copy_constructible_v<redis_connection>);
static_assert(!std::is_copy_constructible_v<redis_pool>);

} // namespace nova
