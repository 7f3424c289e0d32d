#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nova {

/// The per-task arguments of a batch script, packed into one MessagePack
/// array that the script unpacks with `cmsgpack.unpack` (in Redis and
/// Dragonfly alike). One large argument instead of thousands of small ones:
/// the server reads a bulk argument of 32 KiB or more in one go, where it
/// reads the rest of a request 16 KiB per turn of its event loop, taking
/// turns with every other client. Strings are binary-safe; numbers are
/// unsigned integers (Lua numbers once unpacked).
class lua_pack {
public:
  /// Starts the array of `n` elements; exactly that many `str` and
  /// `uint` calls follow.
  lua_pack& array(size_t n) {
    buf_.push_back(static_cast<char>(0xdd));
    be(static_cast<uint32_t>(n), 4);
    return *this;
  }

  lua_pack& str(std::string_view x) {
    auto n = x.size();
    if (n < 32) {
      buf_.push_back(static_cast<char>(0xa0 | n));
    } else if (n <= 0xff) {
      buf_.push_back(static_cast<char>(0xd9));
      be(n, 1);
    } else if (n <= 0xffff) {
      buf_.push_back(static_cast<char>(0xda));
      be(n, 2);
    } else {
      buf_.push_back(static_cast<char>(0xdb));
      be(n, 4);
    }
    buf_.append(x.data(), n);
    return *this;
  }

  lua_pack& uint(uint64_t x) {
    if (x < 0x80) {
      buf_.push_back(static_cast<char>(x));
    } else if (x <= 0xff) {
      buf_.push_back(static_cast<char>(0xcc));
      be(x, 1);
    } else if (x <= 0xffff) {
      buf_.push_back(static_cast<char>(0xcd));
      be(x, 2);
    } else if (x <= 0xffffffff) {
      buf_.push_back(static_cast<char>(0xce));
      be(x, 4);
    } else {
      buf_.push_back(static_cast<char>(0xcf));
      be(x, 8);
    }
    return *this;
  }

  [[nodiscard]] const std::string& bytes() const noexcept {
    return buf_;
  }

  void clear() noexcept {
    buf_.clear();
  }

private:
  // `x` in `n` bytes, big-endian.
  void be(uint64_t x, int n) {
    for (int i = n - 1; i >= 0; --i)
      buf_.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  }

  std::string buf_;
};

} // namespace nova
