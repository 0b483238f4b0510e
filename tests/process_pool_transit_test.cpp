// process_pool: a job granted as it is sent. While its worker has room in
// its claim window, the pool grants a fresh job as it sends it (no claim
// round trip); until that message is handed to CAF the job is "in
// transit", and a revoke asked for meanwhile (its cancel, its deadline)
// must wait and follow it: a revoke that overtook its job would find
// nothing to drop, the worker would answer "runs", and a cancel would kill
// the worker with every other job it holds.
//
// The test holds the client actor's send inside that window with the pool
// test hook `granted_send` (this binary links //runtime:runtime_test_hooks;
// the worker program does not).
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/internal/pool_hooks.hpp"
#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// Holds the next pass through `point` (once armed) until released: by
/// default the send of granted jobs.
struct send_hold {
  weave::internal::pool_hook_point point =
    weave::internal::pool_hook_point::granted_send;
  std::atomic<bool> armed{false};
  latch reached{1};
  latch release{1};
};

std::shared_ptr<send_hold> current_hold;

void hook(weave::internal::pool_hook_point point, const std::string&) {
  auto h = current_hold;
  if (h && point == h->point && h->armed.exchange(false)) {
    h->reached.count_down();
    h->release.wait(std::chrono::hours{1});
  }
}

/// Installs the hook for one test; releases a held send on exit.
class installed_hold {
public:
  explicit installed_hold(weave::internal::pool_hook_point point =
                            weave::internal::pool_hook_point::granted_send)
    : hold_(std::make_shared<send_hold>()) {
    hold_->point = point;
    current_hold = hold_;
    weave::internal::set_pool_hook(hook);
  }
  ~installed_hold() {
    hold_->release.count_down();
    weave::internal::set_pool_hook(nullptr);
    current_hold = nullptr;
  }
  installed_hold(const installed_hold&) = delete;
  installed_hold& operator=(const installed_hold&) = delete;
  send_hold& operator*() {
    return *hold_;
  }

private:
  std::shared_ptr<send_hold> hold_;
};

/// One worker, one thread, room for two jobs: a third waits in the pool,
/// and is sent (granted) by the client actor when the first one ends.
weave::process_pool_options two_slot_pool() {
  auto opts = pool_options(1);
  opts.capacity = 2;
  return opts;
}

/// The tags in `log`, in the order they were written.
std::vector<uint64_t> tags_in_order(const std::string& log) {
  std::vector<uint64_t> result;
  std::ifstream in{log};
  uint64_t tag = 0;
  while (in >> tag)
    result.push_back(tag);
  return result;
}

/// Where `tag` was written last (a job that ran on a lost worker and again
/// on the next one is written twice).
size_t last_start(const std::vector<uint64_t>& order, uint64_t tag) {
  auto i = std::find(order.rbegin(), order.rend(), tag);
  return i == order.rend() ? order.size()
                           : static_cast<size_t>(order.rend() - i) - 1;
}

/// Opens the first gate and returns once the pool's send of the queued
/// job is held in transit.
void hold_the_send(send_hold& h, const std::string& first_gate) {
  h.armed = true;
  touch(first_gate);
  REQUIRE(h.reached.wait(patience));
}

} // namespace

TEST_CASE("a cancel while a granted job is in transit drops it in the "
          "worker: cancelled, not started, never run, no worker killed") {
  installed_hold h;
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, two_slot_pool()};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto worker = pool.worker_pids().at(0);
  // The first job runs; the second waits behind it in the worker, granted.
  auto first = pool.submit(hold(1, log, dir + "/gate1"));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  auto second = pool.submit(hold(2, log, dir + "/gate2"));
  REQUIRE(eventually([&] { return pool.stats().in_flight == 2; }));
  // The third waits here: the worker holds two.
  auto third = pool.submit(hold(3, log, std::string{}));
  CHECK(pool.stats().queued == 1);
  // The first ends; the second starts and holds the thread; the client
  // actor grants the third as it sends it, and is held just before.
  // (The first job's answer comes after that send.)
  hold_the_send(*h, dir + "/gate1");
  // Cancelled in transit: accepted (the job may be dropped), and it must
  // not be answered before the worker says it dropped it.
  CHECK(third.cancel());
  CHECK_FALSE(third.done());
  (*h).release.count_down();
  REQUIRE(third.wait_for(patience));
  CHECK(first.get() == worker);
  auto err = error_of(third);
  CHECK(weave::is(err, weave::errc::cancelled));
  CHECK_FALSE(weave::maybe_executed(err));
  // The second job was not lost with a killed worker.
  touch(dir + "/gate2");
  CHECK(second.get() == worker);
  auto seen = executions(log);
  CHECK(seen.count(3) == 0);
  CHECK(pool.worker_pids().at(0) == worker);
  auto st = pool.stats();
  CHECK(st.workers_lost == 0);
  CHECK(st.revoked == 1);
  CHECK(st.completed == 2);
}

