#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "tests/test_support.hpp"

namespace weave::test {

watchdog::watchdog(std::chrono::seconds limit) {
  thread_ = std::thread{[this, limit] {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!cv_.wait_for(guard, limit, [this] { return done_; })) {
      std::fprintf(stderr, "watchdog: a test case exceeded %llds; aborting\n",
                   static_cast<long long>(limit.count()));
      std::fflush(stderr);
      // doctest's own SIGABRT handler would end this test case, whose
      // listener destroys (joins) this very watchdog: abort plainly.
      std::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
  }};
}

watchdog::~watchdog() {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

} // namespace weave::test

namespace {

// Every test case runs under a watchdog, even if it forgets its own.
struct watchdog_listener : doctest::IReporter {
  explicit watchdog_listener(const doctest::ContextOptions&) {
  }
  void report_query(const doctest::QueryData&) override {
  }
  void test_run_start() override {
  }
  void test_run_end(const doctest::TestRunStats&) override {
  }
  void test_case_start(const doctest::TestCaseData& tc) override {
    std::fprintf(stderr, "[ RUN  ] %s\n", tc.m_name);
    // A case that declares a longer run (`* doctest::timeout(seconds)`,
    // 0 when unset) gets that long; doctest itself fails it if it ends
    // later than that.
    auto limit = weave::test::default_watchdog_limit;
    auto declared = static_cast<long long>(std::ceil(tc.m_timeout));
    if (declared > limit.count())
      limit = std::chrono::seconds{declared};
    dog_ = new weave::test::watchdog{limit};
  }
  void test_case_reenter(const doctest::TestCaseData&) override {
  }
  void test_case_end(const doctest::CurrentTestCaseStats&) override {
    delete dog_;
    dog_ = nullptr;
  }
  void test_case_exception(const doctest::TestCaseException&) override {
  }
  void subcase_start(const doctest::SubcaseSignature&) override {
  }
  void subcase_end() override {
  }
  void log_assert(const doctest::AssertData&) override {
  }
  void log_message(const doctest::MessageData&) override {
  }
  void test_case_skipped(const doctest::TestCaseData&) override {
  }

  weave::test::watchdog* dog_ = nullptr;
};

REGISTER_LISTENER("watchdog", 1, watchdog_listener);

} // namespace

int main(int argc, char** argv) {
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
