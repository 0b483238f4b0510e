// actors/tcp at the acceptance size: 100 clients x 10 MB echoed on loopback
// with one slow reader; every byte back in order, server buffers bounded.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>

#include "runtime/weave.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;

namespace {

// 200 connections on a busy 2-core machine: a turn preempted by the kernel
// was seen at 104-138 ms under ASan without any blocking call, and plain
// builds were seen preempted for 102 ms at load 17 (tests/io_support.hpp).
// Every socket call here is non-blocking; a blocked one would take far
// longer and still show.
constexpr auto blocking_threshold = std::chrono::milliseconds{500};

} // namespace

TEST_CASE("100 clients x 10 MB echoed in order with one slow reader; "
          "server buffers bounded") {
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{blocking_threshold});
  // CAF lets an actor handle its whole mailbox in one go (no limit by
  // default); 200 actors streaming to each other keep their mailboxes
  // non-empty, so one turn could run past the threshold without blocking.
  cfg.set("scheduler.max-throughput", size_t{64});
  weave::runtime rt{std::move(cfg)};
  weave::test::failures bad;
  tcp_options server_opts;
  server_opts.write_buffer = 64 * 1024;
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0, server_opts, 256);
  caf::scoped_actor self{rt.system()};
  uint16_t port = 0;
  self->request(listener, weave::test::patience, tcp_port_atom::value)
    .receive([&](uint16_t p) { port = p; },
             [&](caf::error& e) { FAIL(weave::render(e)); });
  constexpr size_t clients = 100;
  constexpr uint64_t bytes = 10 * 1024 * 1024;
  auto conns = std::make_shared<server_conns>();
  serve_echo(rt.system(), listener, clients, conns, &bad);
  weave::test::latch done{clients};
  auto order = std::make_shared<finish_order>();
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < clients; ++i) {
    tcp_options opts;
    client_plan plan;
    plan.id = i;
    plan.bytes = bytes;
    if (i == 0) { // the slow reader
      opts.read_chunk = 16 * 1024;
      plan.read_pause = 1ms;
    }
    auto conn = spawn_tcp_connect(rt, "127.0.0.1", port, opts);
    run_client(rt.system(), conn, plan, &bad, &done, order);
  }
  REQUIRE(done.wait(55s));
  auto took = std::chrono::steady_clock::now() - start;
  std::printf("tcp stress: %zu clients x %llu bytes in %lld ms\n", clients,
              static_cast<unsigned long long>(bytes),
              static_cast<long long>(
                std::chrono::duration_cast<std::chrono::milliseconds>(took)
                  .count()));
  CHECK(bad.messages() == "");
  std::unique_lock<std::mutex> guard{conns->mtx};
  REQUIRE(conns->conns.size() == clients);
  uint64_t peak_write = 0;
  uint64_t peak_read = 0;
  for (auto& conn : conns->conns) {
    self->request(conn, weave::test::patience, tcp_stats_atom::value)
      .receive(
        [&](tcp_stats& st) {
          CHECK(st.bytes_read == bytes);
          CHECK(st.bytes_written == bytes);
          peak_write = std::max(peak_write, st.peak_write_buffered);
          peak_read = std::max(peak_read, st.peak_read_buffered);
        },
        [&](caf::error& e) { FAIL(weave::render(e)); });
  }
  std::printf("tcp stress: server peak buffered per connection: write %llu, "
              "read %llu bytes\n",
              static_cast<unsigned long long>(peak_write),
              static_cast<unsigned long long>(peak_read));
  CHECK(peak_write <= server_opts.write_buffer);
  CHECK(peak_read <= server_opts.max_frame + frame_prefix_size);
  CHECK(rt.slow_handlers() == 0);
}
