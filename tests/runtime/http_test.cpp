// Unit tests of the HTTP surface's pieces that need no server.
#include <catch2/catch.hpp>

#include "runtime/config.hpp"
#include "runtime/ops.hpp"
#include "runtime/rpc.hpp"

using namespace nova;

TEST_CASE("JSON nesting is measured without parsing, strings skipped",
          "[http]") {
  CHECK(rpc_service::nesting_depth("1", 64) == 0);
  CHECK(rpc_service::nesting_depth(R"({"a":[1,{"b":[]}]})", 64) == 4);
  CHECK(rpc_service::nesting_depth(R"({"a":"[[[[{{{{"})", 64) == 1);
  CHECK(rpc_service::nesting_depth(R"({"a":"\"[[[["})", 64) == 1);
  auto deep = std::string(100'000, '[');
  CHECK(rpc_service::nesting_depth(deep, 64) == 65);
}

TEST_CASE("the error response has a null id and the code", "[http]") {
  auto r = nlohmann::json::parse(
    rpc_service::error_response(rpc_code::parse_error, "bad"));
  CHECK(r["jsonrpc"] == "2.0");
  CHECK(r["id"].is_null());
  CHECK(r["error"]["code"] == -32700);
  CHECK(r["error"]["message"] == "bad");
}

TEST_CASE("the HTTP address must be HOST:PORT and the HTTP limits positive", "[http]") {
  config cfg;
  cfg.http.address = "127.0.0.1:8080";
  CHECK_FALSE(cfg.validate());
  cfg.http.address = "[::1]:0";
  CHECK_FALSE(cfg.validate());
  for (auto bad : {"8080", "127.0.0.1", "127.0.0.1:", ":80", "host:port",
                   "127.0.0.1:70000"}) {
    cfg.http.address = bad;
    INFO(bad);
    CHECK(cfg.validate());
  }
  cfg.http.address = "127.0.0.1:0";
  cfg.http.rpc_max_batch = 0;
  CHECK(cfg.validate());
}

TEST_CASE("payloads come back as JSON when they are JSON, else as text",
          "[http]") {
  CHECK(payload_json(R"({"a":1})", "application/json")
        == nlohmann::json({{"a", 1}}));
  CHECK(payload_json(R"({"a":1})", "") == R"({"a":1})");
  CHECK(payload_json("not json", "application/json") == "not json");
  // Invalid UTF-8 never throws; it is replaced.
  CHECK(payload_json("\xff", "").is_string());
}
