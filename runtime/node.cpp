#include "runtime/node.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/durable_service.hpp"
#include "actors/gateway.hpp"
#include "actors/outbound.hpp"
#include "actors/presence_monitor.hpp"
#include "actors/stream_task_queue_actor.hpp"
#include "cluster/naming.hpp"
#include "cluster/presence_store.hpp"
#include "cluster/redis_client.hpp"
#include "runtime/http_server.hpp"
#include "actors/task_queue_actor.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "messages/registry.hpp"

namespace nova {

namespace {

// The write end of the running node's wake pipe, for the signal handler.
std::atomic<int> signal_fd{-1};

extern "C" void on_signal(int) {
  int fd = signal_fd.load();
  if (fd >= 0) {
    char c = 's';
    [[maybe_unused]] auto n = ::write(fd, &c, 1);
  }
}

caf::error refuse_if_closed(const runtime_context& ctx) {
  if (!ctx.accepting.load(std::memory_order_acquire))
    return make_error(errc::shutting_down,
                      "node '" + ctx.node_id + "' is shutting down");
  return caf::none;
}

/// Envelopes are allocated on NATS threads and freed on CAF workers in
/// bursts; with glibc's default trim threshold (128 KiB) every burst ends
/// with `madvise` handing pages back and the next one faulting them in
/// again, about a tenth of the inbound path's time. Keep up to 64 MiB of
/// free heap per arena instead. Setting it also fixes glibc's mmap
/// threshold at 128 KiB, so every batch buffer above that (a durable read
/// of 2,048 envelopes is about 700 KiB) would be mapped, faulted in and
/// unmapped each time: serve blocks up to 16 MiB from the heap too. Set
/// once per process; thresholds set through GLIBC_TUNABLES win.
void tune_allocator() {
  static const bool done = [] {
    auto tunables = std::string_view{};
    if (auto x = std::getenv("GLIBC_TUNABLES"))
      tunables = x;
    if (tunables.find("trim_threshold") == std::string_view::npos)
      mallopt(M_TRIM_THRESHOLD, 64 << 20);
    if (tunables.find("mmap_threshold") == std::string_view::npos)
      mallopt(M_MMAP_THRESHOLD, 16 << 20);
    return true;
  }();
  static_cast<void>(done);
}

} // namespace

node::node(config cfg) : cfg_(std::move(cfg)) {
  if (auto err = cfg_.validate())
    throw std::invalid_argument(describe(err));
  caf::expected<nats_settings> nats{caf::error{}};
  if (cfg_.bus == bus_kind::nats) {
    nats = nats_settings::from_url(cfg_.nats_url);
    if (!nats)
      throw std::invalid_argument("--nats-url: " + describe(nats.error()));
    if (!cfg_.nats_user.empty())
      nats->user = cfg_.nats_user;
    if (!cfg_.nats_password.empty())
      nats->password = cfg_.nats_password;
    if (!cfg_.nats_token.empty())
      nats->token = cfg_.nats_token;
    nats->send_asap = cfg_.nats_send_asap;
    nats->ca_file = cfg_.nats_ca_file;
    nats->cert_file = cfg_.nats_cert_file;
    nats->key_file = cfg_.nats_key_file;
    if (!nats->ca_file.empty() || !nats->cert_file.empty())
      nats->tls = true;
  }
  spdlog::set_level(spdlog::level::from_str(cfg_.log_level));
  tune_allocator();
  register_types(sys_cfg_);
  if (cfg_.threads > 0)
    sys_cfg_.set("scheduler.max-threads", cfg_.threads);
  // CAF's idle workers otherwise poll with 50 us naps for a while, and a
  // message from a foreign thread (NATS callbacks) waits out those naps.
  sys_cfg_.set("work-stealing.moderate-poll-attempts", 0);
  system_ = std::make_unique<caf::actor_system>(sys_cfg_);
  ctx_ = std::make_shared<runtime_context>();
  ctx_->node_id = cfg_.node_id;
  ctx_->limits = cfg_.limits;
  // The HTTP feed watches envelopes from the start; it must be in place
  // before any Nova or gateway thread reads the context.
  if (!cfg_.http.address.empty())
    ctx_->tap = http_server::make_feed(cfg_.prefix);
  // Cluster-wide presence lives next to the task queue, over the same pool.
  std::shared_ptr<presence_store> presences;
  if (cfg_.store == store_kind::redis) {
    auto rs = redis_settings::from_url(cfg_.dragonfly_url);
    if (!rs)
      throw std::invalid_argument("--dragonfly-url: " + describe(rs.error()));
    // Lazy: the node starts while the store is down and connects later.
    auto pool = redis_pool::make(*rs);
    if (!pool)
      throw std::invalid_argument("--dragonfly-url: "
                                  + describe(pool.error()));
    auto names = naming::make(cfg_.prefix);
    auto shared_pool = std::make_shared<redis_pool>(std::move(*pool));
    auto store = task_store::make(shared_pool, *names,
                                  task_store_settings(cfg_.limits));
    if (!store)
      throw std::invalid_argument("cannot set up the task store: "
                                  + describe(store.error()));
    presence_store::settings ps;
    ps.heartbeat_interval = cfg_.limits.heartbeat_interval;
    auto made = presence_store::make(shared_pool, *names, ps);
    if (!made)
      throw std::invalid_argument("cannot set up the presence store: "
                                  + describe(made.error()));
    presences = std::move(*made);
    durable_store::settings ds;
    ds.max_payload = cfg_.limits.max_payload;
    if (cfg_.stream_max_len > 0)
      ds.max_len = cfg_.stream_max_len;
    if (cfg_.stream_max_age > caf::timespan{0})
      ds.max_age = cfg_.stream_max_age;
    auto durable = durable_store::make(shared_pool, *names, ds);
    if (!durable)
      throw std::invalid_argument("cannot set up the durable store: "
                                  + describe(durable.error()));
    durable_service::settings dss;
    dss.capacity = cfg_.limits.outbox_capacity;
    ctx_->durable = std::make_shared<durable_service>(ctx_.get(),
                                                      std::move(*durable),
                                                      dss);
    stream_task_queue_settings qs;
    qs.health = task_health_ = std::make_shared<stream_task_queue_health>();
    ctx_->tasks = spawn_stream_task_queue(*system_, ctx_, std::move(*store),
                                          qs);
  } else {
    ctx_->tasks = spawn_task_queue(*system_, ctx_);
  }
  ctx_->presence = spawn_presence_monitor(*system_, ctx_,
                                          std::move(presences));
  if (cfg_.bus == bus_kind::nats) {
    if (auto err = start_nats_gateway(*system_, ctx_, *nats, cfg_.prefix)) {
      caf::anon_send_exit(ctx_->tasks, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(ctx_->presence, caf::exit_reason::user_shutdown);
      throw std::invalid_argument("cannot start the NATS gateway: "
                                  + describe(err));
    }
  }
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0)
    throw std::runtime_error("cannot create the node's wake pipe");
  if (!cfg_.http.address.empty()) {
    try {
      http_ = std::make_unique<http_server>(*this, cfg_.http, ctx_->tap);
      spdlog::info("node '{}': http listening on http://{}", cfg_.node_id,
                   http_->address());
    } catch (const std::exception& e) {
      if (!cfg_.http.optional) {
        shutdown();
        throw std::invalid_argument(e.what());
      }
      spdlog::warn("node '{}': {}; running without HTTP (choose another "
                   "address with --http HOST:PORT)",
                   cfg_.node_id, e.what());
    }
  }
}

std::string node::http_address() const {
  return http_ ? http_->address() : std::string{};
}

node::~node() {
  shutdown();
  for (int fd : wake_fds_)
    if (fd >= 0)
      ::close(fd);
}

caf::error node::reserve(const std::string& id, const agent_options& opts) {
  if (auto err = refuse_if_closed(*ctx_))
    return err;
  if (auto err = check_id(id, "nova id"))
    return err;
  for (const auto& g : opts.groups)
    if (auto err = check_id(g, "group"))
      return err;
  for (const auto& c : opts.capabilities)
    if (auto err = check_id(c, "capability"))
      return err;
  return ctx_->directory.reserve(id, opts.capabilities, opts.groups);
}

void node::bind(const std::string& id, const caf::actor& hdl,
                const std::vector<std::string>& caps) {
  auto ctx = ctx_;
  auto addr = hdl.address();
  hdl->attach_functor([ctx, id, addr] {
    ctx->directory.remove(id, addr);
    gateway_nova_down(*ctx, id);
  });
  ctx_->directory.bind(id, hdl);
  gateway_nova_up(*ctx_, id, caps);
}

caf::error node::stop(const std::string& id) {
  if (auto err = check_id(id, "nova id"))
    return err;
  auto hdl = ctx_->directory.find(id);
  if (!hdl)
    return make_error(errc::unknown_nova, "no Nova named '" + id + "' here");
  caf::anon_send(hdl, stop_atom::value);
  return caf::none;
}

caf::error node::outbound(kind k, const std::string& to, std::string payload,
                          send_options& opts) {
  if (auto err = refuse_if_closed(*ctx_))
    return err;
  if (opts.durable)
    return send_durable(*ctx_, k, "anonymous", to, std::move(payload), opts);
  envelope env;
  if (auto err = make_envelope(*ctx_, env, k, "anonymous", to,
                               std::move(payload), opts))
    return err;
  auto local = [](const caf::actor& dest, const envelope& x) {
    if (x.priority == priority::urgent || x.kind == kind::emergency)
      caf::anon_send<caf::message_priority::high>(dest, x);
    else
      caf::anon_send(dest, x);
  };
  if (k == kind::direct) {
    if (auto dest = ctx_->directory.find(to)) {
      local(dest, env);
    } else if (auto err = send_remote(*ctx_, env)) {
      // Nobody to tell but the caller: count it as a dead letter too.
      ctx_->stats.add(counter::dead_letters);
      return err;
    }
  } else if (auto err = fan_out(*ctx_, env, local)) {
    return err;
  }
  ctx_->stats.add(sent_counter(k));
  return caf::none;
}

caf::expected<std::vector<stored_envelope>>
node::replay(const std::string& stream, const std::string& from,
             const std::string& subject_pattern, size_t limit) {
  if (!ctx_->durable)
    return make_error(errc::unsupported,
                      "replay needs a store: run the node with --store redis");
  return ctx_->durable->store()->replay(stream, from, subject_pattern, limit);
}

caf::error node::send(const std::string& to, std::string payload,
                      send_options opts) {
  return outbound(kind::direct, to, std::move(payload), opts);
}

caf::error node::broadcast(std::string payload, send_options opts) {
  return outbound(kind::broadcast, {}, std::move(payload), opts);
}

caf::error node::multicast(const std::string& group, std::string payload,
                           send_options opts) {
  return outbound(kind::multicast, group, std::move(payload), opts);
}

caf::error node::publish(const std::string& subject, std::string payload,
                         send_options opts) {
  return outbound(kind::event, subject, std::move(payload), opts);
}

caf::error node::emergency(std::string payload, send_options opts) {
  return outbound(kind::emergency, {}, std::move(payload), opts);
}

caf::expected<envelope> node::request(const std::string& to,
                                      std::string payload,
                                      caf::timespan timeout,
                                      send_options opts) {
  if (auto err = refuse_if_closed(*ctx_))
    return err;
  envelope env;
  if (auto err = make_envelope(*ctx_, env, kind::request, "anonymous", to,
                               std::move(payload), opts))
    return err;
  auto dest = ctx_->directory.find(to);
  if (!dest && ctx_->bus && ctx_->bus->knows(to))
    dest = ctx_->gateway;
  if (!dest) {
    ctx_->stats.add(counter::rejected_unknown_nova);
    return make_error(errc::unknown_nova,
                      "no Nova named '" + to + "' on this node"
                        + (ctx_->bus ? " or any other" : ""));
  }
  ctx_->stats.add(counter::sent_request);
  if (dest == ctx_->gateway)
    env.headers[nats_headers::timeout_ms] = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  caf::scoped_actor self{*system_};
  caf::expected<envelope> result{caf::error{}};
  auto start = std::chrono::steady_clock::now();
  self->request(dest, timeout, request_atom::value, std::move(env))
    .receive(
      [&](envelope& reply) {
        ctx_->request_latency.record(std::chrono::steady_clock::now()
                                     - start);
        result = std::move(reply);
      },
             [&](caf::error& err) {
               if (err == caf::sec::request_timeout) {
                 ctx_->stats.add(counter::request_timeouts);
                 result = make_error(
                   errc::request_timeout,
                   "no reply from '" + to + "' within "
                     + std::to_string(
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                         timeout)
                         .count())
                     + " ms");
               } else {
                 result = std::move(err);
               }
             });
  return result;
}

