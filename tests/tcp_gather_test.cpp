// actors/tcp: where the TCP I/O thread's turns run while it gathers
// (`weave.tcp-gather`, actors/internal/io_unit.hpp): the turns a turn there
// wakes stay there, in order, up to `tcp-inline-turns`; a protocol's writer
// and reader there take turns a chunk at a time; a producer never holds
// its thread for long, gathered or not; `auto`'s reading of the machine's
// load.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "actors/internal/io_unit.hpp"
#include "tests/cgroup_support.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_protocol_support.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::actors::internal::io_unit;
using weave::test::fake_cgroups;
using weave::test::patience;
using weave::test::latch;
using weave::test::proto::dial;
using weave::test::proto::journal;
using weave::test::proto::port_of;
using weave::test::proto::recording;
using weave::test::proto::send_all;

namespace {

bool on_io_thread(const std::string& name) {
  return name == "weave-tcp";
}

bool on_scheduler(const std::string& name) {
  return name.rfind("weave-sched-", 0) == 0;
}

/// Where each recorder's handler ran, and in which order.
struct arrivals {
  std::mutex mtx;
  std::vector<std::pair<int, std::string>> seen;
  weave::test::latch all;
  explicit arrivals(int n) : all(n) {
  }
  void note(int who) {
    {
      std::unique_lock<std::mutex> guard{mtx};
      seen.emplace_back(who, weave::this_thread_name());
    }
    all.count_down();
  }
};

caf::actor spawn_recorder(raw_peer& p, std::shared_ptr<arrivals> out,
                          int who) {
  return p.rt.system().spawn(
    [out, who](caf::event_based_actor* self) -> caf::behavior {
      return {[out, who, self](const std::string&) {
        out->note(who);
        self->quit();
      }};
    });
}

/// Sends one line to each of `n` recorders from a turn that a readiness
/// started; true once such a turn ran on the I/O thread (see max_rounds),
/// with `out` filled.
bool wake_from_io_thread(raw_peer& p, int n, std::shared_ptr<arrivals>& out) {
  for (int round = 0; round < max_rounds; ++round) {
    out = std::make_shared<arrivals>(n);
    std::vector<caf::actor> recorders;
    for (int i = 0; i < n; ++i)
      recorders.push_back(spawn_recorder(p, out, i));
    auto reader = std::make_shared<std::promise<std::string>>();
    auto fr = reader->get_future();
    read_then(p, [=](caf::event_based_actor* self, const std::string& line) {
      reader->set_value(weave::this_thread_name());
      for (auto& r : recorders)
        self->send(r, line);
      self->quit();
    });
    p.send_all("wake\n");
    auto where = take(fr);
    REQUIRE(out->all.wait(patience));
    if (on_io_thread(where))
      return true;
  }
  return false;
}

} // namespace

