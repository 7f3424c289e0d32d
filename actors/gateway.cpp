#include "actors/gateway.hpp"

#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/outbound.hpp"
#include "actors/quiet.hpp"
#include "cluster/naming.hpp"
#include "messages/codec.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nova::nats_message)

namespace nova {

namespace {

using nova_up_atom = caf::atom_constant<caf::atom("novaup")>;
using nova_down_atom = caf::atom_constant<caf::atom("novadown")>;
using reply_atom = caf::atom_constant<caf::atom("reply")>;
using nats_event_atom = caf::atom_constant<caf::atom("natsevt")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;

/// Bytes a wire message may carry beyond the payload limit (envelope fields).
constexpr size_t envelope_overhead = 64 * 1024;

using clock = std::chrono::steady_clock;

struct remote_nova {
  std::string node;
  std::vector<std::string> capabilities;
  clock::time_point seen;
};

caf::timespan millis_header(const nova::headers& hs, caf::timespan fallback) {
  auto i = hs.find(nats_headers::timeout_ms);
  if (i == hs.end())
    return fallback;
  try {
    auto ms = std::stoll(i->second);
    if (ms > 0 && ms <= 3'600'000)
      return std::chrono::milliseconds(ms);
  } catch (...) {
    // fall through
  }
  return fallback;
}

bool is_json(const nova::headers& hs) {
  auto i = hs.find(nats_headers::content_type);
  return i != hs.end() && i->second.rfind(json_content_type, 0) == 0;
}

// -- the remote bus -----------------------------------------------------------

class nats_bus final : public remote_bus {
public:
  nats_bus(runtime_context* ctx, naming names)
    : ctx_(ctx), names_(std::move(names)) {
    // nop
  }

  ~nats_bus() override {
    shutdown();
  }

  void shutdown() {
    {
      std::lock_guard guard{fixed_mtx_};
      fixed_.clear();
    }
    std::unique_lock guard{client_mtx_};
    client_.reset();
    connected_ = false;
  }

  void set_client(std::unique_ptr<nats_client> c) {
    std::unique_lock guard{client_mtx_};
    client_ = std::move(c);
    connected_ = client_->connected();
  }

  void keep(std::unique_ptr<nats_subscription> sub) {
    std::lock_guard guard{fixed_mtx_};
    fixed_.push_back(std::move(sub));
  }

  /// Runs `f(client)` while the client exists; false otherwise.
  template <class F>
  bool with_client(F&& f) {
    std::shared_lock guard{client_mtx_};
    if (!client_)
      return false;
    f(*client_);
    return true;
  }

  const naming& names() const noexcept {
    return names_;
  }

  /// Only fan-out traffic comes back to its own node and needs `Nova-Node`.
  static bool fan_out_kind(kind k) noexcept {
    return k == kind::broadcast || k == kind::multicast || k == kind::event
           || k == kind::emergency;
  }

  nova::headers headers_for(const envelope& env) const {
    nova::headers hs;
    hs[nats_headers::msg_id] = env.id;
    hs[nats_headers::correlation_id] = env.correlation_id;
    if (fan_out_kind(env.kind))
      hs[nats_headers::node] = ctx_->node_id;
    return hs;
  }

  caf::expected<std::string> subject_for(const envelope& env) const {
    switch (env.kind) {
      case kind::broadcast: return names_.broadcast();
      case kind::emergency: return names_.emergency();
      case kind::multicast: return names_.group(env.to);
      case kind::event: return names_.event(env.subject);
      default: return names_.inbox(env.to);
    }
  }

  caf::error publish(const envelope& env) override {
    auto subject = subject_for(env);
    if (!subject)
      return subject.error();
    return send_or_queue(std::move(*subject), env);
  }

  caf::error publish_any(const std::string& capability,
                         const envelope& env) override {
    auto subject = names_.capability(capability);
    if (!subject)
      return subject.error();
    return send_or_queue(std::move(*subject), env);
  }

  /// The inbox prefix replies come back to (`<inbox>.<token>`).
  void set_reply_prefix(std::string x) {
    reply_prefix_ = std::move(x);
  }

  const std::string& reply_prefix() const noexcept {
    return reply_prefix_;
  }

