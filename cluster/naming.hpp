#pragma once

#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "messages/types.hpp"

namespace nova {

/// Builds NATS subjects and Dragonfly keys from the wire contract in
/// ARCHITECTURE.md. Every identifier is checked first; an invalid one is an
/// `errc::invalid_id` error, never escaped into a subject.
class naming {
public:
  /// `prefix` is one or more dot-separated ids (default `nova`).
  [[nodiscard]] static caf::expected<naming> make(std::string prefix = "nova");

  [[nodiscard]] const std::string& prefix() const noexcept {
    return prefix_;
  }

  [[nodiscard]] caf::expected<std::string> inbox(std::string_view nova_id) const;
  [[nodiscard]] std::string broadcast() const;
  [[nodiscard]] caf::expected<std::string> group(std::string_view group) const;
  /// `subject` is `<domain>.<action>[.<more>]`; every token must be an id.
  [[nodiscard]] caf::expected<std::string> event(std::string_view subject) const;
  /// The stream holding events of one domain.
  [[nodiscard]] caf::expected<std::string>
  event_stream(std::string_view domain) const;
  [[nodiscard]] std::string emergency() const;
  [[nodiscard]] caf::expected<std::string>
  presence(std::string_view nova_id) const;
  [[nodiscard]] std::string presence_updates() const;
  [[nodiscard]] std::string tasks_available() const;
  [[nodiscard]] std::string task_lane(priority p) const;
  [[nodiscard]] std::string tasks_dead() const;
  [[nodiscard]] std::string workers_group() const;
  [[nodiscard]] caf::expected<std::string>
  task_results(std::string_view session) const;
  [[nodiscard]] caf::expected<std::string>
  node_control(std::string_view node_id, std::string_view verb) const;
  /// Load-balanced delivery to one Nova with a capability: every such Nova
  /// subscribes with the queue group of the same name.
  [[nodiscard]] caf::expected<std::string>
  capability(std::string_view capability) const;

private:
  explicit naming(std::string prefix) : prefix_(std::move(prefix)) {
    // nop
  }

  std::string prefix_;
};

/// Checks an event subject or subscription subject: dot-separated tokens,
/// each an id; with `allow_wildcards`, `*` may stand for one token and `>`
/// as the last token for the rest.
[[nodiscard]] caf::error check_subject(std::string_view subject,
                                       bool allow_wildcards);

/// NATS subject matching: `*` matches exactly one token, `>` (last only)
/// matches one or more remaining tokens.
[[nodiscard]] bool subject_matches(std::string_view pattern,
                                   std::string_view subject) noexcept;

} // namespace nova
