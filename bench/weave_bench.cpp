// weave's side of the benchmarks (see bench/run and README "Benchmarks").
#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "bench/weave_remote.hpp"
#include "bench/weave_scaling.hpp"
#include "bench/weave_tcp.hpp"
#include "caf/all.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"

using namespace std::chrono_literals;

namespace {

using namespace bench::sizes;
size_t actor_credit = 1024; // WEAVE_BENCH_CREDIT overrides, for ablations

/// `job` is `[] {}`, or `[](weave::stop_token) {}` for the `_token` ids (a
/// job that can be stopped while it runs costs its stop state).
template <class Job>
void offload_rtt(weave::runtime& rt, bench::report& out, const char* id,
                 Job job) {
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  weave::promise<void> done;
  rt.system().spawn([&h, done, job](caf::event_based_actor* self) mutable {
    auto i = std::make_shared<int>(0);
    auto t0 = std::make_shared<bench::clock::time_point>();
    auto step = std::make_shared<std::function<void()>>();
    *step = [=, &h]() mutable {
      *t0 = bench::clock::now();
      weave::offload(self, job).then([=, &h]() mutable {
        if (*i >= rtt_warmup)
          h.add(bench::clock::now() - *t0);
        if (++*i == rtt_warmup + rtt_samples) {
          *step = nullptr;
          done.set_value();
          self->quit();
          return;
        }
        (*step)();
      });
    };
    (*step)();
  });
  done.get_future().get();
  out.set(id, "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
  out.set(id, "p50_us", h.percentile_us(50));
  out.set(id, "p99_us", h.percentile_us(99));
}

template <class Job>
void offload_throughput(weave::runtime& rt, bench::report& out, const char* id,
                        Job job) {
  bench::cpu_meter cpu;
  weave::promise<double> done;
  rt.system().spawn([done, job](caf::event_based_actor* self) mutable {
    auto issued = std::make_shared<int>(0);
    auto finished = std::make_shared<int>(0);
    auto t0 = bench::clock::now();
    auto issue = std::make_shared<std::function<void()>>();
    *issue = [=]() mutable {
      ++*issued;
      weave::offload(self, job).then([=]() mutable {
        if (++*finished == throughput_ops) {
          done.set_value(throughput_ops / bench::seconds_since(t0));
          *issue = nullptr;
          self->quit();
        } else if (*issued < throughput_ops) {
          (*issue)();
        }
      });
    };
    for (int k = 0; k < throughput_in_flight; ++k)
      (*issue)();
  });
  out.set(id, "ops_per_s", done.get_future().get());
  out.set(id, "cpu_us_per_op", cpu.us_per_op(throughput_ops));
}

double thread_to_actor_run(weave::runtime& rt, int producers) {
  weave::channel<long> ch{rt, channel_capacity};
  weave::promise<long> done;
  rt.system().spawn([ch, done](caf::event_based_actor* self) mutable {
    ch.subscribe(self, actor_credit);
    auto sum = std::make_shared<long>(0);
    self->become(
      [sum](weave::channel_batch<long>& b) {
        for (auto x : b.items())
          *sum += x;
      },
      [=](weave::channel_closed&) mutable {
        done.set_value(*sum);
        self->quit();
      });
  });
  auto t0 = bench::clock::now();
  std::vector<std::thread> threads;
  long per = channel_items / producers;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&ch, per] {
      for (long i = 0; i < per; ++i)
        ch.put(i);
    });
  for (auto& t : threads)
    t.join();
  ch.close();
  done.get_future().get();
  return (per * producers) / bench::seconds_since(t0);
}

void actor_to_thread(weave::runtime& rt, bench::report& out) {
  bench::cpu_meter cpu;
  weave::channel<long> ch{rt, channel_capacity};
  rt.system().spawn([ch](caf::event_based_actor* self) mutable {
    auto next = std::make_shared<long>(0);
    auto pump = [=]() mutable {
      while (*next < channel_items) {
        if (ch.offer(self, *next) == weave::channel_status::full)
          return;
        ++*next;
      }
      ch.close();
      self->quit();
    };
    self->become([pump](weave::channel_writable&) mutable { pump(); });
    pump();
  });
  auto t0 = bench::clock::now();
  long n = 0;
  while (auto r = ch.get())
    ++n;
  out.set("actor_to_thread", "items_per_s", n / bench::seconds_since(t0));
  out.set("actor_to_thread", "cpu_us_per_op", cpu.us_per_op(n));
}