  /// Tokens for reply subjects, shared by the gateway actor's requests and
  /// the direct ones.
  uint64_t next_token() noexcept {
    return next_token_.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  caf::error request(const envelope& env, caf::timespan timeout,
                     caf::strong_actor_ptr requester,
                     caf::message_id response_id) override {
    if (!connected_)
      return make_error(errc::backend_unavailable,
                        "not connected to NATS; request to '" + env.to
                          + "' not sent");
    auto cap = env.headers.find(capability_header);
    auto subject = cap != env.headers.end() ? names_.capability(cap->second)
                                            : names_.inbox(env.to);
    if (!subject)
      return subject.error();
    auto token = next_token();
    auto reply = reply_prefix_ + "." + std::to_string(token);
    {
      std::lock_guard guard{requests_mtx_};
      requests_.emplace(token,
                        direct_request{std::move(requester), response_id,
                                       cap != env.headers.end()
                                         ? "capability " + cap->second
                                         : env.to,
                                       clock::now() + timeout});
    }
    auto ms = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    nats_client::header_ref refs[] = {
      {nats_headers::msg_id, env.id.c_str()},
      {nats_headers::correlation_id, env.correlation_id.c_str()},
      {nats_headers::timeout_ms, ms.c_str()},
    };
    auto data = encode(env);
    caf::error err;
    if (!with_client([&](nats_client& c) {
          err = c.publish_trusted(*subject, data, refs, 3, reply);
        }))
      err = make_error(errc::backend_unavailable, "the NATS client is gone");
    if (err) {
      std::lock_guard guard{requests_mtx_};
      requests_.erase(token);
      return err;
    }
    ctx_->stats.add(counter::wire_out);
    return caf::none;
  }

  /// Delivers the reply for `token` if a Nova asked directly; false if the
  /// token is not one of those (the gateway actor's, or expired).
  bool complete_request(uint64_t token, nats_message& m) {
    direct_request r;
    {
      std::lock_guard guard{requests_mtx_};
      auto i = requests_.find(token);
      if (i == requests_.end())
        return false;
      r = std::move(i->second);
      requests_.erase(i);
    }
    auto respond = [&](auto&& x) {
      r.requester->enqueue(caf::make_mailbox_element(nullptr, r.response_id,
                                                     {}, std::move(x)),
                           nullptr);
    };
    auto outcome = reply_outcome(m, r.target);
    if (outcome)
      respond(std::move(*outcome));
    else
      respond(std::move(outcome.error()));
    return true;
  }

  /// What a reply message means: the response envelope, or the error the
  /// other side (or the server) reported.
  caf::expected<envelope> reply_outcome(nats_message& m,
                                        const std::string& target) {
    if (m.no_responders)
      return make_error(errc::unknown_nova,
                        "no Nova is listening as " + target);
    if (auto e = m.headers.find(nats_headers::error); e != m.headers.end()) {
      auto msg = m.headers[nats_headers::error_message];
      return make_error(parse_errc(e->second), msg);
    }
    envelope env;
    if (auto err = decode_into(m.bytes(), env)) {
      ctx_->stats.add(counter::decode_errors);
      return err;
    }
    env.kind = kind::response;
    return env;
  }

  /// Forgets direct requests whose requester gave up long ago (it keeps
  /// its own timeout; this only bounds the table).
  void expire_requests() {
    auto cutoff = clock::now() - std::chrono::seconds(1);
    std::lock_guard guard{requests_mtx_};
    for (auto i = requests_.begin(); i != requests_.end();)
      i = i->second.deadline < cutoff ? requests_.erase(i) : std::next(i);
  }

  void reply(const std::string& reply_to, const caf::expected<envelope>& r,
             bool json) override {
    nova::headers hs;
    std::string body;
    if (r) {
      hs[nats_headers::msg_id] = r->id;
      hs[nats_headers::correlation_id] = r->correlation_id;
      hs[nats_headers::from] = r->from;
      if (json) {
        hs[nats_headers::content_type] = json_content_type;
        auto parsed = nlohmann::json::parse(r->payload, nullptr, false);
        body = parsed.is_discarded() ? nlohmann::json(r->payload).dump()
                                     : r->payload;
      } else {
        body = encode(*r);
      }
    } else {
      const auto& err = r.error();
      auto code = code_of(err);
      // The code travels in its own header: the message is the context.
      const auto& detail = err.context();
      auto message = detail.size() == 1 && detail.match_element<std::string>(0)
                       ? detail.get_as<std::string>(0)
                       : describe(err);
      hs[nats_headers::error] = to_string(code);
      hs[nats_headers::error_message] = message;
      hs[nats_headers::node] = ctx_->node_id;
      if (json) {
        hs[nats_headers::content_type] = json_content_type;
        body = nlohmann::json{
          {"error", {{"code", to_string(code)}, {"message", message}}}}
                 .dump();
      }
    }
    with_client([&](nats_client& c) {
      if (auto err = c.publish(reply_to, body, hs))
        spdlog::debug("gateway: reply to '{}' lost: {}", reply_to,
                      describe(err));
      else
        ctx_->stats.add(counter::wire_out);
    });
  }

  bool knows(const std::string& nova_id) const override {
    std::shared_lock guard{remote_mtx_};
    auto i = remote_.find(nova_id);
    return i != remote_.end() && fresh(i->second);
  }

  bool knows_capability(const std::string& capability) const override {
    if (!ctx_->directory.with_capability(capability).empty())
      return true;
    std::shared_lock guard{remote_mtx_};
    for (const auto& [id, r] : remote_)
      if (fresh(r)
          && std::find(r.capabilities.begin(), r.capabilities.end(),
                       capability)
               != r.capabilities.end())
        return true;
    return false;
  }

  void publish_presence(const presence& p) override {
    auto subject = names_.presence(p.nova_id);
    if (!subject || !connected_)
      return; // presence is refreshed by the next heartbeat anyway
    // A local Nova is heard of only once its inbox is subscribed: the
    // gateway announces it then. Before that (its heartbeats and republishes
    // can be quicker than the gateway), others would learn of it and send
    // into a subject nobody subscribed to yet, and NATS drops those.
    if (p.node_id == ctx_->node_id && p.status != presence_status::offline
        && !subscribed(p.nova_id))
      return;
    nova::headers hs;
    hs[nats_headers::node] = ctx_->node_id;
    with_client([&](nats_client& c) {
      static_cast<void>(c.publish(*subject, encode(p), hs));
    });
  }

  bool connected() const override {
    return connected_;
  }

  /// The gateway subscribed the local Nova `id`'s subjects (or stopped).
  void set_subscribed(const std::string& id, bool x) {
    std::lock_guard guard{subscribed_mtx_};
    if (x)
      subscribed_.insert(id);
    else
      subscribed_.erase(id);
  }

  bool subscribed(const std::string& id) const {
    std::lock_guard guard{subscribed_mtx_};
    return subscribed_.count(id) > 0;
  }

  size_t outbox_depth() const override {
    std::lock_guard guard{outbox_mtx_};
    return outbox_.size();
  }

  void set_connected(bool x) {
    if (x && !connected_) {
      // Back online: give every known Nova a fresh heartbeat window to
      // announce itself before it counts as gone.
      std::unique_lock guard{remote_mtx_};
      auto now = clock::now();
      for (auto& kvp : remote_)
        kvp.second.seen = now;
    }
    connected_ = x;
  }

  /// After a reconnect, holds the outbox until every node we knew has
  /// announced itself again (its subscriptions are back: what we flush
  /// reaches it) or until `settle` passes.
  void begin_settling(caf::timespan settle) {
    std::lock_guard guard{outbox_mtx_};
    awaiting_.clear();
    {
      std::shared_lock rguard{remote_mtx_};
      for (const auto& kvp : remote_)
        awaiting_.insert(kvp.second.node);
    }
    settle_until_ = clock::now() + settle;
  }

  /// A node announced itself or sent presence.
  void node_seen(const std::string& node) {
    bool flush = false;
    {
      std::lock_guard guard{outbox_mtx_};
      flush = awaiting_.erase(node) > 0 && awaiting_.empty();
    }
    if (flush)
      flush_outbox();
  }

  /// Publishes what waited while disconnected, in order.
  void flush_outbox() {
    std::lock_guard guard{outbox_mtx_};
    if (!awaiting_.empty()) {
      if (clock::now() < settle_until_)
        return;
      awaiting_.clear();
    }
    while (!outbox_.empty() && connected_) {
      auto& x = outbox_.front();
      caf::error err;
      if (!with_client([&](nats_client& c) {
            err = c.publish(x.subject, x.data, x.headers);
          }))
        return;
      if (err) {
        spdlog::debug("gateway: outbox flush paused: {}", describe(err));
        return;
      }
      ctx_->stats.add(counter::wire_out);
      outbox_.pop_front();
    }
    if (outbox_.empty() && flushed_any_) {
      spdlog::info("gateway: outbox drained");
      flushed_any_ = false;
    }
  }

  void remote_presence(const presence& p) {
    {
      std::unique_lock guard{remote_mtx_};
      if (p.status == presence_status::offline) {
        remote_.erase(p.nova_id);
      } else {
        auto& r = remote_[p.nova_id];
        r.node = p.node_id;
        r.capabilities = p.capabilities;
        r.seen = clock::now();
      }
    }
    node_seen(p.node_id);
  }

  void forget_stale() {
    if (!connected_)
      return;
    std::unique_lock guard{remote_mtx_};
    for (auto i = remote_.begin(); i != remote_.end();)
      i = fresh(i->second) ? std::next(i) : remote_.erase(i);
  }

private:
  struct queued {
    std::string subject;
    std::string data;
    nova::headers headers;
  };

  struct direct_request {
    caf::strong_actor_ptr requester;
    caf::message_id response_id;
    std::string target;
    clock::time_point deadline;
  };

  bool fresh(const remote_nova& r) const {
    // While disconnected we cannot hear heartbeats: what we knew stays known,
    // so sends wait in the outbox instead of failing.
    if (!connected_)
      return true;
    auto hb = ctx_->limits.heartbeat_interval;
    return clock::now() - r.seen <= hb + hb / 2;
  }

  caf::error send_or_queue(std::string subject, const envelope& env) {
    // One buffer per thread: no allocation per send. A large body's buffer
    // is let go by the next send.
    thread_local std::string data;
    if (data.capacity() > 64 * 1024)
      std::string{}.swap(data);
    data.clear();
    encode_to(env, data);
    std::lock_guard guard{outbox_mtx_};
    if (connected_ && outbox_.empty()) {
      // The hot path: headers straight from the envelope, no map.
      nats_client::header_ref refs[] = {
        {nats_headers::msg_id, env.id.c_str()},
        {nats_headers::correlation_id, env.correlation_id.c_str()},
        {nats_headers::node, ctx_->node_id.c_str()},
      };
      size_t n = fan_out_kind(env.kind) ? 3 : 2;
      caf::error err;
      bool have = with_client([&](nats_client& c) {
        err = c.publish_trusted(subject, data, refs, n);
      });
      if (have && !err) {
        ctx_->stats.add(counter::wire_out);
        return caf::none;
      }
      if (have && !is(err, errc::queue_full)
          && !is(err, errc::backend_unavailable))
        return err; // invalid subject or oversized: not a connection problem
    }
    if (outbox_.size() >= ctx_->limits.outbox_capacity) {
      ctx_->stats.add(counter::outbox_full);
      return make_error(errc::queue_full,
                        "the outbox holds "
                          + std::to_string(outbox_.size())
                          + " envelopes waiting for NATS; try again later");
    }
    flushed_any_ = true;
    outbox_.push_back(queued{std::move(subject), data, headers_for(env)});
    return caf::none;
  }

  runtime_context* ctx_;
  naming names_;
  mutable std::shared_mutex client_mtx_;
  std::unique_ptr<nats_client> client_;
  std::mutex fixed_mtx_;
  std::vector<std::unique_ptr<nats_subscription>> fixed_;
  std::atomic<bool> connected_{false};
  mutable std::mutex outbox_mtx_;
  std::deque<queued> outbox_;
  bool flushed_any_ = false;
  std::unordered_set<std::string> awaiting_;
  clock::time_point settle_until_;
  mutable std::shared_mutex remote_mtx_;
  std::unordered_map<std::string, remote_nova> remote_;
  mutable std::mutex subscribed_mtx_;
  std::unordered_set<std::string> subscribed_;
  std::string reply_prefix_;
  std::atomic<uint64_t> next_token_{0};
  std::mutex requests_mtx_;
  std::unordered_map<uint64_t, direct_request> requests_;
};

// -- inbound: decoding and checking what arrives from the wire ----------------

/// Logs a rejected wire message once per subject (bounded), counts always.
class wire_log {
public:
  void reject(runtime_context& ctx, counter c, const std::string& subject,
              const std::string& why) {
    ctx.stats.add(c);
    std::lock_guard guard{mtx_};
    if (logged_.size() < 1000 && logged_.insert(subject).second)
      spdlog::warn("gateway: dropped a message on '{}': {} (further drops "
                   "on this subject are only counted)",
                   subject, why);
  }

private:
  std::mutex mtx_;
  std::unordered_set<std::string> logged_;
};

/// Turns a JSON body into an envelope: a canonical-JSON Envelope if it looks
/// like one, else any JSON value as the payload of an envelope from
/// `anonymous`.
caf::expected<envelope> from_json_body(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded())
    return make_error(errc::decode_failed, "the body is not valid JSON");
  // An object is an Envelope only if it has a payload and nothing but
  // Envelope fields; anything else ({"to": "x", "v": 1}) is a payload.
  static const std::unordered_set<std::string> fields{
    "id",          "from",           "to",         "kind",
    "priority",    "correlationId",  "correlation_id", "createdAt",
    "created_at",  "subject",        "contentType", "content_type",
    "payload",     "headers"};
  bool looks_like_envelope = j.is_object() && j.contains("payload");
  if (looks_like_envelope)
    for (const auto& item : j.items())
      if (fields.count(item.key()) == 0)
        looks_like_envelope = false;
  envelope env;
  if (looks_like_envelope) {
    auto e = from_json<envelope>(body);
    if (!e)
      return e.error();
    env = std::move(*e);
  } else {
    env.from = "anonymous";
    env.content_type = json_content_type;
    env.payload = body;
  }
  if (env.from.empty())
    env.from = "anonymous";
  if (env.id.empty())
    env.id = new_message_id();
  if (env.created_at == 0)
    env.created_at = now_ms();
  if (env.correlation_id.empty())
    env.correlation_id = env.id;
  return env;
}

struct inbound {
  runtime_context* ctx;
  nats_bus* bus;
  caf::actor gateway;
  std::shared_ptr<wire_log> log;

