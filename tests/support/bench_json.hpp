#pragma once

#include <initializer_list>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace nova::testing {

/// Parses the one JSON object a benchmark prints with `--json` (one line).
inline nlohmann::json one_object(const std::string& out) {
  INFO(out);
  REQUIRE(!out.empty());
  REQUIRE(out.find('\n') == out.size() - 1);
  auto j = nlohmann::json::parse(out, nullptr, false);
  REQUIRE(!j.is_discarded());
  REQUIRE(j.is_object());
  return j;
}

/// Every key of `keys` holds a number greater than zero.
inline void require_positive(const nlohmann::json& j,
                             std::initializer_list<const char*> keys) {
  for (auto key : keys) {
    INFO("key " << key << " in " << j.dump());
    REQUIRE(j.contains(key));
    REQUIRE(j[key].is_number());
    CHECK(j[key].get<double>() > 0);
  }
}

} // namespace nova::testing
