#include "actors/agent.hpp"

#include <spdlog/spdlog.h>

#include "actors/durable_service.hpp"
#include "actors/gateway.hpp"
#include "actors/outbound.hpp"
#include "actors/quiet.hpp"
#include "actors/task_queue_actor.hpp"
#include "cluster/naming.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

using high_priority = std::integral_constant<caf::message_priority,
                                             caf::message_priority::high>;

std::string describe_timeout(const std::string& to, caf::timespan timeout) {
  using namespace std::chrono;
  return "no reply from '" + to + "' within "
         + std::to_string(duration_cast<milliseconds>(timeout).count())
         + " ms";
}

caf::error durable_request_error() {
  return make_error(errc::unsupported,
                    "requests are real-time: durable delivery is for "
                    "one-way sends");
}

} // namespace

// -- reply_handle -------------------------------------------------------------

void reply_handle::then(std::function<void(const envelope&)> on_reply,
                        std::function<void(const caf::error&)> on_error) {
  auto* self = self_;
  hdl_.then(
    [self, f = std::move(on_reply), start = start_](envelope& reply) {
      self->ctx_->request_latency.record(std::chrono::steady_clock::now()
                                         - start);
      self->guarded("reply handler", [&] { f(reply); });
    },
    [self, g = std::move(on_error), early = std::move(early_), to = to_,
     timeout = timeout_](caf::error& err) {
      caf::error e = early ? early : err;
      if (!early && err == caf::sec::request_timeout) {
        self->ctx_->stats.add(counter::request_timeouts);
        e = make_error(errc::request_timeout, describe_timeout(to, timeout));
      } else if (!early && err == caf::sec::request_receiver_down) {
        e = make_error(errc::unknown_nova,
                       "'" + to + "' stopped before it replied");
      }
      if (g)
        self->guarded("reply error handler", [&] { g(e); });
      else
        spdlog::debug("Nova '{}': request to '{}' failed: {}", self->id(), to,
                      describe(e));
    });
}

// -- agent --------------------------------------------------------------------

agent::agent(caf::actor_config& cfg, agent_init init)
  : caf::event_based_actor(cfg),
    id_(std::move(init.id)),
    options_(std::move(init.options)),
    ctx_(std::move(init.ctx)) {
  make_quiet(this, "Nova '" + id_ + "'");
}

agent::~agent() {
  ctx_->mailbox_depth.fetch_sub(mailbox_sampled_, std::memory_order_relaxed);
}

caf::actor agent::resolve(const std::string& id) {
  auto v = ctx_->directory.version();
  if (v != cache_version_) {
    cache_.clear();
    cache_version_ = v;
  }
  if (auto i = cache_.find(id); i != cache_.end())
    return i->second;
  auto h = ctx_->directory.find(id);
  if (h)
    cache_.emplace(id, h);
  return h;
}

caf::error agent::send(const std::string& to, std::string payload,
                       send_options opts) {
  if (opts.durable)
    return send_durable(*ctx_, kind::direct, id_, to, std::move(payload),
                        opts);
  envelope env;
  if (auto dest = resolve(to);
      dest && payload.size() <= ctx_->limits.max_payload) {
    // The directory only holds valid ids: nothing left to check.
    fill_envelope(env, kind::direct, id_, to, std::move(payload), opts);
    tap_envelope(*ctx_, env);
    deliver(dest, std::move(env));
  } else {
    if (auto err = make_envelope(*ctx_, env, kind::direct, id_, to,
                                 std::move(payload), opts))
      return err;
    if (dest)
      deliver(dest, std::move(env));
    else if (auto err = send_remote(*ctx_, env))
      return err;
  }
  ctx_->stats.add(counter::sent_direct);
  return caf::none;
}

