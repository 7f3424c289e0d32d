#include "runtime/rpc_client.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <caf/make_message.hpp>

#include "messages/errc.hpp"

namespace nova {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using json = nlohmann::json;

/// A reply larger than this is refused rather than buffered.
constexpr size_t max_reply_body = 64 * 1024 * 1024;

/// Reply bodies quoted in errors are cut here.
constexpr size_t quoted_body = 200;

caf::error bad_url(const std::string& url, const std::string& why) {
  return make_error(errc::invalid_argument,
                    "invalid URL '" + url + "': " + why);
}

std::string quote(const std::string& body) {
  if (body.size() <= quoted_body)
    return body;
  return body.substr(0, quoted_body) + "...";
}

std::string lower(std::string x) {
  std::transform(x.begin(), x.end(), x.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return x;
}

} // namespace

caf::expected<http_endpoint> parse_http_url(const std::string& url) {
  std::string rest = url;
  if (auto scheme = url.find("://"); scheme != std::string::npos) {
    auto name = lower(url.substr(0, scheme));
    if (name != "http")
      return bad_url(url, "only http:// is supported"
                            + std::string{name == "https"
                                            ? " (put a TLS proxy in front "
                                              "of the node for https)"
                                            : ""});
    rest = url.substr(scheme + 3);
  }
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  auto path = slash == std::string::npos ? std::string{} : rest.substr(slash);
  if (authority.find('@') != std::string::npos)
    return bad_url(url, "credentials do not go in the URL (use the token)");
  if (path.find_first_of("?#") != std::string::npos)
    return bad_url(url, "no query or fragment");
  http_endpoint ep;
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos)
      return bad_url(url, "unterminated IPv6 address");
    ep.host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return bad_url(url, "expected ':' after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    ep.host = authority.substr(0, colon);
    if (colon != std::string::npos)
      port = authority.substr(colon + 1);
  }
  if (ep.host.empty())
    return bad_url(url, "no host");
  if (ep.host.find_first_of(" :/\\\t") != std::string::npos
      && authority.front() != '[')
    return bad_url(url, "invalid host '" + ep.host + "'");
  if (!port.empty() || authority.back() == ':') {
    bool digits = !port.empty() && port.size() <= 5
                  && std::all_of(port.begin(), port.end(), [](char c) {
                       return c >= '0' && c <= '9';
                     });
    auto n = digits ? std::stoul(port) : 0;
    if (n == 0 || n > 65535)
      return bad_url(url, "invalid port '" + port + "'");
    ep.port = static_cast<uint16_t>(n);
  }
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  auto ends_in_rpc = path.size() >= 4
                     && path.compare(path.size() - 4, 4, "/rpc") == 0;
  ep.path = ends_in_rpc ? path : path + "/rpc";
  return ep;
}

caf::error make_rpc_error(const std::string& url, rpc_error x) {
  auto code = errc::handler_failed;
  switch (x.code) {
    case -32700:
    case -32600:
    case -32602:
      code = errc::invalid_argument;
      break;
    case -32601:
      code = errc::unsupported;
      break;
    default:
      // -32603 names the runtime's error in data.reason ("request_timeout:
      // ..." or just the name); keep it when this build knows it.
      if (x.data.is_object() && x.data.contains("reason")
          && x.data["reason"].is_string()) {
        auto reason = x.data["reason"].get<std::string>();
        auto name = reason.substr(0, reason.find(':'));
        if (auto known = parse_errc(name); known != errc::unknown)
          code = known;
      }
  }
  auto text = url + ": JSON-RPC error " + std::to_string(x.code) + ": "
              + x.message;
  return caf::error{static_cast<uint8_t>(code), errc_category,
                    caf::make_message(std::move(text), x.code,
                                      std::move(x.message),
                                      x.data.is_null() ? std::string{}
                                                       : x.data.dump())};
}

std::optional<rpc_error> rpc_error_of(const caf::error& err) {
  if (!err || err.category() != errc_category)
    return std::nullopt;
  const auto& ctx = err.context();
  if (!ctx.match_elements<std::string, int64_t, std::string, std::string>())
    return std::nullopt;
  rpc_error x;
  x.code = ctx.get_as<int64_t>(1);
  x.message = ctx.get_as<std::string>(2);
  const auto& data = ctx.get_as<std::string>(3);
  if (!data.empty())
    x.data = json::parse(data, nullptr, false);
  return x;
}

std::string describe_rpc(const caf::error& err) {
  if (rpc_error_of(err))
    return std::string{to_string(code_of(err))} + ": "
           + err.context().get_as<std::string>(0);
  return describe(err);
}

// -- rpc_client ---------------------------------------------------------------

struct rpc_client::impl {
  rpc_target target;
  http_endpoint ep;
  asio::io_context ioc;
  tcp::resolver resolver{ioc};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;
  int64_t next_id = 1;

  impl(rpc_target t, http_endpoint e)
    : target(std::move(t)), ep(std::move(e)) {
    // nop
  }

  /// Runs the started operation until it completes or `deadline` passes; on
  /// timeout cancels it (its handler then sees operation_aborted).
  bool finish_by(steady::time_point deadline) {
    ioc.restart();
    ioc.run_until(deadline);
    if (ioc.stopped())
      return true;
    resolver.cancel();
    close();
    ioc.restart();
    ioc.run();
    return false;
  }

  void close() {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    connected = false;
  }

  caf::error timed_out() {
    return make_error(errc::request_timeout,
                      "no answer from " + target.url + " within "
                        + std::to_string(target.timeout.count()) + " ms");
  }

