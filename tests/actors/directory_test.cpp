#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/directory.hpp"
#include "messages/errc.hpp"

using namespace nova;

namespace {

// Owns an actor system, the trivial actors a test spawns, and the directory
// under test. The directory goes before the system; the actors are told to
// exit so the system can shut down.
struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> spawned;
  directory dir;

  ~fixture() {
    for (auto& h : spawned)
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }

  caf::actor spawn() {
    auto h = sys.spawn([]() -> caf::behavior { return {[](int) {}}; });
    spawned.push_back(h);
    return h;
  }

  // Reserves and binds `id` to a new actor.
  caf::actor add(const std::string& id,
                 std::vector<std::string> capabilities = {},
                 const std::vector<std::string>& groups = {}) {
    auto err = dir.reserve(id, std::move(capabilities), groups);
    if (err)
      FAIL("reserve failed: " << describe(err));
    auto h = spawn();
    dir.bind(id, h);
    return h;
  }
};

bool same_actors(std::vector<caf::actor> xs, std::vector<caf::actor> ys) {
  auto less = [](const caf::actor& x, const caf::actor& y) {
    return x.id() < y.id();
  };
  std::sort(xs.begin(), xs.end(), less);
  std::sort(ys.begin(), ys.end(), less);
  return xs == ys;
}

} // namespace

TEST_CASE_METHOD(fixture, "a reserved id is taken but not reachable until "
                          "bound",
                 "[directory]") {
  REQUIRE_FALSE(dir.reserve("alpha", {"chat"}, {}));
  CHECK(dir.contains("alpha"));
  CHECK(dir.size() == 1);
  CHECK(dir.ids() == std::vector<std::string>{"alpha"});
  CHECK_FALSE(dir.find("alpha"));
  CHECK(dir.all().empty());
  auto h = spawn();
  dir.bind("alpha", h);
  CHECK(dir.find("alpha") == h);
  CHECK(same_actors(dir.all(), {h}));
}

TEST_CASE_METHOD(fixture, "reserving a taken id is duplicate_id",
                 "[directory]") {
  REQUIRE_FALSE(dir.reserve("alpha", {}, {}));
  auto err = dir.reserve("alpha", {}, {});
  CHECK(is(err, errc::duplicate_id));
  CHECK(describe(err).find("alpha") != std::string::npos);
  auto h = spawn();
  dir.bind("alpha", h);
  CHECK(is(dir.reserve("alpha", {"other"}, {"g"}), errc::duplicate_id));
  CHECK(dir.find("alpha") == h);
  CHECK(dir.size() == 1);
  CHECK(dir.with_capability("other").empty());
  CHECK(dir.group_members("g").empty());
}

TEST_CASE_METHOD(fixture, "find of an unknown id is an invalid handle",
                 "[directory]") {
  CHECK_FALSE(dir.find("nobody"));
  CHECK_FALSE(dir.contains("nobody"));
  CHECK(dir.size() == 0);
}

TEST_CASE_METHOD(fixture, "binding an id that was never reserved does "
                          "nothing",
                 "[directory]") {
  auto v = dir.version();
  dir.bind("stranger", spawn());
  CHECK_FALSE(dir.contains("stranger"));
  CHECK_FALSE(dir.find("stranger"));
  CHECK(dir.version() == v);
}

TEST_CASE_METHOD(fixture, "release drops an unbound reservation and frees "
                          "the id",
                 "[directory]") {
  REQUIRE_FALSE(dir.reserve("alpha", {"chat"}, {"ops"}));
  dir.release("alpha");
  CHECK_FALSE(dir.contains("alpha"));
  CHECK(dir.size() == 0);
  CHECK(dir.with_capability("chat").empty());
  CHECK_FALSE(dir.reserve("alpha", {}, {}));
}

TEST_CASE_METHOD(fixture, "release leaves a bound Nova alone", "[directory]") {
  auto h = add("alpha");
  dir.release("alpha");
  CHECK(dir.find("alpha") == h);
  dir.release("nobody");
  CHECK(dir.size() == 1);
}

TEST_CASE_METHOD(fixture, "remove takes a Nova out only with its own handle",
                 "[directory]") {
  auto h = add("alpha");
  auto other = spawn();
  dir.remove("alpha", other.address());
  CHECK(dir.find("alpha") == h);
  dir.remove("alpha", caf::actor_addr{});
  CHECK(dir.find("alpha") == h);
  dir.remove("alpha", h.address());
  CHECK_FALSE(dir.contains("alpha"));
  CHECK_FALSE(dir.find("alpha"));
  CHECK(dir.all().empty());
  dir.remove("alpha", h.address()); // already gone: no effect
  CHECK(dir.size() == 0);
}