caf::error agent::send_any(const std::string& capability, std::string payload,
                           send_options opts) {
  if (opts.durable)
    return make_error(errc::unsupported,
                      "durable delivery goes to a Nova id (its durable "
                      "inbox), not to a capability");
  if (auto err = check_id(capability, "capability"))
    return err;
  envelope env;
  opts.headers[capability_header] = capability;
  if (auto err = make_envelope(*ctx_, env, kind::direct, id_, capability,
                               std::move(payload), opts))
    return err;
  env.to.clear();
  if (ctx_->bus) {
    if (!ctx_->bus->knows_capability(capability))
      return make_error(errc::unknown_nova,
                        "no Nova with capability '" + capability + "'");
    if (auto err = ctx_->bus->publish_any(capability, env))
      return err;
  } else if (auto dest = pick_local(*ctx_, capability)) {
    deliver(dest, std::move(env));
  } else {
    return make_error(errc::unknown_nova,
                      "no Nova with capability '" + capability + "'");
  }
  ctx_->stats.add(counter::sent_direct);
  return caf::none;
}

caf::error agent::fan_out_kind(kind k, const std::string& to,
                               std::string payload, send_options& opts) {
  if (opts.durable)
    return send_durable(*ctx_, k, id_, to, std::move(payload), opts);
  envelope env;
  if (auto err = make_envelope(*ctx_, env, k, id_, to, std::move(payload),
                               opts))
    return err;
  if (auto err = nova::fan_out(*ctx_, env,
                               [this](const caf::actor& dest,
                                      const envelope& x) { deliver(dest, x); }))
    return err;
  ctx_->stats.add(sent_counter(k));
  return caf::none;
}

caf::error agent::broadcast(std::string payload, send_options opts) {
  return fan_out_kind(kind::broadcast, {}, std::move(payload), opts);
}

caf::error agent::multicast(const std::string& group, std::string payload,
                            send_options opts) {
  return fan_out_kind(kind::multicast, group, std::move(payload), opts);
}

caf::error agent::publish(const std::string& subject, std::string payload,
                          send_options opts) {
  return fan_out_kind(kind::event, subject, std::move(payload), opts);
}

caf::error agent::emergency(std::string payload, send_options opts) {
  return fan_out_kind(kind::emergency, {}, std::move(payload), opts);
}

reply_handle agent::request(const std::string& to, std::string payload,
                            caf::timespan timeout, send_options opts) {
  envelope env;
  caf::actor dest;
  auto err = opts.durable ? durable_request_error()
                          : make_envelope(*ctx_, env, kind::request, id_, to,
                                          std::move(payload), opts);
  if (!err) {
    dest = resolve(to);
    if (!dest && ctx_->bus && ctx_->bus->knows(to))
      dest = ctx_->gateway;
    if (!dest) {
      ctx_->stats.add(counter::rejected_unknown_nova);
      err = make_error(errc::unknown_nova,
                       "no Nova named '" + to + "' on this node"
                         + (ctx_->bus ? " or any other" : ""));
    }
  }
  return start_request(std::move(dest), std::move(env), to, timeout,
                       std::move(err));
}

reply_handle agent::request_any(const std::string& capability,
                                std::string payload, caf::timespan timeout,
                                send_options opts) {
  envelope env;
  caf::actor dest;
  auto err = opts.durable ? durable_request_error()
                          : check_id(capability, "capability");
  if (!err) {
    opts.headers[capability_header] = capability;
    err = make_envelope(*ctx_, env, kind::request, id_, capability,
                        std::move(payload), opts);
  }
  if (!err) {
    env.to.clear();
    if (ctx_->bus && ctx_->bus->knows_capability(capability))
      dest = ctx_->gateway;
    else if (!ctx_->bus)
      dest = pick_local(*ctx_, capability);
    if (!dest)
      err = make_error(errc::unknown_nova,
                       "no Nova with capability '" + capability + "'");
  }
  return start_request(std::move(dest), std::move(env),
                       "capability " + capability, timeout, std::move(err));
}