namespace {

template <class T, class Timeout, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const caf::actor& dest,
                     Timeout timeout, Ts&&... xs) {
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(dest, caf::duration{timeout}, std::forward<Ts>(xs)...)
    .receive([&](T& x) { result = std::move(x); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

} // namespace

caf::error node::prepare(task& t) {
  if (auto err = prepare_task(t, *ctx_))
    return err;
  if (t.created_by.empty())
    t.created_by = "anonymous";
  return caf::none;
}

caf::expected<std::string> node::enqueue(task t) {
  if (auto err = refuse_if_closed(*ctx_))
    return err;
  if (auto err = prepare(t))
    return err;
  return ask<std::string>(*system_, ctx_->tasks, ctx_->limits.request_timeout,
                          enqueue_atom::value, std::move(t));
}

std::vector<caf::expected<std::string>>
node::enqueue_many(std::vector<task> ts) {
  std::vector<caf::expected<std::string>> out(ts.size(), caf::error{});
  if (auto err = refuse_if_closed(*ctx_)) {
    for (auto& x : out)
      x = err;
    return out;
  }
  // The tasks that pass the checks here go in one message.
  std::vector<size_t> sent;
  std::vector<task> batch;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (auto err = prepare(ts[i])) {
      out[i] = std::move(err);
      continue;
    }
    sent.push_back(i);
    batch.push_back(std::move(ts[i]));
  }
  if (batch.empty())
    return out;
  auto r = ask<enqueue_results>(*system_, ctx_->tasks,
                                ctx_->limits.request_timeout,
                                enqueue_atom::value, std::move(batch));
  for (size_t k = 0; k < sent.size(); ++k) {
    auto& x = out[sent[k]];
    if (!r)
      x = r.error();
    else if (k >= r->ids.size() || k >= r->errors.size())
      x = make_error(errc::invalid_argument,
                     "the task queue answered for fewer tasks than sent");
    else if (r->errors[k])
      x = std::move(r->errors[k]);
    else
      x = std::move(r->ids[k]);
  }
  return out;
}

caf::expected<std::string> node::enqueue(std::string type, std::string payload,
                                         priority prio, std::string session) {
  task t;
  t.type = std::move(type);
  t.payload = std::move(payload);
  t.priority = prio;
  t.session = std::move(session);
  return enqueue(std::move(t));
}

caf::expected<std::vector<task_result>>
node::collect(const std::string& session, size_t n, caf::timespan timeout) {
  if (auto err = check_id(session, "session"))
    return err;
  return ask<std::vector<task_result>>(*system_, ctx_->tasks,
                                       caf::infinite,
                                       collect_atom::value, session,
                                       static_cast<uint64_t>(n), timeout);
}

caf::expected<std::vector<task>> node::dead_letters(size_t limit) {
  return ask<std::vector<task>>(*system_, ctx_->tasks,
                                ctx_->limits.request_timeout,
                                dead_atom::value, static_cast<uint64_t>(limit));
}

caf::expected<uint64_t> node::redrive(const std::string& task_id) {
  if (!task_id.empty())
    if (auto err = check_id(task_id, "task id"))
      return err;
  return ask<uint64_t>(*system_, ctx_->tasks, ctx_->limits.request_timeout,
                       redrive_atom::value, task_id);
}

caf::expected<queue_stats> node::task_stats() {
  return ask<queue_stats>(*system_, ctx_->tasks, ctx_->limits.request_timeout,
                          stats_atom::value);
}

caf::expected<std::vector<presence>> node::presence_list() {
  return ask<std::vector<presence>>(*system_, ctx_->presence,
                                    ctx_->limits.request_timeout,
                                    list_atom::value);
}

caf::expected<std::vector<presence>>
node::discover(const std::string& capability) {
  if (!capability.empty())
    if (auto err = check_id(capability, "capability"))
      return err;
  return ask<std::vector<presence>>(*system_, ctx_->presence,
                                    ctx_->limits.request_timeout,
                                    discover_atom::value, capability);
}

node_health node::health() {
  node_health h;
  h.bus = to_string(cfg_.bus);
  h.novas = ctx_->directory.size();
  if (auto bus = ctx_->bus) {
    h.bus_connected = bus->connected();
    h.outbox_depth = bus->outbox_depth();
    if (!h.bus_connected)
      h.status = "degraded";
    if (auto nb = gateway_client_info(*ctx_)) {
      h.server_id = nb->server_id;
      h.rtt = nb->rtt;
    }
  }
  h.store = to_string(cfg_.store);
  if (!ctx_->presence_store_ok.load())
    h.store_reachable = false;
  if (ctx_->durable) {
    h.store_backlog += ctx_->durable->backlog();
    if (!ctx_->durable->store_ok())
      h.store_reachable = false;
  }
  if (task_health_) {
    h.store_backlog += task_health_->outbox_depth.load();
    if (!task_health_->store_reachable.load())
      h.store_reachable = false;
  }
  if (!h.store_reachable)
    h.status = "degraded";
  return h;
}

std::vector<std::string> node::novas() const {
  return ctx_->directory.ids();
}

int node::run() {
  signal_fd.store(wake_fds_[1]);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {};
  struct sigaction old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  running_.store(true);
  char c;
  while (::read(wake_fds_[0], &c, 1) < 0 && errno == EINTR) {
    // A signal interrupted the read before its byte arrived; read again.
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  signal_fd.store(-1);
  running_.store(false);
  spdlog::info("node '{}': shutting down", cfg_.node_id);
  shutdown();
  return 0;
}

void node::request_shutdown() {
  char c = 'q';
  [[maybe_unused]] auto n = ::write(wake_fds_[1], &c, 1);
}

void node::shutdown() {
  if (down_)
    return;
  down_ = true;
  ctx_->accepting.store(false, std::memory_order_release);
  if (http_)
    http_->stop();
  auto novas = ctx_->directory.all();
  {
    caf::scoped_actor self{*system_};
    for (const auto& hdl : novas) {
      self->monitor(hdl);
      // Normal priority: the stop queues up behind what is already there.
      self->send(hdl, stop_atom::value);
    }
    auto deadline = std::chrono::steady_clock::now() + cfg_.drain_timeout;
    size_t left = novas.size();
    bool timed_out = false;
    while (left > 0 && !timed_out) {
      auto remaining = deadline - std::chrono::steady_clock::now();
      if (remaining < caf::timespan{0})
        remaining = caf::timespan{0};
      self->receive([&](caf::down_msg&) { --left; },
                    caf::after(remaining) >> [&] { timed_out = true; });
    }
    if (timed_out) {
      spdlog::warn("node '{}': {} Novas did not drain within the timeout; "
                   "stopping them",
                   cfg_.node_id, left);
      for (const auto& hdl : novas)
        self->send_exit(hdl, caf::exit_reason::kill);
    }
  }
  // Durable sends accepted so far go to the store (and out) before the
  // gateway stops.
  if (ctx_->durable)
    ctx_->durable->stop(cfg_.drain_timeout);
  if (ctx_->bus || cfg_.store == store_kind::redis) {
    // Let the monitor publish the Novas' offline presence first: it handles
    // this request after the leave messages the Novas sent before stopping,
    // and with the store it writes them before it reads. It answers from
    // memory when the store takes too long.
    static_cast<void>(ask<std::vector<presence>>(
      *system_, ctx_->presence,
      std::max<caf::timespan>(std::chrono::seconds(2),
                              ctx_->limits.request_timeout),
      list_atom::value));
  }
  if (ctx_->bus)
    stop_nats_gateway(*system_, *ctx_);
  {
    caf::scoped_actor self{*system_};
    self->send_exit(ctx_->tasks, caf::exit_reason::user_shutdown);
    self->send_exit(ctx_->presence, caf::exit_reason::user_shutdown);
  }
  system_->await_all_actors_done();
}

} // namespace nova
