// The MessagePack encoding of batch script arguments, byte by byte.

#include <catch2/catch.hpp>

#include <string>

#include "cluster/lua_pack.hpp"

using nova::lua_pack;

namespace {

std::string bytes(std::initializer_list<int> xs) {
  std::string out;
  for (auto x : xs)
    out.push_back(static_cast<char>(x));
  return out;
}

} // namespace

TEST_CASE("lua_pack writes an array header of 32 bits", "[lua_pack]") {
  lua_pack p;
  p.array(0x01020304);
  CHECK(p.bytes() == bytes({0xdd, 0x01, 0x02, 0x03, 0x04}));
}

TEST_CASE("lua_pack writes each string in the smallest form", "[lua_pack]") {
  auto head = [](size_t n) {
    lua_pack p;
    p.str(std::string(n, 'x'));
    auto& b = p.bytes();
    REQUIRE(b.size() >= n);
    CHECK(b.substr(b.size() - n) == std::string(n, 'x'));
    return b.substr(0, b.size() - n);
  };
  CHECK(head(0) == bytes({0xa0}));
  CHECK(head(31) == bytes({0xbf}));
  CHECK(head(32) == bytes({0xd9, 32}));
  CHECK(head(255) == bytes({0xd9, 0xff}));
  CHECK(head(256) == bytes({0xda, 0x01, 0x00}));
  CHECK(head(65535) == bytes({0xda, 0xff, 0xff}));
  CHECK(head(65536) == bytes({0xdb, 0x00, 0x01, 0x00, 0x00}));
  lua_pack p;
  p.str(std::string{"a\0b", 3});
  CHECK(p.bytes() == bytes({0xa3, 'a', 0, 'b'}));
}

TEST_CASE("lua_pack writes each number in the smallest form", "[lua_pack]") {
  auto of = [](uint64_t x) {
    lua_pack p;
    p.uint(x);
    return p.bytes();
  };
  CHECK(of(0) == bytes({0x00}));
  CHECK(of(127) == bytes({0x7f}));
  CHECK(of(128) == bytes({0xcc, 0x80}));
  CHECK(of(255) == bytes({0xcc, 0xff}));
  CHECK(of(256) == bytes({0xcd, 0x01, 0x00}));
  CHECK(of(65535) == bytes({0xcd, 0xff, 0xff}));
  CHECK(of(65536) == bytes({0xce, 0x00, 0x01, 0x00, 0x00}));
  CHECK(of(0xffffffff) == bytes({0xce, 0xff, 0xff, 0xff, 0xff}));
  CHECK(of(0x100000000) == bytes({0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0}));
}

TEST_CASE("lua_pack appends to what it holds until cleared", "[lua_pack]") {
  lua_pack p;
  p.array(2).uint(1).str("x");
  CHECK(p.bytes() == bytes({0xdd, 0, 0, 0, 2, 0x01, 0xa1, 'x'}));
  p.clear();
  CHECK(p.bytes().empty());
}
