#include "runtime/client.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/gateway.hpp"
#include "actors/outbound.hpp"
#include "cluster/naming.hpp"
#include "cluster/nats_client.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "runtime/cli_command.hpp"

namespace nova {

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Bounds the wait for the server to confirm what was published.
constexpr auto flush_timeout = std::chrono::seconds(2);

/// Shown payloads are cut here.
constexpr size_t shown_payload = 200;

/// An id field as a string, whether it is stored as one or inline.
template <class T>
std::string as_string(const T& x) {
  return std::string{std::string_view{x}};
}

/// user:secret@host -> ***@host in every URL of a comma-separated list.
std::string redact(const std::string& urls) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    auto comma = urls.find(',', pos);
    auto item = urls.substr(pos, comma == std::string::npos ? comma
                                                            : comma - pos);
    auto scheme = item.find("://");
    auto start = scheme == std::string::npos ? 0 : scheme + 3;
    auto at = item.find('@', start);
    if (at != std::string::npos && item.find('/', start) > at)
      item = item.substr(0, start) + "***" + item.substr(at);
    out += item;
    if (comma == std::string::npos)
      return out;
    out += ',';
    pos = comma + 1;
  }
}

/// What every command knows once its input checked out.
struct session {
  naming names;
  nats_settings settings;
};

/// Checks the flags every command shares; nothing is contacted yet.
caf::expected<session> prepare(const client_options& opts) {
  auto names = naming::make(opts.prefix);
  if (!names)
    return make_error(errc::invalid_argument,
                      "--prefix: " + describe(names.error()));
  auto settings = nats_settings::from_url(opts.nats_url);
  if (!settings)
    return make_error(errc::invalid_argument,
                      "--nats-url: " + describe(settings.error()));
  settings->name = "nova-cli";
  // Fail fast with a clear message instead of waiting for a server.
  settings->retry_on_failed_connect = false;
  settings->connect_timeout = opts.connect_timeout;
  settings->drain_timeout = std::chrono::milliseconds(500);
  return session{std::move(*names), std::move(*settings)};
}

caf::error check_sender(const client_options& opts,
                        const std::string& payload) {
  if (auto err = check_id(opts.from, "--from"))
    return err;
  if (!parse_priority(opts.priority))
    return make_error(errc::invalid_argument,
                      "--priority '" + opts.priority
                        + "' is not one of low|normal|high|urgent");
  if (opts.json) {
    try {
      auto parsed = nlohmann::json::parse(payload);
      static_cast<void>(parsed);
    } catch (const nlohmann::json::parse_error& e) {
      return make_error(errc::invalid_argument,
                        std::string{"--json: the payload is not valid JSON ("}
                          + e.what() + ")");
    }
  }
  return caf::none;
}

caf::expected<std::unique_ptr<nats_client>>
connect(cli_command& cmd, const client_options& opts, const session& s) {
  auto client = nats_client::connect(s.settings);
  if (!client) {
    // "cannot connect to NATS at <urls>: <why>" -> "<why>"
    auto why = reason(client.error());
    if (auto i = why.find(": "); why.rfind("cannot connect", 0) == 0
                                 && i != std::string::npos)
      why = why.substr(i + 2);
    // nats.c repeats its status text as the detail: "X ((conn.c:1): X)".
    auto paren = why.find(" (");
    if (paren != std::string::npos
        && why.find(why.substr(0, paren), paren) != std::string::npos)
      why = why.substr(0, paren);
    cmd.failure("cannot reach NATS at " + redact(opts.nats_url) + ": " + why
                + " (is nats-server running? see --nats-url, env NATS_URL)");
    return client.error();
  }
  return client;
}

/// One message ready for the wire.
struct outgoing {
  std::string id;
  envelope env;
  std::string subject;
  std::string body;
  nova::headers headers;
};

outgoing make_outgoing(const client_options& opts, kind k, std::string subject,
                       const std::string& payload) {
  outgoing m;
  auto& env = m.env;
  m.id = new_message_id();
  env.id = m.id;
  env.from = opts.from;
  env.kind = k;
  env.priority = k == kind::emergency ? priority::urgent
                                      : *parse_priority(opts.priority);
  env.correlation_id = m.id;
  env.created_at = message_id_time(m.id);
  env.payload = payload;
  m.subject = std::move(subject);
  if (opts.json) {
    // The JSON interop: the receiving gateway wraps the body into an
    // envelope of its own (from `anonymous`, a fresh id).
    env.content_type = json_content_type;
    m.body = payload;
    m.headers[nats_headers::content_type] = json_content_type;
  } else {
    m.headers[nats_headers::msg_id] = m.id;
    m.headers[nats_headers::correlation_id] = m.id;
  }
  return m;
}

void finish_body(const client_options& opts, outgoing& m) {
  if (!opts.json)
    m.body = encode(m.env);
}

