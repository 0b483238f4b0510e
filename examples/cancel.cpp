// cancellation: `task.cancel()` and `asyncio.timeout()` for work that is
// already running on a thread, which asyncio (run_in_executor) and Tokio
// (spawn_blocking) cannot stop. A "download" that checks its stop token
// between chunks ends at its deadline; a stubborn job that never looks at
// its token is given up on after the grace period (its caller is answered,
// its worker quarantined and replaced, its late result dropped); a
// deadline scope bounds everything started under it.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

/// The download's size.
constexpr int chunks = 20;

void section_8_1(weave::runtime& rt, const options& opts) {
  section("8", "cancellation: stop tokens, deadlines, the grace ladder");
  using namespace std::chrono_literals;
  weave::blocking_pool pool{rt, 2, "downloads"};

  // 1. A job that honours its token: stopped at its deadline.
  auto chunk = opts.scaled(100ms);
  auto download = pool.submit(
    [chunk](weave::stop_token st) {
      int got = 0;
      while (got < chunks && weave::sleep_for(st, chunk)) // false: stopped
        say("chunk ", ++got, " of ", chunks);
      say("download stops after ", got, " chunks: ",
          weave::to_string(st.cause()));
      return got;
    },
    opts.scaled(350ms));
  auto r = download.get_result();
  say("caller: ", r ? "done" : weave::render(r.error()));

  // 2. A job that ignores its token: answered after the grace period.
  auto started = std::make_shared<weave::promise<void>>();
  auto returned = std::make_shared<weave::promise<void>>();
  auto stubborn_started = started->get_future();
  auto stubborn_done = returned->get_future();
  auto stubborn = pool.submit([started, returned, d = opts.scaled(3s)](
                                weave::stop_token) {
    say("stubborn job starts, never looks at its token");
    started->set_value();
    std::this_thread::sleep_for(d);
    say("stubborn job returns at last: its result is dropped");
    returned->set_value();
    return 0;
  });
  stubborn_started.get();
  auto asked = std::chrono::steady_clock::now();
  say("cancel() the stubborn job: ", stubborn.cancel() ? "stop requested" : "?");
  auto s = stubborn.get_result();
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - asked);
  say("caller answered after the grace period (", waited.count() >= 100
                                                   ? "≥ 100 ms" : "early!",
      "): ", s ? "a value?" : weave::render(s.error()));
  auto st = pool.stats();
  say("pool: workers=", st.workers, " quarantined=", st.quarantined);
  say("a new job runs on the replacement worker: ",
      pool.submit([] { return weave::this_thread_name(); }).get());

  // 3. A deadline scope: everything submitted under it shares its deadline.
  {
    weave::deadline_scope scope{opts.scaled(200ms)};
    auto a = pool.submit([](weave::stop_token tok) {
      weave::sleep_for(tok, std::chrono::hours{1});
      return std::string{weave::to_string(tok.cause())};
    });
    auto ra = a.get_result();
    say("job under a 200 ms scope: ", ra ? *ra : weave::render(ra.error()));
  }

  stubborn_done.get();
  // The job said it returns; its worker then drops the result and ends
  // (bounded wait for that last step).
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (pool.stats().quarantined != 0
         && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  auto end = pool.stats();
  say("pool stats: completed=", end.completed, " stopped=", end.stopped,
      " quarantined=", end.quarantined, " quarantined_total=",
      end.quarantined_total);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_8_1)
