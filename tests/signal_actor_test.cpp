// The signal actor: signals as messages to subscribers, SIGUSR1 prints a
// thread dump, SIGINT/SIGTERM start the phased shutdown; handlers never run
// weave code and are put back at shutdown.
#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#include "caf/all.hpp"
#include "actors/signal_actor.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::actors::signal_atom;
using weave::actors::subscribe_atom;
using weave::actors::unsubscribe_atom;

extern char** environ;

namespace {

/// A probe signal number (no signal has number 0): sent to the actor, it
/// comes back to every subscriber once earlier messages were handled.
constexpr int probe = 0;

/// Subscribes `self` and waits until the actor has taken the subscription.
void subscribe(caf::scoped_actor& self,
               const weave::actors::signal_actor& sig) {
  self->send(sig, subscribe_atom::value, caf::actor_cast<caf::actor>(self));
  self->send(sig, signal_atom::value, probe);
  int got = -1;
  self->receive([&](signal_atom, int signo) { got = signo; },
                caf::after(weave::test::patience) >> [] {});
  REQUIRE(got == probe);
}

/// Waits for the next signal message; -1 if none came in time.
int next_signal(caf::scoped_actor& self) {
  int got = -1;
  self->receive([&](signal_atom, int signo) { got = signo; },
                caf::after(weave::test::patience) >> [] {});
  return got;
}

/// Collects what the actor prints.
struct sink {
  std::mutex mtx;
  std::vector<std::string> texts;
  weave::test::latch printed{1};

  std::function<void(const std::string&)> fn() {
    return [this](const std::string& text) {
      {
        std::unique_lock<std::mutex> guard{mtx};
        texts.push_back(text);
      }
      printed.count_down();
    };
  }

  std::string first() {
    std::unique_lock<std::mutex> guard{mtx};
    return texts.empty() ? std::string{} : texts.front();
  }
};

void record_usr2(int) {
  // nop: only its address is compared
}

} // namespace

TEST_CASE("SIGUSR1 prints a thread dump and reaches subscribers") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "sigpool"};
  weave::test::latch started{1};
  weave::test::latch release{1};
  auto fut = pool.submit(weave::labeled("stuck", [&] {
    started.count_down();
    release.wait();
  }));
  REQUIRE(started.wait());
  sink out;
  weave::actors::signal_options opts;
  opts.print = out.fn();
  auto sig = weave::actors::spawn_signal_actor(rt, opts);
  caf::scoped_actor self{rt.system()};
  subscribe(self, sig);
  REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
  CHECK(next_signal(self) == SIGUSR1);
  REQUIRE(out.printed.wait());
  auto text = out.first();
  INFO(text);
  CHECK(text.rfind("weave thread dump:", 0) == 0);
  CHECK(text.find("sigpool_0") != std::string::npos);
  CHECK(text.find("\"stuck\" (submit)") != std::string::npos);
  CHECK_FALSE(rt.shutting_down());
  release.count_down();
  fut.get();
}

TEST_CASE("SIGINT without the default action is only a message") {
  weave::runtime rt;
  weave::actors::signal_options opts;
  opts.signals = {SIGINT, SIGHUP};
  opts.shutdown_on_terminate = false;
  auto sig = weave::actors::spawn_signal_actor(rt, opts);
  caf::scoped_actor self{rt.system()};
  subscribe(self, sig);
  REQUIRE(::kill(::getpid(), SIGHUP) == 0);
  CHECK(next_signal(self) == SIGHUP);
  REQUIRE(::kill(::getpid(), SIGINT) == 0);
  CHECK(next_signal(self) == SIGINT);
  CHECK_FALSE(rt.shutting_down());
  // Unsubscribed: the next one is not delivered, the probe after it is.
  self->send(sig, unsubscribe_atom::value, caf::actor_cast<caf::actor>(self));
  subscribe(self, sig);
  self->send(sig, unsubscribe_atom::value, caf::actor_cast<caf::actor>(self));
  REQUIRE(::kill(::getpid(), SIGHUP) == 0);
  auto other = rt.system().spawn([](caf::event_based_actor*) {});
  (void) other;
  int got = -1;
  self->receive([&](signal_atom, int signo) { got = signo; },
                caf::after(std::chrono::milliseconds{200}) >> [] {});
  CHECK(got == -1);
}

TEST_CASE("a signal actor refuses signals it cannot deliver and a second "
          "installation") {
  weave::runtime rt;
  weave::actors::signal_options bad;
  bad.signals = {SIGKILL};
  try {
    weave::actors::spawn_signal_actor(rt, bad);
    FAIL("SIGKILL accepted");
  } catch (const weave::exception& e) {
    CHECK(weave::is(e.error(), weave::errc::invalid_argument));
    CHECK(weave::render(e.error()).find("signal 9") != std::string::npos);
  }
  auto sig = weave::actors::spawn_signal_actor(rt);
  try {
    weave::actors::spawn_signal_actor(rt);
    FAIL("second signal actor accepted");
  } catch (const weave::exception& e) {
    CHECK(weave::is(e.error(), weave::errc::invalid_argument));
    CHECK(weave::render(e.error()).find("installed already")
          != std::string::npos);
  }
}

