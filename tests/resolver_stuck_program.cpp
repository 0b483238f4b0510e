// A program for resolver_test: resolves a name against a name server that
// never answers, with the real getaddrinfo.
//
// It first makes itself a sandbox where it may choose the name server
// (glibc reads /etc/resolv.conf, which a test cannot change): new user,
// mount and network namespaces (unprivileged, as `unshare -rmn` does), the
// loopback interface up, a UDP socket on 127.0.0.1:53 that reads queries
// and drops them, and a resolv.conf naming 127.0.0.1 bind-mounted over
// /etc/resolv.conf. Then a runtime resolves "stuck.weave.test" with a
// short deadline, and shuts down with a lookup still stuck.
//
// Output (stdout), one "key value" per line: `timeout_ms` (how long the
// answer took), `error` (its text), `shutdown_ms`, `abandoned`,
// `threads_abandoned`, `slow_handlers`, `queries`, `warm_up` (a first lookup
// of "localhost", from /etc/hosts). Exit code 0, or 77 when the
// sandbox cannot be made (no user namespaces here).
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "caf/all.hpp"
#include "actors/resolver.hpp"
#include "runtime/weave.hpp"

using namespace std::chrono_literals;

namespace {

/// The exit code for "cannot build the sandbox here".
constexpr int skip_code = 77;

/// How long each query waits for the silent name server, and how many
/// times glibc asks: far beyond any deadline below.
constexpr const char* resolv_conf = "nameserver 127.0.0.1\n"
                                    "options timeout:30 attempts:5\n";

/// The lookup's deadline, and the shutdown's.
constexpr auto lookup_deadline = 1s;
constexpr auto shutdown_deadline = 1s;

/// How long to wait for the second lookup's query to reach the name server.
constexpr auto query_patience = 10s;

bool write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, text.data(), text.size())
            == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

int skip(const char* what) {
  std::fprintf(stderr, "sandbox: %s: %s\n", what, std::strerror(errno));
  return skip_code;
}

/// Builds the sandbox; returns 0, or the exit code.
int make_sandbox(int& dns_fd) {
  auto uid = ::getuid();
  auto gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0)
    return skip("unshare");
  write_file("/proc/self/setgroups", "deny");
  if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n")
      || !write_file("/proc/self/gid_map",
                     "0 " + std::to_string(gid) + " 1\n"))
    return skip("uid_map");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return skip("mount --make-rprivate /");
  // Loopback up in the new network namespace.
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return skip("socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
    return skip("SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
    return skip("SIOCSIFFLAGS");
  ::close(s);
  // The silent name server.
  dns_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(53);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (dns_fd < 0
      || ::bind(dns_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return skip("bind 127.0.0.1:53");
  // Our resolv.conf over the system's.
  char tmpl[] = "/tmp/weave-resolv-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0)
    return skip("mkstemp");
  ::close(fd);
  if (!write_file(tmpl, resolv_conf))
    return skip("write resolv.conf");
  if (::mount(tmpl, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0)
    return skip("mount --bind resolv.conf");
  ::unlink(tmpl); // the mount keeps it
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  // Namespaces first: unshare(CLONE_NEWUSER) needs a single thread.
  int dns_fd = -1;
  if (int rc = make_sandbox(dns_fd); rc != 0)
    return rc;
  std::atomic<size_t> queries{0};
  std::thread server{[&] {
    char buf[512];
    // Reads and drops every query until the socket is shut down.
    while (::recv(dns_fd, buf, sizeof(buf), 0) >= 0)
      ++queries;
  }};
  int slow = -1;
  weave::shutdown_report report;
  long long answer_ms = -1;
  long long shutdown_ms = -1;
  std::string error_text;
  std::string warm_up;
  uint64_t abandoned = 0;
  {
    weave::runtime_config cfg;
    cfg.set("weave.shutdown-deadline", caf::timespan{shutdown_deadline});
    weave::runtime rt{cfg};
    auto dns = weave::actors::spawn_resolver(rt);
    {
      caf::scoped_actor self{rt.system()};
      // "localhost" comes from /etc/hosts: a thread of the resolver is then
      // idle and takes the stuck lookup at once.
      self
        ->request(dns, caf::infinite, weave::actors::resolve_atom::value,
                  std::string{"localhost"}, uint16_t{80},
                  weave::actors::resolve_deadline(query_patience))
        .receive(
          [&](std::vector<weave::actors::resolved_address>& xs) {
            warm_up = "resolved " + std::to_string(xs.size());
          },
          [&](caf::error& err) { warm_up = weave::render(err); });
      auto start = std::chrono::steady_clock::now();
      self
        ->request(dns, caf::infinite, weave::actors::resolve_atom::value,
                  std::string{"stuck.weave.test"}, uint16_t{80},
                  weave::actors::resolve_deadline(lookup_deadline))
        .receive(
          [&](std::vector<weave::actors::resolved_address>&) {
            error_text = "resolved?";
          },
          [&](caf::error& err) { error_text = weave::render(err); });
      answer_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
      // A second lookup stays stuck (no deadline) while the runtime shuts
      // down: wait until the name server saw its queries too.
      auto seen = queries.load();
      self->send(dns, weave::actors::resolve_atom::value,
                 std::string{"stuck2.weave.test"}, uint16_t{80},
                 weave::actors::resolve_deadline(std::chrono::hours::max()));
      auto until = std::chrono::steady_clock::now() + query_patience;
      while (queries.load() == seen && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      self
        ->request(dns, caf::infinite,
                  weave::actors::resolver_stats_atom::value)
        .receive(
          [&](weave::actors::resolver_stats& s) { abandoned = s.abandoned; },
          [&](caf::error&) {});
    }
    slow = static_cast<int>(rt.slow_handlers());
    auto start = std::chrono::steady_clock::now();
    report = rt.shutdown();
    shutdown_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  }
  std::printf("timeout_ms %lld\nerror %s\nshutdown_ms %lld\nabandoned %llu\n"
              "threads_abandoned %zu\nslow_handlers %d\nqueries %zu\n"
              "warm_up %s\n",
              answer_ms, error_text.c_str(), shutdown_ms,
              static_cast<unsigned long long>(abandoned),
              report.threads_abandoned, slow, queries.load(),
              warm_up.c_str());
  std::fflush(stdout);
  // The stuck threads are still inside getaddrinfo: leave without running
  // static destructors under them.
  server.detach();
  std::_Exit(0);
  (void) argc;
  (void) argv;
}