/// Publishes `m` and waits until the server has it.
int deliver(cli_command& cmd, const client_options& opts, const session& s,
            outgoing m) {
  finish_body(opts, m);
  auto client = connect(cmd, opts, s);
  if (!client)
    return client_exit::failure;
  auto& c = **client;
  if (auto err = c.publish(m.subject, m.body, m.headers)) {
    if (is(err, errc::payload_too_large))
      return cmd.failure(fmt::format("the message of {} bytes is larger than "
                                     "the server's limit of {} bytes",
                                     m.body.size(), c.max_payload()));
    return cmd.failure(describe(err));
  }
  if (auto err = c.flush(flush_timeout))
    return cmd.failure("cannot reach NATS at " + redact(opts.nats_url) + ": "
                       + reason(err) + "; the message may not have been "
                                       "delivered");
  if (opts.verbose)
    cmd.err() << "sent " << to_string(m.env.kind) << ' '
              << (opts.json ? std::string{"(JSON)"} : m.id) << " on "
              << m.subject << '\n';
  return client_exit::ok;
}

struct target {
  std::string subject;
  /// For messages: "'x'" or "a Nova with capability 'x'".
  std::string shown;
};

caf::expected<target> target_of(const session& s, const recipient& to) {
  if (to.any) {
    if (auto err = check_id(to.id, "capability"))
      return err;
    auto subject = s.names.capability(to.id);
    if (!subject)
      return subject.error();
    return target{std::move(*subject), "a Nova with capability '" + to.id
                                         + "'"};
  }
  if (auto err = check_id(to.id, "recipient"))
    return err;
  auto subject = s.names.inbox(to.id);
  if (!subject)
    return subject.error();
  return target{std::move(*subject), "'" + to.id + "'"};
}

// -- sub: rendering what arrives ----------------------------------------------

std::string clock_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ms % 1000);
}

/// One line, control characters escaped, cut at `limit` bytes.
std::string printable(const std::string& x, size_t limit = shown_payload) {
  std::string out;
  auto n = std::min(x.size(), limit);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(x[i]);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\x{:02x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  if (x.size() > limit)
    out += "...";
  return out;
}

bool is_json_body(const nova::headers& hs) {
  auto i = hs.find(nats_headers::content_type);
  return i != hs.end() && i->second.rfind(json_content_type, 0) == 0;
}

/// What the subject says about an envelope (the gateway does the same when
/// it receives one).
void route_by_subject(const std::string& rel, bool has_reply, envelope& env) {
  auto dot = rel.find('.');
  auto head = rel.substr(0, dot);
  auto rest = dot == std::string::npos ? std::string{} : rel.substr(dot + 1);
  if (head == "inbox") {
    env.kind = has_reply ? kind::request : kind::direct;
    env.to = rest;
  } else if (head == "capability") {
    env.kind = has_reply ? kind::request : kind::direct;
  } else if (head == "broadcast") {
    env.kind = kind::broadcast;
  } else if (head == "group") {
    env.kind = kind::multicast;
    env.to = rest;
  } else if (head == "events") {
    env.kind = kind::event;
    env.subject = rest;
  } else if (head == "emergency") {
    env.kind = kind::emergency;
  }
}

/// A JSON body as the gateway reads it: a canonical-JSON Envelope when it
/// has an Envelope's field names, else any JSON value as the payload of an
/// envelope from `anonymous`.
std::optional<envelope> envelope_from_json(const std::string& body,
                                           const std::string& rel,
                                           bool has_reply) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded())
    return std::nullopt;
  static const char* keys[] = {"id",      "from",           "to",
                               "kind",    "priority",       "correlationId",
                               "payload", "correlation_id", "contentType"};
  bool looks_like_envelope = false;
  if (j.is_object())
    for (auto k : keys)
      looks_like_envelope = looks_like_envelope || j.contains(k);
  envelope env;
  if (looks_like_envelope) {
    auto e = from_json<envelope>(body);
    if (!e)
      return std::nullopt;
    env = std::move(*e);
  } else {
    env.content_type = json_content_type;
    env.payload = body;
    route_by_subject(rel, has_reply, env);
  }
  if (env.from.empty())
    env.from = "anonymous";
  return env;
}

/// `subject` after "<prefix>.", or empty.
std::string relative(const std::string& subject, const std::string& prefix) {
  if (subject.size() <= prefix.size() + 1
      || subject.compare(0, prefix.size(), prefix) != 0
      || subject[prefix.size()] != '.')
    return {};
  return subject.substr(prefix.size() + 1);
}

using ordered_json = nlohmann::ordered_json;

