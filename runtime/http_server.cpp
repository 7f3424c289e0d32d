#include "runtime/http_server.hpp"

#include <array>
#include <atomic>
#include <deque>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/durable_service.hpp"
#include "cluster/naming.hpp"
#include "messages/codec.hpp"
#include "runtime/node.hpp"
#include "runtime/ops.hpp"
#include "runtime/rpc.hpp"

namespace nova {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

using frame_ptr = std::shared_ptr<const std::string>;

std::string query_param(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return {};
  auto rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto kv = rest.substr(0, amp);
    auto eq = kv.find('=');
    if (kv.substr(0, eq) == key)
      return eq == std::string_view::npos ? std::string{}
                                          : std::string{kv.substr(eq + 1)};
    if (amp == std::string_view::npos)
      break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

/// Constant-time comparison for the bearer token.
bool same_secret(std::string_view x, std::string_view y) {
  if (x.size() != y.size())
    return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < x.size(); ++i)
    diff |= static_cast<unsigned char>(x[i] ^ y[i]);
  return diff == 0;
}

} // namespace

// -- the WebSocket feed -------------------------------------------------------

class ws_session;

/// The tap: matches envelopes against the clients' patterns and queues one
/// shared frame per match; keeps the latest events for `bus.subscribe`
/// without a store.
class live_feed : public envelope_tap {
public:
  live_feed(std::string prefix, size_t recent_capacity)
    : prefix_(std::move(prefix) + "."), recent_capacity_(recent_capacity) {
    // Events are remembered even while nobody watches.
    interest_.store(recent_capacity_ > 0 ? interest::events : interest::none);
  }

  void observe(const envelope& env, bool inbound,
               std::string_view wire_subject) override;

  void add(const std::shared_ptr<ws_session>& s);
  /// Forgets every client (the server stops).
  void clear() {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    sessions_.clear();
    watching_.store(0);
  }
  void remove(const ws_session* s);
  void subscription_changed();
  void broadcast(const frame_ptr& frame);

  std::vector<envelope> recent(const std::string& pattern, size_t limit) {
    std::vector<envelope> out;
    std::lock_guard<std::mutex> guard{recent_mtx_};
    for (auto i = recent_.rbegin(); i != recent_.rend() && out.size() < limit;
         ++i)
      if (subject_matches(pattern, i->subject))
        out.push_back(*i);
    std::reverse(out.begin(), out.end());
    return out;
  }

  size_t clients() const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    return sessions_.size();
  }

  std::atomic<uint64_t> dropped{0};

private:
  std::string prefix_;
  size_t recent_capacity_;
  mutable std::shared_mutex mtx_;
  std::vector<std::shared_ptr<ws_session>> sessions_;
  std::atomic<size_t> watching_{0};
  std::mutex recent_mtx_;
  std::deque<envelope> recent_;
};

/// One WebSocket client: its patterns and a bounded queue of frames. The
/// node's threads only queue (and drop when full); the I/O thread writes.
class ws_session : public std::enable_shared_from_this<ws_session> {
public:
  ws_session(tcp::socket&& socket, live_feed& feed, size_t capacity,
             std::function<std::vector<envelope>(const std::string&)> pending)
    : ws_(std::move(socket)),
      feed_(feed),
      capacity_(capacity),
      pending_(std::move(pending)) {
    // nop
  }

