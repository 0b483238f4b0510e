// asio: Boost.Asio 1.81 the way its users would write these patterns: an
// io_context on its own thread as the event loop, a thread_pool for blocking
// calls, post() both ways, use_future for plain threads. Asio 1.81 has no
// bounded channel usable without C++20 coroutines, so the channel measures
// are not run for it.
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <condition_variable>
#include <functional>
#include <memory>
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
  bench::cpu_meter cpu;
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
  out.set("offload_rtt", "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
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
  bench::cpu_meter cpu;
  auto t0 = bench::clock::now();
  asio::post(loop.ioc, [&] {
    for (int k = 0; k < throughput_in_flight; ++k)
      issue();
  });
  done.get_future().get();
  out.set("offload_throughput", "ops_per_s",
          throughput_ops / bench::seconds_since(t0));
  out.set("offload_throughput", "cpu_us_per_op", cpu.us_per_op(throughput_ops));
  pool.join();
}

void submit_rtt(bench::report& out) {
  event_loop loop;
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  for (int i = 0; i < rtt_warmup + rtt_samples; ++i) {
    auto t0 = bench::clock::now();
    asio::post(loop.ioc, asio::use_future([] { return 1; })).get();
    if (i >= rtt_warmup)
      h.add(bench::clock::now() - t0);
  }
  out.set("submit_rtt", "cpu_us_per_op", cpu.us_per_op(rtt_warmup + rtt_samples));
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
  bench::cpu_meter cpu;
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
  out.set("many_sleepers", "cpu_us_per_op", cpu.us_per_op(sleepers));
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


// -- scaling measures (see bench_util.hpp) ------------------------------------

/// One handler posts a CPU-bound task per element to a thread_pool of T
/// threads.
void fanout(bench::report& out) {
  double base = 0;
  for (auto t : bench::thread_counts()) {
    asio::thread_pool pool{t};
    std::atomic<int> left{fanout_tasks};
    std::promise<void> done;
    bench::cpu_meter cpu;
    auto t0 = bench::clock::now();
    asio::post(pool, [&] {
      for (int i = 0; i < fanout_tasks; ++i)
        asio::post(pool, [&] {
          bench::burn_cpu(fanout_task_cpu_s);
          if (--left == 0)
            done.set_value();
        });
    });
    done.get_future().get();
    auto wall = bench::seconds_since(t0);
    if (t == 1)
      base = wall;
    out.set_at("fanout", "wall_ms", t, wall * 1e3);
    out.set_at("fanout", "cpu_us_per_op", t, cpu.us_per_op(fanout_tasks));
    if (base > 0)
      out.set_at("fanout", "speedup", t, base / wall);
    pool.join();
  }
}

/// T event loops each keep 64 jobs in flight on one thread_pool of T.
void offload_fanin(bench::report& out) {
  for (auto t : bench::thread_counts()) {
    asio::thread_pool pool{t};
    std::vector<std::unique_ptr<event_loop>> loops;
    for (size_t k = 0; k < t; ++k)
      loops.push_back(std::make_unique<event_loop>());
    int per_loop = fanin_ops / static_cast<int>(t);
    std::atomic<size_t> left{t};
    std::promise<void> done;
    struct state {
      int issued = 0, finished = 0;
      std::function<void()> issue;
    };
    std::vector<state> states(t);
    bench::cpu_meter cpu;
    auto t0 = bench::clock::now();
    for (size_t k = 0; k < t; ++k) {
      auto& st = states[k];
      auto& ioc = loops[k]->ioc;
      st.issue = [&st, &ioc, &pool, &left, &done, per_loop] {
        ++st.issued;
        asio::post(pool, [&st, &ioc, &left, &done, per_loop] {
          asio::post(ioc, [&st, &left, &done, per_loop] {
            if (++st.finished == per_loop) {
              if (--left == 0)
                done.set_value();
            } else if (st.issued < per_loop) {
              st.issue();
            }
          });
        });
      };
      asio::post(ioc, [&st] {
        for (int j = 0; j < throughput_in_flight; ++j)
          st.issue();
      });
    }
    done.get_future().get();
    auto ops = double(per_loop) * t;
    out.set_at("offload_fanin", "ops_per_s", t, ops / bench::seconds_since(t0));
    out.set_at("offload_fanin", "cpu_us_per_op", t, cpu.us_per_op(ops));
    pool.join();
  }
}

/// T plain threads each doing post(pool, use_future(fn)).get() on a
/// thread_pool of T.
void submit_mt(bench::report& out) {
  for (auto t : bench::thread_counts()) {
    asio::thread_pool pool{t};
    int per = submit_mt_ops / static_cast<int>(t);
    bench::cpu_meter cpu;
    auto t0 = bench::clock::now();
    std::vector<std::thread> ts;
    for (size_t k = 0; k < t; ++k)
      ts.emplace_back([&pool, per] {
        for (int i = 0; i < per; ++i)
          asio::post(pool, asio::use_future([] { return 1; })).get();
      });
    for (auto& th : ts)
      th.join();
    auto ops = double(per) * t;
    out.set_at("submit_mt", "ops_per_s", t, ops / bench::seconds_since(t0));
    out.set_at("submit_mt", "cpu_us_per_op", t, cpu.us_per_op(ops));
    pool.join();
  }
}

} // namespace

