// The resolver: getaddrinfo with a deadline on threads of its own; a stuck
// lookup is answered at its deadline and its thread abandoned, never waited
// for by the shutdown.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <future>
#include <memory>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caf/all.hpp"
#include "actors/resolver.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::actors::resolve_atom;
using weave::actors::resolve_deadline;
using weave::actors::resolved_address;
using weave::actors::resolver_stats;
using weave::actors::resolver_stats_atom;

extern char** environ;

namespace {

/// How late past its deadline an answer may come on a loaded 2-core machine
/// under a sanitizer.
constexpr auto lateness_bound = 3s;

/// A lookup deadline short enough to wait out in a test, long enough for an
/// idle resolver thread to take the lookup first on a loaded machine.
constexpr auto short_deadline = 1s;

/// The shutdown deadline of the runtimes below.
constexpr auto shutdown_deadline = 1s;
/// A deadline a shutdown must not wait out (a stuck lookup is not waited
/// for at all).
constexpr auto long_shutdown_deadline = 20s;

using addresses = std::vector<resolved_address>;

/// What a request came back with.
struct answer {
  addresses xs;
  caf::error err;
  std::chrono::milliseconds took{0};
};

answer ask(caf::scoped_actor& self, const weave::actors::resolver_actor& dns,
           std::string host, caf::timespan deadline, uint16_t port = 80) {
  answer a;
  auto start = std::chrono::steady_clock::now();
  self
    ->request(dns, caf::infinite, resolve_atom::value, std::move(host), port,
              deadline)
    .receive([&](addresses& xs) { a.xs = std::move(xs); },
             [&](caf::error& err) { a.err = std::move(err); });
  a.took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - start);
  return a;
}

resolver_stats stats(caf::scoped_actor& self,
                     const weave::actors::resolver_actor& dns) {
  resolver_stats s;
  self->request(dns, caf::infinite, resolver_stats_atom::value)
    .receive([&](resolver_stats& x) { s = x; }, [](caf::error&) {});
  return s;
}

/// A host the gated lookup answers at once (with EAI_NONAME).
constexpr const char* warm_up_host = "warm";

/// A lookup function that blocks until its gate opens, as getaddrinfo does
/// against a name server that never answers. The gate outlives the
/// runtime: stuck threads hold it.
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  std::atomic<size_t> inside{0};
  std::atomic<size_t> most_inside{0};
  std::atomic<size_t> calls{0};

  void release() {
    {
      std::unique_lock<std::mutex> guard{mtx};
      open = true;
    }
    cv.notify_all();
  }

  static weave::actors::lookup_function hook(std::shared_ptr<gate> g) {
    return [g](const char* host, const char*, const addrinfo*,
               addrinfo** res) {
      *res = nullptr;
      if (std::string{host}.rfind(warm_up_host, 0) == 0)
        return EAI_NONAME; // answers at once
      ++g->calls;
      weave::test::raise_max(g->most_inside, ++g->inside);
      {
        std::unique_lock<std::mutex> guard{g->mtx};
        g->cv.wait(guard, [&] { return g->open; });
      }
      --g->inside;
      *res = nullptr;
      return EAI_NONAME;
    };
  }
};

/// Starts a resolver thread and waits until it is idle, so that the next
/// lookup is taken at once (not after a thread start on a loaded machine).
void warm_up(caf::scoped_actor& self,
             const weave::actors::resolver_actor& dns) {
  auto a = ask(self, dns, warm_up_host, resolve_deadline(weave::test::patience));
  REQUIRE(weave::is(a.err, weave::errc::io_error));
}

weave::runtime_config quick_shutdown() {
  auto cfg = weave::test::io_config();
  cfg.set("weave.shutdown-deadline", caf::timespan{shutdown_deadline});
  return cfg;
}

bool is_loopback(const resolved_address& a) {
  return a.address == "127.0.0.1" || a.address == "::1";
}

} // namespace

