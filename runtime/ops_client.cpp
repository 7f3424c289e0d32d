#include "runtime/ops_client.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

#include "messages/errc.hpp"
#include "messages/ids.hpp"
#include "messages/types.hpp"
#include "runtime/cli_command.hpp"
#include "runtime/client.hpp"

namespace nova {

namespace {

using json = nlohmann::json;

/// Cells of the human tables are cut here.
constexpr size_t max_cell = 60;

/// Reports a failed call: a JSON-RPC error as "<code> <message>" and its
/// data on the next line, anything else (unreachable, timeout, 401) as its
/// message.
int report(cli_command& cmd, const caf::error& err) {
  if (auto rpc = rpc_error_of(err)) {
    cmd.failure(std::to_string(rpc->code) + " " + rpc->message);
    if (!rpc->data.is_null())
      cmd.err() << "data: " << rpc->data.dump() << '\n';
    return client_exit::failure;
  }
  return cmd.failure(reason(err));
}

/// A connected client, or the exit code after a bad `--url`.
caf::expected<rpc_client> make_client(cli_command& cmd,
                                      const ops_options& opts) {
  auto client = rpc_client::make(opts.target);
  if (!client)
    cmd.usage("--url: " + reason(client.error()));
  return client;
}

/// Calls `method` and prints the result with `print` (or as one JSON line
/// with `--json`).
template <class Print>
int call_and_print(const char* name, const ops_options& opts,
                   const std::string& method, json params, std::ostream& out,
                   std::ostream& err, Print print) {
  cli_command cmd{name, out, err};
  auto client = make_client(cmd, opts);
  if (!client)
    return client_exit::usage;
  auto result = client->call(method, std::move(params));
  if (!result)
    return report(cmd, result.error());
  if (opts.json)
    out << result->dump() << '\n';
  else
    print(*result, out);
  return client_exit::ok;
}

std::string cell(const json& x) {
  std::string s;
  if (x.is_null())
    s = "-";
  else if (x.is_string())
    s = x.get<std::string>();
  else if (x.is_array()) {
    for (const auto& item : x) {
      if (!s.empty())
        s += ',';
      s += item.is_string() ? item.get<std::string>() : item.dump();
    }
    if (s.empty())
      s = "-";
  } else
    s = x.dump();
  if (s.empty())
    s = "-";
  if (s.size() > max_cell)
    s = s.substr(0, max_cell - 3) + "...";
  return s;
}

/// The first of `keys` that `obj` has, else null.
json field(const json& obj, std::initializer_list<const char*> keys) {
  if (obj.is_object())
    for (const auto* key : keys)
      if (auto i = obj.find(key); i != obj.end())
        return *i;
  return nullptr;
}

/// Left-aligned columns separated by two spaces.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& h : header)
    width.push_back(h.size());
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size())
        s += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    out << s << '\n';
  };
  line(header);
  for (const auto& row : rows)
    line(row);
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

/// `last_seen` as an age: unix ms (or seconds) as a number; anything else
/// is shown as it is.
std::string age_cell(const json& x) {
  if (!x.is_number())
    return cell(x);
  auto t = x.get<int64_t>();
  // Seconds would be before 1973 as milliseconds.
  if (t > 0 && t < 100'000'000'000)
    t *= 1000;
  return format_age(t, now_ms());
}

const json& list_of(const json& result, const char* key) {
  static const json empty = json::array();
  auto i = result.find(key);
  return i != result.end() && i->is_array() ? *i : empty;
}

} // namespace