// TCP on loopback: both ends async on one io_context thread.
using asio::ip::tcp;

/// A connected pair: {client, server}.
std::pair<tcp::socket, tcp::socket> tcp_pair(asio::io_context& ioc) {
  tcp::acceptor acc{ioc, tcp::endpoint{asio::ip::address_v4::loopback(), 0}};
  tcp::socket client{ioc};
  client.connect(acc.local_endpoint());
  auto server = acc.accept();
  client.set_option(tcp::no_delay{true});
  server.set_option(tcp::no_delay{true});
  return {std::move(client), std::move(server)};
}

/// Closes the sockets on the loop's thread and waits.
void close_on(event_loop& loop, tcp::socket& a, tcp::socket& b) {
  std::promise<void> closed;
  asio::post(loop.ioc, [&] {
    boost::system::error_code ec;
    a.close(ec);
    b.close(ec);
    closed.set_value();
  });
  closed.get_future().get();
}

void tcp_echo_rtt(bench::report& out) {
  event_loop loop;
  auto [client, server] = tcp_pair(loop.ioc);
  std::array<char, tcp_message> sbuf{};
  std::array<char, tcp_message> cbuf{};
  std::array<char, tcp_message> msg{};
  std::function<void()> echo = [&] {
    asio::async_read(server, asio::buffer(sbuf), [&](boost::system::error_code ec, size_t) {
      if (ec)
        return;
      asio::async_write(server, asio::buffer(sbuf), [&](boost::system::error_code ec2, size_t) {
        if (!ec2)
          echo();
      });
    });
  };
  bench::histogram h;
  h.reserve(rtt_samples);
  bench::cpu_meter cpu;
  std::promise<void> done;
  int i = 0;
  int total = rtt_warmup + rtt_samples;
  bench::clock::time_point t0;
  std::function<void()> step = [&] {
    t0 = bench::clock::now();
    asio::async_write(client, asio::buffer(msg), [&](boost::system::error_code, size_t) {
      asio::async_read(client, asio::buffer(cbuf), [&](boost::system::error_code, size_t) {
        if (i >= rtt_warmup)
          h.add(bench::clock::now() - t0);
        if (++i == total)
          done.set_value();
        else
          step();
      });
    });
  };
  asio::post(loop.ioc, [&] {
    echo();
    step();
  });
  done.get_future().get();
  out.set("tcp_echo_rtt", "cpu_us_per_op", cpu.us_per_op(total));
  close_on(loop, client, server);
  out.set("tcp_echo_rtt", "p50_us", h.percentile_us(50));
  out.set("tcp_echo_rtt", "p99_us", h.percentile_us(99));
}

void tcp_throughput(bench::report& out) {
  event_loop loop;
  auto [client, server] = tcp_pair(loop.ioc);
  std::vector<char> chunk(tcp_chunk, 'x');
  std::vector<char> rbuf(tcp_chunk);
  size_t sent = 0;
  size_t got = 0;
  std::promise<void> done;
  std::function<void()> read = [&] {
    server.async_read_some(asio::buffer(rbuf), [&](boost::system::error_code ec, size_t n) {
      got += n;
      if (ec || got >= tcp_stream_bytes)
        done.set_value();
      else
        read();
    });
  };
  std::function<void()> write = [&] {
    if (sent == tcp_stream_bytes)
      return;
    sent += tcp_chunk;
    asio::async_write(client, asio::buffer(chunk), [&](boost::system::error_code ec, size_t) {
      if (!ec)
        write();
    });
  };
  bench::cpu_meter cpu;
  auto t0 = bench::clock::now();
  asio::post(loop.ioc, [&] {
    read();
    write();
  });
  done.get_future().get();
  auto secs = bench::seconds_since(t0);
  out.set("tcp_throughput", "bytes_per_s", tcp_stream_bytes / secs);
  out.set("tcp_throughput", "cpu_us_per_op",
          cpu.us_per_op(double(tcp_stream_bytes) / tcp_chunk));
  close_on(loop, client, server);
}

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
  if (bench::wanted(argc, argv, "fanout"))
    fanout(out);
  if (bench::wanted(argc, argv, "offload_fanin"))
    offload_fanin(out);
  if (bench::wanted(argc, argv, "submit_mt"))
    submit_mt(out);
  if (bench::wanted(argc, argv, "tcp_echo_rtt"))
    tcp_echo_rtt(out);
  if (bench::wanted(argc, argv, "tcp_throughput"))
    tcp_throughput(out);
  if (bench::wanted(argc, argv, "idle_cpu"))
    idle_cpu(out);
  out.print();
  return 0;
}