  template <class Request>
  void accept(Request req, std::string nova_id) {
    nova_id_ = std::move(nova_id);
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = std::chrono::seconds(30); // pings at half of it
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) {
        res.set(bhttp::field::server, "nova");
      }));
    ws_.read_message_max(64 * 1024);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      self->on_accept(ec);
    });
  }

  bool matches(std::string_view subject) const {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& p : patterns_)
      if (subject_matches(p, subject))
        return true;
    return false;
  }

  bool watching() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return !patterns_.empty();
  }

  /// Queues `frame`; drops it (counted) when the queue is full, unless it
  /// is a reply to the client (`control`).
  void push(frame_ptr frame, bool control = false) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (closed_)
        return;
      if (!control && queue_.size() >= capacity_) {
        ++dropped_since_;
        feed_.dropped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      queue_.push_back(std::move(frame));
      if (writing_)
        return;
      writing_ = true;
    }
    asio::post(ws_.get_executor(),
               [self = shared_from_this()] { self->write_next(); });
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("ws: handshake failed: {}", ec.message());
      return;
    }
    feed_.add(shared_from_this());
    if (!nova_id_.empty()) {
      auto envs = pending_(nova_id_);
      json list = json::array();
      for (auto& env : envs)
        list.push_back({{"envelope", envelope_json(env)},
                        {"payload", payload_json(env.payload,
                                                 env.content_type)}});
      push(std::make_shared<const std::string>(
             dump_json({{"type", "pending"},
                        {"nova_id", nova_id_},
                        {"envelopes", std::move(list)}})),
           true);
    }
    read();
  }

  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec,
                                                    size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      finish();
      return;
    }
    auto text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    handle(text);
    read();
  }

  void reply(json j) {
    push(std::make_shared<const std::string>(dump_json(j)), true);
  }

  void handle(const std::string& text) {
    auto msg = json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object() || !msg.contains("op")
        || !msg["op"].is_string()) {
      reply({{"type", "error"},
             {"message", "expected a JSON object with an \"op\""}});
      return;
    }
    auto op = msg["op"].get<std::string>();
    if (op == "ping") {
      reply({{"type", "pong"}});
      return;
    }
    if (op != "subscribe" && op != "unsubscribe") {
      reply({{"type", "error"},
             {"message", "unknown op '" + op
                           + "' (subscribe, unsubscribe, ping)"}});
      return;
    }
    std::vector<std::string> patterns;
    if (msg.contains("patterns") && msg["patterns"].is_array())
      for (auto& p : msg["patterns"])
        if (p.is_string())
          patterns.push_back(p.get<std::string>());
    if (msg.contains("pattern") && msg["pattern"].is_string())
      patterns.push_back(msg["pattern"].get<std::string>());
    for (auto& p : patterns)
      if (auto err = check_subject(p, true)) {
        reply({{"type", "error"},
               {"message", "pattern '" + p.substr(0, 80)
                             + "': " + describe(err)}});
        return;
      }
    json now;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      for (auto& p : patterns) {
        auto i = std::find(patterns_.begin(), patterns_.end(), p);
        if (op == "subscribe" && i == patterns_.end() && patterns_.size() < 64)
          patterns_.push_back(p);
        else if (op == "unsubscribe" && i != patterns_.end())
          patterns_.erase(i);
      }
      now = patterns_;
    }
    feed_.subscription_changed();
    reply({{"type", op == "subscribe" ? "subscribed" : "unsubscribed"},
           {"patterns", std::move(now)}});
  }

  void write_next() {
    frame_ptr next;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (dropped_since_ > 0) {
        next = std::make_shared<const std::string>(
          dump_json({{"type", "dropped"}, {"count", dropped_since_}}));
        dropped_since_ = 0;
      } else if (!queue_.empty()) {
        next = std::move(queue_.front());
        queue_.pop_front();
      } else {
        writing_ = false;
        return;
      }
    }
    ws_.text(true);
    ws_.async_write(asio::buffer(*next),
                    [self = shared_from_this(), next](beast::error_code ec,
                                                      size_t) {
                      if (ec) {
                        self->finish();
                        return;
                      }
                      self->write_next();
                    });
  }

  void finish() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (closed_)
        return;
      closed_ = true;
      queue_.clear();
    }
    feed_.remove(this);
  }

  websocket::stream<beast::tcp_stream> ws_;
  live_feed& feed_;
  size_t capacity_;
  std::function<std::vector<envelope>(const std::string&)> pending_;
  std::string nova_id_;
  beast::flat_buffer in_;
  mutable std::mutex mtx_;
  std::vector<std::string> patterns_;
  std::deque<frame_ptr> queue_;
  uint64_t dropped_since_ = 0;
  bool writing_ = false;
  bool closed_ = false;
};

