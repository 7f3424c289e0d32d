// The envelope tap: what reaches an observer for each interest.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "actors/context.hpp"
#include "actors/tap.hpp"

using nova::envelope;
using nova::envelope_tap;
using nova::kind;

namespace {

class recording_tap : public envelope_tap {
public:
  void want(interest x) {
    interest_.store(x);
  }

  void observe(const envelope& env, bool inbound,
               std::string_view wire_subject) override {
    seen.push_back(env.payload + (inbound ? " in " : " out ")
                   + std::string{wire_subject});
  }

  std::vector<std::string> seen;
};

envelope of(kind k, std::string payload) {
  envelope env;
  env.kind = k;
  env.payload = std::move(payload);
  return env;
}

} // namespace

TEST_CASE("a tap is handed the kinds of envelopes it is interested in") {
  auto tap = std::make_shared<recording_tap>();
  nova::runtime_context ctx;
  ctx.tap = tap;
  auto send_all = [&] {
    nova::tap_envelope(ctx, of(kind::direct, "d"));
    nova::tap_envelope(ctx, of(kind::event, "e"), "nova.events.a.b");
    nova::tap_envelope(ctx, of(kind::broadcast, "b"));
  };
  CHECK_FALSE(tap->active());
  send_all();
  CHECK(tap->seen.empty());
  // Events only: a direct send or broadcast skips the observer.
  tap->want(envelope_tap::interest::events);
  CHECK(tap->active());
  CHECK(tap->wants(kind::event));
  CHECK_FALSE(tap->wants(kind::direct));
  send_all();
  CHECK(tap->seen == std::vector<std::string>{"e in nova.events.a.b"});
  tap->seen.clear();
  tap->want(envelope_tap::interest::all);
  send_all();
  CHECK(tap->seen
        == std::vector<std::string>{"d out ", "e in nova.events.a.b",
                                    "b out "});
  // No tap at all: nothing to call.
  ctx.tap.reset();
  nova::tap_envelope(ctx, of(kind::direct, "d"));
  CHECK(tap->seen.size() == 3);
}