TEST_CASE("resolve answers localhost with its loopback addresses") {
  weave::runtime rt{weave::test::io_config()};
  auto dns = weave::actors::spawn_resolver(rt);
  caf::scoped_actor self{rt.system()};
  auto a = ask(self, dns, "localhost", resolve_deadline(10s), 8080);
  INFO(weave::render(a.err));
  REQUIRE_FALSE(a.err);
  REQUIRE_FALSE(a.xs.empty());
  for (auto& x : a.xs) {
    CHECK(is_loopback(x));
    CHECK(x.port == 8080);
    CHECK((x.family == AF_INET || x.family == AF_INET6));
  }
  auto s = stats(self, dns);
  CHECK(s.resolved == 1);
  CHECK(s.threads == 1);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a host that cannot exist is an io_error naming getaddrinfo") {
  weave::runtime rt{weave::test::io_config()};
  auto dns = weave::actors::spawn_resolver(rt);
  caf::scoped_actor self{rt.system()};
  // An empty label: glibc refuses it without asking any name server.
  auto a = ask(self, dns, "bad..host", resolve_deadline(10s));
  REQUIRE(a.err);
  auto text = weave::render(a.err);
  INFO(text);
  CHECK(weave::is(a.err, weave::errc::io_error));
  CHECK(text.find("getaddrinfo 'bad..host': ") != std::string::npos);
  CHECK(text.find(::gai_strerror(EAI_NONAME)) != std::string::npos);
  CHECK(stats(self, dns).failed == 1);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a negative deadline or an empty host is invalid_argument") {
  weave::runtime rt{weave::test::io_config()};
  auto dns = weave::actors::spawn_resolver(rt);
  caf::scoped_actor self{rt.system()};
  auto a = ask(self, dns, "localhost", resolve_deadline(-1ms));
  CHECK(weave::is(a.err, weave::errc::invalid_argument));
  CHECK(weave::render(a.err).find("negative deadline") != std::string::npos);
  auto b = ask(self, dns, "", resolve_deadline(1s));
  CHECK(weave::is(b.err, weave::errc::invalid_argument));
  weave::actors::resolver_options none;
  none.threads = 0;
  CHECK_THROWS_AS(weave::actors::spawn_resolver(rt, none), weave::exception);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("an unbounded deadline (hours::max) resolves without overflow") {
  weave::runtime rt{weave::test::io_config()};
  auto dns = weave::actors::spawn_resolver(rt);
  caf::scoped_actor self{rt.system()};
  CHECK(resolve_deadline(std::chrono::hours::max()) == caf::timespan::max());
  auto a = ask(self, dns, "localhost",
               resolve_deadline(std::chrono::hours::max()));
  INFO(weave::render(a.err));
  CHECK_FALSE(a.err);
  CHECK_FALSE(a.xs.empty());
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a stuck lookup is answered with timeout at its deadline") {
  auto g = std::make_shared<gate>();
  {
    weave::runtime rt{quick_shutdown()};
    weave::actors::resolver_options opts;
    opts.threads = 1;
    opts.lookup = gate::hook(g);
    auto dns = weave::actors::spawn_resolver(rt, opts);
    caf::scoped_actor self{rt.system()};
    warm_up(self, dns);
    auto a = ask(self, dns, "stuck.test", resolve_deadline(short_deadline));
    auto text = weave::render(a.err);
    INFO(text);
    CHECK(weave::is(a.err, weave::errc::timeout));
    CHECK(text.find("getaddrinfo did not return") != std::string::npos);
    CHECK(a.took >= short_deadline);
    CHECK(a.took < short_deadline + lateness_bound);
    auto s = stats(self, dns);
    CHECK(s.abandoned == 1);
    CHECK(s.stuck == 1);
    CHECK(s.threads == 0);
    CHECK(s.timed_out == 1);
    CHECK(s.failed == 1); // the warm-up
    // The stuck thread ends by itself once the lookup returns.
    g->release();
    CHECK(weave::test::eventually([&] { return stats(self, dns).stuck == 0; }));
    CHECK(rt.slow_handlers() == 0);
  }
}

TEST_CASE("shutdown does not wait for a stuck lookup and counts its thread") {
  auto g = std::make_shared<gate>();
  weave::shutdown_report report;
  std::chrono::milliseconds took{0};
  std::promise<caf::error> unbounded;
  auto unbounded_answer = unbounded.get_future();
  {
    auto cfg = weave::test::io_config();
    cfg.set("weave.shutdown-deadline", caf::timespan{long_shutdown_deadline});
    weave::runtime rt{std::move(cfg)};
    weave::actors::resolver_options opts;
    opts.lookup = gate::hook(g);
    auto dns = weave::actors::spawn_resolver(rt, opts);
    {
      caf::scoped_actor self{rt.system()};
      warm_up(self, dns);
      // One abandoned at its deadline, one stuck without a deadline.
      auto a = ask(self, dns, "stuck.test", resolve_deadline(short_deadline));
      CHECK(weave::is(a.err, weave::errc::timeout));
    }
    rt.system().spawn([&unbounded, dns](caf::event_based_actor* a) {
      a->request(dns, caf::infinite, resolve_atom::value,
                 std::string{"forever.test"}, uint16_t{80},
                 resolve_deadline(std::chrono::hours::max()))
        .then([&unbounded](addresses&) { unbounded.set_value(caf::error{}); },
              [&unbounded](caf::error& e) { unbounded.set_value(e); });
    });
    REQUIRE(weave::test::eventually([&] { return g->inside == 2; }));
    CHECK(rt.slow_handlers() == 0);
    auto start = std::chrono::steady_clock::now();
    report = rt.shutdown();
    took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  }
  INFO(report.to_string());
  // Not waited for at all: well before the (long) deadline.
  CHECK(took < long_shutdown_deadline / 2);
  CHECK(report.threads_abandoned >= 2);
  REQUIRE(unbounded_answer.wait_for(weave::test::patience)
          == std::future_status::ready);
  CHECK(weave::is(unbounded_answer.get(), weave::errc::shut_down));
  // The stuck threads return after the runtime is gone: nothing breaks.
  g->release();
  CHECK(weave::test::eventually([&] { return g->inside == 0; }));
}

TEST_CASE("many lookups share the resolver's few threads") {
  constexpr size_t threads = 4;
  constexpr size_t requests = 50;
  auto g = std::make_shared<gate>();
  weave::runtime rt{weave::test::io_config()};
  weave::actors::resolver_options opts;
  opts.threads = threads;
  opts.lookup = gate::hook(g);
  auto dns = weave::actors::spawn_resolver(rt, opts);
  caf::scoped_actor self{rt.system()};
  for (size_t i = 0; i < requests; ++i)
    self->send(dns, resolve_atom::value, "host" + std::to_string(i),
               uint16_t{80}, resolve_deadline(1h));
  REQUIRE(weave::test::eventually([&] { return g->inside == threads; }));
  CHECK(stats(self, dns).queued == requests - threads);
  g->release();
  size_t failed = 0;
  for (size_t i = 0; i < requests; ++i)
    self->receive(
      [&](addresses&) {},
      [&](caf::error& err) {
        if (weave::is(err, weave::errc::io_error))
          ++failed;
      },
      caf::after(weave::test::patience) >> [] {});
  CHECK(failed == requests);
  CHECK(g->calls == requests);
  CHECK(g->most_inside == threads);
  CHECK(stats(self, dns).threads == threads);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("beyond max_stuck no thread starts and requests time out queued") {
  auto g = std::make_shared<gate>();
  {
    weave::runtime rt{quick_shutdown()};
    weave::actors::resolver_options opts;
    opts.threads = 1;
    opts.max_stuck = 1;
    opts.lookup = gate::hook(g);
    auto dns = weave::actors::spawn_resolver(rt, opts);
    caf::scoped_actor self{rt.system()};
    warm_up(self, dns);
    auto a = ask(self, dns, "a.test", resolve_deadline(short_deadline));
    CHECK(weave::is(a.err, weave::errc::timeout));
    // A replacement thread serves the next one; it gets stuck too.
    auto b = ask(self, dns, "b.test", resolve_deadline(short_deadline));
    CHECK(weave::is(b.err, weave::errc::timeout));
    CHECK(g->calls == 2);
    // Two stuck: the cap. The next request waits in the queue.
    auto c = ask(self, dns, "c.test", resolve_deadline(short_deadline));
    auto text = weave::render(c.err);
    INFO(text);
    CHECK(weave::is(c.err, weave::errc::timeout));
    CHECK(text.find("waiting for a free resolver thread (2 lookups stuck")
          != std::string::npos);
    CHECK(c.took < short_deadline + lateness_bound);
    auto s = stats(self, dns);
    CHECK(s.stuck == 2);
    CHECK(s.abandoned == 2);
    CHECK(s.queued == 0);
    CHECK(g->calls == 2);
    CHECK(rt.slow_handlers() == 0);
  }
  g->release();
}

TEST_CASE("a lookup against a silent name server fails at its deadline") {
  // The real getaddrinfo, in namespaces where the program may choose the
  // name server (see resolver_stuck_program.cpp).
  const char* program = "tests/resolver_stuck_program";
  int out_pipe[2];
  REQUIRE(::pipe(out_pipe) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  std::string arg0 = program;
  char* argv[] = {arg0.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, program, &fa, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{out_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, 30'000) <= 0)
      break;
    auto n = ::read(out_pipe[0], buf, sizeof(buf));
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(out_pipe[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    // No user namespaces here: the gated tests above cover the logic.
    MESSAGE("skipped: this machine cannot make the sandbox");
    return;
  }
  INFO(out);
  REQUIRE(WEXITSTATUS(status) == 0);
  auto value = [&](const std::string& key) {
    auto at = out.find(key + " ");
    REQUIRE(at != std::string::npos);
    auto end = out.find('\n', at);
    return out.substr(at + key.size() + 1, end - at - key.size() - 1);
  };
  CHECK(value("error").find("weave::timeout") != std::string::npos);
  CHECK(value("error").find("getaddrinfo did not return")
        != std::string::npos);
  auto answer_ms = std::stoll(value("timeout_ms"));
  CHECK(answer_ms >= 1000);
  CHECK(answer_ms < 1000 + 3000);
  CHECK(std::stoll(value("shutdown_ms")) < 1000 + 3000);
  CHECK(value("warm_up").find("resolved") == 0);
  CHECK(value("abandoned") == "1");
  CHECK(std::stoll(value("threads_abandoned")) >= 2);
  CHECK(value("slow_handlers") == "0");
  CHECK(std::stoll(value("queries")) >= 1); // the name server was asked
}

TEST_CASE("a resolver killed (exit_reason::kill, which skips its exit "
          "handler) answers its pending requests with shut_down") {
  auto g = std::make_shared<gate>();
  {
    weave::runtime rt{quick_shutdown()};
    weave::actors::resolver_options opts;
    opts.threads = 1;
    opts.lookup = gate::hook(g);
    auto dns = weave::actors::spawn_resolver(rt, opts);
    caf::scoped_actor self{rt.system()};
    warm_up(self, dns);
    auto pending = self->request(dns, caf::infinite, resolve_atom::value,
                                 std::string{"held.test"}, uint16_t{80},
                                 resolve_deadline(1h));
    REQUIRE(weave::test::eventually([&] { return g->calls.load() == 1; }));
    caf::anon_send_exit(dns, caf::exit_reason::kill);
    caf::error err;
    bool answered = false;
    pending.receive([&](addresses&) { answered = true; },
                    [&](caf::error& e) {
                      answered = true;
                      err = std::move(e);
                    });
    CHECK(answered);
    INFO(weave::render(err));
    CHECK(weave::is(err, weave::errc::shut_down));
    g->release();
  }
}