TEST_CASE("gathering: the turns a turn on the I/O thread wakes run there, "
          "in the order they were woken") {
  raw_peer p{turns_config(8, "always")};
  std::shared_ptr<arrivals> out;
  REQUIRE(wake_from_io_thread(p, 3, out));
  std::unique_lock<std::mutex> guard{out->mtx};
  REQUIRE(out->seen.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(out->seen[i].first == static_cast<int>(i));
    CHECK_MESSAGE(on_io_thread(out->seen[i].second), out->seen[i].second);
  }
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("gathering keeps at most tcp-inline-turns turns on the I/O thread: "
          "the oldest beyond that goes to the scheduler") {
  raw_peer p{turns_config(2, "always")};
  std::shared_ptr<arrivals> out;
  REQUIRE(wake_from_io_thread(p, 3, out));
  std::unique_lock<std::mutex> guard{out->mtx};
  REQUIRE(out->seen.size() == 3);
  std::string where[3];
  for (auto& [who, thread] : out->seen)
    where[who] = thread;
  // Kept: 0, 1; then 2 came and 0, the oldest, went to a worker.
  CHECK_MESSAGE(on_scheduler(where[0]), where[0]);
  CHECK_MESSAGE(on_io_thread(where[1]), where[1]);
  CHECK_MESSAGE(on_io_thread(where[2]), where[2]);
}

TEST_CASE("spreading (never): of the turns a turn on the I/O thread wakes, "
          "only the newest runs there") {
  raw_peer p{turns_config(8, "never")};
  std::shared_ptr<arrivals> out;
  REQUIRE(wake_from_io_thread(p, 3, out));
  std::unique_lock<std::mutex> guard{out->mtx};
  REQUIRE(out->seen.size() == 3);
  std::string where[3];
  for (auto& [who, thread] : out->seen)
    where[who] = thread;
  CHECK_MESSAGE(on_scheduler(where[0]), where[0]);
  CHECK_MESSAGE(on_scheduler(where[1]), where[1]);
  CHECK_MESSAGE(on_io_thread(where[2]), where[2]);
}

namespace {

constexpr size_t chunk = 64 * 1024;

/// Bytes 0, 1, ..., 255, 0, 1, ...: every chunk's pattern is a window of
/// it.
const std::vector<char>& ramp() {
  static const std::vector<char> r = [] {
    std::vector<char> v(chunk + 256);
    for (size_t j = 0; j < v.size(); ++j)
      v[j] = static_cast<char>(j & 0xff);
    return v;
  }();
  return r;
}

/// Chunk `i`: its number in its first 8 bytes, then a byte pattern (byte
/// `k` is `(i * 131 + k) & 0xff`), copied from the ramp: a sanitizer checks
/// a copy (and the sink's comparison) as one range, not byte by byte,
/// which kept a ThreadSanitizer build of 64 MiB checked on a busy machine
/// past the test's patience.
void fill_chunk(std::vector<char>& buf, uint64_t i) {
  std::memcpy(buf.data(), &i, sizeof(i));
  auto base = static_cast<size_t>((i * 131) & 0xff);
  std::memcpy(buf.data() + sizeof(i), ramp().data() + base + sizeof(i),
              buf.size() - sizeof(i));
}

/// Which callback ran, on which thread ("w": writable, "r": data_received).
struct timeline {
  std::mutex mtx;
  std::vector<std::pair<char, bool>> steps; // (kind, on the I/O thread)
  void note(char kind) {
    std::unique_lock<std::mutex> guard{mtx};
    steps.emplace_back(kind, on_io_thread(weave::this_thread_name()));
  }
};

/// Writes `chunks` numbered chunks, one per `writable`, then closes.
struct numbered_producer : tcp_protocol {
  timeline* tl;
  uint64_t chunks;
  uint64_t next = 0;
  /// Numbered chunks (else the same bytes each time: a fast producer).
  bool numbered = true;
  std::vector<char> buf = std::vector<char>(chunk);
  numbered_producer(timeline* tl, uint64_t chunks, bool numbered = true)
    : tl(tl), chunks(chunks), numbered(numbered) {
  }
  void connected(tcp_transport& t) override {
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    if (next == chunks) {
      t.close();
      return;
    }
    if (tl != nullptr)
      tl->note('w');
    if (numbered)
      fill_chunk(buf, next);
    ++next;
    t.write(buf.data(), buf.size());
  }
  void data_received(tcp_transport&, const char*, size_t) override {
  }
};

/// Checks every byte against the numbered chunks; counts them.
struct checking_sink : tcp_protocol {
  timeline* tl;
  journal* j;
  std::atomic<uint64_t>* bytes;
  std::atomic<uint64_t>* bad;
  /// Checks the bytes (else counts them only: a fast reader).
  bool check = true;
  uint64_t at = 0;
  std::vector<char> expect = std::vector<char>(chunk);
  checking_sink(timeline* tl, journal* j, std::atomic<uint64_t>* bytes,
                std::atomic<uint64_t>* bad, bool check = true)
    : tl(tl), j(j), bytes(bytes), bad(bad), check(check) {
  }
  void data_received(tcp_transport&, const char* p, size_t n) override {
    if (tl != nullptr)
      tl->note('r');
    if (!check) {
      *bytes += n;
      return;
    }
    // Piece by piece against the chunk each piece falls in.
    for (size_t k = 0; k < n;) {
      auto off = static_cast<size_t>(at % chunk);
      if (off == 0)
        fill_chunk(expect, at / chunk);
      auto len = std::min(n - k, chunk - off);
      if (std::memcmp(p + k, expect.data() + off, len) != 0)
        ++*bad;
      k += len;
      at += len;
    }
    *bytes += n;
  }
  void eof_received(tcp_transport& t) override {
    t.close();
  }
  void connection_lost(const caf::error& err) override {
    j->lost_with(err);
  }
};

struct stream_result {
  uint64_t bytes = 0;
  uint64_t bad = 0;
  size_t slow = 0;
  /// `metrics_snapshot::tcp_io.kept_readiness` at the end.
  uint64_t kept = 0;
};

/// A stream of `chunks` chunks between two protocols of one runtime
/// configured with `cfg`: numbered and checked, or (`fast`) neither; it
/// must end within `limit`.
stream_result run_stream(weave::runtime_config cfg, uint64_t chunks,
                         timeline* tl, size_t socket_buffer = 0,
                         bool fast = false,
                         std::chrono::milliseconds limit = patience) {
  // Before the runtime: they outlive every callback.
  journal j;
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> bad{0};
  std::mutex reports_mtx;
  std::vector<std::string> reports;
  weave::runtime rt{std::move(cfg)};
  rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::unique_lock<std::mutex> guard{reports_mtx};
    reports.push_back(ev.actor_name + " held "
                      + std::to_string(ev.held.count() / 1000000) + " ms ("
                      + std::to_string(ev.waited_for_cpu.count() / 1000000)
                      + " ms waiting for a core) on worker "
                      + std::to_string(ev.worker));
  });
  caf::scoped_actor self{rt.system()};
  tcp_options opts;
  opts.socket_buffer = socket_buffer;
  auto server = spawn_tcp_server(
    rt, "127.0.0.1", 0,
    [&] {
      return std::make_unique<checking_sink>(tl, &j, &bytes, &bad, !fast);
    },
    opts);
  spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                    std::make_unique<numbered_producer>(tl, chunks, !fast),
                    opts);
  REQUIRE(j.lost_latch.wait(limit));
  std::unique_lock<std::mutex> guard{reports_mtx};
  for (auto& r : reports)
    MESSAGE("slow handler: " << r); // which, if a check below fails
  return {bytes.load(), bad.load(), rt.slow_handlers(),
          rt.metrics().tcp_io.kept_readiness};
}

} // namespace

