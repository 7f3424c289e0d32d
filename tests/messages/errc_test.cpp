#include <catch2/catch.hpp>

#include <string>

#include <caf/sec.hpp>

#include "messages/errc.hpp"

using namespace nova;

namespace {

const errc all_codes[] = {
  errc::invalid_id,        errc::unknown_nova,    errc::duplicate_id,
  errc::payload_too_large, errc::request_timeout, errc::no_handler,
  errc::handler_failed,    errc::queue_full,      errc::not_found,
  errc::shutting_down,     errc::decode_failed,   errc::invalid_argument,
  errc::backend_unavailable, errc::unsupported,   errc::unknown,
};

} // namespace

TEST_CASE("errc values are stable because they cross the wire", "[errc]") {
  static_assert(static_cast<int>(errc::none) == 0);
  static_assert(static_cast<int>(errc::invalid_id) == 1);
  static_assert(static_cast<int>(errc::not_found) == 9);
  static_assert(static_cast<int>(errc::decode_failed) == 11);
  static_assert(static_cast<int>(errc::unsupported) == 14);
  static_assert(static_cast<int>(errc::unknown) == 255);
  CHECK(std::string{to_string(errc::none)} == "none");
  CHECK(std::string{to_string(errc::invalid_id)} == "invalid_id");
  CHECK(std::string{to_string(errc::queue_full)} == "queue_full");
  CHECK(std::string{to_string(errc::backend_unavailable)}
        == "backend_unavailable");
  CHECK(std::string{to_string(errc::unknown)} == "unknown");
}

TEST_CASE("a code this build does not know prints as unknown", "[errc]") {
  CHECK(std::string{to_string(static_cast<errc>(200))} == "unknown");
}

TEST_CASE("make_error without context is recognised by is and nothing else",
          "[errc]") {
  for (auto code : all_codes) {
    auto err = make_error(code);
    INFO(to_string(code));
    REQUIRE(err);
    CHECK(err.category() == errc_category);
    CHECK(err.code() == static_cast<uint8_t>(code));
    CHECK(err.context().empty());
    CHECK(is(err, code));
    for (auto other : all_codes)
      if (other != code)
        CHECK_FALSE(is(err, other));
  }
}

TEST_CASE("make_error with context keeps the context", "[errc]") {
  auto err = make_error(errc::not_found, "task 't1' is not claimed");
  REQUIRE(err);
  CHECK(is(err, errc::not_found));
  REQUIRE(err.context().size() == 1);
  REQUIRE(err.context().match_element<std::string>(0));
  CHECK(err.context().get_as<std::string>(0) == "task 't1' is not claimed");
}

TEST_CASE("describe renders the code and the context", "[errc]") {
  CHECK(describe(make_error(errc::queue_full)) == "queue_full");
  CHECK(describe(make_error(errc::invalid_id, "nova id 'a.b' is bad"))
        == "invalid_id: nova id 'a.b' is bad");
  CHECK(describe(make_error(errc::unknown, "")) == "unknown: ");
}

TEST_CASE("describe of no error is none", "[errc]") {
  CHECK(describe(caf::error{}) == "none");
  CHECK(describe(caf::none) == "none");
}

TEST_CASE("describe renders CAF's own errors by name", "[errc]") {
  caf::error err = caf::make_error(caf::sec::request_timeout);
  auto text = describe(err);
  CHECK(text.find("request_timeout") != std::string::npos);
  CHECK_FALSE(is(err, errc::request_timeout));
}

TEST_CASE("describe renders errors of other categories by category and "
          "code",
          "[errc]") {
  caf::error err{uint8_t{7}, caf::atom("other")};
  CHECK(describe(err) == "other:7");
  CHECK_FALSE(is(err, static_cast<errc>(7)));
}

TEST_CASE("describe renders a non-string context", "[errc]") {
  caf::error err{static_cast<uint8_t>(errc::queue_full), errc_category,
                 caf::make_message(int32_t{42})};
  auto text = describe(err);
  CHECK(text.rfind("queue_full: ", 0) == 0);
  CHECK(text.find("42") != std::string::npos);
}

TEST_CASE("is is false for no error", "[errc]") {
  CHECK_FALSE(is(caf::error{}, errc::none));
  CHECK_FALSE(is(caf::error{}, errc::not_found));
}