TEST_CASE_METHOD(fixture, "removing an old Nova keeps a newer one that "
                          "reused its id",
                 "[directory]") {
  auto old = add("alpha");
  dir.remove("alpha", old.address());
  auto fresh = add("alpha");
  dir.remove("alpha", old.address());
  CHECK(dir.find("alpha") == fresh);
}

TEST_CASE_METHOD(fixture, "version changes on bind and remove", "[directory]") {
  auto v0 = dir.version();
  REQUIRE_FALSE(dir.reserve("alpha", {}, {}));
  auto h = spawn();
  dir.bind("alpha", h);
  auto v1 = dir.version();
  CHECK(v1 != v0);
  dir.remove("alpha", spawn().address()); // not its handle: nothing happens
  CHECK(dir.version() == v1);
  dir.remove("alpha", h.address());
  auto v2 = dir.version();
  CHECK(v2 != v1);
  CHECK(v2 != v0);
  dir.remove("alpha", h.address());
  CHECK(dir.version() == v2);
}

TEST_CASE_METHOD(fixture, "ids are listed in order and all lists bound "
                          "handles",
                 "[directory]") {
  auto c = add("charlie");
  auto a = add("alpha");
  REQUIRE_FALSE(dir.reserve("bravo", {}, {}));
  CHECK(dir.ids() == std::vector<std::string>{"alpha", "bravo", "charlie"});
  CHECK(dir.size() == 3);
  CHECK(same_actors(dir.all(), {a, c}));
}

TEST_CASE_METHOD(fixture, "with_capability lists the ids that declared it",
                 "[directory]") {
  add("b", {"chat", "search"});
  add("a", {"chat"});
  add("c", {"math"});
  CHECK(dir.with_capability("chat") == std::vector<std::string>{"a", "b"});
  CHECK(dir.with_capability("search") == std::vector<std::string>{"b"});
  CHECK(dir.with_capability("flying").empty());
  CHECK(dir.with_capability("cha").empty());
}

// -- groups -------------------------------------------------------------------

TEST_CASE_METHOD(fixture, "groups from reserve count once the Nova is bound",
                 "[directory]") {
  REQUIRE_FALSE(dir.reserve("alpha", {}, {"ops", "eng"}));
  CHECK(dir.group_members("ops").empty());
  auto h = spawn();
  dir.bind("alpha", h);
  auto b = add("bravo", {}, {"ops"});
  CHECK(same_actors(dir.group_members("ops"), {h, b}));
  CHECK(same_actors(dir.group_members("eng"), {h}));
  CHECK(dir.group_members("sales").empty());
}

TEST_CASE_METHOD(fixture, "join and leave change group membership",
                 "[directory]") {
  auto a = add("alpha");
  auto b = add("bravo");
  dir.join("alpha", "ops");
  dir.join("bravo", "ops");
  dir.join("alpha", "ops"); // twice: still once
  CHECK(dir.group_members("ops").size() == 2);
  CHECK(same_actors(dir.group_members("ops"), {a, b}));
  dir.leave("alpha", "ops");
  CHECK(same_actors(dir.group_members("ops"), {b}));
  dir.leave("bravo", "ops");
  CHECK(dir.group_members("ops").empty());
  dir.leave("bravo", "ops");
  dir.leave("nobody", "ops");
  dir.join("nobody", "ops");
  CHECK(dir.group_members("ops").empty());
}

TEST_CASE_METHOD(fixture, "a removed Nova leaves its groups", "[directory]") {
  auto a = add("alpha", {}, {"ops"});
  auto b = add("bravo", {}, {"ops"});
  dir.join("alpha", "eng");
  dir.remove("alpha", a.address());
  CHECK(same_actors(dir.group_members("ops"), {b}));
  CHECK(dir.group_members("eng").empty());
  // A new Nova with the same id does not inherit the old groups.
  auto a2 = add("alpha");
  CHECK(same_actors(dir.group_members("ops"), {b}));
  CHECK(dir.group_members("eng").empty());
}

// -- subscriptions ------------------------------------------------------------