  /// Decodes and checks into `out` (default-constructed); sets the kind
  /// from where it arrived. False: counted, logged once, to be dropped.
  bool accept_into(nats_message& m, kind k, envelope& out) {
    auto& st = ctx->stats;
    st.add(counter::wire_in);
    auto bytes = m.bytes();
    if (bytes.size() > ctx->limits.max_payload + envelope_overhead) {
      log->reject(*ctx, counter::wire_rejected, m.subject,
                  "body of " + std::to_string(bytes.size())
                    + " bytes is over the limit");
      return false;
    }
    bool json = is_json(m.headers);
    if (json) {
      auto env = from_json_body(std::string{bytes});
      if (!env) {
        log->reject(*ctx, counter::decode_errors, m.subject,
                    describe(env.error()));
        return false;
      }
      out = std::move(*env);
      out.headers[nats_headers::content_type] = json_content_type;
    } else if (auto err = decode_into(bytes, out)) {
      log->reject(*ctx, counter::decode_errors, m.subject, describe(err));
      return false;
    }
    if (!is_valid_id(out.from)) {
      log->reject(*ctx, counter::wire_rejected, m.subject,
                  "sender id is not [A-Za-z0-9_-]{1,64}");
      return false;
    }
    if (out.payload.size() > ctx->limits.max_payload) {
      log->reject(*ctx, counter::wire_rejected, m.subject,
                  "payload of " + std::to_string(out.payload.size())
                    + " bytes is over the limit");
      return false;
    }
    out.kind = k;
    tap_envelope(*ctx, out, m.subject);
    return true;
  }

