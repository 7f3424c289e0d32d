#include "runtime/bench_support.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "messages/errc.hpp"

namespace nova {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

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
  char log_tmpl[] = "/tmp/nova-bench-redis-log-XXXXXX";
  log_ = ::mkostemp(log_tmpl, O_CLOEXEC);
  if (log_ < 0)
    throw std::runtime_error("cannot create a log file for redis-server");
  // Unlinked at once: read through the descriptor, nothing left behind.
  ::unlink(log_tmpl);
  std::vector<std::string> argv{path,     "--port",       std::to_string(port_),
                                "--bind", "127.0.0.1",    "--save",
                                "",       "--appendonly", "no",
                                "--dir",  dir_,           "--daemonize",
                                "no"};
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(log_, 1);
    ::dup2(log_, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(devnull);
  if (pid_ < 0)
    throw std::runtime_error("cannot fork for redis-server");
}

redis_child::~redis_child() {
  if (pid_ > 0 && !exited()) {
    ::kill(pid_, SIGTERM);
    auto deadline = steady::now() + 2s;
    while (!exited() && steady::now() < deadline)
      std::this_thread::sleep_for(5ms);
    if (!exited()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  if (log_ >= 0)
    ::close(log_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool redis_child::exited() {
  if (gone_)
    return true;
  int status = 0;
  gone_ = ::waitpid(pid_, &status, WNOHANG) == pid_;
  return gone_;
}

std::string redis_child::output() const {
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::pread(log_, buf, sizeof(buf), static_cast<off_t>(out.size()));
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out.size() <= 2000 ? out : out.substr(out.size() - 2000);
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