std::string format_age(int64_t unix_ms, int64_t now) {
  if (unix_ms <= 0)
    return "-";
  if (unix_ms > now)
    return "now";
  auto s = (now - unix_ms) / 1000;
  if (s < 60)
    return std::to_string(s) + "s ago";
  if (s < 3600)
    return std::to_string(s / 60) + "m ago";
  if (s < 86400)
    return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

int ops_rpc(const ops_options& opts, const std::string& method,
            const std::string& params, std::ostream& out, std::ostream& err) {
  cli_command cmd{"nova rpc", out, err};
  json p;
  if (!params.empty()) {
    p = json::parse(params, nullptr, false);
    if (p.is_discarded())
      return cmd.usage("PARAMS is not valid JSON: " + params);
    if (!p.is_object() && !p.is_array())
      return cmd.usage("PARAMS must be a JSON object (by name) or array, not "
                       + params);
  }
  auto client = make_client(cmd, opts);
  if (!client)
    return client_exit::usage;
  auto result = client->call(method, std::move(p));
  if (!result)
    return report(cmd, result.error());
  out << (opts.json ? result->dump() : result->dump(2)) << '\n';
  return client_exit::ok;
}

int ops_presence(const ops_options& opts, const presence_filter& filter,
                 std::ostream& out, std::ostream& err) {
  auto params = json::object();
  if (!filter.capability.empty())
    params["capability"] = filter.capability;
  if (!filter.status.empty())
    params["status"] = filter.status;
  return call_and_print(
    "nova presence", opts, "presence.list", std::move(params), out, err,
    [](const json& result, std::ostream& os) {
      const auto& novas = list_of(result, "novas");
      if (novas.empty()) {
        os << "no Novas\n";
        return;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& x : novas)
        rows.push_back({cell(field(x, {"nova_id", "id"})),
                        cell(field(x, {"node_id", "node"})),
                        cell(field(x, {"status"})),
                        cell(field(x, {"capabilities"})),
                        age_cell(field(x, {"last_seen"}))});
      print_table(os, {"ID", "NODE", "STATUS", "CAPABILITIES", "LAST SEEN"},
                  rows);
    });
}

int ops_tasks_enqueue(const ops_options& opts, const enqueue_options& task,
                      std::ostream& out, std::ostream& err) {
  cli_command cmd{"nova tasks enqueue", out, err};
  if (task.type.empty())
    return cmd.usage("TYPE must not be empty");
  if (!parse_priority(task.priority))
    return cmd.usage("--priority '" + task.priority
                     + "' is not one of low|normal|high|urgent");
  if (!task.session.empty())
    if (auto e = check_id(task.session, "--session"))
      return cmd.usage(reason(e));
  if (task.count == 0)
    return cmd.usage("--count must be at least 1");
  json params{{"type", task.type}, {"priority", task.priority}};
  if (task.payload_json) {
    auto payload = json::parse(task.payload, nullptr, false);
    if (payload.is_discarded())
      return cmd.usage("--payload-json: PAYLOAD is not valid JSON: "
                       + task.payload);
    params["payload"] = std::move(payload);
  } else {
    params["payload"] = task.payload;
  }
  if (!task.session.empty())
    params["session"] = task.session;
  auto client = make_client(cmd, opts);
  if (!client)
    return client_exit::usage;
  auto show_progress = task.count >= task.progress_from;
  auto step = std::max<size_t>(1, (task.count + 9) / 10);
  std::vector<json> ids;
  json last;
  for (size_t i = 1; i <= task.count; ++i) {
    auto result = client->call("tasks.enqueue", params);
    if (!result) {
      report(cmd, result.error());
      if (i > 1)
        err << "nova tasks enqueue: enqueued " << i - 1 << " of "
            << task.count << " before the failure\n";
      return client_exit::failure;
    }
    ids.push_back(field(*result, {"task_id"}));
    last = std::move(*result);
    if (show_progress && (i % step == 0 || i == task.count))
      err << "nova tasks enqueue: " << i << '/' << task.count << " ("
          << i * 100 / task.count << "%)\n";
  }
  if (task.count == 1) {
    out << (opts.json ? last.dump() : cell(ids.front())) << '\n';
    return client_exit::ok;
  }
  if (opts.json)
    out << json{{"task_ids", ids}, {"count", ids.size()}}.dump() << '\n';
  else
    out << "enqueued " << ids.size() << " tasks of type " << task.type
        << '\n';
  return client_exit::ok;
}

int ops_tasks_stats(const ops_options& opts, std::ostream& out,
                    std::ostream& err) {
  return call_and_print(
    "nova tasks stats", opts, "tasks.stats", json::object(), out, err,
    [](const json& result, std::ostream& os) {
      std::vector<std::vector<std::string>> rows;
      if (auto lanes = result.find("lanes");
          lanes != result.end() && lanes->is_object())
        for (const auto* lane : {"urgent", "high", "normal", "low"})
          rows.push_back({std::string{"queued "} + lane,
                          cell(field(*lanes, {lane}))});
      for (const auto& [key, value] : result.items()) {
        if (key == "lanes")
          continue;
        auto label = key;
        std::replace(label.begin(), label.end(), '_', ' ');
        rows.push_back({label, cell(value)});
      }
      print_table(os, {"WHAT", "COUNT"}, rows);
    });
}

int ops_tasks_dead(const ops_options& opts, size_t limit, std::ostream& out,
                   std::ostream& err) {
  return call_and_print(
    "nova tasks dead", opts, "tasks.dead.list", json{{"limit", limit}}, out,
    err, [](const json& result, std::ostream& os) {
      const auto& tasks = list_of(result, "tasks");
      if (tasks.empty()) {
        os << "no dead tasks\n";
        return;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& x : tasks)
        rows.push_back({cell(field(x, {"task_id", "id"})),
                        cell(field(x, {"type"})),
                        cell(field(x, {"attempts"})),
                        cell(field(x, {"last_error", "error"}))});
      print_table(os, {"TASK ID", "TYPE", "ATTEMPTS", "LAST ERROR"}, rows);
    });
}

int ops_tasks_redrive(const ops_options& opts,
                      const std::optional<std::string>& task_id,
                      std::ostream& out, std::ostream& err) {
  auto params = json::object();
  if (task_id)
    params["task_id"] = *task_id;
  return call_and_print("nova tasks redrive", opts, "tasks.dead.redrive",
                        std::move(params), out, err,
                        [](const json& result, std::ostream& os) {
                          os << "redrove " << cell(field(result, {"redriven"}))
                             << " dead task(s)\n";
                        });
}

} // namespace nova
