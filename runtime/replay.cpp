#include "runtime/replay.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cluster/redis_client.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/cli_command.hpp"

namespace nova {

namespace {

/// Readable payloads are cut after this many characters.
constexpr size_t shown_payload = 80;

/// Entries read per round trip; output starts before the whole range is in.
constexpr size_t read_page = 1000;

bool all_digits(std::string_view x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

std::optional<uint64_t> to_u64(std::string_view x) {
  if (!all_digits(x))
    return std::nullopt;
  uint64_t out = 0;
  auto [end, ec] = std::from_chars(x.data(), x.data() + x.size(), out);
  if (ec != std::errc{} || end != x.data() + x.size())
    return std::nullopt;
  return out;
}

std::string shown(std::string_view x) {
  std::string out{x.substr(0, 80)};
  if (x.size() > 80)
    out += "...";
  return out;
}

caf::error bad_since(std::string_view when, const std::string& why = {}) {
  auto msg = "--since '" + shown(when) + "': ";
  if (!why.empty())
    msg += why + "; ";
  msg += "expected an entry id (1700000000000-0), unix milliseconds "
         "(1700000000000), an age (30s, 10m, 2h, 1d), an ISO-8601 time with "
         "a zone (2026-11-22T10:00:00Z) or '-'/'start'";
  return make_error(errc::invalid_argument, std::move(msg));
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30,
                                      31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/// Reads exactly `n` digits at `pos`.
std::optional<unsigned> digits_at(std::string_view s, size_t& pos, size_t n) {
  if (pos + n > s.size() || !all_digits(s.substr(pos, n)))
    return std::nullopt;
  unsigned out = 0;
  for (size_t i = 0; i < n; ++i)
    out = out * 10 + static_cast<unsigned>(s[pos + i] - '0');
  pos += n;
  return out;
}

bool take(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]](Z|±HH:MM|±HHMM|±HH)]` as unix ms.
caf::expected<int64_t> parse_iso(std::string_view s) {
  size_t pos = 0;
  auto y = digits_at(s, pos, 4);
  std::optional<unsigned> mo;
  std::optional<unsigned> d;
  if (y && take(s, pos, '-'))
    mo = digits_at(s, pos, 2);
  if (mo && take(s, pos, '-'))
    d = digits_at(s, pos, 2);
  if (!d)
    return bad_since(s);
  if (*mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo))
    return bad_since(s, "no such date");
  int64_t ms = days_from_civil(*y, *mo, *d) * 86'400'000;
  if (pos == s.size())
    return ms; // a bare date: midnight UTC
  if (!take(s, pos, 'T') && !take(s, pos, 't') && !take(s, pos, ' '))
    return bad_since(s);
  auto hh = digits_at(s, pos, 2);
  std::optional<unsigned> mm;
  if (hh && take(s, pos, ':'))
    mm = digits_at(s, pos, 2);
  if (!mm)
    return bad_since(s);
  unsigned ss = 0;
  unsigned frac_ms = 0;
  if (take(s, pos, ':')) {
    auto x = digits_at(s, pos, 2);
    if (!x)
      return bad_since(s);
    ss = *x;
    if (take(s, pos, '.') || take(s, pos, ',')) {
      size_t n = 0;
      unsigned scale = 100;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac_ms += static_cast<unsigned>(s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
        ++n;
      }
      if (n == 0)
        return bad_since(s);
    }
  }
  if (*hh > 23 || *mm > 59 || ss > 59)
    return bad_since(s, "no such time of day");
  ms += (*hh * 3600 + *mm * 60 + ss) * int64_t{1000} + frac_ms;
  if (pos == s.size())
    return bad_since(s, "no time zone: add Z for UTC or an offset (+02:00)");
  if (take(s, pos, 'Z') || take(s, pos, 'z')) {
    // UTC
  } else if (s[pos] == '+' || s[pos] == '-') {
    int sign = s[pos] == '+' ? 1 : -1;
    ++pos;
    auto oh = digits_at(s, pos, 2);
    std::optional<unsigned> om = 0u;
    if (oh && pos < s.size()) {
      take(s, pos, ':');
      om = digits_at(s, pos, 2);
    }
    if (!oh || !om || *oh > 23 || *om > 59)
      return bad_since(s, "malformed zone offset");
    // Local time minus the offset is UTC.
    ms -= sign * static_cast<int64_t>(*oh * 60 + *om) * 60'000;
  } else {
    return bad_since(s);
  }
  if (pos != s.size())
    return bad_since(s);
  if (ms < 0)
    return bad_since(s, "before 1970");
  return ms;
}

/// `<n>(s|m|h|d)` as milliseconds, or nothing if `s` is not of that form.
std::optional<caf::expected<uint64_t>> parse_age(std::string_view s) {
  if (s.size() < 2)
    return std::nullopt;
  uint64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60'000; break;
    case 'h': unit = 3'600'000; break;
    case 'd': unit = 86'400'000; break;
    default: return std::nullopt;
  }
  auto digits = s.substr(0, s.size() - 1);
  if (!all_digits(digits))
    return std::nullopt;
  auto n = to_u64(digits);
  if (!n || *n > UINT64_MAX / unit)
    return caf::expected<uint64_t>{bad_since(s, "age out of range")};
  return caf::expected<uint64_t>{*n * unit};
}

std::string message_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (err.category() == errc_category && ctx.size() == 1
      && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

/// `url` with its password shown as `***`.
std::string masked(const std::string& url) {
  auto scheme = url.find("://");
  auto from = scheme == std::string::npos ? 0 : scheme + 3;
  auto slash = url.find('/', from);
  auto at = url.rfind('@', slash == std::string::npos ? std::string::npos
                                                      : slash);
  if (at == std::string::npos || at < from)
    return url;
  auto colon = url.find(':', from);
  auto user_end = colon != std::string::npos && colon < at ? colon : from;
  return url.substr(0, user_end) + ":***" + url.substr(at);
}

/// Length of the UTF-8 sequence starting at `i`, or 0 when it is invalid.
size_t utf8_length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  // Overlong forms, surrogates and values beyond Unicode are not text.
  static constexpr uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

bool is_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f)
      return false;
    auto n = utf8_length(s, i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

bool binary_content_type(const std::string& ct) {
  return ct.rfind("application/octet-stream", 0) == 0
         || ct.rfind("application/x-protobuf", 0) == 0
         || ct.rfind("application/protobuf", 0) == 0;
}

/// One line of text: control characters escaped, cut after `limit`
/// characters (then `...`); anything else `<N bytes>`.
std::string printable(std::string_view s, size_t limit) {
  if (!is_text(s))
    return fmt::format("<{} bytes>", s.size());
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    if (chars == limit)
      return out + "...";
    auto n = utf8_length(s, i);
    switch (s[i]) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out.append(s.substr(i, n));
    }
    i += n;
    ++chars;
  }
  return out;
}

std::string payload_text(const envelope& env) {
  if (env.payload.empty())
    return "<0 bytes>";
  if (binary_content_type(env.content_type))
    return fmt::format("<{} bytes>", env.payload.size());
  return printable(env.payload, shown_payload);
}

int64_t entry_ms(const std::string& entry_id) {
  auto ms = to_u64(std::string_view{entry_id}.substr(0, entry_id.find('-')));
  return ms && *ms <= static_cast<uint64_t>(INT64_MAX)
           ? static_cast<int64_t>(*ms)
           : 0;
}

/// The first entry id after `id` ("ms-seq").
std::string next_entry_id(const std::string& id) {
  auto dash = id.find('-');
  auto ms = to_u64(std::string_view{id}.substr(0, dash));
  auto seq = dash == std::string::npos
               ? std::optional<uint64_t>{}
               : to_u64(std::string_view{id}.substr(dash + 1));
  if (!ms || !seq)
    return id;
  if (*seq == UINT64_MAX)
    return std::to_string(*ms + 1) + "-0";
  return std::to_string(*ms) + "-" + std::to_string(*seq + 1);
}


} // namespace

caf::expected<std::string> parse_since(std::string_view when, int64_t now_ms) {
  if (when.empty() || when == "-" || when == "start")
    return std::string{"-"};
  if (all_digits(when)) {
    if (!to_u64(when))
      return bad_since(when, "out of range");
    return std::string{when} + "-0";
  }
  if (auto dash = when.find('-'); dash != std::string_view::npos
                                  && all_digits(when.substr(0, dash))
                                  && all_digits(when.substr(dash + 1))) {
    if (!to_u64(when.substr(0, dash)) || !to_u64(when.substr(dash + 1)))
      return bad_since(when, "entry id out of range");
    return std::string{when};
  }
  if (auto age = parse_age(when)) {
    if (!*age)
      return std::move(age->error());
    auto now = static_cast<uint64_t>(std::max<int64_t>(now_ms, 0));
    auto start = now > **age ? now - **age : 0;
    return std::to_string(start) + "-0";
  }
  if (when.size() >= 10 && all_digits(when.substr(0, 4)) && when[4] == '-') {
    auto ms = parse_iso(when);
    if (!ms)
      return std::move(ms.error());
    return std::to_string(*ms) + "-0";
  }
  return bad_since(when);
}

caf::expected<std::string> resolve_replay_stream(const naming& names,
                                                 std::string_view stream) {
  auto relative = [&](std::string_view rel) -> caf::expected<std::string> {
    auto dot = rel.find('.');
    auto head = rel.substr(0, dot);
    auto rest = dot == std::string_view::npos ? std::string_view{}
                                              : rel.substr(dot + 1);
    bool has_rest = dot != std::string_view::npos;
    if (head == "inbox" && has_rest)
      return names.inbox(rest);
    if (head == "group" && has_rest)
      return names.group(rest);
    if (head == "events" && has_rest)
      return names.event_stream(rest);
    if (head == "broadcast" && rest == "all")
      return names.broadcast();
    if (head == "emergency" && !has_rest)
      return names.emergency();
    if (head == "durable" && rest == "dead")
      return names.prefix() + ".durable.dead";
    return make_error(errc::invalid_argument,
                      "'" + shown(stream)
                        + "' is not a stream of prefix '" + names.prefix()
                        + "': expected inbox.<id>, group.<group>, "
                          "events.<domain>, broadcast.all, emergency or "
                          "durable.dead, with or without '"
                        + names.prefix() + ".' in front (ids match "
                          "[A-Za-z0-9_-]{1,64})");
  };
  if (stream.empty())
    return make_error(errc::invalid_argument, "no stream given");
  const auto& p = names.prefix();
  if (stream.size() > p.size() + 1 && stream.compare(0, p.size(), p) == 0
      && stream[p.size()] == '.') {
    // A prefix that looks like a stream's head (`--prefix events`) makes
    // `events.billing` ambiguous: the full key wins only when it parses.
    auto full = relative(stream.substr(p.size() + 1));
    if (full)
      return full;
    auto rel = relative(stream);
    return rel ? rel : full;
  }
  return relative(stream);
}

std::string iso_time(int64_t unix_ms) {
  auto secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  auto ms = unix_ms - secs * 1000;
  auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ms);
}

std::string format_replay_line(const stored_envelope& x) {
  const auto& env = x.env;
  auto when = env.created_at > 0 ? env.created_at : entry_ms(x.entry_id);
  auto from = env.from.empty() ? std::string{"?"} : printable(env.from, 64);
  auto to = env.to.empty() ? std::string{"*"} : printable(env.to, 64);
  auto subject = env.subject.empty() ? std::string{"-"}
                                     : printable(env.subject, 200);
  return fmt::format("{} {} {} {} -> {} {} {}", x.entry_id, iso_time(when),
                     to_string(env.kind), from, to, subject,
                     payload_text(env));
}

std::string format_replay_json(const stored_envelope& x) {
  nlohmann::ordered_json j;
  j["entry"] = x.entry_id;
  auto env = nlohmann::ordered_json::parse(to_json(x.env), nullptr, false);
  if (env.is_object())
    for (auto& [k, v] : env.items())
      j[k] = v;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int run_replay(const replay_options& opts, std::ostream& out,
               std::ostream& err) {
  cli_command cmd{"nova replay", out, err};
  if (opts.limit == 0 || opts.limit > max_replay_limit)
    return cmd.usage(fmt::format("--limit must be between 1 and {}",
                                 max_replay_limit));
  auto names = naming::make(opts.prefix);
  if (!names)
    return cmd.usage("--prefix: " + message_of(names.error()));
  auto stream = resolve_replay_stream(*names, opts.stream);
  if (!stream)
    return cmd.usage(message_of(stream.error()));
  if (!opts.subject.empty())
    if (auto e = check_subject(opts.subject, true))
      return cmd.usage("--subject '" + shown(opts.subject)
                       + "': " + message_of(e));
  auto start = parse_since(opts.since, now_ms());
  if (!start)
    return cmd.usage(message_of(start.error()));
  auto rs = redis_settings::from_url(opts.dragonfly_url);
  if (!rs)
    return cmd.usage("--dragonfly-url: " + message_of(rs.error()));
  rs->connect_timeout = opts.connect_timeout;
  rs->pool_size = 1;
  auto pool = redis_pool::make(*rs);
  if (!pool)
    return cmd.usage("--dragonfly-url: " + message_of(pool.error()));
  durable_store::settings ss;
  ss.page = read_page;
  auto store = durable_store::make(
    std::make_shared<redis_pool>(std::move(*pool)), *names, ss);
  if (!store)
    return cmd.failure(message_of(store.error()));
  auto read_failed = [&](const caf::error& e) {
    if (is(e, errc::backend_unavailable))
      return cmd.failure("cannot reach the store at "
                         + masked(opts.dragonfly_url) + ": " + message_of(e)
                         + " (is DragonflyDB running? see --dragonfly-url, "
                           "env DRAGONFLY_URL)");
    return cmd.failure("cannot read " + *stream + ": " + message_of(e));
  };
  size_t count = 0;
  auto from = *start;
  bool exhausted = false;
  while (count < opts.limit) {
    auto want = std::min(opts.limit - count, read_page);
    auto batch = (*store)->replay(*stream, from, opts.subject, want);
    if (!batch)
      return read_failed(batch.error());
    for (const auto& x : *batch)
      out << (opts.json ? format_replay_json(x) : format_replay_line(x))
          << '\n';
    count += batch->size();
    if (batch->size() < want) {
      exhausted = true;
      break;
    }
    from = next_entry_id(batch->back().entry_id);
  }
  out.flush();
  if (opts.json)
    return replay_exit::ok;
  // Entries the peek below skips lie beyond what was shown.
  auto bad = (*store)->malformed();
  std::optional<std::string> next;
  if (!exhausted) {
    auto peek = (*store)->replay(*stream, from, opts.subject, 1);
    if (!peek)
      return read_failed(peek.error());
    if (!peek->empty())
      next = peek->front().entry_id;
  }
  std::string footer = count == 0 ? "-- no envelopes in " + *stream
                                  : fmt::format("-- {} envelope{} from {}",
                                                count, count == 1 ? "" : "s",
                                                *stream);
  if (*start != "-")
    footer += " since " + *start + " (" + iso_time(entry_ms(*start)) + ")";
  if (!opts.subject.empty())
    footer += " with subject " + opts.subject;
  if (bad > 0)
    footer += fmt::format(" ({} undecodable entr{} skipped)", bad,
                          bad == 1 ? "y" : "ies");
  if (next)
    footer += fmt::format("; limit {} reached, continue with --since {}",
                          opts.limit, *next);
  out << footer << '\n';
  return replay_exit::ok;
}

} // namespace nova
