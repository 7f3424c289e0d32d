#pragma once

// A small blocking HTTP and WebSocket client for the tests of the node's
// HTTP surface (Boost.Beast). Every read is bounded by a socket timeout.

#include <chrono>
#include <optional>
#include <string>

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

namespace nova::testing {

struct http_reply {
  int status = 0;
  std::string body;
  std::string content_type;

  [[nodiscard]] nlohmann::json json() const {
    return nlohmann::json::parse(body);
  }
};

/// Sets a receive and send timeout on a blocking socket.
inline void set_socket_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/// One request on a fresh connection.
inline http_reply http_call(uint16_t port, boost::beast::http::verb method,
                            const std::string& target,
                            const std::string& body = {},
                            const std::string& token = {},
                            std::chrono::milliseconds timeout
                            = std::chrono::seconds(20)) {
  namespace asio = boost::asio;
  namespace bhttp = boost::beast::http;
  asio::io_context io;
  asio::ip::tcp::socket sock{io};
  sock.connect({asio::ip::make_address("127.0.0.1"), port});
  set_socket_timeout(sock.native_handle(), timeout);
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  if (!token.empty())
    req.set(bhttp::field::authorization, "Bearer " + token);
  if (!body.empty() || method == bhttp::verb::post) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  bhttp::write(sock, req);
  boost::beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  bhttp::read(sock, buf, parser);
  auto& res = parser.get();
  return {static_cast<int>(res.result_int()), res.body(),
          std::string{res[bhttp::field::content_type]}};
}

inline http_reply http_get(uint16_t port, const std::string& target,
                           const std::string& token = {}) {
  return http_call(port, boost::beast::http::verb::get, target, {}, token);
}

inline http_reply http_post(uint16_t port, const std::string& target,
                            const std::string& body,
                            const std::string& token = {}) {
  return http_call(port, boost::beast::http::verb::post, target, body, token);
}

/// One JSON-RPC call: the whole response object.
inline nlohmann::json rpc(uint16_t port, const std::string& method,
                          nlohmann::json params = nullptr, int id = 1) {
  nlohmann::json req = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null())
    req["params"] = std::move(params);
  return http_post(port, "/rpc", req.dump()).json();
}

/// A WebSocket client of `/ws`.
class ws_client {
public:
  ws_client(uint16_t port, const std::string& target = "/ws",
            std::chrono::milliseconds timeout = std::chrono::seconds(10))
    : ws_(io_) {
    namespace asio = boost::asio;
    auto& sock = ws_.next_layer();
    sock.connect({asio::ip::make_address("127.0.0.1"), port});
    set_socket_timeout(sock.native_handle(), timeout);
    ws_.handshake("127.0.0.1", target);
  }

  void send(const nlohmann::json& j) {
    ws_.text(true);
    ws_.write(boost::asio::buffer(j.dump()));
  }

  /// The next frame as JSON, or none after the socket timeout.
  std::optional<nlohmann::json> next() {
    boost::beast::flat_buffer buf;
    boost::beast::error_code ec;
    ws_.read(buf, ec);
    if (ec)
      return std::nullopt;
    return nlohmann::json::parse(boost::beast::buffers_to_string(buf.data()));
  }

  /// Reads frames until one has `"type": type` (others skipped), at most
  /// `max_frames`.
  std::optional<nlohmann::json> next_of(const std::string& type,
                                        size_t max_frames = 100'000) {
    for (size_t i = 0; i < max_frames; ++i) {
      auto f = next();
      if (!f)
        return std::nullopt;
      if ((*f)["type"] == type)
        return f;
    }
    return std::nullopt;
  }

private:
  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
};

/// Port of a node's HTTP address (`host:port`).
inline uint16_t port_of(const std::string& address) {
  return static_cast<uint16_t>(
    std::stoul(address.substr(address.rfind(':') + 1)));
}

} // namespace nova::testing
