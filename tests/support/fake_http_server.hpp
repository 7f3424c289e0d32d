#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace nova::testing {

/// A scripted HTTP server on a loopback port for the failure paths of HTTP
/// clients: it answers each request with what the handler returns, one
/// connection at a time, on its own thread.
class fake_http_server {
public:
  using request = boost::beast::http::request<
    boost::beast::http::string_body>;
  using response = boost::beast::http::response<
    boost::beast::http::string_body>;
  using handler = std::function<response(const request&)>;

  /// How the server treats a connection after a request.
  enum class mode {
    /// Answer and keep the connection for the next request.
    keep_alive,
    /// Answer, then close the connection without saying so (an idle
    /// timeout on the server).
    close_after_reply,
    /// Read the request and never answer.
    silent,
  };

  explicit fake_http_server(handler h, mode m = mode::keep_alive)
    : handler_(std::move(h)), mode_(m), acceptor_(ioc_) {
    using boost::asio::ip::tcp;
    tcp::endpoint ep{boost::asio::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread{[this] { serve(); }};
  }

  fake_http_server(const fake_http_server&) = delete;
  fake_http_server& operator=(const fake_http_server&) = delete;

  ~fake_http_server() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_all();
    // Wakes a blocking accept.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s{ioc};
    boost::system::error_code ignored;
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ignored);
    thread_.join();
  }

  [[nodiscard]] uint16_t port() const noexcept {
    return port_;
  }

  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

  /// Every request received so far.
  [[nodiscard]] std::vector<request> requests() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return requests_;
  }

  [[nodiscard]] size_t connections() const noexcept {
    return connections_;
  }

  /// A response with `status` and a JSON (or any) body.
  static response reply(unsigned status, std::string body,
                        const char* content_type = "application/json") {
    response res{static_cast<boost::beast::http::status>(status), 11};
    res.set(boost::beast::http::field::content_type, content_type);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

private:
  bool stopped() {
    std::lock_guard<std::mutex> guard{mtx_};
    return stop_;
  }

  void serve() {
    namespace http = boost::beast::http;
    while (!stopped()) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket sock{ioc_};
      acceptor_.accept(sock, ec);
      if (ec || stopped())
        return;
      ++connections_;
      boost::beast::flat_buffer buf;
      for (;;) {
        request req;
        http::read(sock, buf, req, ec);
        if (ec)
          break;
        {
          std::lock_guard<std::mutex> guard{mtx_};
          requests_.push_back(req);
        }
        if (mode_ == mode::silent) {
          std::unique_lock<std::mutex> guard{mtx_};
          cv_.wait(guard, [this] { return stop_; });
          return;
        }
        auto res = handler_(req);
        res.keep_alive(true);
        http::write(sock, res, ec);
        if (ec || mode_ == mode::close_after_reply)
          break;
      }
      sock.close(ec);
    }
  }

  handler handler_;
  mode mode_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<request> requests_;
  std::atomic<size_t> connections_{0};
};

} // namespace nova::testing