TEST_CASE("gathering: a protocol's writer and reader on the I/O thread take "
          "turns a chunk at a time; every byte arrives in order") {
  timeline tl;
  // Small socket buffers: the writer's first turns (on a worker) soon find
  // the socket full, and its next turn comes with the readiness, to the
  // I/O thread.
  auto r = run_stream(turns_config(8, "always"), 1024, &tl, 64 * 1024);
  CHECK(r.bytes == 1024 * chunk);
  CHECK(r.bad == 0);
  std::unique_lock<std::mutex> guard{tl.mtx};
  // From the writer's first turn on the I/O thread on, it stays there, and
  // no more than a few of its turns come between two of the reader's.
  auto first = std::find(tl.steps.begin(), tl.steps.end(),
                         std::make_pair('w', true));
  REQUIRE(first != tl.steps.end());
  size_t writes_there = 0;
  size_t elsewhere = 0;
  size_t run = 0;
  size_t longest = 0;
  for (auto i = first; i != tl.steps.end(); ++i) {
    if (i->first == 'w') {
      writes_there += i->second ? 1 : 0;
      elsewhere += i->second ? 0 : 1;
      longest = std::max(longest, ++run);
    } else {
      run = 0;
    }
  }
  CHECK(writes_there >= 512); // most of the stream
  CHECK(elsewhere == 0);
  CHECK(longest <= 4);
}

TEST_CASE("gathering: a turn that stopped at its share gets its readiness "
          "again without re-arming (kept, counted); never while spreading") {
  // Default socket buffers: the writer's share (64 KiB) fits, so its turns
  // stop at their share, not at a full socket; the reader's likewise.
  auto gathered = run_stream(turns_config(8, "always"), 2048, nullptr);
  CHECK(gathered.bytes == 2048 * chunk);
  CHECK(gathered.bad == 0);
  CHECK(gathered.kept >= 512); // most chunks' turns: no epoll_ctl for them
  // Spreading, a reader whose turn ran here stops at 1 MiB and re-arms.
  auto spread = run_stream(turns_config(8, "never"), 256, nullptr);
  CHECK(spread.bytes == 256 * chunk);
  CHECK(spread.bad == 0);
  CHECK(spread.kept == 0);
  auto off = run_stream(turns_config(0, "always"), 256, nullptr);
  CHECK(off.bytes == 256 * chunk);
  CHECK(off.kept == 0); // tcp-inline-turns = 0: no turn runs there
}