  caf::error unreachable(const beast::error_code& ec) {
    return make_error(errc::backend_unavailable,
                      "cannot reach " + target.url + ": " + ec.message()
                        + " (is `nova node --http` serving there? see "
                          "--url, env NOVA_HTTP_URL)");
  }

  caf::error connect(steady::time_point deadline) {
    beast::error_code ec;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(ep.host, std::to_string(ep.port),
                           [&](beast::error_code e,
                               tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                           });
    if (!finish_by(deadline))
      return timed_out();
    if (ec)
      return unreachable(ec);
    stream.async_connect(endpoints,
                         [&](beast::error_code e, const tcp::endpoint&) {
                           ec = e;
                         });
    if (!finish_by(deadline))
      return timed_out();
    if (ec)
      return unreachable(ec);
    connected = true;
    return caf::none;
  }

  /// One request-response exchange; `stale` tells that a reused connection
  /// was closed by the server before it answered (worth one retry).
  caf::expected<http::response<http::string_body>>
  exchange(const http::request<http::string_body>& req,
           steady::time_point deadline, bool& stale) {
    stale = false;
    beast::error_code ec;
    http::async_write(stream, req,
                      [&](beast::error_code e, size_t) { ec = e; });
    if (!finish_by(deadline))
      return timed_out();
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_reply_body);
    if (!ec) {
      http::async_read(stream, buffer, parser,
                       [&](beast::error_code e, size_t) { ec = e; });
      if (!finish_by(deadline))
        return timed_out();
    }
    if (ec) {
      close();
      stale = !parser.got_some()
              && (ec == http::error::end_of_stream
                  || ec == asio::error::connection_reset
                  || ec == asio::error::broken_pipe || ec == asio::error::eof);
      if (ec == http::error::body_limit)
        return make_error(errc::payload_too_large,
                          target.url + ": the reply is larger than "
                            + std::to_string(max_reply_body) + " bytes");
      return make_error(errc::backend_unavailable,
                        target.url + ": the connection failed: "
                          + ec.message());
    }
    auto res = parser.release();
    if (!res.keep_alive())
      close();
    return res;
  }

  caf::expected<json> interpret(const http::response<http::string_body>& res,
                                int64_t id) {
    auto status = res.result_int();
    auto status_text = "HTTP " + std::to_string(status) + " "
                       + std::string{res.reason()};
    if (status == 401)
      return make_error(errc::invalid_argument,
                        target.url + " answered " + status_text
                          + ": give the node's token (--token, env "
                            "NOVA_HTTP_TOKEN)");
    if (status == 204)
      return json{};
    auto body = json::parse(res.body(), nullptr, false);
    if (body.is_object() && body.contains("error")
        && body["error"].is_object()) {
      const auto& e = body["error"];
      rpc_error x;
      x.code = e.value("code", int64_t{0});
      x.message = e.contains("message") && e["message"].is_string()
                    ? e["message"].get<std::string>()
                    : std::string{};
      if (e.contains("data"))
        x.data = e["data"];
      return make_rpc_error(target.url, std::move(x));
    }
    if (status != 200)
      return make_error(errc::handler_failed,
                        target.url + " answered " + status_text
                          + (res.body().empty() ? ""
                                                : ": " + quote(res.body())));
    if (body.is_discarded())
      return make_error(errc::decode_failed,
                        target.url + ": the reply is not JSON: "
                          + quote(res.body()));
    if (!body.is_object() || !body.contains("result"))
      return make_error(errc::decode_failed,
                        target.url + ": the reply is not a JSON-RPC "
                                     "response: "
                          + quote(res.body()));
    if (body.contains("id") && body["id"] != json(id))
      return make_error(errc::decode_failed,
                        target.url + ": the reply answers id "
                          + body["id"].dump() + ", not " + std::to_string(id));
    return std::move(body["result"]);
  }

  caf::expected<json> call(const std::string& method, json params) {
    auto deadline = steady::now() + target.timeout;
    auto id = next_id++;
    json msg{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null())
      msg["params"] = std::move(params);
    http::request<http::string_body> req{http::verb::post, ep.path, 11};
    req.set(http::field::host, ep.host + ":" + std::to_string(ep.port));
    req.set(http::field::user_agent, "nova-cli");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json");
    if (!target.token.empty())
      req.set(http::field::authorization, "Bearer " + target.token);
    req.keep_alive(true);
    req.body() = msg.dump();
    req.prepare_payload();
    for (int attempt = 0;; ++attempt) {
      auto reused = connected;
      if (!connected)
        if (auto err = connect(deadline))
          return err;
      bool stale = false;
      auto res = exchange(req, deadline, stale);
      if (res)
        return interpret(*res, id);
      if (!(stale && reused && attempt == 0))
        return res.error();
    }
  }
};

caf::expected<rpc_client> rpc_client::make(rpc_target target) {
  auto ep = parse_http_url(target.url);
  if (!ep)
    return ep.error();
  return rpc_client{std::make_unique<impl>(std::move(target), std::move(*ep))};
}

rpc_client::rpc_client(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

rpc_client::rpc_client(rpc_client&&) noexcept = default;

rpc_client& rpc_client::operator=(rpc_client&&) noexcept = default;

rpc_client::~rpc_client() = default;

caf::expected<json> rpc_client::call(const std::string& method,
                                     json params) {
  return impl_->call(method, std::move(params));
}

const rpc_target& rpc_client::target() const noexcept {
  return impl_->target;
}

caf::expected<json> rpc_call(const rpc_target& t, const std::string& method,
                             json params) {
  auto client = rpc_client::make(t);
  if (!client)
    return client.error();
  return client->call(method, std::move(params));
}

} // namespace nova