void live_feed::observe(const envelope& env, bool inbound,
                        std::string_view wire_subject) {
  if (env.kind == kind::event && recent_capacity_ > 0) {
    std::lock_guard<std::mutex> guard{recent_mtx_};
    if (recent_.size() >= recent_capacity_)
      recent_.pop_front();
    recent_.push_back(env);
  }
  if (watching_.load(std::memory_order_relaxed) == 0)
    return;
  std::string subject;
  if (inbound && wire_subject.substr(0, prefix_.size()) == prefix_)
    subject = std::string{wire_subject.substr(prefix_.size())};
  else
    subject = bus_subject(env);
  frame_ptr frame;
  std::shared_lock<std::shared_mutex> guard{mtx_};
  for (auto& s : sessions_) {
    if (!s->matches(subject))
      continue;
    if (!frame)
      frame = std::make_shared<const std::string>(
        dump_json({{"type", "envelope"},
                   {"subject", subject},
                   {"direction", inbound ? "in" : "out"},
                   {"envelope", envelope_json(env)},
                   {"payload", payload_json(env.payload, env.content_type)}}));
    s->push(frame);
  }
}

void live_feed::add(const std::shared_ptr<ws_session>& s) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  sessions_.push_back(s);
}

void live_feed::remove(const ws_session* s) {
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                   [s](auto& x) { return x.get() == s; }),
                    sessions_.end());
  }
  subscription_changed();
}

void live_feed::subscription_changed() {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  size_t n = 0;
  for (auto& s : sessions_)
    if (s->watching())
      ++n;
  watching_.store(n);
  // Without watchers only events matter: the last few are kept for
  // bus.subscribe, and a direct send skips the call.
  interest_.store(n > 0                  ? interest::all
                  : recent_capacity_ > 0 ? interest::events
                                         : interest::none);
}

void live_feed::broadcast(const frame_ptr& frame) {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  for (auto& s : sessions_)
    s->push(frame);
}

std::shared_ptr<envelope_tap> http_server::make_feed(const std::string& prefix,
                                                     size_t recent_events) {
  return std::make_shared<live_feed>(prefix, recent_events);
}

// -- the server -------------------------------------------------------------------

struct http_server::impl : std::enable_shared_from_this<http_server::impl> {
  impl(node& n, const http_config& c, std::shared_ptr<live_feed> f)
    : node_(n),
      cfg(c),
      feed(std::move(f)),
      workers(c.workers),
      acceptor(std::in_place, *io),
      stats_timer(std::in_place, *io),
      started(std::chrono::steady_clock::now()) {
    if (n.cfg().store == store_kind::redis)
      probe = std::make_unique<store_probe>(n.cfg().dragonfly_url);
    rpc_service::hooks hooks;
    hooks.health = [this] { return health_of(node_, probe.get(), started).body; };
    hooks.recent_events = [this](const std::string& pattern, size_t limit) {
      return feed->recent(pattern, limit);
    };
    hooks.started = started;
    rpc = std::make_unique<rpc_service>(
      n, rpc_service::limits{c.rpc_max_batch, c.rpc_max_depth},
      std::move(hooks));
  }

  node& node_;
  http_config cfg;
  std::shared_ptr<live_feed> feed;
  // Destroyed by `stop` in this order: the acceptor and timer, then what
  // is still queued in the context (which releases the sessions).
  std::unique_ptr<asio::io_context> io = std::make_unique<asio::io_context>();
  asio::thread_pool workers;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> stats_timer;
  std::chrono::steady_clock::time_point started;
  std::unique_ptr<store_probe> probe;
  std::unique_ptr<rpc_service> rpc;
  std::thread thread;
  std::atomic<size_t> busy{0};
  std::atomic<bool> stopped{false};
  // Rates for the stats frames (touched by one worker job at a time).
  std::mutex rate_mtx;
  uint64_t last_sent = 0;
  uint64_t last_received = 0;
  ~impl() {
    acceptor.reset();
    stats_timer.reset();
  }
  std::chrono::steady_clock::time_point last_rate_at{};
  std::atomic<bool> stats_running{false};

  void accept();
  void tick();
  json stats_frame();
};

namespace {

using request_t = bhttp::request<bhttp::string_body>;
using response_t = bhttp::response<bhttp::string_body>;

/// Jobs waiting for a worker beyond this get 503 at once.
constexpr size_t max_busy = 256;

class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(tcp::socket&& socket, std::shared_ptr<http_server::impl> srv)
    : stream_(std::move(socket)), srv_(std::move(srv)) {
    // nop
  }