TEST_CASE("gathering: a readiness kept for the next pass is not lost when a "
          "turn then holds the I/O thread (the standby delivers it)"
          * doctest::timeout(120)) {
  journal sink_j;
  journal blocker_j;
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> bad{0};
  std::atomic<int> blocked_on_io{0};
  latch entered{1};
  latch release{1};
  weave::runtime rt{turns_config(8, "always")};
  caf::scoped_actor self{rt.system()};
  // Blocks in its first callback until the test releases it.
  struct blocker : recording {
    std::atomic<int>* on_io;
    latch* entered;
    latch* release;
    blocker(journal* j, std::atomic<int>* on_io, latch* e, latch* r)
      : recording(j), on_io(on_io), entered(e), release(r) {
    }
    void data_received(tcp_transport& t, const char*, size_t) override {
      if (on_io_thread(weave::this_thread_name()))
        ++*on_io;
      entered->count_down();
      (void) release->wait(std::chrono::minutes{2});
      t.close();
    }
  };
  auto sink_server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<checking_sink>(nullptr, &sink_j, &bytes, &bad);
  });
  auto block_server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<blocker>(&blocker_j, &blocked_on_io, &entered,
                                     &release);
  });
  int fd = dial(port_of(self, block_server));
  constexpr uint64_t chunks = 4096;
  spawn_tcp_connect(rt, "127.0.0.1", port_of(self, sink_server),
                    std::make_unique<numbered_producer>(nullptr, chunks));
  // Mid-stream (its turns keeping their readiness on the I/O thread), a
  // callback there blocks: what it kept in that pass must still come.
  REQUIRE(weave::test::eventually(
    [&] { return bytes.load() >= 64 * chunk; }));
  send_all(fd, "x");
  REQUIRE(entered.wait(patience));
  // The stream ends while the blocker still holds its thread.
  bool ended = sink_j.lost_latch.wait(std::chrono::seconds{60});
  auto at_end = bytes.load();
  release.count_down();
  REQUIRE_MESSAGE(ended, at_end << " bytes of " << chunks * chunk
                                << "; blocker on the I/O thread: "
                                << blocked_on_io.load() << "; slow: "
                                << rt.slow_handlers());
  CHECK(bytes == chunks * chunk);
  CHECK(bad == 0);
  CHECK(blocked_on_io == 1); // else this did not test the standby
  CHECK(rt.metrics().tcp_io.kept_readiness > 0);
  ::close(fd);
  REQUIRE(blocker_j.lost_latch.wait(patience));
}

TEST_CASE("a producer never holds its thread for long: 1 GiB streamed with "
          "no slow handler, gathered or spread" * doctest::timeout(150)) {
  for (std::string mode : {"never", "always"}) {
    CAPTURE(mode);
    auto cfg = turns_config(8, mode.c_str());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // Under ThreadSanitizer on a busy 2-core machine one `recv` or
    // `sendmsg` of at most 1 MiB took 20 ms in the kernel (loopback
    // delivery), and whole turns 20–250 ms, with or without turns run
    // without a message (eighteenth session): still far below what a
    // producer that never yields holds (the whole stream, seconds).
    cfg.set("weave.blocking-threshold", caf::timespan{500ms});
#else
    cfg.set("weave.blocking-threshold", caf::timespan{30ms});
#endif
    // Each 1 GiB took 7 s under ThreadSanitizer on a machine at load 6,
    // past 10 s at times: the stream's bound is a hang detector, not a
    // speed (a producer holding its thread shows as a slow handler).
    auto r = run_stream(std::move(cfg), 16384, nullptr, 0, true, 60s);
    CHECK(r.bytes == 16384 * chunk);
    CHECK(r.slow == 0);
  }
}