TEST_CASE("a timeout that passes while a granted job's message is held "
          "drops it in the worker once sent: timeout, not started, never "
          "run, no worker killed") {
  // (The deadline's revoke is armed after the send, so it follows the job
  // by construction; this checks the whole path, not the deferral.)
  installed_hold h;
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, two_slot_pool()};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto worker = pool.worker_pids().at(0);
  auto first = pool.submit(hold(1, log, dir + "/gate1"));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  auto second = pool.submit(hold(2, log, dir + "/gate2"));
  REQUIRE(eventually([&] { return pool.stats().in_flight == 2; }));
  // Long enough to be granted (not due at its send: the first job's end
  // and result cross the worker's pipe on a busy machine first), short
  // enough to pass while the send is held.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr auto timeout = 1500ms;
#else
  constexpr auto timeout = 600ms;
#endif
  auto submitted_at = std::chrono::steady_clock::now();
  auto third = pool.submit(hold(3, log, std::string{}), timeout);
  hold_the_send(*h, dir + "/gate1");
  auto held_at = std::chrono::steady_clock::now();
  REQUIRE(held_at - submitted_at < timeout);
  // Its deadline passes while its message is held here (waited out from
  // the submit, not from the hold).
  CHECK_FALSE(third.wait_for(std::chrono::duration_cast<
                             std::chrono::milliseconds>(
    submitted_at + timeout + 200ms - held_at)));
  (*h).release.count_down();
  REQUIRE(third.wait_for(patience));
  CHECK(first.get() == worker);
  auto err = error_of(third);
  CHECK(weave::is(err, weave::errc::timeout));
  CHECK_FALSE(weave::maybe_executed(err));
  touch(dir + "/gate2");
  CHECK(second.get() == worker);
  CHECK(executions(log).count(3) == 0);
  CHECK(pool.worker_pids().at(0) == worker);
  auto st = pool.stats();
  CHECK(st.workers_lost == 0);
  CHECK(st.revoked == 1);
}

TEST_CASE("a granted job whose deadline passes before a thread is free "
          "never begins, even when the deadline's revoke comes too late") {
  // The second job is granted as sent and waits in the worker behind the
  // first; its deadline passes and the revoke for it is held on the
  // runtime's timer thread. When the first ends, the worker's thread takes
  // the second past its deadline: it must drop it, not run it.
  installed_hold h{weave::internal::pool_hook_point::deadline_revoke};
  (*h).armed = true;
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, two_slot_pool()};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto worker = pool.worker_pids().at(0);
  auto first = pool.submit(hold(1, log, dir + "/gate1"));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr auto timeout = 1500ms;
#else
  constexpr auto timeout = 300ms;
#endif
  auto second = pool.submit(hold(2, log, std::string{}), timeout);
  REQUIRE((*h).reached.wait(patience)); // its deadline passed
  CHECK_FALSE(second.done());
  touch(dir + "/gate1");
  REQUIRE(second.wait_for(patience));
  auto err = error_of(second);
  CHECK(weave::is(err, weave::errc::timeout));
  CHECK_FALSE(weave::maybe_executed(err));
  CHECK(first.get() == worker);
  (*h).release.count_down(); // the revoke finds it answered
  CHECK(pool.submit(square(3)).get() == 9);
  CHECK(executions(log).count(2) == 0);
  CHECK(pool.worker_pids().at(0) == worker);
  auto st = pool.stats();
  CHECK(st.workers_lost == 0);
  CHECK(st.revoked == 1);
  CHECK(st.completed == 2);
}

TEST_CASE("huge timeouts travel to the worker as no deadline and the job "
          "runs; a negative one is refused at once") {
  // The deadline crosses to the worker as steady_clock ticks: a timeout
  // that saturates must not come out as a deadline in the past there.
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, pool_options(1)};
  CHECK(pool.submit(square(3), std::chrono::hours::max()).get() == 9);
  CHECK(pool.submit(square(4), std::chrono::nanoseconds::max()).get() == 16);
  CHECK(pool.submit(square(5), std::chrono::hours{24 * 365 * 1000}).get()
        == 25);
  auto refused = pool.submit(square(6), -1ms);
  REQUIRE(refused.wait_for(patience));
  CHECK(weave::is(error_of(refused), weave::errc::invalid_argument));
  auto st = pool.stats();
  CHECK(st.completed == 3);
  CHECK(st.revoked == 0);
}