reply_handle agent::start_request(caf::actor dest, envelope env,
                                  std::string to, caf::timespan timeout,
                                  caf::error err) {
  if (err) {
    // An invalid destination makes CAF answer with an error at once; `then`
    // replaces it with ours.
    auto hdl = caf::event_based_actor::request(caf::actor{}, timeout,
                                               request_atom::value, envelope{});
    return {this, hdl, std::move(to), timeout, std::move(err)};
  }
  ctx_->stats.add(counter::sent_request);
  if (dest == ctx_->gateway && ctx_->bus) {
    // Another node: published from here, the reply comes straight back to
    // this actor as the response to `mid`.
    auto mid = new_request_id(env.priority == priority::urgent
                                ? caf::message_priority::high
                                : caf::message_priority::normal);
    if (auto e = ctx_->bus->request(env, timeout, ctrl(), mid.response_id())) {
      auto hdl = caf::event_based_actor::request(caf::actor{}, timeout,
                                                 request_atom::value,
                                                 envelope{});
      return {this, hdl, std::move(to), timeout, std::move(e)};
    }
    request_response_timeout(caf::duration{timeout}, mid);
    return {this, reply_handle::handle_type{mid.response_id(), this},
            std::move(to), timeout, caf::none};
  }
  if (env.priority == priority::urgent) {
    auto hdl = caf::event_based_actor::request<caf::message_priority::high>(
      dest, timeout, request_atom::value, std::move(env));
    return {this, hdl, std::move(to), timeout, caf::none};
  }
  auto hdl = caf::event_based_actor::request(dest, timeout,
                                             request_atom::value,
                                             std::move(env));
  return {this, hdl, std::move(to), timeout, caf::none};
}

void agent::join(const std::string& group) {
  if (check_id(group, "group"))
    return;
  ctx_->directory.join(id_, group);
  if (std::find(options_.groups.begin(), options_.groups.end(), group)
      == options_.groups.end())
    options_.groups.push_back(group);
}

void agent::leave(const std::string& group) {
  ctx_->directory.leave(id_, group);
  options_.groups.erase(std::remove(options_.groups.begin(),
                                    options_.groups.end(), group),
                        options_.groups.end());
}

caf::error agent::subscribe(const std::string& pattern,
                            event_handler handler) {
  if (auto err = check_subject(pattern, true))
    return err;
  rules_.emplace_back(pattern, std::move(handler));
  ctx_->directory.subscribe(id_, pattern);
  return caf::none;
}

void agent::unsubscribe(const std::string& pattern) {
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(),
                              [&](const auto& r) { return r.first == pattern; }),
               rules_.end());
  ctx_->directory.unsubscribe(id_, pattern);
}

caf::error agent::prepare_task(nova::task& t) {
  if (auto err = nova::prepare_task(t, *ctx_))
    return err;
  t.created_by = id_;
  return caf::none;
}

caf::expected<std::string> agent::enqueue(nova::task t) {
  if (auto err = prepare_task(t))
    return err;
  auto id = t.id;
  caf::event_based_actor::request(ctx_->tasks, caf::infinite,
                                  enqueue_atom::value, std::move(t))
    .then([](const std::string&) {},
          [this, id](caf::error& err) {
            spdlog::warn("Nova '{}': task '{}' was not queued: {}", id_, id,
                         describe(err));
          });
  return id;
}

std::vector<caf::expected<std::string>>
agent::enqueue_many(std::vector<nova::task> ts) {
  std::vector<caf::expected<std::string>> out;
  out.reserve(ts.size());
  std::vector<nova::task> batch;
  for (auto& t : ts) {
    if (auto err = prepare_task(t)) {
      out.emplace_back(std::move(err));
      continue;
    }
    out.emplace_back(t.id);
    batch.push_back(std::move(t));
  }
  if (batch.empty())
    return out;
  caf::event_based_actor::request(ctx_->tasks, caf::infinite,
                                  enqueue_atom::value, std::move(batch))
    .then(
      [this](enqueue_results& r) {
        for (size_t i = 0; i < r.errors.size(); ++i)
          if (r.errors[i])
            spdlog::warn("Nova '{}': a task was not queued: {}", id_,
                         describe(r.errors[i]));
      },
      [this](caf::error& err) {
        spdlog::warn("Nova '{}': a batch of tasks was not queued: {}", id_,
                     describe(err));
      });
  return out;
}

