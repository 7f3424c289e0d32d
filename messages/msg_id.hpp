#pragma once

#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/none.hpp>

namespace nova {

/// A message or correlation id: up to 64 characters stored inline, so making
/// and copying an envelope allocates nothing for its ids (a 26-character
/// ULID does not fit std::string's small buffer). Converts to and from
/// strings; longer input is cut at 64 characters, and decoders reject it
/// before it gets here.
class msg_id {
public:
  static constexpr size_t capacity = 64;

  msg_id() noexcept {
    data_[0] = '\0';
  }

  msg_id(std::string_view x) noexcept {
    assign(x);
  }

  msg_id(const std::string& x) noexcept : msg_id(std::string_view{x}) {
    // nop
  }

  msg_id(const char* x) noexcept : msg_id(std::string_view{x}) {
    // nop
  }

  msg_id& operator=(std::string_view x) noexcept {
    assign(x);
    return *this;
  }

  msg_id& operator=(const std::string& x) noexcept {
    assign(x);
    return *this;
  }

  msg_id& operator=(const char* x) noexcept {
    assign(x);
    return *this;
  }

  [[nodiscard]] size_t size() const noexcept {
    return size_;
  }

  [[nodiscard]] bool empty() const noexcept {
    return size_ == 0;
  }

  [[nodiscard]] const char* data() const noexcept {
    return data_;
  }

  [[nodiscard]] const char* c_str() const noexcept {
    return data_;
  }

  [[nodiscard]] std::string_view view() const noexcept {
    return {data_, size_};
  }

  [[nodiscard]] std::string str() const {
    return {data_, size_};
  }

  operator std::string_view() const noexcept {
    return view();
  }

  operator std::string() const {
    return str();
  }

  void clear() noexcept {
    size_ = 0;
    data_[0] = '\0';
  }

  /// Writes a 26-character ULID in place (see `next_message_id`).
  char* ulid_buffer() noexcept {
    size_ = 26;
    data_[26] = '\0';
    return data_;
  }

  friend bool operator==(const msg_id& x, const msg_id& y) noexcept {
    return x.view() == y.view();
  }
  friend bool operator!=(const msg_id& x, const msg_id& y) noexcept {
    return !(x == y);
  }
  friend bool operator<(const msg_id& x, const msg_id& y) noexcept {
    return x.view() < y.view();
  }
  friend bool operator==(const msg_id& x, std::string_view y) noexcept {
    return x.view() == y;
  }
  friend bool operator==(std::string_view x, const msg_id& y) noexcept {
    return x == y.view();
  }
  friend bool operator!=(const msg_id& x, std::string_view y) noexcept {
    return x.view() != y;
  }
  friend bool operator!=(std::string_view x, const msg_id& y) noexcept {
    return x != y.view();
  }
  friend bool operator==(const msg_id& x, const std::string& y) noexcept {
    return x.view() == y;
  }
  friend bool operator==(const std::string& x, const msg_id& y) noexcept {
    return x == y.view();
  }
  friend bool operator!=(const msg_id& x, const std::string& y) noexcept {
    return x.view() != y;
  }
  friend bool operator!=(const std::string& x, const msg_id& y) noexcept {
    return x != y.view();
  }
  friend bool operator==(const msg_id& x, const char* y) noexcept {
    return x.view() == y;
  }
  friend bool operator!=(const msg_id& x, const char* y) noexcept {
    return x.view() != y;
  }

  friend std::string operator+(const std::string& x, const msg_id& y) {
    return x + y.str();
  }
  friend std::string operator+(const char* x, const msg_id& y) {
    return x + y.str();
  }
  friend std::string operator+(const msg_id& x, const std::string& y) {
    return x.str() + y;
  }
  friend std::string operator+(const msg_id& x, const char* y) {
    return x.str() + y;
  }

  friend std::ostream& operator<<(std::ostream& out, const msg_id& x) {
    return out << x.view();
  }

private:
  void assign(std::string_view x) noexcept {
    size_ = static_cast<uint8_t>(x.size() < capacity ? x.size() : capacity);
    std::memcpy(data_, x.data(), size_);
    data_[size_] = '\0';
  }

  uint8_t size_ = 0;
  char data_[capacity + 1];
};

static_assert(std::is_nothrow_copy_constructible_v<msg_id>);

[[nodiscard]] inline std::string to_string(const msg_id& x) {
  return x.str();
}

/// CAF sees a msg_id as a string.
template <class Inspector>
typename std::enable_if<Inspector::reads_state,
                        typename Inspector::result_type>::type
inspect(Inspector& f, msg_id& x) {
  std::string tmp = x.str();
  return f(tmp);
}

template <class Inspector>
typename std::enable_if<Inspector::writes_state,
                        typename Inspector::result_type>::type
inspect(Inspector& f, msg_id& x) {
  std::string tmp;
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x = tmp;
    return caf::none;
  });
  return f(tmp, load);
}

} // namespace nova

template <>
struct std::hash<nova::msg_id> {
  size_t operator()(const nova::msg_id& x) const noexcept {
    return std::hash<std::string_view>{}(x.view());
  }
};
