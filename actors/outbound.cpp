#include "actors/outbound.hpp"

#include "actors/agent.hpp"
#include "actors/durable_service.hpp"
#include "cluster/naming.hpp"
#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

caf::error make_envelope(runtime_context& ctx, envelope& out, kind k,
                         std::string from, const std::string& to,
                         std::string payload, send_options& opts) {
  switch (k) {
    case kind::direct:
    case kind::request:
    case kind::response:
      if (auto err = check_id(to, "recipient")) {
        ctx.stats.add(counter::rejected_invalid_id);
        return err;
      }
      break;
    case kind::multicast:
      if (auto err = check_id(to, "group")) {
        ctx.stats.add(counter::rejected_invalid_id);
        return err;
      }
      break;
    case kind::event:
      if (auto err = check_subject(to, false)) {
        ctx.stats.add(counter::rejected_invalid_id);
        return err;
      }
      if (to.find('.') == std::string::npos) {
        ctx.stats.add(counter::rejected_invalid_id);
        return make_error(errc::invalid_argument,
                          "event subject '" + to
                            + "' needs at least <domain>.<action>");
      }
      break;
    default:
      break;
  }
  if (payload.size() > ctx.limits.max_payload) {
    ctx.stats.add(counter::rejected_oversized);
    return make_error(errc::payload_too_large,
                      "payload of " + std::to_string(payload.size())
                        + " bytes exceeds the limit of "
                        + std::to_string(ctx.limits.max_payload) + " bytes");
  }
  fill_envelope(out, k, std::move(from), to, std::move(payload), opts);
  tap_envelope(ctx, out);
  return caf::none;
}

void fill_envelope(envelope& out, kind k, std::string from,
                   const std::string& to, std::string payload,
                   send_options& opts) {
  out.id = next_message_id(&out.created_at);
  out.from = std::move(from);
  if (k == kind::event)
    out.subject = to;
  else
    out.to = to;
  out.kind = k;
  out.priority = k == kind::emergency ? priority::urgent : opts.priority;
  if (opts.correlation_id.empty())
    out.correlation_id = out.id;
  else
    out.correlation_id = opts.correlation_id;
  out.content_type = std::move(opts.content_type);
  out.payload = std::move(payload);
  out.headers = std::move(opts.headers);
}

std::vector<caf::actor> local_targets(runtime_context& ctx,
                                      const envelope& env) {
  switch (env.kind) {
    case kind::broadcast:
    case kind::emergency:
      return ctx.directory.all();
    case kind::multicast:
      return ctx.directory.group_members(env.to);
    case kind::event:
      return ctx.directory.subscribers(env.subject);
    default:
      if (auto h = ctx.directory.find(env.to))
        return {h};
      return {};
  }
}

caf::error send_durable(runtime_context& ctx, kind k, std::string from,
                        const std::string& to, std::string payload,
                        send_options& opts) {
  if (!ctx.durable)
    return make_error(errc::unsupported,
                      "durable delivery needs a store: run the node with "
                      "--store redis");
  envelope env;
  if (auto err = make_envelope(ctx, env, k, std::move(from), to,
                               std::move(payload), opts))
    return err;
  if (auto err = ctx.durable->append(std::move(env)))
    return err;
  ctx.stats.add(counter::durable_sent);
  ctx.stats.add(sent_counter(k));
  return caf::none;
}

caf::error send_remote(runtime_context& ctx, const envelope& env) {
  if (ctx.bus && ctx.bus->knows(env.to))
    return ctx.bus->publish(env);
  ctx.stats.add(counter::rejected_unknown_nova);
  return make_error(errc::unknown_nova,
                    "no Nova named '" + env.to + "' on this node"
                      + (ctx.bus ? " or any other" : ""));
}

caf::actor pick_local(runtime_context& ctx, const std::string& capability) {
  auto ids = ctx.directory.with_capability(capability);
  if (ids.empty())
    return {};
  auto n = ctx.round_robin.fetch_add(1, std::memory_order_relaxed);
  return ctx.directory.find(ids[n % ids.size()]);
}

counter sent_counter(kind k) noexcept {
  switch (k) {
    case kind::broadcast: return counter::sent_broadcast;
    case kind::multicast: return counter::sent_multicast;
    case kind::event: return counter::sent_event;
    case kind::request: return counter::sent_request;
    case kind::response: return counter::sent_response;
    case kind::emergency: return counter::sent_emergency;
    default: return counter::sent_direct;
  }
}

} // namespace nova