  std::optional<envelope> accept(nats_message& m, kind k) {
    std::optional<envelope> out{std::in_place};
    if (!accept_into(m, k, *out))
      out.reset();
    return out;
  }

  void deliver(const caf::actor& dest, envelope env) {
    if (env.priority == priority::urgent || env.kind == kind::emergency)
      caf::anon_send<caf::message_priority::high>(dest, std::move(env));
    else
      caf::anon_send(dest, std::move(env));
  }

  /// Collects one-way messages for one local Nova while more are queued on
  /// its subscription, so a burst costs one mailbox hand-off per batch, not
  /// per message. Used only on that subscription's delivery thread.
  struct batcher {
    std::string id;
    std::vector<envelope> batch;
  };

  static constexpr size_t max_batch = 256;

  void flush(batcher& b) {
    if (b.batch.empty())
      return;
    if (auto dest = ctx->directory.find(b.id))
      caf::anon_send(dest, std::move(b.batch));
    else
      ctx->stats.add(counter::dead_letters, b.batch.size());
    b.batch = std::vector<envelope>{};
  }

  void to_nova_batched(nats_message&& m, batcher& b) {
    if (!m.reply.empty()) {
      flush(b); // keep the order of what came before
      to_nova(std::move(m), b.id);
      return;
    }
    // Decoded in place, into the batch's next slot.
    if (b.batch.empty())
      b.batch.reserve(std::min<size_t>(m.pending + 1, max_batch));
    auto& env = b.batch.emplace_back();
    if (!accept_into(m, kind::direct, env)) {
      b.batch.pop_back();
    } else {
      env.to = b.id;
      if (env.priority == priority::urgent) {
        auto urgent = std::move(env);
        b.batch.pop_back();
        flush(b);
        if (auto dest = ctx->directory.find(b.id))
          deliver(dest, std::move(urgent));
        else
          ctx->stats.add(counter::dead_letters);
      }
    }
    if (m.pending == 0 || b.batch.size() >= max_batch)
      flush(b);
  }