TEST_CASE("the runtime's shutdown in the middle of a gathered stream: both "
          "protocols told once, destroyed, nothing hangs") {
  journal sink_j;
  journal prod_j;
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> bad{0};
  {
    weave::runtime rt{turns_config(8, "always")};
    caf::scoped_actor self{rt.system()};
    struct told_producer : numbered_producer {
      journal* j;
      told_producer(journal* j) : numbered_producer(nullptr, ~uint64_t{0}), j(j) {
        ++j->alive;
      }
      ~told_producer() override {
        --j->alive;
      }
      void connection_lost(const caf::error& err) override {
        j->lost_with(err);
      }
    };
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<checking_sink>(nullptr, &sink_j, &bytes, &bad);
    });
    spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                      std::make_unique<told_producer>(&prod_j));
    REQUIRE(weave::test::eventually(
      [&] { return bytes.load() >= 64 * chunk; }));
  } // the runtime goes, the stream still running
  CHECK(prod_j.lost == 1);
  CHECK(sink_j.lost == 1);
  CHECK(prod_j.alive == 0);
  CHECK(bad == 0);
}

TEST_CASE("auto: the cores other processes leave this one") {
  // 2 cores, a 100 ms window: 200 ms of core time.
  constexpr uint64_t ms = 1'000'000;
  // Idle but for this process: both cores left.
  CHECK(io_unit::cores_left_x100(2, 200 * ms, 150 * ms, 150 * ms) == 200);
  // Two busy loops took what this process did not: a third of a core left.
  CHECK(io_unit::cores_left_x100(2, 200 * ms, 200 * ms, 33 * ms) == 33);
  // Clock ticks round the machine's time: less busy than this process
  // counts as nobody else.
  CHECK(io_unit::cores_left_x100(2, 200 * ms, 10 * ms, 40 * ms) == 200);
  // Others busier than the window (rounding): none left, never below 0.
  CHECK(io_unit::cores_left_x100(2, 200 * ms, 900 * ms, 0) == 0);
  // An empty window says nothing: every core.
  CHECK(io_unit::cores_left_x100(16, 0, 0, 0) == 1600);
  // 16 cores, 10 of them busy elsewhere: 6 left.
  CHECK(io_unit::cores_left_x100(16, 1600 * ms, 1200 * ms, 200 * ms) == 600);
  CHECK(io_unit::min_free_cores_x100 == 150);
  // Gathering starts below 1.5 cores and ends from 1.75: a figure on the
  // line (a quota of 1.5 cores less the others' few ms) does not flip it
  // every look.
  CHECK_FALSE(io_unit::gathers(false, 150));
  CHECK(io_unit::gathers(false, 149));
  CHECK(io_unit::gathers(true, 150));
  CHECK(io_unit::gathers(true, 174));
  CHECK_FALSE(io_unit::gathers(true, 175));
  CHECK_FALSE(io_unit::gathers(false, 200));
  CHECK(io_unit::gathers(true, 0));
}

TEST_CASE("auto under a CPU quota: cgroup v2, the smallest quota of the "
          "process's cgroup and its parents, with that cgroup's CPU time") {
  fake_cgroups fs{"v2"};
  fs.put("/kubepods/pod1/c1/cpu.max", "max 100000\n");
  fs.put("/kubepods/pod1/cpu.max", "150000 100000\n");
  fs.put("/kubepods/cpu.max", "400000 100000\n");
  fs.put("/kubepods/pod1/cpu.stat",
         "nr_usage_usec 7\nusage_usec 5000\nuser_usec 3000\n");
  auto q = io_unit::find_cpu_quota("0::/kubepods/pod1/c1\n", fs.root);
  CHECK(q.cores_x100 == 150);
  CHECK(q.usage_path == fs.root + "/kubepods/pod1/cpu.stat");
  // Every level with a quota is a ceiling (a parent's other children
  // compete for the parent's): both, each with its own usage file.
  REQUIRE(q.levels.size() == 2);
  CHECK(q.levels[0].cores_x100 == 150);
  CHECK(q.levels[1].cores_x100 == 400);
  CHECK(q.levels[1].usage_path == fs.root + "/kubepods/cpu.stat");
  uint64_t ns = 0;
  REQUIRE(io_unit::read_cgroup_usage_ns(q.usage_path, ns));
  CHECK(ns == 5'000'000); // usage_usec, not nr_usage_usec
  // "max" everywhere (or no cpu.max at all): no quota.
  fake_cgroups none{"v2max"};
  none.put("/a/cpu.max", "max 100000\n");
  CHECK(io_unit::find_cpu_quota("0::/a\n", none.root).cores_x100 == 0);
  CHECK(io_unit::find_cpu_quota("0::/\n", none.root).cores_x100 == 0);
}