TEST_CASE("jobs beyond the claim window wait in the worker for their claim "
          "and still run in order, each exactly once") {
  // Capacity above the window (16 per thread): the pool grants 16 as it
  // sends them, the rest go out ungranted and are claimed as room frees.
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.capacity = 48;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto first = pool.submit(hold(0, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  std::vector<weave::future<int32_t>> rest;
  for (uint64_t tag = 1; tag < 48; ++tag)
    rest.push_back(pool.submit(hold(tag, log, std::string{})));
  // At most the window is granted while the first job holds the thread.
  REQUIRE(eventually([&] { return pool.stats().in_flight == 48; }));
  CHECK(weave::internal::process_pool_access::claimed(pool) <= 16);
  touch(gate);
  for (auto& f : rest)
    CHECK(f.get() > 0);
  std::ifstream in{log};
  std::vector<uint64_t> order;
  uint64_t tag = 0;
  while (in >> tag)
    order.push_back(tag);
  REQUIRE(order.size() == 48);
  for (uint64_t i = 0; i < 48; ++i)
    CHECK(order[i] == i);
}

TEST_CASE("a job granted as sent never passes older jobs whose claim "
          "answer is still on its way") {
  // Worker 1 holds nine gated jobs (granted as sent), then a retried job
  // X and two fresh ones F1, F2, all three ungranted (a job waiting for
  // its claim holds the grants back), then a queued Q. F1 is cancelled.
  // When the first gated job ends, worker 1 claims [X, F1, F2]; the pool
  // grants X and F2, refuses F1, and with the room F1 freed grants Q as it
  // sends it, before its answer to the claim goes out. Q must still start
  // after X and F2.
  weave::runtime rt{pool_config()};
  auto opts = pool_options(2);
  opts.capacity = 12;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/g";
  auto x_gate = dir + "/gx";
  auto crash = std::string{std::getenv("TEST_TMPDIR")} + "/" + crash_at_start;
  auto x = pool.submit(hold_idempotent(1, log, x_gate)); // worker 0
  std::vector<weave::future<int32_t>> gated;
  for (uint64_t t = 100; t < 117; ++t)
    gated.push_back(pool.submit(hold(t, log, gate)));
  // Worker 0: X and 8 gated jobs; worker 1: 9 gated jobs.
  REQUIRE(eventually([&] { return lines_in(log) == 2; }));
  auto survivor = pool.worker_pids().at(1);
  touch(crash); // worker 0's replacement exits at start
  REQUIRE(::kill(pool.worker_pids().at(0), SIGKILL) == 0);
  REQUIRE(eventually([&] {
    auto st = pool.stats();
    return st.retried == 1 && st.queued == 0 && st.in_flight == 10;
  }));
  touch(x_gate);
  auto f1 = pool.submit(hold(2, log, std::string{}));
  auto f2 = pool.submit(hold(3, log, std::string{}));
  auto q = pool.submit(hold(4, log, std::string{}));
  REQUIRE(eventually([&] {
    auto st = pool.stats();
    return st.queued == 1 && st.in_flight == 12;
  }));
  CHECK(f1.cancel());
  touch(gate);
  CHECK(x.get() == survivor);
  CHECK(f2.get() == survivor);
  CHECK(q.get() == survivor);
  for (auto& f : gated)
    f.wait();
  std::remove(crash.c_str());
  auto order = tags_in_order(log);
  CHECK(last_start(order, 1) < last_start(order, 4));
  CHECK(last_start(order, 3) < last_start(order, 4));
  CHECK(std::count(order.begin(), order.end(), 2) == 0);
}

TEST_CASE("a shutdown right after jobs were sent to a busy worker "
          "answers every one of them, and no job runs twice") {
  // The worker's one thread is held, so each round's jobs wait there (or
  // on their way); the pool shuts down right away: each job is answered
  // once, and none of them runs.
  weave::runtime rt{pool_config()};
  for (int round = 0; round < 3; ++round) {
    auto opts = pool_options(1);
    opts.capacity = 32;
    opts.name = "coalesce" + std::to_string(round);
    weave::process_pool pool{rt, opts};
    auto dir = scratch_dir();
    auto log = dir + "/log";
    auto held = pool.submit(hold(0, log, dir + "/gate"));
    REQUIRE(eventually([&] { return lines_in(log) == 1; }));
    std::vector<weave::future<int32_t>> queued;
    for (uint64_t tag = 1; tag <= 10; ++tag)
      queued.push_back(pool.submit(hold(tag, log, std::string{})));
    auto report = pool.shutdown(300ms);
    CHECK(held.wait_for(patience));
    size_t answered = 0;
    for (auto& f : queued) {
      REQUIRE(f.wait_for(patience));
      auto r = f.get_result();
      if (!r) {
        CHECK((weave::is(r.error(), weave::errc::shut_down)
               || weave::is(r.error(), weave::errc::worker_lost)));
        ++answered;
      }
    }
    // The held job never ended, so no queued job ran (its thread was
    // taken), and every one was answered with an error.
    CHECK(answered == queued.size());
    CHECK(executions(log).size() == 1);
    auto st = pool.stats();
    CHECK(st.queued == 0);
    CHECK(st.in_flight == 0);
  }
}

TEST_CASE("a batch in another layout is refused, not misread") {
  // A worker program built with another weave version: the pool refuses
  // it at join (protocol_line), and either end refuses a batch with bytes
  // left over instead of reading garbage ids.
  std::vector<weave::internal::run_item> now{{1, "a", {}, true},
                                             {2, "b", {}, false}};
  auto bytes = weave::internal::encode_batch(now);
  std::vector<weave::internal::run_item> back;
  REQUIRE(weave::internal::decode_batch(bytes, back));
  REQUIRE(back.size() == 2);
  CHECK(back[0].granted);
  CHECK_FALSE(back[1].granted);
  std::vector<uint64_t> ids{1, 2};
  auto id_bytes = weave::internal::encode_batch(ids);
  id_bytes.push_back(0);
  CHECK_FALSE(weave::internal::decode_batch(id_bytes, ids));
}