  /// A message for one local Nova (its inbox or a capability queue group).
  void to_nova(nats_message&& m, const std::string& id) {
    auto env = accept(m, m.reply.empty() ? kind::direct : kind::request);
    if (!env) {
      if (!m.reply.empty())
        reply_error(m, errc::decode_failed,
                    "the request could not be decoded; see the node's log");
      return;
    }
    env->to = id;
    if (!m.reply.empty()) {
      // Straight to the Nova, which publishes its answer itself.
      auto dest = ctx->directory.find(id);
      if (!dest) {
        ctx->stats.add(counter::dead_letters);
        reply_error(m, errc::unknown_nova,
                    "no Nova named '" + id + "' on node '" + ctx->node_id
                      + "'");
        return;
      }
      bool json = is_json(m.headers);
      if (env->priority == priority::urgent)
        caf::anon_send<caf::message_priority::high>(
          dest, wire_request_atom::value, std::move(*env), std::move(m.reply),
          json);
      else
        caf::anon_send(dest, wire_request_atom::value, std::move(*env),
                       std::move(m.reply), json);
      return;
    }
    if (auto dest = ctx->directory.find(id))
      deliver(dest, std::move(*env));
    else
      ctx->stats.add(counter::dead_letters);
  }

  /// Answers a request the gateway could not accept, so the requester does
  /// not wait for its timeout.
  void reply_error(const nats_message& m, errc code, const std::string& msg) {
    bus->reply(m.reply, make_error(code, msg), is_json(m.headers));
  }