caf::expected<std::string> agent::enqueue(std::string type, std::string payload,
                                          nova::priority prio,
                                          std::string session) {
  nova::task t;
  t.type = std::move(type);
  t.payload = std::move(payload);
  t.priority = prio;
  t.session = std::move(session);
  return enqueue(std::move(t));
}

presence agent::make_presence() const {
  presence p;
  p.nova_id = id_;
  p.node_id = ctx_->node_id;
  p.status = status_;
  p.capabilities = options_.capabilities;
  p.current_task = current_task_;
  p.last_seen = now_ms();
  p.started_at = started_at_;
  p.groups = options_.groups;
  return p;
}

void agent::set_presence(presence_status status, std::string current_task) {
  status_ = status;
  current_task_ = std::move(current_task);
  if (ctx_->presence)
    caf::event_based_actor::send(ctx_->presence, presence_atom::value,
                                 make_presence());
}

void agent::watch_presence() {
  if (ctx_->presence)
    caf::event_based_actor::send(ctx_->presence, watch_atom::value,
                                 caf::actor_cast<caf::actor>(this));
}

void agent::heartbeat() {
  if (stopped_)
    return;
  auto depth = static_cast<int64_t>(mailbox().size());
  ctx_->mailbox_depth.fetch_add(depth - mailbox_sampled_,
                                std::memory_order_relaxed);
  mailbox_sampled_ = depth;
  if (ctx_->presence)
    caf::event_based_actor::send(ctx_->presence, heartbeat_atom::value,
                                 make_presence());
  // A safety net under the notifications, which travel at most once: what
  // a lost one announced is read by the next heartbeat.
  read_durable(false);
  delayed_send(this, ctx_->limits.heartbeat_interval, heartbeat_atom::value);
}

void agent::report_failure(const char* what, const char* why) {
  ctx_->stats.add(counter::handler_errors);
  spdlog::warn("Nova '{}': {} threw: {}", id_, what, why);
}

void agent::dispatch(envelope& env) {
  if (ctx_->durable && !env.headers.empty()
      && env.headers.count(durable_header) > 0) {
    // Another node wrote to this Nova's durable inbox: read it from there.
    read_durable(false);
    return;
  }
  switch (env.kind) {
    case kind::broadcast:
      ctx_->stats.add(counter::received_broadcast);
      guarded("on_broadcast", [&] { on_broadcast(env); });
      break;
    case kind::multicast:
      ctx_->stats.add(counter::received_multicast);
      guarded("on_multicast", [&] { on_multicast(env); });
      break;
    case kind::emergency:
      ctx_->stats.add(counter::received_emergency);
      guarded("on_emergency", [&] { on_emergency(env); });
      break;
    case kind::event:
      ctx_->stats.add(counter::received_event);
      // Index loop and a copied handler: a rule may add or remove rules.
      for (size_t i = 0; i < rules_.size(); ++i) {
        if (!subject_matches(rules_[i].first, env.subject))
          continue;
        auto handler = rules_[i].second;
        guarded("event rule", [&] {
          if (handler)
            handler(env);
          else
            on_event(env);
        });
      }
      break;
    default:
      ctx_->stats.add(counter::received_direct);
      guarded("on_message", [&] { on_message(env); });
  }
}