  void run() {
    read();
  }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(srv_->cfg.max_body);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(30));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec,
                                                  size_t) {
                        self->on_read(ec);
                      });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::operation_aborted) {
      close();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      auto res = make(bhttp::status::payload_too_large, 11, false,
                      rpc_service::error_response(
                        rpc_code::invalid_request,
                        "request body exceeds the limit of "
                          + std::to_string(srv_->cfg.max_body) + " bytes"));
      write(std::move(res), true);
      return;
    }
    if (ec) {
      auto res = make(bhttp::status::bad_request, 11, false,
                      R"({"error":"malformed HTTP request"})");
      write(std::move(res), true);
      return;
    }
    route(parser_->release());
  }

  response_t make(bhttp::status st, unsigned version, bool keep_alive,
                  std::string body,
                  std::string_view type = "application/json") {
    response_t res{st, version};
    res.set(bhttp::field::server, "nova");
    res.set(bhttp::field::content_type, type);
    res.set(bhttp::field::cache_control, "no-store");
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  bool authorized(const request_t& req) const {
    auto& token = srv_->cfg.token;
    if (token.empty())
      return true;
    auto auth = req[bhttp::field::authorization];
    constexpr std::string_view bearer = "Bearer ";
    if (auth.size() > bearer.size() && auth.substr(0, bearer.size()) == bearer
        && same_secret(std::string_view{auth.data() + bearer.size(),
                                        auth.size() - bearer.size()},
                       token))
      return true;
    auto q = query_param(req.target(), "token");
    return !q.empty() && same_secret(q, token);
  }

  void route(request_t req) {
    auto path = path_of(req.target());
    auto v = req.version();
    auto ka = req.keep_alive();
    if (path == "/health/live") {
      write(make(bhttp::status::ok, v, ka, R"({"status":"live"})"));
      return;
    }
    if (path == "/health/ready") {
      offload(v, ka, [](http_server::impl& s) {
        auto h = health_of(s.node_, s.probe.get(), s.started);
        auto ready = h.status == "healthy";
        return std::make_pair(ready ? bhttp::status::ok
                                    : bhttp::status::service_unavailable,
                              dump_json({{"status", h.status},
                                         {"ready", ready}}));
      });
      return;
    }
    if (!authorized(req)) {
      auto res = make(bhttp::status::unauthorized, v, ka,
                      R"({"error":"unauthorized"})");
      res.set(bhttp::field::www_authenticate, "Bearer");
      write(std::move(res));
      return;
    }
    if (path == "/ws") {
      if (!websocket::is_upgrade(req)) {
        write(make(bhttp::status::upgrade_required, v, ka,
                   R"({"error":"/ws needs a WebSocket upgrade"})"));
        return;
      }
      auto nova_id = query_param(req.target(), "nova");
      auto srv = srv_;
      auto session = std::make_shared<ws_session>(
        stream_.release_socket(), *srv->feed, srv->cfg.ws_queue,
        [srv](const std::string& id) {
          std::vector<envelope> out;
          if (auto& d = srv->node_.context().durable)
            if (auto r = d->store()->pending(id, 1000))
              for (auto& s : *r)
                out.push_back(std::move(s.env));
          return out;
        });
      session->accept(std::move(req), std::move(nova_id));
      return;
    }
    if (path == "/" || path == "/index.html") {
      if (req.method() != bhttp::verb::get) {
        write(make(bhttp::status::method_not_allowed, v, ka,
                   R"({"error":"GET only"})"));
        return;
      }
      write(make(bhttp::status::ok, v, ka, dashboard_html(),
                 "text/html; charset=utf-8"));
      return;
    }
    if (path == "/health") {
      offload(v, ka, [](http_server::impl& s) {
        auto h = health_of(s.node_, s.probe.get(), s.started);
        return std::make_pair(h.status == "unhealthy"
                                ? bhttp::status::service_unavailable
                                : bhttp::status::ok,
                              dump_json(h.body));
      });
      return;
    }
    if (path == "/metrics") {
      offload(
        v, ka,
        [](http_server::impl& s) {
          http_figures f{s.feed->clients(), s.feed->dropped.load()};
          return std::make_pair(bhttp::status::ok, metrics_text(s.node_, f));
        },
        "text/plain; version=0.0.4; charset=utf-8");
      return;
    }
    if (path == "/rpc") {
      if (req.method() != bhttp::verb::post) {
        write(make(bhttp::status::method_not_allowed, v, ka,
                   rpc_service::error_response(rpc_code::invalid_request,
                                               "JSON-RPC needs POST")));
        return;
      }
      offload(v, ka, [body = std::move(req.body())](http_server::impl& s) {
        auto out = s.rpc->handle(body);
        if (!out)
          return std::make_pair(bhttp::status::no_content, std::string{});
        return std::make_pair(bhttp::status::ok, std::move(*out));
      });
      return;
    }
    write(make(bhttp::status::not_found, v, ka,
               R"({"error":"not found","paths":["/","/rpc","/health",)"
               R"("/health/live","/health/ready","/metrics","/ws"]})"));
  }

  /// Runs `fn` on a worker, then writes its answer from the I/O thread.
  template <class F>
  void offload(unsigned version, bool keep_alive, F fn,
               std::string_view type = "application/json") {
    if (srv_->busy.fetch_add(1) >= max_busy) {
      srv_->busy.fetch_sub(1);
      write(make(bhttp::status::service_unavailable, version, keep_alive,
                 R"({"error":"too many requests in progress"})"));
      return;
    }
    asio::post(srv_->workers, [self = shared_from_this(), fn = std::move(fn),
                               version, keep_alive,
                               type = std::string{type}]() mutable {
      std::pair<bhttp::status, std::string> out;
      try {
        out = fn(*self->srv_);
      } catch (const std::exception& e) {
        out = {bhttp::status::internal_server_error,
               dump_json({{"error", e.what()}})};
      }
      self->srv_->busy.fetch_sub(1);
      asio::post(self->stream_.get_executor(),
                 [self, out = std::move(out), version, keep_alive,
                  type = std::move(type)]() mutable {
                   auto res = self->make(out.first, version, keep_alive,
                                         std::move(out.second), type);
                   if (out.first == bhttp::status::no_content)
                     res.body().clear(), res.prepare_payload();
                   self->write(std::move(res));
                 });
    });
  }

  void write(response_t res, bool close_after = false) {
    auto sp = std::make_shared<response_t>(std::move(res));
    bool keep = sp->keep_alive() && !close_after;
    bhttp::async_write(stream_, *sp,
                       [self = shared_from_this(), sp,
                        keep](beast::error_code ec, size_t) {
                         if (ec || !keep) {
                           self->close();
                           return;
                         }
                         self->read();
                       });
  }

  /// Shuts down the sending side, then reads and drops what the client
  /// still sends (a body over the limit, say) until it closes too, for at
  /// most a few seconds: closing with unread data would reset the
  /// connection and could destroy the answer before the client reads it.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec)
      return;
    stream_.expires_after(std::chrono::seconds(5));
    drain();
  }

  void drain() {
    stream_.async_read_some(
      asio::buffer(discard_),
      [self = shared_from_this()](beast::error_code ec, size_t) {
        if (!ec)
          self->drain();
      });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<http_server::impl> srv_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::array<char, 16 * 1024> discard_;
};

} // namespace

