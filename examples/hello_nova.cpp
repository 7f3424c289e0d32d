// Shows the smallest useful Nova program: two Novas, a message, a request.
#include <iostream>

#include "runtime/node.hpp"

struct greeter : nova::agent {
  using agent::agent;
  caf::expected<std::string> on_request(const nova::envelope& req) override {
    return "hello, " + req.payload;
  }
  void on_message(const nova::envelope& msg) override {
    std::cout << id() << " got '" << msg.payload << "' from " << msg.from << "\n";
  }
};

int main() {
  nova::node node;                       // embedded: no servers needed
  node.spawn<greeter>("greeter", {{"greet"}, {"lobby"}});
  node.send("greeter", "hi there");      // fire and forget
  auto reply = node.request("greeter", "world", std::chrono::seconds(1));
  std::cout << (reply ? reply->payload : nova::describe(reply.error())) << "\n";
}