std::string dump(const ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// One line for one message: readable, or one JSON object.
std::string render(const std::string& prefix, const nats_message& m,
                   bool json) {
  auto rel = relative(m.subject, prefix);
  auto now = clock_time(std::chrono::system_clock::now());
  ordered_json j;
  j["subject"] = m.subject;
  if (!m.reply.empty())
    j["reply"] = m.reply;
  auto raw = [&] {
    if (json) {
      j["raw_bytes"] = m.data.size();
      return dump(j);
    }
    return fmt::format("{} {} raw {} bytes", now, m.subject, m.data.size());
  };
  if (rel.rfind("presence.", 0) == 0) {
    auto p = decode<presence>(m.data);
    if (!p)
      return raw();
    if (json) {
      j["presence"] = ordered_json::parse(to_json(*p), nullptr, false);
      return dump(j);
    }
    return fmt::format("{} {} presence {}@{} {}", now, m.subject,
                       printable(p->nova_id, 64), printable(p->node_id, 64),
                       to_string(p->status));
  }
  if (rel.rfind("node.", 0) == 0) {
    auto rest = rel.substr(5);
    auto dot = rest.find('.');
    auto node = rest.substr(0, dot);
    auto verb = dot == std::string::npos ? std::string{} : rest.substr(dot + 1);
    if (json) {
      j["node"] = node;
      j["verb"] = verb;
      return dump(j);
    }
    return fmt::format("{} {} node {} {}", now, m.subject, node, verb);
  }
  std::optional<envelope> env;
  if (is_json_body(m.headers)) {
    env = envelope_from_json(m.data, rel, !m.reply.empty());
  } else if (auto e = decode<envelope>(m.data); e && !e->from.empty()) {
    env = std::move(*e);
  }
  if (!env)
    return raw();
  if (json) {
    j["envelope"] = ordered_json::parse(to_json(*env), nullptr, false);
    return dump(j);
  }
  std::string to = env->to;
  if (to.empty() && rel.rfind("capability.", 0) == 0)
    to = "any:" + rel.substr(11);
  if (to.empty())
    to = "*";
  auto line = fmt::format("{} {} {} {} -> {}", now, m.subject,
                          to_string(env->kind), printable(env->from, 64),
                          printable(to, 80));
  if (!env->subject.empty())
    line += " " + printable(env->subject, 200);
  line += " " + printable(env->payload);
  return line;
}

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
  interrupted.store(true);
}

/// Catches SIGINT and SIGTERM while it lives, so `sub` exits cleanly.
class interrupt_guard {
public:
  interrupt_guard() {
    interrupted.store(false);
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }

  interrupt_guard(const interrupt_guard&) = delete;
  interrupt_guard& operator=(const interrupt_guard&) = delete;

  ~interrupt_guard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

struct tail_state {
  std::mutex mtx;
  std::condition_variable cv;
  size_t seen = 0;
  bool done = false;
};

} // namespace

