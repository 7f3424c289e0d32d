#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/agent.hpp"

namespace nova::testing {

/// A thread-safe list that actors append to and tests wait on, always with a
/// bound.
template <class T>
class sink {
public:
  void push(T x) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      items_.push_back(std::move(x));
    }
    cv_.notify_all();
  }

  /// Waits until at least `n` items arrived or `timeout` passed; returns a
  /// copy of what arrived.
  std::vector<T> wait_for(size_t n, std::chrono::milliseconds timeout
                                    = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_for(guard, timeout, [&] { return items_.size() >= n; });
    return items_;
  }

  /// Waits until `pred` holds for the items or `timeout` passed.
  bool wait_until(const std::function<bool(const std::vector<T>&)>& pred,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] { return pred(items_); });
  }

  std::vector<T> items() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return items_;
  }

  size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return items_.size();
  }

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

using envelope_sink = std::shared_ptr<sink<envelope>>;

/// A Nova that records everything it receives, and answers requests with
/// "re:" + payload.
class recorder : public agent {
public:
  recorder(caf::actor_config& cfg, agent_init init, envelope_sink out)
    : agent(cfg, std::move(init)), out_(std::move(out)) {
    // nop
  }

protected:
  void on_message(const envelope& msg) override {
    out_->push(msg);
  }
  void on_broadcast(const envelope& msg) override {
    out_->push(msg);
  }
  void on_multicast(const envelope& msg) override {
    out_->push(msg);
  }
  void on_emergency(const envelope& msg) override {
    out_->push(msg);
  }
  void on_event(const envelope& msg) override {
    out_->push(msg);
  }
  caf::expected<std::string> on_request(const envelope& req) override {
    out_->push(req);
    return "re:" + req.payload;
  }

private:
  envelope_sink out_;
};

inline envelope_sink make_sink() {
  return std::make_shared<sink<envelope>>();
}

} // namespace nova::testing
