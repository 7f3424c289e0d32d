#include "cluster/naming.hpp"

#include "messages/errc.hpp"
#include "messages/ids.hpp"

namespace nova {

namespace {

const char* lane_name(priority p) {
  return to_string(p);
}

} // namespace

caf::error check_subject(std::string_view subject, bool allow_wildcards) {
  if (subject.empty())
    return make_error(errc::invalid_argument, "empty subject");
  size_t start = 0;
  for (;;) {
    auto dot = subject.find('.', start);
    auto token = subject.substr(start, dot == std::string_view::npos
                                         ? std::string_view::npos
                                         : dot - start);
    bool last = dot == std::string_view::npos;
    if (allow_wildcards && token == "*") {
      // ok
    } else if (allow_wildcards && token == ">") {
      if (!last)
        return make_error(errc::invalid_argument,
                          "'>' must be the last token in '"
                            + std::string{subject} + "'");
    } else if (!is_valid_id(token)) {
      return make_error(errc::invalid_argument,
                        "token '" + std::string{token.substr(0, 80)}
                          + "' in subject '"
                          + std::string{subject.substr(0, 200)}
                          + "' does not match [A-Za-z0-9_-]{1,64}");
    }
    if (last)
      return caf::none;
    start = dot + 1;
  }
}

bool subject_matches(std::string_view pattern,
                     std::string_view subject) noexcept {
  size_t p = 0;
  size_t s = 0;
  for (;;) {
    auto pe = pattern.find('.', p);
    auto se = subject.find('.', s);
    auto ptok = pattern.substr(p, pe == std::string_view::npos
                                    ? std::string_view::npos
                                    : pe - p);
    if (s > subject.size())
      return false;
    auto stok = subject.substr(s, se == std::string_view::npos
                                    ? std::string_view::npos
                                    : se - s);
    // Subjects have no empty tokens, so neither `*` nor `>` matches one.
    if (stok.empty())
      return false;
    if (ptok == ">")
      return true;
    if (ptok != "*" && ptok != stok)
      return false;
    bool plast = pe == std::string_view::npos;
    bool slast = se == std::string_view::npos;
    if (plast || slast)
      return plast && slast;
    p = pe + 1;
    s = se + 1;
  }
}

caf::expected<naming> naming::make(std::string prefix) {
  if (auto err = check_subject(prefix, false))
    return make_error(errc::invalid_argument,
                      "invalid prefix '" + prefix.substr(0, 80)
                        + "': each dot-separated token must match "
                          "[A-Za-z0-9_-]{1,64}");
  return naming{std::move(prefix)};
}

caf::expected<std::string> naming::inbox(std::string_view nova_id) const {
  if (auto err = check_id(nova_id, "nova id"))
    return err;
  return prefix_ + ".inbox." + std::string{nova_id};
}

std::string naming::broadcast() const {
  return prefix_ + ".broadcast.all";
}

caf::expected<std::string> naming::group(std::string_view g) const {
  if (auto err = check_id(g, "group"))
    return err;
  return prefix_ + ".group." + std::string{g};
}

caf::expected<std::string> naming::event(std::string_view subject) const {
  if (auto err = check_subject(subject, false))
    return err;
  if (subject.find('.') == std::string_view::npos)
    return make_error(errc::invalid_argument,
                      "event subject '" + std::string{subject}
                        + "' needs at least <domain>.<action>");
  return prefix_ + ".events." + std::string{subject};
}

caf::expected<std::string>
naming::event_stream(std::string_view domain) const {
  if (auto err = check_id(domain, "domain"))
    return err;
  return prefix_ + ".events." + std::string{domain};
}

std::string naming::emergency() const {
  return prefix_ + ".emergency";
}

caf::expected<std::string> naming::presence(std::string_view nova_id) const {
  if (auto err = check_id(nova_id, "nova id"))
    return err;
  return prefix_ + ".presence." + std::string{nova_id};
}

std::string naming::presence_updates() const {
  return prefix_ + ".presence.updates";
}

std::string naming::tasks_available() const {
  return prefix_ + ".tasks.available";
}

std::string naming::task_lane(priority p) const {
  return prefix_ + ".tasks.queue." + lane_name(p);
}

std::string naming::tasks_dead() const {
  return prefix_ + ".tasks.dead";
}

std::string naming::workers_group() const {
  return prefix_ + ".workers";
}

caf::expected<std::string>
naming::task_results(std::string_view session) const {
  if (auto err = check_id(session, "session"))
    return err;
  return prefix_ + ".tasks.results." + std::string{session};
}

caf::expected<std::string> naming::node_control(std::string_view node_id,
                                                std::string_view verb) const {
  if (auto err = check_id(node_id, "node id"))
    return err;
  if (auto err = check_id(verb, "verb"))
    return err;
  return prefix_ + ".node." + std::string{node_id} + "." + std::string{verb};
}

caf::expected<std::string>
naming::capability(std::string_view capability) const {
  if (auto err = check_id(capability, "capability"))
    return err;
  return prefix_ + ".capability." + std::string{capability};
}

} // namespace nova