  bool own(const nats_message& m) const {
    auto i = m.headers.find(nats_headers::node);
    return i != m.headers.end() && i->second == ctx->node_id;
  }

  /// Broadcast, emergency, multicast and events: every matching local Nova.
  void fan_in(nats_message&& m, kind k, std::string to,
              std::string subject) {
    if (own(m))
      return; // delivered locally when it was sent
    auto env = accept(m, k);
    if (!env)
      return;
    if (k == kind::multicast)
      env->to = std::move(to);
    if (k == kind::event)
      env->subject = std::move(subject);
    for (const auto& dest : local_targets(*ctx, *env))
      deliver(dest, *env);
  }

  void on_presence(nats_message&& m) {
    if (own(m))
      return;
    ctx->stats.add(counter::wire_in);
    auto p = decode<presence>(m.bytes());
    if (!p || !is_valid_id(p->nova_id) || !is_valid_id(p->node_id)) {
      log->reject(*ctx, counter::decode_errors, m.subject,
                  p ? "invalid id in presence" : describe(p.error()));
      return;
    }
    bus->remote_presence(*p);
    caf::anon_send(ctx->presence, heartbeat_atom::value, std::move(*p));
  }
};

/// The last token of `subject` after `prefix` + ".", or empty.
std::string tail(const std::string& subject, const std::string& prefix) {
  if (subject.size() <= prefix.size() + 1
      || subject.compare(0, prefix.size(), prefix) != 0
      || subject[prefix.size()] != '.')
    return {};
  return subject.substr(prefix.size() + 1);
}

// -- the gateway actor --------------------------------------------------------

struct pending_request {
  caf::response_promise promise;
  std::string target;
};

struct gateway_state {
  static inline const char* name = "nova.gateway";