void http_server::impl::accept() {
  acceptor->async_accept(asio::make_strand(*io), [self = shared_from_this()](
                                                 beast::error_code ec,
                                                 tcp::socket socket) {
    if (self->stopped.load())
      return;
    if (!ec)
      std::make_shared<http_session>(std::move(socket), self)->run();
    self->accept();
  });
}

json http_server::impl::stats_frame() {
  auto& st = node_.context().stats;
  uint64_t sent = 0;
  for (auto c : {counter::sent_direct, counter::sent_broadcast,
                 counter::sent_multicast, counter::sent_event,
                 counter::sent_request, counter::sent_response,
                 counter::sent_emergency})
    sent += st.get(c);
  uint64_t received = 0;
  for (auto c : {counter::received_direct, counter::received_broadcast,
                 counter::received_multicast, counter::received_event,
                 counter::received_request, counter::received_emergency})
    received += st.get(c);
  auto now = std::chrono::steady_clock::now();
  double sent_rate = 0;
  double received_rate = 0;
  {
    std::lock_guard<std::mutex> guard{rate_mtx};
    if (last_rate_at != std::chrono::steady_clock::time_point{}) {
      auto secs = std::chrono::duration<double>(now - last_rate_at).count();
      if (secs > 0) {
        sent_rate = static_cast<double>(sent - last_sent) / secs;
        received_rate = static_cast<double>(received - last_received) / secs;
      }
    }
    last_sent = sent;
    last_received = received;
    last_rate_at = now;
  }
  json novas = json::array();
  if (auto ps = node_.presence_list())
    for (auto& p : *ps)
      novas.push_back(presence_json(p));
  json tasks = nullptr;
  if (auto qs = node_.task_stats())
    tasks = queue_stats_json(*qs);
  json dead = json::array();
  if (auto ds = node_.dead_letters(20))
    for (auto& t : *ds)
      dead.push_back(task_json(t));
  auto h = health_of(node_, probe.get(), started);
  return {{"type", "stats"},
          {"time", std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()},
          {"node_id", node_.cfg().node_id},
          {"status", h.status},
          {"health", std::move(h.body)},
          {"local_novas", node_.novas()},
          {"messages", {{"sent", sent},
                        {"received", received},
                        {"sent_per_s", sent_rate},
                        {"received_per_s", received_rate},
                        {"wire_in", st.get(counter::wire_in)},
                        {"wire_out", st.get(counter::wire_out)},
                        {"dead_letters", st.get(counter::dead_letters)}}},
          {"novas", std::move(novas)},
          {"tasks", std::move(tasks)},
          {"dead_tasks", std::move(dead)},
          {"ws_dropped", feed->dropped.load()}};
}

