// caf_raw: the same measures written by hand with CAF 0.17.6, the way a CAF
// user would without weave: request to a detached actor, actor_pool of
// detached workers, anon_send into an (unbounded) mailbox, scoped_actor
// request, default scheduler settings.
#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "bench/caf_raw_remote.hpp"
#include "caf/all.hpp"

using namespace std::chrono_literals;

namespace {

using namespace bench::sizes;

using done_atom = caf::atom_constant<caf::atom("done")>;

/// A detached worker: the CAF way to run a blocking call off the scheduler.
caf::behavior blocking_worker(caf::event_based_actor*) {
  return {[](int x) { return x; }};
}

caf::behavior sleeper_worker(caf::event_based_actor*) {
  return {[](int x) {
    std::this_thread::sleep_for(1ms);
    return x;
  }};
}

/// A pool of detached workers behind one handle (CAF's actor_pool).
caf::actor make_pool(caf::actor_system& sys, size_t n,
                     caf::behavior (*fun)(caf::event_based_actor*)) {
  auto factory = [&sys, fun] { return sys.spawn<caf::detached>(fun); };
  return caf::actor_pool::make(sys.dummy_execution_unit(), n, factory,
                               caf::actor_pool::round_robin());
}

void offload_rtt(caf::actor_system& sys, bench::report& out) {
  auto worker = sys.spawn<caf::detached>(blocking_worker);
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  caf::scoped_actor self{sys};
  auto driver = sys.spawn([&h, worker](caf::event_based_actor* s) {
    auto i = std::make_shared<int>(0);
    auto t0 = std::make_shared<bench::clock::time_point>();
    auto step = std::make_shared<std::function<void()>>();
    *step = [=, &h]() {
      *t0 = bench::clock::now();
      s->request(worker, caf::infinite, 1).then([=, &h](int) {
        if (*i >= rtt_warmup)
          h.add(bench::clock::now() - *t0);
        if (++*i == rtt_warmup + rtt_samples) {
          *step = nullptr;
          s->quit();
          return;
        }
        (*step)();
      });
    };
    (*step)();
  });
  self->wait_for(driver);
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  out.set("offload_rtt", "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
  out.set("offload_rtt", "p50_us", h.percentile_us(50));
  out.set("offload_rtt", "p99_us", h.percentile_us(99));
}

void offload_throughput(caf::actor_system& sys, bench::report& out) {
  auto pool = make_pool(sys, std::min<size_t>(32, std::thread::hardware_concurrency() + 4),
                        blocking_worker);
  caf::scoped_actor self{sys};
  bench::cpu_meter cpu;
  double rate = 0;
  auto driver = sys.spawn([pool, &rate](caf::event_based_actor* s) {
    auto issued = std::make_shared<int>(0);
    auto finished = std::make_shared<int>(0);
    auto t0 = bench::clock::now();
    auto issue = std::make_shared<std::function<void()>>();
    *issue = [=, &rate]() {
      ++*issued;
      s->request(pool, caf::infinite, 1).then([=, &rate](int) {
        if (++*finished == throughput_ops) {
          rate = throughput_ops / bench::seconds_since(t0);
          *issue = nullptr;
          s->quit();
        } else if (*issued < throughput_ops) {
          (*issue)();
        }
      });
    };
    for (int k = 0; k < throughput_in_flight; ++k)
      (*issue)();
  });
  self->wait_for(driver);
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  out.set("offload_throughput", "ops_per_s", rate);
  out.set("offload_throughput", "cpu_us_per_op", cpu.us_per_op(throughput_ops));
}

double thread_to_actor_run(caf::actor_system& sys, int producers) {
  caf::scoped_actor self{sys};
  long per = channel_items / producers;
  long total = per * producers;
  auto consumer = sys.spawn([total](caf::event_based_actor* s) -> caf::behavior {
    auto seen = std::make_shared<long>(0);
    return {[=](long) {
      if (++*seen == total)
        s->quit();
    }};
  });
  auto t0 = bench::clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([consumer, per] {
      for (long i = 0; i < per; ++i)
        caf::anon_send(consumer, i);
    });
  for (auto& t : threads)
    t.join();
  self->wait_for(consumer);
  return total / bench::seconds_since(t0);
}

void actor_to_thread(caf::actor_system& sys, bench::report& out) {
  // The consumer is a plain thread: in CAF that is a scoped_actor's mailbox.
  caf::scoped_actor self{sys};
  caf::actor sink = self;
  bench::cpu_meter cpu;
  auto t0 = bench::clock::now();
  sys.spawn([sink](caf::event_based_actor* s) {
    for (long i = 0; i < channel_items; ++i)
      s->send(sink, i);
  });
  long n = 0;
  self->receive_for(n, channel_items)([](long) {});
  out.set("actor_to_thread", "items_per_s", n / bench::seconds_since(t0));
  out.set("actor_to_thread", "cpu_us_per_op", cpu.us_per_op(n));
}

void submit_rtt(caf::actor_system& sys, bench::report& out) {
  auto loop = sys.spawn<caf::detached>(
    []() -> caf::behavior { return {[](int x) { return x; }}; });
  caf::scoped_actor self{sys};
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  for (int i = 0; i < rtt_warmup + rtt_samples; ++i) {
    auto t0 = bench::clock::now();
    self->request(loop, caf::infinite, i).receive([](int) {}, [](caf::error&) {});
    if (i >= rtt_warmup)
      h.add(bench::clock::now() - t0);
  }
  caf::anon_send_exit(loop, caf::exit_reason::user_shutdown);
  out.set("submit_rtt", "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
  out.set("submit_rtt", "p50_us", h.percentile_us(50));
  out.set("submit_rtt", "p99_us", h.percentile_us(99));
}

void many_sleepers(caf::actor_system& sys, bench::report& out) {
  auto pool = make_pool(sys, sleeper_pool, sleeper_worker);
  caf::scoped_actor self{sys};
  // Warm-up round: every worker once.
  for (size_t i = 0; i < sleeper_pool; ++i)
    self->request(pool, caf::infinite, 1).receive([](int) {}, [](caf::error&) {});
  bench::cpu_meter cpu;
  auto t0 = bench::clock::now();
  for (int i = 0; i < sleepers; ++i)
    self->send(pool, i);
  int n = 0;
  self->receive_for(n, sleepers)([](int) {});
  auto ideal = sleepers / double(sleeper_pool) * 1e-3;
  out.set("many_sleepers", "wall_over_ideal", bench::seconds_since(t0) / ideal);
  out.set("many_sleepers", "cpu_us_per_op", cpu.us_per_op(sleepers));
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
}

void idle_cpu(bench::report& out) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::this_thread::sleep_for(200ms);
  auto c0 = bench::cpu_seconds();
  auto t0 = bench::clock::now();
  std::this_thread::sleep_for(idle_period);
  out.set("idle_cpu", "cpu_percent",
          (bench::cpu_seconds() - c0) / bench::seconds_since(t0) * 100);
}

void memory_per_job(caf::actor_system& sys, bench::report& out) {
  std::atomic<bool> release{false};
  auto worker = sys.spawn<caf::detached>([&release]() -> caf::behavior {
    return {[&release](int x) {
      while (!release.load())
        std::this_thread::sleep_for(1ms);
      return x;
    }};
  });
  size_t measured = 0;
  caf::scoped_actor self{sys};
  auto before = bench::heap_in_use();
  auto driver = sys.spawn([&, worker](caf::event_based_actor* s) {
    for (int i = 0; i < queued_jobs; ++i)
      s->request(worker, caf::infinite, i).then([](int) {});
    measured = bench::heap_in_use() - before;
    s->quit();
  });
  self->wait_for(driver);
  release = true;
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  out.set("memory_per_job", "bytes", double(measured) / queued_jobs);
}


// -- scaling measures (see bench_util.hpp) ------------------------------------

/// One actor sends a CPU-bound task to each of N actors, on a system of T
/// scheduler threads, CAF's defaults otherwise; seconds until all finished.
double fanout_run(int argc, char** argv, size_t threads) {
  caf::actor_system_config cfg;
  cfg.parse(argc, argv);
  cfg.set("scheduler.max-threads", threads);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::atomic<int> left{fanout_tasks};
  std::promise<void> done;
  std::vector<caf::actor> tasks;
  for (int i = 0; i < fanout_tasks; ++i) {
    tasks.push_back(sys.spawn([&]() -> caf::behavior {
      return {[&](int) {
                bench::burn_cpu(fanout_task_cpu_s);
                if (--left == 0)
                  done.set_value();
              },
              [](const std::string& ping) { return ping; }};
    }));
    self->request(tasks.back(), caf::infinite, std::string{"ping"})
      .receive([](const std::string&) {}, [](caf::error&) {});
  }
  auto fanout = sys.spawn([tasks](caf::event_based_actor* a) {
    a->become([a, tasks](int x) {
      for (auto& t : tasks)
        a->send(t, x);
    });
  });
  auto t0 = bench::clock::now();
  caf::anon_send(fanout, 1);
  done.get_future().get();
  auto wall = bench::seconds_since(t0);
  for (auto& t : tasks)
    caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(fanout, caf::exit_reason::user_shutdown);
  return wall;
}

void fanout(int argc, char** argv, bench::report& out) {
  double base = 0;
  for (auto t : bench::thread_counts()) {
    bench::cpu_meter cpu;
    auto wall = fanout_run(argc, argv, t);
    if (t == 1)
      base = wall;
    out.set_at("fanout", "wall_ms", t, wall * 1e3);
    out.set_at("fanout", "cpu_us_per_op", t, cpu.us_per_op(fanout_tasks));
    if (base > 0)
      out.set_at("fanout", "speedup", t, base / wall);
  }
}

/// T actors each keep 64 requests in flight to an actor_pool of T detached
/// workers.
void offload_fanin(caf::actor_system& sys, bench::report& out) {
  for (auto t : bench::thread_counts()) {
    auto pool = make_pool(sys, t, blocking_worker);
    int per_actor = fanin_ops / static_cast<int>(t);
    std::atomic<size_t> left{t};
    std::promise<void> done;
    bench::cpu_meter cpu;
    auto t0 = bench::clock::now();
    for (size_t a = 0; a < t; ++a)
      sys.spawn([pool, per_actor, &left, &done](caf::event_based_actor* s) {
        auto issued = std::make_shared<int>(0);
        auto finished = std::make_shared<int>(0);
        auto issue = std::make_shared<std::function<void()>>();
        *issue = [=, &left, &done]() {
          ++*issued;
          s->request(pool, caf::infinite, 1).then([=, &left, &done](int) {
            if (++*finished == per_actor) {
              *issue = nullptr;
              if (--left == 0)
                done.set_value();
              s->quit();
            } else if (*issued < per_actor) {
              (*issue)();
            }
          });
        };
        for (int k = 0; k < throughput_in_flight; ++k)
          (*issue)();
      });
    done.get_future().get();
    auto ops = double(per_actor) * t;
    out.set_at("offload_fanin", "ops_per_s", t, ops / bench::seconds_since(t0));
    out.set_at("offload_fanin", "cpu_us_per_op", t, cpu.us_per_op(ops));
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  }
}

/// T plain threads each doing a blocking request (scoped_actor) to an
/// actor_pool of T detached workers.
void submit_mt(caf::actor_system& sys, bench::report& out) {
  for (auto t : bench::thread_counts()) {
    auto pool = make_pool(sys, t, blocking_worker);
    int per = submit_mt_ops / static_cast<int>(t);
    bench::cpu_meter cpu;
    auto t0 = bench::clock::now();
    std::vector<std::thread> ts;
    for (size_t k = 0; k < t; ++k)
      ts.emplace_back([&sys, pool, per] {
        caf::scoped_actor self{sys};
        for (int i = 0; i < per; ++i)
          self->request(pool, caf::infinite, i)
            .receive([](int) {}, [](caf::error&) {});
      });
    for (auto& th : ts)
      th.join();
    auto ops = double(per) * t;
    out.set_at("submit_mt", "ops_per_s", t, ops / bench::seconds_since(t0));
    out.set_at("submit_mt", "cpu_us_per_op", t, cpu.us_per_op(ops));
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  }
}

} // namespace

int main(int argc, char** argv) {
  bench::report out{"caf_raw"};
  auto remote_rtt = bench::wanted(argc, argv, "remote_rtt");
  auto remote_throughput = bench::wanted(argc, argv, "remote_throughput");
  if (remote_rtt || remote_throughput) {
    // Forked first, while this process has one thread.
    bench::remote_workers_handle workers{bench::sizes::remote_workers};
    bench::caf_raw_remote(workers, remote_rtt, remote_throughput, out);
  }
  {
    caf::actor_system_config cfg;
    // CAF options on the command line (bench/callgrind turns polling off);
    // other arguments select benchmark ids.
    if (auto err = cfg.parse(argc, argv)) {
      std::fprintf(stderr, "%s\n", caf::to_string(err).c_str());
      return 1;
    }
    caf::actor_system sys{cfg};
    if (bench::wanted(argc, argv, "offload_rtt"))
      offload_rtt(sys, out);
    if (bench::wanted(argc, argv, "offload_throughput"))
      offload_throughput(sys, out);
    for (auto [id, producers] : {std::pair{"thread_to_actor", 1},
                                 std::pair{"thread_to_actor_4p", 4}}) {
      if (!bench::wanted(argc, argv, id))
        continue;
      bench::cpu_meter cpu;
      out.set(id, "items_per_s", thread_to_actor_run(sys, producers));
      out.set(id, "cpu_us_per_op", cpu.us_per_op(channel_items));
    }
    if (bench::wanted(argc, argv, "actor_to_thread"))
      actor_to_thread(sys, out);
    if (bench::wanted(argc, argv, "submit_rtt"))
      submit_rtt(sys, out);
    if (bench::wanted(argc, argv, "many_sleepers"))
      many_sleepers(sys, out);
    if (bench::wanted(argc, argv, "memory_per_job"))
      memory_per_job(sys, out);
    if (bench::wanted(argc, argv, "offload_fanin"))
      offload_fanin(sys, out);
    if (bench::wanted(argc, argv, "submit_mt"))
      submit_mt(sys, out);
  }
  if (bench::wanted(argc, argv, "fanout"))
    fanout(argc, argv, out);
  if (bench::wanted(argc, argv, "idle_cpu"))
    idle_cpu(out);
  out.print();
  return 0;
}