void submit_rtt(weave::runtime& rt, bench::report& out) {
  weave::loop lp{rt, "bench-loop"};
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  for (int i = 0; i < rtt_warmup + rtt_samples; ++i) {
    auto t0 = bench::clock::now();
    lp.submit([] { return 1; }).get();
    if (i >= rtt_warmup)
      h.add(bench::clock::now() - t0);
  }
  out.set("submit_rtt", "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
  out.set("submit_rtt", "p50_us", h.percentile_us(50));
  out.set("submit_rtt", "p99_us", h.percentile_us(99));
}

void many_sleepers(weave::runtime& rt, bench::report& out) {
  weave::blocking_pool pool{rt, sleeper_pool, "sleepers"};
  // Warm the pool up: start all its threads first.
  std::vector<weave::future<void>> warm;
  for (size_t i = 0; i < sleeper_pool; ++i)
    warm.push_back(pool.submit([] { std::this_thread::sleep_for(1ms); }));
  for (auto& f : warm)
    f.get();
  bench::cpu_meter cpu;
  auto t0 = bench::clock::now();
  std::vector<weave::future<void>> fs;
  fs.reserve(sleepers);
  for (int i = 0; i < sleepers; ++i)
    fs.push_back(pool.submit([] { std::this_thread::sleep_for(1ms); }));
  for (auto& f : fs)
    f.get();
  auto ideal = sleepers / double(sleeper_pool) * 1e-3;
  out.set("many_sleepers", "wall_over_ideal", bench::seconds_since(t0) / ideal);
  out.set("many_sleepers", "cpu_us_per_op", cpu.us_per_op(sleepers));
}

void idle_cpu(bench::report& out) {
  weave::runtime rt;
  std::this_thread::sleep_for(200ms); // let start-up settle
  auto c0 = bench::cpu_seconds();
  auto t0 = bench::clock::now();
  std::this_thread::sleep_for(idle_period);
  auto pct = (bench::cpu_seconds() - c0) / bench::seconds_since(t0) * 100;
  out.set("idle_cpu", "cpu_percent", pct);
}

void memory_per_job(weave::runtime& rt, bench::report& out) {
  caf::scoped_actor self{rt.system()};
  weave::blocking_pool pool{rt, 1, "memory"};
  weave::promise<void> gate;
  auto gate_future = gate.get_future();
  auto blocker = pool.submit([gate_future]() mutable { gate_future.wait(); });
  auto before = bench::heap_in_use();
  // Offloads from an actor: the job plus CAF's bookkeeping for its response.
  weave::promise<size_t> measured;
  rt.system().spawn([&pool, measured, before](caf::event_based_actor* s) mutable {
    for (int i = 0; i < queued_jobs; ++i)
      weave::offload(s, pool, [] {}).then([] {});
    measured.set_value(bench::heap_in_use() - before);
    s->quit();
  });
  auto bytes = measured.get_future().get();
  gate.set_value();
  blocker.get();
  out.set("memory_per_job", "bytes", double(bytes) / queued_jobs);
}

} // namespace

int main(int argc, char** argv) {
  // The remote measures' worker processes run this program.
  WEAVE_PROCESS_WORKER_MAIN(argc, argv);
  bench::report out{"weave"};
  if (auto credit = std::getenv("WEAVE_BENCH_CREDIT"))
    actor_credit = std::strtoul(credit, nullptr, 10);
  {
    // CAF and weave options on the command line (e.g. --weave.spin=0us)
    // allow ablations of weave's defaults; other arguments select ids.
    weave::runtime rt{argc, argv};
    auto plain = [] {};
    auto with_token = [](weave::stop_token) {};
    if (bench::wanted(argc, argv, "offload_rtt"))
      offload_rtt(rt, out, "offload_rtt", plain);
    if (bench::wanted(argc, argv, "offload_rtt_token"))
      offload_rtt(rt, out, "offload_rtt_token", with_token);
    if (bench::wanted(argc, argv, "offload_throughput"))
      offload_throughput(rt, out, "offload_throughput", plain);
    if (bench::wanted(argc, argv, "offload_throughput_token"))
      offload_throughput(rt, out, "offload_throughput_token", with_token);
    for (auto [id, producers] : {std::pair{"thread_to_actor", 1},
                                 std::pair{"thread_to_actor_4p", 4}}) {
      if (!bench::wanted(argc, argv, id))
        continue;
      bench::cpu_meter cpu;
      out.set(id, "items_per_s", thread_to_actor_run(rt, producers));
      out.set(id, "cpu_us_per_op", cpu.us_per_op(channel_items));
    }
    if (bench::wanted(argc, argv, "actor_to_thread"))
      actor_to_thread(rt, out);
    if (bench::wanted(argc, argv, "submit_rtt"))
      submit_rtt(rt, out);
    if (bench::wanted(argc, argv, "many_sleepers"))
      many_sleepers(rt, out);
    if (bench::wanted(argc, argv, "memory_per_job"))
      memory_per_job(rt, out);
    if (bench::wanted(argc, argv, "offload_fanin"))
      bench::weave_offload_fanin(rt, out);
    if (bench::wanted(argc, argv, "submit_mt"))
      bench::weave_submit_mt(rt, out);
    if (bench::wanted(argc, argv, "channel_mpmc"))
      bench::weave_channel_mpmc(rt, out);
    bench::weave_tcp(rt, bench::wanted(argc, argv, "tcp_echo_rtt"),
                     bench::wanted(argc, argv, "tcp_throughput"), out);
    bench::weave_tcp_request(
      rt, bench::wanted(argc, argv, "tcp_echo_rtt_request"),
      bench::wanted(argc, argv, "tcp_throughput_request"), out);
  }
  // Its own runtime, with the middleman.
  auto remote_rtt = bench::wanted(argc, argv, "remote_rtt");
  auto remote_throughput = bench::wanted(argc, argv, "remote_throughput");
  if (remote_rtt || remote_throughput)
    bench::weave_remote(remote_rtt, remote_throughput, out);
  // Its own runtimes, one per thread count.
  if (bench::wanted(argc, argv, "fanout"))
    bench::weave_fanout(argc, argv, out);
  if (bench::wanted(argc, argv, "idle_cpu"))
    idle_cpu(out);
  out.print();
  return 0;
}
