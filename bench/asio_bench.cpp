// asio: Boost.Asio 1.81 the way its users would write these patterns: an
// io_context on its own thread as the event loop, a thread_pool for blocking
// calls, post() both ways, use_future for plain threads. Asio 1.81 has no
// bounded channel usable without C++20 coroutines, so the channel measures
// are not run for it.
#include <atomic>
#include <boost/asio.hpp>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using namespace bench::sizes;

size_t default_pool() {
  return std::min<size_t>(32, std::thread::hardware_concurrency() + 4);
}

/// An io_context running on a thread of its own.
struct event_loop {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard{
    ioc.get_executor()};
  std::thread thread{[this] { ioc.run(); }};

  ~event_loop() {
    guard.reset();
    ioc.stop();
    thread.join();
  }
};

void offload_rtt(bench::report& out) {
  event_loop loop;
  asio::thread_pool pool{default_pool()};
  bench::histogram h;
  h.reserve(rtt_samples);
  std::promise<void> done;
  int i = 0;
  bench::clock::time_point t0;
  std::function<void()> step = [&] {
    t0 = bench::clock::now();
    asio::post(pool, [&] {
      asio::post(loop.ioc, [&] {
        if (i >= rtt_warmup)
          h.add(bench::clock::now() - t0);
        if (++i == rtt_warmup + rtt_samples)
          done.set_value();
        else
          step();
      });
    });
  };
  asio::post(loop.ioc, step);
  done.get_future().get();
  pool.join();
  out.set("offload_rtt", "p50_us", h.percentile_us(50));
  out.set("offload_rtt", "p99_us", h.percentile_us(99));
}

void offload_throughput(bench::report& out) {
  event_loop loop;
  asio::thread_pool pool{default_pool()};
  std::promise<void> done;
  int issued = 0, finished = 0;
  std::function<void()> issue = [&] {
    ++issued;
    asio::post(pool, [&] {
      asio::post(loop.ioc, [&] {
        if (++finished == throughput_ops)
          done.set_value();
        else if (issued < throughput_ops)
          issue();
      });
    });
  };
  auto t0 = bench::clock::now();
  asio::post(loop.ioc, [&] {
    for (int k = 0; k < throughput_in_flight; ++k)
      issue();
  });
  done.get_future().get();
  out.set("offload_throughput", "ops_per_s",
          throughput_ops / bench::seconds_since(t0));
  pool.join();
}

void submit_rtt(bench::report& out) {
  event_loop loop;
  bench::histogram h;
  h.reserve(rtt_samples);
  for (int i = 0; i < rtt_warmup + rtt_samples; ++i) {
    auto t0 = bench::clock::now();
    asio::post(loop.ioc, asio::use_future([] { return 1; })).get();
    if (i >= rtt_warmup)
      h.add(bench::clock::now() - t0);
  }
  out.set("submit_rtt", "p50_us", h.percentile_us(50));
  out.set("submit_rtt", "p99_us", h.percentile_us(99));
}

void many_sleepers(bench::report& out) {
  asio::thread_pool pool{sleeper_pool};
  std::vector<std::future<void>> warm;
  for (size_t i = 0; i < sleeper_pool; ++i)
    warm.push_back(asio::post(pool, asio::use_future(
                                      [] { std::this_thread::sleep_for(1ms); })));
  for (auto& f : warm)
    f.get();
  auto t0 = bench::clock::now();
  std::vector<std::future<void>> fs;
  fs.reserve(sleepers);
  for (int i = 0; i < sleepers; ++i)
    fs.push_back(asio::post(pool, asio::use_future(
                                    [] { std::this_thread::sleep_for(1ms); })));
  for (auto& f : fs)
    f.get();
  auto ideal = sleepers / double(sleeper_pool) * 1e-3;
  out.set("many_sleepers", "wall_over_ideal", bench::seconds_since(t0) / ideal);
  pool.join();
}

void idle_cpu(bench::report& out) {
  event_loop loop;
  asio::thread_pool pool{default_pool()};
  std::this_thread::sleep_for(200ms);
  auto c0 = bench::cpu_seconds();
  auto t0 = bench::clock::now();
  std::this_thread::sleep_for(idle_period);
  out.set("idle_cpu", "cpu_percent",
          (bench::cpu_seconds() - c0) / bench::seconds_since(t0) * 100);
  pool.join();
}

void memory_per_job(bench::report& out) {
  event_loop loop;
  asio::thread_pool pool{1};
  std::promise<void> gate;
  auto gate_future = gate.get_future().share();
  asio::post(pool, [gate_future] { gate_future.wait(); });
  std::promise<size_t> measured;
  asio::post(loop.ioc, [&] {
    auto before = bench::heap_in_use();
    for (int i = 0; i < queued_jobs; ++i)
      asio::post(pool, [&loop] { asio::post(loop.ioc, [] {}); });
    measured.set_value(bench::heap_in_use() - before);
  });
  auto bytes = measured.get_future().get();
  gate.set_value();
  pool.join();
  out.set("memory_per_job", "bytes", double(bytes) / queued_jobs);
}

} // namespace

int main(int argc, char** argv) {
  bench::report out{"asio"};
  if (bench::wanted(argc, argv, "offload_rtt"))
    offload_rtt(out);
  if (bench::wanted(argc, argv, "offload_throughput"))
    offload_throughput(out);
  if (bench::wanted(argc, argv, "submit_rtt"))
    submit_rtt(out);
  if (bench::wanted(argc, argv, "many_sleepers"))
    many_sleepers(out);
  if (bench::wanted(argc, argv, "memory_per_job"))
    memory_per_job(out);
  if (bench::wanted(argc, argv, "idle_cpu"))
    idle_cpu(out);
  out.print();
  return 0;
}