TEST_CASE("auto under a CPU quota: cgroup v1, with cpuacct mounted with "
          "cpu or apart, and a container that sees only its own cgroup") {
  fake_cgroups fs{"v1"};
  // A hierarchy's root always has the files (no quota there: -1).
  fs.put("/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  fs.put("/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  fs.put("/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  fs.put("/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  fs.put("/cpu,cpuacct/docker/abc/cpuacct.usage", "123456789\n");
  auto q = io_unit::find_cpu_quota(
    "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n", fs.root);
  CHECK(q.cores_x100 == 50);
  CHECK(q.usage_path == fs.root + "/cpu,cpuacct/docker/abc/cpuacct.usage");
  uint64_t ns = 0;
  REQUIRE(io_unit::read_cgroup_usage_ns(q.usage_path, ns));
  CHECK(ns == 123456789);

  // Without a cgroup namespace the path names the host's cgroup, but the
  // container's own is mounted at the root: found walking up.
  fake_cgroups own{"v1own"};
  own.put("/cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
  own.put("/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  auto qo = io_unit::find_cpu_quota("4:cpu,cpuacct:/docker/abc\n", own.root);
  CHECK(qo.cores_x100 == 200);
  CHECK(qo.levels.size() == 1);

  // cpu and cpuacct apart: the usage comes from cpuacct's tree.
  fake_cgroups apart{"v1apart"};
  apart.put("/cpu/cpu.cfs_period_us", "100000\n");
  apart.put("/cpuacct/cpuacct.usage", "1000\n");
  apart.put("/cpu/x/cpu.cfs_quota_us", "100000\n");
  apart.put("/cpu/x/cpu.cfs_period_us", "100000\n");
  apart.put("/cpuacct/x/cpuacct.usage", "42\n");
  auto qa = io_unit::find_cpu_quota("3:cpu:/x\n2:cpuacct:/x\n", apart.root);
  CHECK(qa.cores_x100 == 100);
  CHECK(qa.usage_path == apart.root + "/cpuacct/x/cpuacct.usage");
  REQUIRE(io_unit::read_cgroup_usage_ns(qa.usage_path, ns));
  CHECK(ns == 42);
  // This process elsewhere in cpuacct's tree: that group may hold other
  // processes, so no usage (the quota alone counts).
  auto qe = io_unit::find_cpu_quota("3:cpu:/x\n2:cpuacct:/y\n", apart.root);
  CHECK(qe.cores_x100 == 100);
  CHECK(qe.usage_path.empty());

  // -1: no quota (this development machine's case).
  fake_cgroups unlimited{"v1none"};
  unlimited.put("/cpu/cpu.cfs_quota_us", "-1\n");
  unlimited.put("/cpu/cpu.cfs_period_us", "100000\n");
  CHECK(io_unit::find_cpu_quota("1:cpu:/\n0::/\n", unlimited.root).cores_x100
        == 0);
}

TEST_CASE("auto: the machine's load from /proc/stat, or only that of the "
          "cores this process may run on") {
  const char* stat = "cpu  100 0 50 800 50 0 0 0 0 0\n"
                     "cpu0 10 0 5 80 5 0 0 0 0 0\n"
                     "cpu1 90 0 45 20 5 0 0 0 0 0\n"
                     "cpu2 0 0 0 400 0 0 0 0 0 0\n"
                     "cpu3 0 0 0 300 40 0 0 0 0 0\n"
                     "intr 12345 1 2 3\nctxt 99\n";
  uint64_t busy = 0;
  uint64_t total = 0;
  REQUIRE(io_unit::parse_stat(stat, nullptr, busy, total));
  CHECK(busy == 150); // user + system: idle and iowait are not busy
  CHECK(total == 1000);
  // A cpuset of cores 1 and 3: their lines only.
  std::vector<bool> only(8, false);
  only[1] = only[3] = true;
  REQUIRE(io_unit::parse_stat(stat, &only, busy, total));
  CHECK(busy == 135);
  CHECK(total == 160 + 340);
  // Cores that are not there, a truncated line, no cpu lines: nothing.
  std::vector<bool> absent(8, false);
  absent[7] = true;
  CHECK_FALSE(io_unit::parse_stat(stat, &absent, busy, total));
  CHECK_FALSE(io_unit::parse_stat("cpu  1 2 3\n", nullptr, busy, total));
  CHECK_FALSE(io_unit::parse_stat("intr 1 2\n", nullptr, busy, total));
  CHECK_FALSE(io_unit::parse_stat("", nullptr, busy, total));
}

TEST_CASE("auto under a CPU quota: nonsense finds no quota, and what the "
          "quota leaves this process") {
  fake_cgroups fs{"junk"};
  fs.put("/cpu.max", "lots 100000\n");
  fs.put("/cpu/cpu.cfs_quota_us", "100000\n");
  fs.put("/cpu/cpu.cfs_period_us", "0\n"); // a zero period
  for (const char* text : {"", "nonsense", "0::", "::::", "1:cpu", "0::/\n",
                           "1:cpu:/\n", "\n\n"})
    CHECK_MESSAGE(io_unit::find_cpu_quota(text, fs.root).cores_x100 == 0,
                  text);
  uint64_t ns = 0;
  CHECK_FALSE(io_unit::read_cgroup_usage_ns("", ns));
  CHECK_FALSE(io_unit::read_cgroup_usage_ns(fs.root + "/missing", ns));
  fs.put("/bad/cpu.stat", "user_usec 5\n");
  CHECK_FALSE(io_unit::read_cgroup_usage_ns(fs.root + "/bad/cpu.stat", ns));

  constexpr uint64_t ms = 1'000'000;
  // 1.5 cores, nobody else in the cgroup: all of it.
  CHECK(io_unit::quota_left_x100(150, 100 * ms, 0) == 150);
  // Half a core taken by the cgroup's other processes: one left (gathers).
  CHECK(io_unit::quota_left_x100(150, 100 * ms, 50 * ms) == 100);
  // Others over the quota (rounding, children): none, never below 0.
  CHECK(io_unit::quota_left_x100(100, 100 * ms, 300 * ms) == 0);
  // An empty window: the quota.
  CHECK(io_unit::quota_left_x100(400, 0, 5 * ms) == 400);
  // A quota of one core is below what spreading needs: gathers.
  CHECK(io_unit::quota_left_x100(100, 100 * ms, 0)
        < io_unit::min_free_cores_x100);
}

namespace {

/// One busy-looping child process per core until destroyed: other
/// processes that leave this one no core.
struct busy_machine {
  std::vector<pid_t> children;
  busy_machine() {
    auto cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < std::max(1L, cores); ++i) {
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0)
        for (volatile unsigned long spin = 0;; ++spin) {
        }
      children.push_back(pid);
    }
  }
  ~busy_machine() {
    for (auto pid : children)
      ::kill(pid, SIGKILL);
    for (auto pid : children)
      ::waitpid(pid, nullptr, 0);
  }
};

} // namespace

TEST_CASE("auto gathers while other processes keep every core busy") {
  raw_peer p{turns_config(8, "auto")};
  busy_machine busy;
  // The I/O thread looks at the machine's load every 100 ms of its work:
  // rounds of turns there until the three woken actors all ran on it.
  auto until = std::chrono::steady_clock::now() + patience;
  bool gathered = false;
  int rounds = 0;
  while (!gathered && std::chrono::steady_clock::now() < until) {
    std::shared_ptr<arrivals> out;
    if (!wake_from_io_thread(p, 3, out))
      continue;
    ++rounds;
    std::unique_lock<std::mutex> guard{out->mtx};
    gathered = std::all_of(out->seen.begin(), out->seen.end(),
                           [](auto& s) { return on_io_thread(s.second); });
  }
  CAPTURE(rounds);
  CHECK(gathered);
}