  std::shared_ptr<nats_bus> bus;
  std::shared_ptr<inbound> in;
  context_ptr ctx;
  std::string reply_prefix;
  std::unordered_map<uint64_t, pending_request> pending;
  std::unordered_map<std::string,
                     std::vector<std::unique_ptr<nats_subscription>>>
    subs;
};

using gateway_actor = caf::stateful_actor<gateway_state>;

caf::behavior gateway_fun(gateway_actor* self, context_ptr ctx,
                          std::shared_ptr<nats_bus> bus,
                          std::shared_ptr<inbound> in,
                          std::string reply_prefix) {
  make_quiet(self, "gateway");
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.bus = std::move(bus);
  st.in = std::move(in);
  st.reply_prefix = std::move(reply_prefix);
  self->delayed_send(self, st.ctx->limits.heartbeat_interval, tick_atom::value);
  return {
    [self](nova_up_atom, std::string& id, std::vector<std::string>& caps) {
      auto& st = self->state;
      auto& subs = st.subs[id];
      auto in = st.in;
      auto add = [&](caf::expected<std::string> subject,
                     const std::string& queue) {
        if (!subject)
          return;
        st.bus->with_client([&](nats_client& c) {
          auto b = std::make_shared<inbound::batcher>();
          b->id = id;
          auto sub = c.subscribe_borrowed(
            *subject,
            [in, b](nats_message&& m) {
              in->to_nova_batched(std::move(m), *b);
            },
            queue);
          if (sub)
            subs.push_back(std::move(*sub));
          else
            spdlog::error("gateway: cannot subscribe '{}': {}", *subject,
                          describe(sub.error()));
        });
      };
      add(st.bus->names().inbox(id), {});
      for (const auto& c : caps) {
        auto subject = st.bus->names().capability(c);
        if (subject)
          add(subject, *subject);
      }
      // Announce only once the server knows the subscriptions, so nobody
      // learns of this Nova before its inbox works.
      if (st.bus->connected())
        st.bus->with_client([](nats_client& c) {
          static_cast<void>(c.flush(std::chrono::seconds(1)));
        });
      st.bus->set_subscribed(id, true);
      presence p;
      p.nova_id = id;
      p.node_id = st.ctx->node_id;
      p.status = presence_status::online;
      p.capabilities = caps;
      p.last_seen = now_ms();
      p.started_at = p.last_seen;
      st.bus->publish_presence(p);
    },
    [self](nova_down_atom, std::string& id) {
      self->state.bus->set_subscribed(id, false);
      self->state.subs.erase(id);
    },
    [self](request_atom, envelope& env) -> caf::result<envelope> {
      auto& st = self->state;
      if (!st.bus->connected())
        return make_error(errc::backend_unavailable,
                          "not connected to NATS; request to '" + env.to
                            + "' not sent");
      auto cap = env.headers.find(capability_header);
      auto subject = cap != env.headers.end()
                       ? st.bus->names().capability(cap->second)
                       : st.bus->names().inbox(env.to);
      if (!subject)
        return subject.error();
      auto target = cap != env.headers.end() ? "capability " + cap->second
                                             : env.to;
      auto timeout = millis_header(env.headers,
                                   st.ctx->limits.request_timeout);
      auto token = st.bus->next_token();
      auto hs = st.bus->headers_for(env);
      hs[nats_headers::timeout_ms] = std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout)
          .count());
      caf::error err;
      auto reply = st.reply_prefix + "." + std::to_string(token);
      st.bus->with_client([&](nats_client& c) {
        err = c.publish(*subject, encode(env), hs, reply);
      });
      if (err)
        return err;
      st.ctx->stats.add(counter::wire_out);
      auto rp = self->make_response_promise();
      st.pending.emplace(token, pending_request{rp, target});
      self->delayed_send(self, timeout + std::chrono::milliseconds(100),
                         expire_atom::value, token);
      return caf::delegated<envelope>{};
    },
    [self](reply_atom, uint64_t token, nats_message& m) {
      auto& st = self->state;
      auto i = st.pending.find(token);
      if (i == st.pending.end())
        return; // late: the requester gave up already
      auto p = std::move(i->second);
      st.pending.erase(i);
      p.promise.deliver(st.bus->reply_outcome(m, p.target));
    },
    [self](expire_atom, uint64_t token) {
      auto& st = self->state;
      auto i = st.pending.find(token);
      if (i == st.pending.end())
        return;
      i->second.promise.deliver(make_error(
        errc::request_timeout, "no reply from " + i->second.target));
      st.pending.erase(i);
    },
    [self](nats_event_atom, int ev) {
      auto& st = self->state;
      auto e = static_cast<nats_event>(ev);
      switch (e) {
        case nats_event::connected:
        case nats_event::reconnected: {
          if (e == nats_event::reconnected)
            st.ctx->stats.add(counter::reconnects);
          spdlog::info("gateway: {} to NATS", to_string(e));
          st.bus->set_connected(true);
          if (e == nats_event::reconnected) {
            auto hb = st.ctx->limits.heartbeat_interval;
            auto settle = std::min(caf::timespan{std::chrono::seconds(5)},
                                   hb + hb);
            st.bus->begin_settling(settle);
            self->delayed_send(self, settle, flush_atom::value);
          }
          st.bus->flush_outbox();
          // Tell the others we are (back): they republish their presence,
          // and so do we.
          if (auto subject = st.bus->names().node_control(st.ctx->node_id,
                                                          "announce"))
            st.bus->with_client([&](nats_client& c) {
              nova::headers hs;
              hs[nats_headers::node] = st.ctx->node_id;
              static_cast<void>(c.publish(*subject, {}, hs));
            });
          caf::anon_send(st.ctx->presence, republish_atom::value);
          break;
        }
        case nats_event::disconnected:
          spdlog::warn("gateway: lost the NATS connection; outbound "
                       "messages wait in the outbox (up to {})",
                       st.ctx->limits.outbox_capacity);
          st.bus->set_connected(false);
          break;
        case nats_event::closed:
          st.bus->set_connected(false);
          break;
      }
    },
    [self](flush_atom) { self->state.bus->flush_outbox(); },
    [self](tick_atom) {
      auto& st = self->state;
      st.bus->forget_stale();
      st.bus->flush_outbox();
      st.bus->expire_requests();
      self->delayed_send(self, st.ctx->limits.heartbeat_interval,
                         tick_atom::value);
    },
  };
}

} // namespace