caf::expected<envelope> agent::answer(envelope& req) {
  ctx_->stats.add(counter::received_request);
  caf::expected<std::string> r{std::string{}};
  try {
    r = on_request(req);
  } catch (const std::exception& e) {
    ctx_->stats.add(counter::handler_errors);
    r = make_error(errc::handler_failed,
                   "Nova '" + id_ + "' on_request threw: " + e.what());
  } catch (...) {
    ctx_->stats.add(counter::handler_errors);
    r = make_error(errc::handler_failed,
                   "Nova '" + id_ + "' on_request threw");
  }
  if (!r)
    return std::move(r.error());
  if (r->size() > ctx_->limits.max_payload)
    return make_error(errc::payload_too_large,
                      "reply of " + std::to_string(r->size())
                        + " bytes exceeds the limit");
  envelope reply;
  reply.id = next_message_id(&reply.created_at);
  reply.from = id_;
  reply.to = req.from;
  reply.kind = kind::response;
  reply.priority = req.priority;
  reply.correlation_id = req.correlation_id.empty() ? req.id
                                                    : req.correlation_id;
  reply.content_type = req.content_type;
  reply.payload = std::move(*r);
  ctx_->stats.add(counter::sent_response);
  return reply;
}

void agent::replay(const std::string& stream, const std::string& from,
                   replay_handler f, const std::string& subject_pattern,
                   size_t limit) {
  if (!f)
    return;
  if (!ctx_->durable) {
    guarded("replay handler", [&] {
      f(make_error(errc::unsupported,
                   "replay needs a store: run the node with --store redis"));
    });
    return;
  }
  auto token = ++next_replay_;
  replays_.emplace(token, std::move(f));
  ctx_->durable->replay(replay_query{stream, from, subject_pattern, limit},
                        caf::actor_cast<caf::actor>(this), token);
}

void agent::on_replay(uint64_t token,
                      caf::expected<std::vector<stored_envelope>> r) {
  auto i = replays_.find(token);
  if (i == replays_.end())
    return;
  auto f = std::move(i->second);
  replays_.erase(i);
  guarded("replay handler", [&] { f(std::move(r)); });
}

void agent::read_durable(bool with_pending) {
  if (!ctx_->durable || stopped_)
    return;
  if (durable_reading_) {
    durable_again_ = true;
    return;
  }
  durable_reading_ = true;
  durable_again_ = false;
  ctx_->durable->catch_up(id_, caf::actor_cast<caf::actor>(this),
                          with_pending);
}

void agent::on_durable(std::vector<stored_envelope>& batch, bool more) {
  durable_reading_ = false;
  // A full batch: the store reads the next one while the handlers run (it
  // reads new entries only; this batch is acked after its handlers).
  if (more)
    read_durable(false);
  if (!batch.empty()) {
    if (!dedup_)
      dedup_ = std::make_unique<dedup_window>(ctx_->limits.dedup_window);
    std::vector<std::string> entries;
    entries.reserve(batch.size());
    for (auto& x : batch) {
      entries.push_back(std::move(x.entry_id));
      if (dedup_->seen_before(x.env.id)) {
        ctx_->stats.add(counter::durable_duplicates);
        continue;
      }
      ctx_->stats.add(counter::durable_received);
      x.env.headers.erase(durable_header);
      dispatch(x.env);
    }
    // After the handlers ran: at-least-once.
    ctx_->durable->ack(id_, std::move(entries));
  }
  if (durable_again_)
    read_durable(false);
}

void agent::claim_next() {
  if (stopped_ || !ctx_->tasks)
    return;
  caf::event_based_actor::request(ctx_->tasks, caf::infinite,
                                  claim_atom::value, id_)
    .then([this](nova::task& t) { run_task(t); },
          [this](caf::error& err) {
            if (stopped_)
              return;
            spdlog::warn("Nova '{}': claiming a task failed: {}", id_,
                         describe(err));
            delayed_send(this, std::chrono::seconds(1), claim_atom::value);
          });
}