TEST_CASE("the runtime's shutdown puts the previous handlers back") {
  struct sigaction mine;
  std::memset(&mine, 0, sizeof(mine));
  mine.sa_handler = &record_usr2;
  struct sigaction saved;
  REQUIRE(::sigaction(SIGUSR2, &mine, &saved) == 0);
  {
    weave::runtime rt;
    weave::actors::signal_options opts;
    opts.signals = {SIGUSR2};
    // No handle kept: the actor stays until the shutdown.
    weave::actors::spawn_signal_actor(rt, opts);
    struct sigaction now;
    REQUIRE(::sigaction(SIGUSR2, nullptr, &now) == 0);
    CHECK((now.sa_handler != &record_usr2));
    auto report = rt.shutdown();
    CHECK(report.threads_abandoned == 0);
    REQUIRE(::sigaction(SIGUSR2, nullptr, &now) == 0);
    CHECK((now.sa_handler == &record_usr2));
  }
  // Installed again after the first one's runtime ended (its thread has
  // ended: a second installation is refused while it runs).
  weave::runtime rt2;
  CHECK(weave::actors::spawn_signal_actor(rt2));
  ::sigaction(SIGUSR2, &saved, nullptr);
}

TEST_CASE("SIGTERM runs the phased shutdown and prints its report") {
  // The program prints "ready" on stdout, then waits for the signal.
  const char* program = "tests/signal_term_program";
  int out_pipe[2];
  int err_pipe[2];
  REQUIRE(::pipe(out_pipe) == 0);
  REQUIRE(::pipe(err_pipe) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  posix_spawn_file_actions_addclose(&fa, err_pipe[0]);
  std::string arg0 = program;
  std::string deadline = "--weave.shutdown-deadline=2s";
  char* argv[] = {arg0.data(), deadline.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, program, &fa, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  // Reads `fd` to its end (or `until` appears in it).
  auto read_all = [](int fd, const char* until) {
    std::string text;
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 30'000) <= 0)
        break;
      auto n = ::read(fd, buf, sizeof(buf));
      if (n <= 0)
        break;
      text.append(buf, static_cast<size_t>(n));
      if (until != nullptr && text.find(until) != std::string::npos)
        break;
    }
    return text;
  };
  auto out = read_all(out_pipe[0], "ready\n");
  REQUIRE(out == "ready\n");
  REQUIRE(::kill(pid, SIGTERM) == 0);
  auto err = read_all(err_pipe[0], nullptr);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  INFO(err);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto notice = err.find("weave: SIGTERM received, shutting down");
  auto report = err.find("weave shutdown:");
  auto main_line = err.find("main: shut down by SIGTERM");
  REQUIRE(notice != std::string::npos);
  REQUIRE(report != std::string::npos);
  REQUIRE(main_line != std::string::npos);
  CHECK(notice < report);
  CHECK(report < main_line);
}

TEST_CASE("a SIGTERM's notice held while the runtime shuts down: the "
          "signal thread neither uses the runtime once it is gone nor holds "
          "up that shutdown past its deadline") {
  // The signal thread is held inside its notice while the main thread
  // shuts the runtime down and destroys it. The main thread's shutdown
  // began first, so the signal thread starts none (before the fix it had
  // marked itself the initiator, which that shutdown did not wait for, and
  // then called into the destroyed runtime: a use after free under
  // AddressSanitizer).
  weave::test::latch entered{1};
  weave::test::latch release{1};
  std::atomic<int> shutdowns_by_signal{0};
  std::optional<weave::runtime> rt;
  rt.emplace();
  weave::actors::signal_options opts;
  opts.print = [&](const std::string& text) {
    if (text.find("received") != std::string::npos) {
      entered.count_down();
      release.wait();
    }
  };
  opts.on_shutdown = [&](int, const weave::shutdown_report&) {
    ++shutdowns_by_signal;
  };
  auto sig = weave::actors::spawn_signal_actor(*rt, opts);
  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  REQUIRE(entered.wait());
  sig = nullptr;
  // Creates the condition "the main thread's shutdown waits for the signal
  // thread" before the signal thread goes on.
  std::thread releaser{[&] {
    std::this_thread::sleep_for(200ms);
    release.count_down();
  }};
  auto report = rt->shutdown(10s);
  releaser.join();
  rt.reset();
  // The signal thread ended within the deadline, joined, started nothing.
  CHECK(report.threads_abandoned == 0);
  CHECK(report.total < 10s);
  CHECK(shutdowns_by_signal.load() == 0);
  // The handlers are back: a new signal actor can be installed.
  weave::runtime again;
  auto next = weave::actors::spawn_signal_actor(again, {});
  CHECK(next != nullptr);
}
