// weave's scaling measures (see bench_util.hpp): each runs at every thread
// count T of bench::thread_counts().
#include "bench/weave_scaling.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"

using namespace bench::sizes;

namespace {

/// Counts down; the last one fulfils the promise.
struct countdown {
  explicit countdown(long n) : left(n) {
  }
  std::atomic<long> left;
  weave::promise<void> done;
  void hit(long n = 1) {
    if (left.fetch_sub(n) == n)
      done.set_value();
  }
};

/// One actor sends one message to each of `fanout_tasks` actors, each of
/// which burns `fanout_task_cpu_s` of CPU; seconds until all finished.
double fanout_run(int argc, char** argv, size_t threads) {
  weave::runtime_config cfg;
  if (auto err = cfg.parse(argc, argv))
    throw std::runtime_error(caf::to_string(err));
  cfg.set("scheduler.max-threads", threads);
  weave::runtime rt{std::move(cfg)};
  auto left = std::make_shared<countdown>(fanout_tasks);
  std::vector<caf::actor> tasks;
  caf::scoped_actor self{rt.system()};
  for (int i = 0; i < fanout_tasks; ++i) {
    tasks.push_back(rt.system().spawn([left]() -> caf::behavior {
      return {[left](int) {
                bench::burn_cpu(fanout_task_cpu_s);
                left->hit();
              },
              [](const std::string& ping) { return ping; }};
    }));
    // Started and idle: the fan-out's sends make it runnable.
    self->request(tasks.back(), caf::infinite, std::string{"ping"})
      .receive([](const std::string&) {}, [](caf::error&) {});
  }
  auto fanout = rt.system().spawn([tasks](caf::event_based_actor* a) {
    a->become([a, tasks](int x) {
      for (auto& t : tasks)
        a->send(t, x);
    });
  });
  auto t0 = bench::clock::now();
  caf::anon_send(fanout, 1);
  left->done.get_future().get();
  auto wall = bench::seconds_since(t0);
  for (auto& t : tasks)
    caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(fanout, caf::exit_reason::user_shutdown);
  return wall;
}

/// T actors each keep `throughput_in_flight` offloads in flight on one pool
/// of T workers; operations per second.
double fanin_run(weave::runtime& rt, size_t threads) {
  weave::blocking_pool pool{rt, threads, "fanin"};
  auto per_actor = fanin_ops / static_cast<int>(threads);
  auto left = std::make_shared<countdown>(static_cast<long>(threads));
  auto t0 = bench::clock::now();
  for (size_t a = 0; a < threads; ++a)
    rt.system().spawn([&pool, left, per_actor](caf::event_based_actor* self) {
      auto issued = std::make_shared<int>(0);
      auto finished = std::make_shared<int>(0);
      auto issue = std::make_shared<std::function<void()>>();
      *issue = [=, &pool]() {
        ++*issued;
        weave::offload(self, pool, [] {}).then([=]() {
          if (++*finished == per_actor) {
            *issue = nullptr;
            left->hit();
            self->quit();
          } else if (*issued < per_actor) {
            (*issue)();
          }
        });
      };
      for (int k = 0; k < throughput_in_flight && k < per_actor; ++k)
        (*issue)();
    });
  left->done.get_future().get();
  return per_actor * threads / bench::seconds_since(t0);
}

/// T plain threads each doing `pool.submit(fn).get()` on a pool of T
/// workers; operations per second.
double submit_mt_run(weave::runtime& rt, size_t threads) {
  weave::blocking_pool pool{rt, threads, "submit_mt"};
  auto per = submit_mt_ops / static_cast<int>(threads);
  auto t0 = bench::clock::now();
  std::vector<std::thread> ts;
  for (size_t t = 0; t < threads; ++t)
    ts.emplace_back([&pool, per] {
      for (int i = 0; i < per; ++i)
        pool.submit([] { return 1; }).get();
    });
  for (auto& t : ts)
    t.join();
  return per * threads / bench::seconds_since(t0);
}

/// T producer threads -> channel<long>(1024) -> T consumer threads.
double channel_mpmc_run(weave::runtime& rt, size_t threads) {
  weave::channel<long> ch{rt, channel_capacity};
  long per = mpmc_items / static_cast<long>(threads);
  std::atomic<long> received{0};
  auto t0 = bench::clock::now();
  std::vector<std::thread> consumers, producers;
  for (size_t t = 0; t < threads; ++t)
    consumers.emplace_back([&ch, &received] {
      long n = 0;
      while (auto r = ch.get())
        ++n;
      received += n;
    });
  for (size_t t = 0; t < threads; ++t)
    producers.emplace_back([&ch, per] {
      for (long i = 0; i < per; ++i)
        ch.put(i);
    });
  for (auto& t : producers)
    t.join();
  ch.close();
  for (auto& t : consumers)
    t.join();
  return received.load() / bench::seconds_since(t0);
}

} // namespace

namespace bench {

void weave_fanout(int argc, char** argv, report& out) {
  double base = 0;
  for (auto t : thread_counts()) {
    cpu_meter cpu;
    auto wall = fanout_run(argc, argv, t);
    if (base == 0)
      base = t == 1 ? wall : 0;
    out.set_at("fanout", "wall_ms", t, wall * 1e3);
    out.set_at("fanout", "cpu_us_per_op", t, cpu.us_per_op(fanout_tasks));
    if (base > 0)
      out.set_at("fanout", "speedup", t, base / wall);
  }
}

void weave_offload_fanin(weave::runtime& rt, report& out) {
  for (auto t : thread_counts()) {
    cpu_meter cpu;
    auto rate = fanin_run(rt, t);
    out.set_at("offload_fanin", "ops_per_s", t, rate);
    out.set_at("offload_fanin", "cpu_us_per_op", t,
               cpu.us_per_op(fanin_ops / static_cast<int>(t) * double(t)));
  }
}

void weave_submit_mt(weave::runtime& rt, report& out) {
  for (auto t : thread_counts()) {
    cpu_meter cpu;
    auto rate = submit_mt_run(rt, t);
    out.set_at("submit_mt", "ops_per_s", t, rate);
    out.set_at("submit_mt", "cpu_us_per_op", t,
               cpu.us_per_op(submit_mt_ops / static_cast<int>(t) * double(t)));
  }
}

void weave_channel_mpmc(weave::runtime& rt, report& out) {
  for (auto t : thread_counts()) {
    cpu_meter cpu;
    auto rate = channel_mpmc_run(rt, t);
    out.set_at("channel_mpmc", "items_per_s", t, rate);
    out.set_at("channel_mpmc", "cpu_us_per_op", t,
               cpu.us_per_op(mpmc_items / static_cast<long>(t) * double(t)));
  }
}

} // namespace bench