void http_server::impl::tick() {
  stats_timer->expires_after(std::chrono::seconds(1));
  stats_timer->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->stopped.load())
      return;
    // One stats job at a time, off the I/O thread (it asks actors and the
    // store).
    if (self->feed->clients() > 0 && !self->stats_running.exchange(true)) {
      asio::post(self->workers, [self] {
        try {
          auto frame = std::make_shared<const std::string>(
            dump_json(self->stats_frame()));
          self->feed->broadcast(frame);
        } catch (const std::exception& e) {
          spdlog::warn("http: stats frame failed: {}", e.what());
        }
        self->stats_running.store(false);
      });
    }
    self->tick();
  });
}

http_server::http_server(node& n, const http_config& cfg,
                         std::shared_ptr<envelope_tap> feed) {
  auto lf = std::dynamic_pointer_cast<live_feed>(feed);
  if (!lf)
    lf = std::make_shared<live_feed>(n.cfg().prefix, 0);
  impl_ = std::make_shared<impl>(n, cfg, std::move(lf));
  auto colon = cfg.address.rfind(':');
  auto host = cfg.address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = static_cast<uint16_t>(std::stoul(cfg.address.substr(colon + 1)));
  beast::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host,
                                     ec);
  if (ec)
    throw std::runtime_error("--http: '" + host
                             + "' is not an IP address: " + ec.message());
  tcp::endpoint ep{addr, port};
  auto& acc = *impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot serve HTTP on " + cfg.address + ": "
                             + ec.message());
  impl_->accept();
  impl_->tick();
  impl_->thread = std::thread{[s = impl_] {
    for (;;) {
      try {
        s->io->run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: {}", e.what());
      }
    }
  }};
}

http_server::~http_server() {
  stop();
}

uint16_t http_server::port() const noexcept {
  beast::error_code ec;
  auto ep = impl_->acceptor->local_endpoint(ec);
  return ec ? 0 : ep.port();
}

std::string http_server::address() const {
  beast::error_code ec;
  auto ep = impl_->acceptor->local_endpoint(ec);
  if (ec)
    return {};
  auto a = ep.address().to_string();
  if (ep.address().is_v6())
    a = "[" + a + "]";
  return a + ":" + std::to_string(ep.port());
}

void http_server::stop() {
  if (!impl_ || impl_->stopped.exchange(true))
    return;
  auto& s = *impl_;
  s.io->stop();
  if (s.thread.joinable())
    s.thread.join();
  // Calls still running finish (their answers are never written).
  s.workers.join();
  // No node thread queues frames from here on; then closing the acceptor
  // and dropping the queued handlers closes every connection.
  s.feed->clear();
  beast::error_code ec;
  s.acceptor->close(ec);
  s.acceptor.reset();
  s.stats_timer.reset();
  // Destroying the context destroys the handlers it still holds, which
  // own the sessions and their sockets.
  s.io.reset();
}

} // namespace nova