int client_send(const client_options& opts, const recipient& to,
                const std::string& payload, std::ostream& out,
                std::ostream& err) {
  cli_command cmd{"nova send", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  auto t = target_of(*s, to);
  if (!t)
    return cmd.usage(describe(t.error()));
  auto m = make_outgoing(opts, kind::direct, t->subject, payload);
  if (to.any)
    m.env.headers[capability_header] = to.id;
  else
    m.env.to = to.id;
  return deliver(cmd, opts, *s, std::move(m));
}

int client_request(const client_options& opts, const recipient& to,
                   const std::string& payload, std::ostream& out,
                   std::ostream& err) {
  cli_command cmd{"nova request", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  if (opts.timeout.count() <= 0)
    return cmd.usage("--timeout-ms must be positive");
  auto t = target_of(*s, to);
  if (!t)
    return cmd.usage(describe(t.error()));
  auto m = make_outgoing(opts, kind::request, t->subject, payload);
  if (to.any)
    m.env.headers[capability_header] = to.id;
  else
    m.env.to = to.id;
  finish_body(opts, m);
  m.headers[nats_headers::timeout_ms] = std::to_string(opts.timeout.count());
  auto client = connect(cmd, opts, *s);
  if (!client)
    return client_exit::failure;
  auto start = steady::now();
  auto r = (*client)->request(m.subject, m.body, m.headers, opts.timeout);
  auto latency = std::chrono::duration<double, std::milli>(steady::now()
                                                           - start);
  if (!r) {
    if (is(r.error(), errc::unknown_nova))
      return cmd.failure(
        (to.any ? "no Nova with capability '" + to.id + "'"
                : "no Nova named '" + to.id + "'")
        + " is listening (on " + t->subject + ")");
    if (is(r.error(), errc::request_timeout))
      return cmd.failure(fmt::format("no reply from {} within {} ms",
                                     t->shown, opts.timeout.count()));
    return cmd.failure(describe(r.error()));
  }
  auto header = [&r](const char* name) {
    auto i = r->headers.find(name);
    return i == r->headers.end() ? std::string{} : i->second;
  };
  if (auto code = header(nats_headers::error); !code.empty()) {
    auto msg = header(nats_headers::error_message);
    if (msg.rfind(code, 0) != 0)
      msg = code + (msg.empty() ? "" : ": " + msg);
    return cmd.failure(fmt::format("{} answered with an error: {}", t->shown,
                                   msg));
  }
  std::string from;
  std::string correlation;
  if (opts.json) {
    out << r->data << '\n';
    from = header(nats_headers::from);
    correlation = header(nats_headers::correlation_id);
  } else {
    auto env = decode<envelope>(r->data);
    if (!env)
      return cmd.failure("cannot decode the reply from " + t->shown + ": "
                         + describe(env.error()));
    out << env->payload << '\n';
    from = env->from;
    correlation = as_string(env->correlation_id);
  }
  out.flush();
  if (opts.verbose)
    err << fmt::format("reply from {} (correlation {}, {:.2f} ms)\n",
                       from.empty() ? "?" : from,
                       correlation.empty() ? "?" : correlation,
                       latency.count());
  return client_exit::ok;
}

int client_publish(const client_options& opts, const std::string& subject,
                   const std::string& payload, std::ostream& out,
                   std::ostream& err) {
  cli_command cmd{"nova pub", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  auto wire = s->names.event(subject);
  if (!wire)
    return cmd.usage(describe(wire.error()));
  auto m = make_outgoing(opts, kind::event, *wire, payload);
  m.env.subject = subject;
  return deliver(cmd, opts, *s, std::move(m));
}

int client_broadcast(const client_options& opts, const std::string& payload,
                     std::ostream& out, std::ostream& err) {
  cli_command cmd{"nova broadcast", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  auto m = make_outgoing(opts, kind::broadcast, s->names.broadcast(), payload);
  return deliver(cmd, opts, *s, std::move(m));
}

int client_multicast(const client_options& opts, const std::string& group,
                     const std::string& payload, std::ostream& out,
                     std::ostream& err) {
  cli_command cmd{"nova multicast", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  auto wire = s->names.group(group);
  if (!wire)
    return cmd.usage(describe(wire.error()));
  auto m = make_outgoing(opts, kind::multicast, *wire, payload);
  m.env.to = group;
  return deliver(cmd, opts, *s, std::move(m));
}

int client_emergency(const client_options& opts, const std::string& payload,
                     std::ostream& out, std::ostream& err) {
  cli_command cmd{"nova emergency", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_sender(opts, payload))
    return cmd.usage(describe(e));
  auto m = make_outgoing(opts, kind::emergency, s->names.emergency(), payload);
  return deliver(cmd, opts, *s, std::move(m));
}

int client_sub(const client_options& opts, const sub_options& sub,
               std::ostream& out, std::ostream& err) {
  cli_command cmd{"nova sub", out, err};
  auto s = prepare(opts);
  if (!s)
    return cmd.usage(reason(s.error()));
  if (auto e = check_subject(sub.pattern, true))
    return cmd.usage("pattern: " + reason(e));
  if (sub.timeout.count() < 0)
    return cmd.usage("--timeout-ms must not be negative");
  auto subject = s->names.prefix() + "." + sub.pattern;
  auto client = connect(cmd, opts, *s);
  if (!client)
    return client_exit::failure;
  auto st = std::make_shared<tail_state>();
  auto prefix = s->names.prefix();
  auto count = sub.count;
  auto json = sub.json;
  auto handler = [st, &out, prefix, count, json](nats_message&& m) {
    auto line = render(prefix, m, json);
    std::lock_guard<std::mutex> guard{st->mtx};
    if (st->done)
      return;
    out << line << '\n';
    out.flush();
    if (count > 0 && ++st->seen >= count) {
      st->done = true;
      st->cv.notify_all();
    }
  };
  auto subscription = (*client)->subscribe(subject, handler);
  if (!subscription)
    return cmd.failure("cannot subscribe to " + subject + ": "
                       + describe(subscription.error()));
  if (auto e = (*client)->flush(flush_timeout))
    return cmd.failure("cannot reach NATS at " + redact(opts.nats_url) + ": "
                       + reason(e));
  err << "listening on " << subject << std::endl;
  interrupt_guard guard;
  auto deadline = sub.timeout.count() > 0
                    ? std::optional<steady::time_point>{steady::now()
                                                        + sub.timeout}
                    : std::nullopt;
  {
    std::unique_lock<std::mutex> lock{st->mtx};
    while (!st->done && !interrupted.load()
           && (!deadline || steady::now() < *deadline))
      st->cv.wait_for(lock, milliseconds(50));
    st->done = true;
  }
  // Unsubscribes and waits for a running handler before `out` goes away.
  subscription->reset();
  return client_exit::ok;
}

} // namespace nova
