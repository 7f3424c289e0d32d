#pragma once

#include <memory>

namespace nova {

/// A deleter that calls a C library's destroy function: handles from nats.c
/// and hiredis live in `c_handle<T, destroy>`, never as raw pointers.
template <auto Destroy>
struct c_deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Destroy(p);
  }
};

template <class T, auto Destroy>
using c_handle = std::unique_ptr<T, c_deleter<Destroy>>;

} // namespace nova