caf::error start_nats_gateway(caf::actor_system& sys, const context_ptr& ctx,
                              nats_settings settings,
                              const std::string& prefix) {
  auto names = naming::make(prefix);
  if (!names)
    return names.error();
  auto bus = std::make_shared<nats_bus>(ctx.get(), *names);
  auto in = std::make_shared<inbound>();
  in->ctx = ctx.get();
  in->bus = bus.get();
  in->log = std::make_shared<wire_log>();
  // The gateway needs the reply inbox before it runs, the client needs the
  // gateway for its callbacks: spawn lazily, connect, then start it.
  auto reply_prefix = std::make_shared<std::string>();
  auto gw_ptr = std::make_shared<caf::actor>();
  auto raw_ctx = ctx.get();
  settings.name = "nova-" + ctx->node_id;
  // What the inbound side reads; the id headers repeat the envelope's.
  settings.header_keys = {nats_headers::content_type, nats_headers::node,
                          nats_headers::from,         nats_headers::timeout_ms,
                          nats_headers::error,        nats_headers::error_message};
  auto client = nats_client::connect(
    settings,
    [gw_ptr](nats_event ev) {
      if (*gw_ptr)
        caf::anon_send(*gw_ptr, nats_event_atom::value, static_cast<int>(ev));
    },
    [raw_ctx](const std::string& subject, uint64_t dropped) {
      raw_ctx->stats.add(counter::slow_consumer_drops, dropped);
      spdlog::warn("gateway: slow consumer on '{}': {} messages dropped",
                   subject, dropped);
    });
  if (!client)
    return client.error();
  *reply_prefix = (*client)->new_inbox();
  bus->set_reply_prefix(*reply_prefix);
  bus->set_client(std::move(*client));
  auto gw = sys.spawn(gateway_fun, ctx, bus, in, *reply_prefix);
  *gw_ptr = gw;
  in->gateway = gw;
  ctx->gateway = gw;
  ctx->bus = bus;
  // Node-wide subscriptions.
  const auto& n = bus->names();
  // Handlers that finish with the message before they return borrow its
  // bytes; the reply handler may pass it on to the gateway actor.
  auto sub = [&](const std::string& subject, nats_client::message_handler f,
                 bool borrow = true) {
    caf::error err;
    bus->with_client([&](nats_client& c) {
      auto s = borrow ? c.subscribe_borrowed(subject, std::move(f))
                      : c.subscribe(subject, std::move(f));
      if (s)
        bus->keep(std::move(*s));
      else
        err = s.error();
    });
    return err;
  };
  auto pfx = n.prefix();
  caf::error err;
  auto check = [&](caf::error e) {
    if (e && !err)
      err = std::move(e);
  };
  check(sub(n.broadcast(), [in](nats_message&& m) {
    in->fan_in(std::move(m), kind::broadcast, {}, {});
  }));
  check(sub(n.emergency(), [in](nats_message&& m) {
    in->fan_in(std::move(m), kind::emergency, {}, {});
  }));
  check(sub(pfx + ".group.*", [in, pfx](nats_message&& m) {
    auto group = tail(m.subject, pfx + ".group");
    in->fan_in(std::move(m), kind::multicast, std::move(group), {});
  }));
  check(sub(pfx + ".events.>", [in, pfx](nats_message&& m) {
    auto subject = tail(m.subject, pfx + ".events");
    in->fan_in(std::move(m), kind::event, {}, std::move(subject));
  }));
  check(sub(pfx + ".presence.*", [in](nats_message&& m) {
    in->on_presence(std::move(m));
  }));
  check(sub(pfx + ".node.*.announce", [in, pfx](nats_message&& m) {
    if (in->own(m))
      return;
    auto rest = tail(m.subject, pfx + ".node");
    auto node = rest.substr(0, rest.find('.'));
    if (is_valid_id(node))
      in->bus->node_seen(node);
    caf::anon_send(in->ctx->presence, republish_atom::value);
  }));
  check(sub(*reply_prefix + ".*", [gw, rp = *reply_prefix,
                                    b = bus.get()](nats_message&& m) {
    auto token = tail(m.subject, rp);
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(),
                                     n);
    if (ec != std::errc{} || end != token.data() + token.size())
      return; // not one of ours
    if (!b->complete_request(n, m))
      caf::anon_send(gw, reply_atom::value, n, std::move(m));
  }, false));
  if (err) {
    stop_nats_gateway(sys, *ctx);
    return err;
  }
  bus->with_client([](nats_client& c) {
    if (c.connected())
      static_cast<void>(c.flush(std::chrono::seconds(1)));
  });
  // Announce only now: the presence others send in answer must find our
  // subscriptions in place.
  if (bus->connected())
    caf::anon_send(gw, nats_event_atom::value,
                   static_cast<int>(nats_event::connected));
  return caf::none;
}

void gateway_nova_up(const runtime_context& ctx, const std::string& id,
                     const std::vector<std::string>& capabilities) {
  if (ctx.gateway)
    caf::anon_send(ctx.gateway, nova_up_atom::value, id, capabilities);
}

void gateway_nova_down(const runtime_context& ctx, const std::string& id) {
  if (ctx.gateway)
    caf::anon_send(ctx.gateway, nova_down_atom::value, id);
}

std::optional<gateway_info> gateway_client_info(const runtime_context& ctx) {
  auto bus = std::dynamic_pointer_cast<nats_bus>(ctx.bus);
  if (!bus)
    return std::nullopt;
  gateway_info info;
  if (!bus->connected())
    return info; // nats.c may hold its lock for a whole connect attempt
  bus->with_client([&](nats_client& c) {
    info.server_id = c.server_id();
    if (c.connected())
      if (auto rtt = c.rtt())
        info.rtt = *rtt;
  });
  return info;
}

void stop_nats_gateway(caf::actor_system& sys, runtime_context& ctx) {
  if (ctx.gateway) {
    caf::scoped_actor self{sys};
    self->monitor(ctx.gateway);
    self->send_exit(ctx.gateway, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {},
                  caf::after(std::chrono::seconds(5)) >> [] {
                    spdlog::warn("gateway: did not stop within 5 s");
                  });
  }
  // `ctx.bus` and `ctx.gateway` stay set: other threads may still read
  // them. A shut-down bus reports disconnected and publishes nothing.
  if (auto bus = std::dynamic_pointer_cast<nats_bus>(ctx.bus))
    bus->shutdown();
}

} // namespace nova
