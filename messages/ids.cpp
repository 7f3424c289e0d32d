#include "messages/ids.hpp"

#include <array>
#include <chrono>
#include <random>

#include "messages/errc.hpp"

namespace nova {

namespace {

constexpr char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Digit value of every byte; -1 for bytes outside the alphabet.
constexpr auto crockford_values = [] {
  std::array<int8_t, 256> out{};
  for (auto& x : out)
    x = -1;
  for (int i = 0; i < 32; ++i)
    out[static_cast<unsigned char>(crockford[i])] = static_cast<int8_t>(i);
  return out;
}();

int decode_crockford(char c) noexcept {
  return crockford_values[static_cast<unsigned char>(c)];
}

// Every pair of digits, indexed by the 10 bits they encode.
constexpr auto crockford_pairs = [] {
  std::array<char, 2048> out{};
  for (int i = 0; i < 1024; ++i) {
    out[2 * i] = crockford[i >> 5];
    out[2 * i + 1] = crockford[i & 31];
  }
  return out;
}();

// Writes the low `5 * n` bits of `x` as `n` base32 digits, most significant
// first; `n` is even. On the hot path of every send, hence two at a time.
template <int n>
void encode_crockford(uint64_t x, char* out) noexcept {
  static_assert(n % 2 == 0);
  for (int i = n - 2; i >= 0; i -= 2) {
    auto pair = &crockford_pairs[2 * (x & 1023)];
    out[i] = pair[0];
    out[i + 1] = pair[1];
    x >>= 10;
  }
}

struct ulid_state {
  int64_t last_ms = -1;
  uint16_t hi = 0; // top 16 of the 80 random bits
  uint64_t lo = 0; // low 64 of the 80 random bits
  std::mt19937_64 rng{std::random_device{}()};
};

} // namespace

bool is_valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_id_length)
    return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

caf::error check_id(std::string_view id, std::string_view what) {
  if (is_valid_id(id))
    return caf::none;
  std::string shown{id.substr(0, 80)};
  if (id.size() > 80)
    shown += "...";
  return make_error(errc::invalid_id,
                    std::string{what} + " '" + shown
                      + "' does not match [A-Za-z0-9_-]{1,64}");
}

int64_t now_ms() noexcept {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

namespace {

/// Writes the next ULID of this thread into `buf` (26 characters).
int64_t write_ulid(char* buf) {
  thread_local ulid_state st;
  auto ms = now_ms();
  if (ms > st.last_ms) {
    st.last_ms = ms;
    st.hi = static_cast<uint16_t>(st.rng());
    // Keep the top bit clear so increments within one millisecond never wrap.
    st.lo = st.rng() >> 1;
  } else {
    ++st.lo;
  }
  // 128 bits: 48 time | 16 hi | 64 lo, written as 26 base32 digits (130 bits,
  // the top two always zero). Digit boundaries fall on the time/random
  // border, so the 50 time bits make 10 digits and the 80 random bits two
  // runs of 8, each fitting a uint64_t.
  encode_crockford<10>(static_cast<uint64_t>(st.last_ms), buf);
  encode_crockford<8>((uint64_t{st.hi} << 24) | (st.lo >> 40), buf + 10);
  encode_crockford<8>(st.lo & ((uint64_t{1} << 40) - 1), buf + 18);
  return st.last_ms;
}

} // namespace

std::string new_message_id() {
  char buf[26];
  write_ulid(buf);
  return std::string(buf, sizeof(buf));
}

msg_id next_message_id(int64_t* ms) {
  msg_id out;
  auto t = write_ulid(out.ulid_buffer());
  if (ms)
    *ms = t;
  return out;
}

int64_t message_id_time(std::string_view id) noexcept {
  if (id.size() != 26)
    return 0;
  // The first 10 digits hold the top 50 of 130 bits: two zero bits, then
  // the 48-bit time.
  uint64_t v = 0;
  for (size_t i = 0; i < 10; ++i) {
    int d = decode_crockford(id[i]);
    if (d < 0)
      return 0;
    v = (v << 5) | static_cast<uint64_t>(d);
  }
  return static_cast<int64_t>(v);
}

} // namespace nova
