#include "runtime/bench_support.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include "messages/errc.hpp"

namespace nova {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

double process_cpu_ms() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e3
           + static_cast<double>(tv.tv_usec) / 1e3;
  };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

double process_cpu_ms(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat;
  std::getline(in, stat);
  // The command name (field 2) may hold spaces: fields count from the ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream rest{stat.substr(close + 1)};
  std::string field;
  double utime = 0;
  double stime = 0;
  // After ')': state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::strtod(field.c_str(), nullptr);
    else if (i == 15)
      stime = std::strtod(field.c_str(), nullptr);
  }
  auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return ticks > 0 ? (utime + stime) * 1e3 / ticks : 0;
}

std::optional<std::string> info_field(const std::string& info,
                                      const std::string& field) {
  auto tag = field + ":";
  for (auto pos = info.find(tag); pos != std::string::npos;
       pos = info.find(tag, pos + 1)) {
    if (pos != 0 && info[pos - 1] != '\n')
      continue;
    auto start = pos + tag.size();
    auto end = info.find_first_of("\r\n", start);
    return info.substr(start, end == std::string::npos ? end : end - start);
  }
  return std::nullopt;
}

server_sample sample_server(redis_pool& pool) {
  auto r = pool.pipeline({{"INFO", "cpu"}, {"INFO", "commandstats"}});
  if (!r)
    throw std::runtime_error("INFO: " + describe(r.error()));
  if (r->size() != 2 || (*r)[0].is_error() || (*r)[1].is_error())
    throw std::runtime_error("INFO failed");
  server_sample s;
  for (const char* f : {"used_cpu_sys", "used_cpu_user"}) {
    auto v = info_field((*r)[0].str, f);
    if (!v)
      throw std::runtime_error(std::string{"INFO cpu lacks "} + f);
    s.cpu_ms += std::stod(*v) * 1e3;
  }
  const auto& stats = (*r)[1].str;
  for (auto pos = stats.find("cmdstat_"); pos != std::string::npos;
       pos = stats.find("cmdstat_", pos + 1)) {
    auto colon = stats.find(':', pos);
    auto calls = stats.find("calls=", pos);
    if (colon == std::string::npos || calls == std::string::npos)
      break;
    if (stats.compare(pos, colon - pos, "cmdstat_info") == 0)
      continue;
    s.commands += std::stoll(stats.substr(calls + 6));
  }
  return s;
}

std::string find_server_binary(const std::string& flag, const char* env,
                               const char* name) {
  if (!flag.empty())
    return ::access(flag.c_str(), X_OK) == 0 ? flag : std::string{};
  if (const char* from_env = std::getenv(env); from_env && *from_env)
    return ::access(from_env, X_OK) == 0 ? std::string{from_env}
                                         : std::string{};
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
    auto path = std::string{dir} + "/" + name;
    if (::access(path.c_str(), X_OK) == 0)
      return path;
  }
  return {};
}

std::string require_server_binary(const std::string& flag, const char* env,
                                  const char* name) {
  auto path = find_server_binary(flag, env, name);
  if (path.empty())
    throw std::runtime_error(std::string{name} + " not found (--" + name
                             + ", $" + env
                             + ", /usr/bin, /usr/sbin, /usr/local/bin)");
  return path;
}

void serve_until_stdin_closes(std::chrono::seconds lifetime) {
  auto deadline = steady::now() + lifetime;
  char buf[256];
  while (steady::now() < deadline) {
    pollfd pfd{0, POLLIN, 0};
    auto r = ::poll(&pfd, 1, 1000);
    if (r < 0 && errno != EINTR)
      return;
    if (r > 0) {
      auto n = ::read(0, buf, sizeof(buf));
      if (n <= 0 && !(n < 0 && errno == EINTR))
        return;
    }
  }
}

uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("cannot pick a free port: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot pick a free port: bind() failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

redis_child::redis_child(const std::string& path)
  : port_(free_loopback_port()) {
  char tmpl[] = "/tmp/nova-bench-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    throw std::runtime_error("cannot create a directory for redis-server");
  dir_ = tmpl;
  proc_ = std::make_unique<child_process>(
    std::vector<std::string>{path, "--port", std::to_string(port_), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", dir_, "--daemonize", "no"},
    false);
}

redis_child::~redis_child() {
  // SIGTERM, then the child's own bounded wait and SIGKILL.
  proc_->signal(SIGTERM);
  proc_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void redis_child::wait_ready(std::chrono::milliseconds timeout) {
  redis_settings rs;
  rs.port = port_;
  rs.pool_size = 1;
  rs.connect_timeout = 500ms;
  auto deadline = steady::now() + timeout;
  while (!redis_connection::connect(rs)) {
    if (exited())
      throw std::runtime_error("redis-server exited:\n" + output());
    if (steady::now() >= deadline)
      throw std::runtime_error("redis-server not ready after "
                               + std::to_string(timeout.count()) + " ms:\n"
                               + output());
    std::this_thread::sleep_for(10ms);
  }
}

std::shared_ptr<redis_pool>
redis_child::pool(size_t size, std::chrono::milliseconds command_timeout) const {
  redis_settings rs;
  rs.port = port_;
  rs.pool_size = size;
  rs.connect_timeout = 500ms;
  rs.command_timeout = command_timeout;
  auto p = redis_pool::make(rs);
  if (!p)
    throw std::runtime_error("connecting to redis-server: "
                             + describe(p.error()));
  return std::make_shared<redis_pool>(std::move(*p));
}

} // namespace nova