void agent::run_task(nova::task& t) {
  current_task_ = t.id;
  caf::expected<std::string> r{std::string{}};
  try {
    r = on_task(t);
  } catch (const std::exception& e) {
    r = make_error(errc::handler_failed, std::string{"on_task threw: "}
                                           + e.what());
  } catch (...) {
    r = make_error(errc::handler_failed, "on_task threw");
  }
  current_task_.clear();
  if (stopped_) {
    // Stopped mid-task: report nothing; the queue sees this worker go down
    // and retries the task elsewhere.
    return;
  }
  if (r)
    caf::event_based_actor::send(ctx_->tasks, complete_atom::value, t.id, id_,
                                 std::move(*r));
  else
    caf::event_based_actor::send(ctx_->tasks, fail_atom::value, t.id, id_,
                                 describe(r.error()));
  claim_next();
}

void agent::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  guarded("on_stop", [&] { on_stop(); });
  if (ctx_->presence)
    caf::event_based_actor::send(ctx_->presence, leave_atom::value, id_);
  ctx_->directory.remove(id_, address());
  quit();
}

caf::behavior agent::make_behavior() {
  started_at_ = now_ms();
  if (ctx_->presence)
    caf::event_based_actor::send(ctx_->presence, presence_atom::value,
                                 make_presence());
  delayed_send(this, ctx_->limits.heartbeat_interval, heartbeat_atom::value);
  guarded("on_start", [&] { on_start(); });
  if (options_.worker)
    claim_next();
  // What was sent to this Nova's durable inbox while it was away; and once
  // more shortly after, for what was written while its subscriptions were
  // still being set up (the notification found nobody).
  read_durable(true);
  if (ctx_->durable)
    delayed_send(this, std::chrono::seconds(1), durable_atom::value);
  return {
    [this](envelope& env) { dispatch(env); },
    // A burst from the gateway, in order.
    [this](std::vector<envelope>& batch) {
      for (auto& env : batch)
        dispatch(env);
    },
    [this](request_atom, envelope& env) -> caf::result<envelope> {
      auto r = answer(env);
      if (!r)
        return std::move(r.error());
      return std::move(*r);
    },
    // A request from another node: answered on the wire, no actor between.
    [this](wire_request_atom, envelope& env, std::string& reply_to,
           bool json) {
      auto r = answer(env);
      if (ctx_->bus)
        ctx_->bus->reply(reply_to, r, json);
    },
    [this](presence& p) {
      ctx_->stats.add(counter::received_presence);
      guarded("on_presence", [&] { on_presence(p); });
    },
    [this](durable_atom) { read_durable(false); },
    [this](durable_atom, std::vector<stored_envelope>& batch, bool more) {
      on_durable(batch, more);
    },
    [this](replay_atom, uint64_t token, std::vector<stored_envelope>& xs) {
      on_replay(token, std::move(xs));
    },
    [this](replay_atom, uint64_t token, caf::error& err) {
      on_replay(token, std::move(err));
    },
    [this](heartbeat_atom) { heartbeat(); },
    [this](claim_atom) { claim_next(); },
    [this](stop_atom) { stop(); },
    [](tick_atom) {
      // Wakes the actor; nothing else to do.
    },
  };
}

// -- default handlers ---------------------------------------------------------

void agent::on_start() {
  // nop
}

void agent::on_stop() {
  // nop
}

void agent::on_message(const envelope&) {
  // nop
}

void agent::on_broadcast(const envelope&) {
  // nop
}

void agent::on_multicast(const envelope&) {
  // nop
}

void agent::on_emergency(const envelope&) {
  // nop
}

void agent::on_event(const envelope&) {
  // nop
}

caf::expected<std::string> agent::on_request(const envelope& req) {
  return make_error(errc::no_handler,
                    "Nova '" + id_ + "' does not answer requests");
}

caf::expected<std::string> agent::on_task(const nova::task& t) {
  return make_error(errc::no_handler,
                    "Nova '" + id_ + "' has no task handler");
}

void agent::on_presence(const presence&) {
  // nop
}

} // namespace nova
