// The process actor's acceptance case: a child writes 1 GiB to stdout while
// its stderr (piped) is never read; it completes, and the parent's memory
// stays bounded (peak RSS, VmHWM, grows by far less than the data).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/process_support.hpp"

using namespace weave::actors;

namespace {

/// A field of /proc/self/status in KiB ("VmHWM", "VmRSS").
long status_kib(const std::string& field) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, field.size() + 1, field + ":") == 0)
      return std::stol(line.substr(field.size() + 1));
  return -1;
}

constexpr size_t gib = size_t{1} << 30;

/// How much the peak RSS may grow while 1 GiB flows through.
constexpr long max_growth_kib = 200 * 1024;

/// AddressSanitizer keeps freed memory in quarantine (256 MiB by default)
/// before reusing it, which would grow the RSS by that much: this binary
/// asks for a small quarantine, and allows for ASan's own bookkeeping.
#if defined(__SANITIZE_ADDRESS__)
constexpr long sanitizer_allowance_kib = 64 * 1024;
#else
constexpr long sanitizer_allowance_kib = 0;
#endif

} // namespace

#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() {
  return "quarantine_size_mb=8";
}
#endif

TEST_CASE("1 GiB on stdout with stderr unread: completes in bounded memory") {
  weave::runtime rt{weave::test::io_config()};
  auto hwm_before = status_kib("VmHWM");
  REQUIRE(hwm_before > 0);
  auto t0 = std::chrono::steady_clock::now();
  auto p = spawn_process(rt, weave::test::sh("echo start >&2; head -c "
                                             + std::to_string(gib)
                                             + " /dev/zero; echo end >&2"));
  size_t got = 0;
  size_t chunks = 0;
  for (;;) {
    auto r = p.out->get(weave::test::patience);
    if (r.status == weave::channel_status::closed)
      break;
    REQUIRE(r);
    got += r.value->size();
    ++chunks;
  }
  auto st = p.exited.get();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  auto hwm_after = status_kib("VmHWM");
  CHECK(got == gib);
  CHECK(st.success());
  CHECK(weave::test::drain(*p.err) == "start\nend\n");
  std::printf("process_actor stress: %zu bytes in %zu chunks, %.2f s "
              "(%.0f MiB/s); peak RSS (VmHWM) %ld KiB before, %ld KiB after, "
              "growth %ld KiB\n",
              got, chunks, secs, got / secs / (1 << 20), hwm_before,
              hwm_after, hwm_after - hwm_before);
  std::fflush(stdout);
  CHECK(hwm_after - hwm_before < max_growth_kib + sanitizer_allowance_kib);
  CHECK(rt.slow_handlers() == 0);
}
