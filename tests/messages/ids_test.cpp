#include <catch2/catch.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "messages/errc.hpp"
#include "messages/ids.hpp"

using namespace nova;

namespace {

bool is_crockford(char c) {
  return std::string_view{"0123456789ABCDEFGHJKMNPQRSTVWXYZ"}.find(c)
         != std::string_view::npos;
}

} // namespace

TEST_CASE("ids of letters, digits, underscore and dash up to 64 characters "
          "are valid",
          "[ids]") {
  CHECK(is_valid_id("a"));
  CHECK(is_valid_id("Z"));
  CHECK(is_valid_id("0"));
  CHECK(is_valid_id("_"));
  CHECK(is_valid_id("-"));
  CHECK(is_valid_id("bridge"));
  CHECK(is_valid_id("Nova_42-alpha"));
  CHECK(is_valid_id(std::string(64, 'x')));
  CHECK(is_valid_id("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"));
}

TEST_CASE("ids that are empty, too long or contain other characters are "
          "invalid",
          "[ids]") {
  CHECK_FALSE(is_valid_id(""));
  CHECK_FALSE(is_valid_id(std::string(65, 'x')));
  CHECK_FALSE(is_valid_id("a.b"));
  CHECK_FALSE(is_valid_id("a*"));
  CHECK_FALSE(is_valid_id(">"));
  CHECK_FALSE(is_valid_id("a b"));
  CHECK_FALSE(is_valid_id(" a"));
  CHECK_FALSE(is_valid_id("a/b"));
  CHECK_FALSE(is_valid_id("a\\b"));
  CHECK_FALSE(is_valid_id("a:b"));
  CHECK_FALSE(is_valid_id("a\tb"));
  CHECK_FALSE(is_valid_id("a\nb"));
  CHECK_FALSE(is_valid_id("caf\xc3\xa9")); // "café" in UTF-8
  CHECK_FALSE(is_valid_id("\xe2\x98\x85"));  // a star in UTF-8
  CHECK_FALSE(is_valid_id(std::string{"a\0b", 3}));
}

TEST_CASE("check_id accepts a valid id without error", "[ids]") {
  CHECK_FALSE(check_id("bridge"));
  CHECK_FALSE(check_id(std::string(64, 'q'), "nova id"));
}

TEST_CASE("check_id rejects an invalid id with invalid_id naming what and "
          "the id",
          "[ids]") {
  auto err = check_id("a.b", "nova id");
  REQUIRE(err);
  CHECK(is(err, errc::invalid_id));
  auto text = describe(err);
  CHECK(text.find("invalid_id") != std::string::npos);
  CHECK(text.find("nova id") != std::string::npos);
  CHECK(text.find("'a.b'") != std::string::npos);
}

TEST_CASE("check_id shortens a very long id in its error message", "[ids]") {
  auto err = check_id(std::string(1000, 'x'));
  REQUIRE(is(err, errc::invalid_id));
  auto text = describe(err);
  CHECK(text.size() < 300);
  CHECK(text.find("...") != std::string::npos);
}

TEST_CASE("a new message id is a 26-character Crockford base32 ULID",
          "[ids]") {
  for (int i = 0; i < 100; ++i) {
    auto id = new_message_id();
    REQUIRE(id.size() == 26);
    CHECK(std::all_of(id.begin(), id.end(), is_crockford));
    // The top two of 130 bits are always zero, so the first digit is 0..7.
    CHECK(id[0] <= '7');
    CHECK(is_valid_id(id));
  }
}

TEST_CASE("new message ids are unique across many calls", "[ids]") {
  constexpr size_t n = 100'000;
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i)
    seen.insert(new_message_id());
  CHECK(seen.size() == n);
}

TEST_CASE("new message ids are strictly increasing within one thread",
          "[ids]") {
  auto prev = new_message_id();
  for (int i = 0; i < 50'000; ++i) {
    auto next = new_message_id();
    REQUIRE(prev < next);
    prev = std::move(next);
  }
}

TEST_CASE("new message ids are unique across threads", "[ids]") {
  constexpr size_t threads = 4;
  constexpr size_t per_thread = 20'000;
  std::vector<std::vector<std::string>> made(threads);
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t)
    workers.emplace_back([&made, t] {
      made[t].reserve(per_thread);
      for (size_t i = 0; i < per_thread; ++i)
        made[t].push_back(new_message_id());
    });
  for (auto& w : workers)
    w.join();
  std::set<std::string> all;
  for (const auto& ids : made) {
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    all.insert(ids.begin(), ids.end());
  }
  CHECK(all.size() == threads * per_thread);
}

TEST_CASE("message_id_time recovers the creation time of a new id",
          "[ids]") {
  auto before = now_ms();
  auto id = new_message_id();
  auto after = now_ms();
  auto t = message_id_time(id);
  CHECK(t >= before - 5);
  CHECK(t <= after + 5);
  CHECK(t >= now_ms() - 5000);
}

TEST_CASE("message_id_time decodes a known ULID", "[ids]") {
  // The first 10 digits hold the time; all zero is the epoch.
  CHECK(message_id_time("00000000000000000000000000") == 0);
  CHECK(message_id_time("00000000010000000000000000") == 1);
  CHECK(message_id_time("000000000Z0000000000000000") == 31);
  CHECK(message_id_time("00000000Z00000000000000000") == 31 * 32);
  // 7ZZZZZZZZZ is the largest 48-bit time.
  CHECK(message_id_time("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
        == (int64_t{1} << 48) - 1);
}

TEST_CASE("message_id_time of a malformed id is zero", "[ids]") {
  CHECK(message_id_time("") == 0);
  CHECK(message_id_time("0123") == 0);
  CHECK(message_id_time(std::string(27, '0')) == 0);
  CHECK(message_id_time("0000000U000000000000000000") == 0); // U is excluded
  CHECK(message_id_time("0000000a000000000000000000") == 0);
  CHECK(message_id_time("000000000!0000000000000000") == 0);
}

TEST_CASE("now_ms is unix time in milliseconds", "[ids]") {
  auto t = now_ms();
  // 2020-01-01 and 2100-01-01 in unix milliseconds.
  CHECK(t > 1'577'836'800'000);
  CHECK(t < 4'102'444'800'000);
}