TEST_CASE_METHOD(fixture, "subscribers lists each Nova once even when "
                          "several of its patterns match",
                 "[directory]") {
  auto a = add("alpha");
  auto b = add("bravo");
  auto c = add("charlie");
  dir.subscribe("alpha", "orders.created");
  dir.subscribe("alpha", "orders.*");
  dir.subscribe("alpha", "orders.>");
  dir.subscribe("alpha", "*.created");
  dir.subscribe("bravo", "*.created");
  dir.subscribe("charlie", "billing.>");
  auto subs = dir.subscribers("orders.created");
  CHECK(subs.size() == 2);
  CHECK(same_actors(subs, {a, b}));
  CHECK(same_actors(dir.subscribers("orders.deleted"), {a}));
  CHECK(same_actors(dir.subscribers("orders.created.eu"), {a}));
  CHECK(same_actors(dir.subscribers("billing.paid.eu"), {c}));
  CHECK(same_actors(dir.subscribers("billing.created"), {a, b, c}));
  CHECK(dir.subscribers("shipping.sent").empty());
  CHECK(dir.subscribers("orders").empty());
  CHECK(dir.subscribers("billing").empty());
}

TEST_CASE_METHOD(fixture, "subscribing the same pattern twice still yields "
                          "the Nova once",
                 "[directory]") {
  auto a = add("alpha");
  dir.subscribe("alpha", "orders.*");
  dir.subscribe("alpha", "orders.*");
  CHECK(dir.subscribers("orders.created").size() == 1);
  dir.unsubscribe("alpha", "orders.*");
  CHECK(dir.subscribers("orders.created").empty());
}

TEST_CASE_METHOD(fixture, "unsubscribe removes one pattern and keeps the "
                          "others",
                 "[directory]") {
  auto a = add("alpha");
  auto b = add("bravo");
  dir.subscribe("alpha", "orders.*");
  dir.subscribe("alpha", "orders.>");
  dir.subscribe("bravo", "orders.*");
  dir.unsubscribe("alpha", "orders.*");
  CHECK(same_actors(dir.subscribers("orders.created"), {a, b}));
  CHECK(same_actors(dir.subscribers("orders.created.eu"), {a}));
  dir.unsubscribe("alpha", "orders.>");
  CHECK(same_actors(dir.subscribers("orders.created"), {b}));
  dir.unsubscribe("alpha", "never.subscribed");
  dir.unsubscribe("nobody", "orders.*");
  CHECK(same_actors(dir.subscribers("orders.created"), {b}));
}

TEST_CASE_METHOD(fixture, "subscriptions of unknown, unbound and removed "
                          "Novas yield nobody",
                 "[directory]") {
  dir.subscribe("nobody", "orders.*");
  CHECK(dir.subscribers("orders.created").empty());
  REQUIRE_FALSE(dir.reserve("pending", {}, {}));
  dir.subscribe("pending", "orders.*");
  CHECK(dir.subscribers("orders.created").empty());
  auto h = spawn();
  dir.bind("pending", h);
  CHECK(same_actors(dir.subscribers("orders.created"), {h}));
  dir.remove("pending", h.address());
  CHECK(dir.subscribers("orders.created").empty());
  // A new Nova with the same id does not inherit the old subscriptions.
  add("pending");
  CHECK(dir.subscribers("orders.created").empty());
}

TEST_CASE_METHOD(fixture, "the directory stays consistent under concurrent "
                          "writers and readers",
                 "[directory]") {
  constexpr int writers = 3;
  constexpr int rounds = 300;
  std::vector<caf::actor> handles;
  for (int w = 0; w < writers; ++w)
    handles.push_back(spawn());
  auto v0 = dir.version();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([this, w, &handles] {
      for (int i = 0; i < rounds; ++i) {
        auto id = "w" + std::to_string(w) + "-" + std::to_string(i);
        if (dir.reserve(id, {"cap"}, {"grp"}))
          return;
        dir.bind(id, handles[w]);
        dir.subscribe(id, "topic.*");
        dir.remove(id, handles[w].address());
      }
    });
  std::atomic<bool> stop{false};
  std::atomic<int> invalid_handles{0};
  // Catch assertions are not thread safe: the reader only counts.
  std::thread reader{[this, &stop, &invalid_handles] {
    while (!stop) {
      for (const auto& h : dir.subscribers("topic.x"))
        if (!h)
          ++invalid_handles;
      for (const auto& h : dir.group_members("grp"))
        if (!h)
          ++invalid_handles;
      static_cast<void>(dir.with_capability("cap"));
      static_cast<void>(dir.ids());
    }
  }};
  for (auto& t : threads)
    t.join();
  stop = true;
  reader.join();
  CHECK(invalid_handles == 0);
  CHECK(dir.size() == 0);
  CHECK(dir.subscribers("topic.x").empty());
  CHECK(dir.group_members("grp").empty());
  CHECK(dir.version() - v0 == uint64_t{2} * writers * rounds);
}
