#pragma once

#include <ostream>
#include <string>

#include <caf/error.hpp>

#include "messages/errc.hpp"

namespace nova {

/// One CLI subcommand's name and streams: results go to `out`, diagnostics
/// prefixed with the name to `err`. Exit codes: 1 runtime failure, 2 usage.
class cli_command {
public:
  cli_command(const char* name, std::ostream& out, std::ostream& err)
    : name_(name), out_(out), err_(err) {
    // nop
  }

  int usage(const std::string& what) {
    err_ << name_ << ": " << what << '\n';
    return 2;
  }

  int failure(const std::string& what) {
    err_ << name_ << ": " << what << '\n';
    return 1;
  }

  std::ostream& out() {
    return out_;
  }

  std::ostream& err() {
    return err_;
  }

private:
  const char* name_;
  std::ostream& out_;
  std::ostream& err_;
};

/// A Nova error's message without its "<code>: " (for messages that name
/// the problem themselves); `describe` for any other error.
inline std::string reason(const caf::error& err) {
  const auto& ctx = err.context();
  if (err.category() == errc_category && ctx.size() == 1
      && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

} // namespace nova
