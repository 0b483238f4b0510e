// Seeing inside a running program: a small mixed workload — a pool with
// some failing jobs, a channel whose consumer is slower than its producer,
// a loop — then `rt.metrics()` printed as Prometheus text (what a /metrics
// endpoint would serve). Every line of work says which thread ran it.
// (No tutorial section: this is what asyncio's debug mode and Tokio's
// runtime metrics answer — which pool is saturated, how deep a channel is,
// which loop lags.)
#include <chrono>
#include <future>
#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "examples/example.hpp"
#include "runtime/prometheus.hpp"

namespace weave_examples {

void metrics_example(weave::runtime& rt, const options& opts) {
  {
    std::lock_guard<std::mutex> guard{print_mutex()};
    std::cout << "\n== metrics: a pool, a channel, a loop, then rt.metrics() =="
              << std::endl;
  }
  constexpr int jobs = 10;
  constexpr int failing_every = 4; // jobs 0, 4 and 8 throw
  constexpr size_t capacity = 4;
  constexpr int items = 12;
  constexpr int ticks = 5;

  // A pool of two workers; every fourth job throws.
  weave::blocking_pool io{rt, 2, "io"};
  std::vector<weave::future<int>> results;
  for (int i = 0; i < jobs; ++i)
    results.push_back(io.submit([i, &opts] {
      std::this_thread::sleep_for(opts.scaled(std::chrono::milliseconds{50}));
      if (i % failing_every == 0) {
        say("job ", i, " fails");
        throw std::runtime_error{"job " + std::to_string(i) + " failed"};
      }
      say("job ", i, " done");
      return i;
    }));

  // A channel between a fast producer and a slow consumer thread: filled
  // before the consumer starts, then the producer blocks while it is full.
  weave::channel<int> events{rt, "events", capacity};
  for (size_t i = 0; i < capacity; ++i)
    events.put(static_cast<int>(i));
  std::thread consumer{[events, &opts]() mutable {
    weave::set_this_thread_name("slow-consumer");
    int got = 0;
    while (events.get().status == weave::channel_status::ok) {
      ++got;
      std::this_thread::sleep_for(opts.scaled(std::chrono::milliseconds{20}));
    }
    say("consumed ", got, " events");
  }};
  for (int i = static_cast<int>(capacity); i < items; ++i)
    events.put(i);
  say("produced ", items, " events");

  // A loop on its own thread, fed from this one.
  weave::loop ticker{rt, "ticker"};
  for (int i = 0; i < ticks; ++i)
    ticker.post([i] { say("tick ", i); });
  ticker.submit([] { return 0; }).get();

  int failed = 0;
  for (auto& r : results)
    if (!r.get_result())
      ++failed;
  say(jobs - failed, " jobs done, ", failed, " failed");
  events.close();
  consumer.join();

  auto snapshot = rt.metrics();
  for (auto& p : snapshot.pools)
    if (p.name == "io")
      say("pool io: completed=", p.completed, " failed=", p.failed,
          " queue-wait p50 <= ", p.queue_wait.quantile_bound_ns(0.5) / 1000,
          " us");
  for (auto& c : snapshot.channels)
    say("channel ", c.name, ": puts=", c.puts, " gets=", c.gets,
        " high-water=", c.high_water, " (capacity ", c.capacity, ")");
  for (auto& l : snapshot.loops)
    say("loop ", l.name, ": tasks run=", l.lag.count());
  {
    std::lock_guard<std::mutex> guard{print_mutex()};
    std::cout << "--- Prometheus text ---\n"
              << weave::to_prometheus(snapshot) << "--- end ---"
              << std::endl;
  }
  // What every weave thread is doing: a labelled job, held until the dump
  // has been taken, shows by name on its worker with how long it has run.
  std::promise<void> started;
  std::promise<void> release;
  auto released = release.get_future().share();
  auto held = io.submit(weave::labeled("resize image", [&started, released] {
    started.set_value();
    released.wait();
  }));
  started.get_future().wait();
  auto dump = rt.dump();
  {
    std::lock_guard<std::mutex> guard{print_mutex()};
    std::cout << "--- rt.dump() ---\n" << dump.to_string() << "--- end ---"
              << std::endl;
  }
  release.set_value();
  held.get();
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::metrics_example)
