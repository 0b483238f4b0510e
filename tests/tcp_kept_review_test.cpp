// Review of s19 (4203a4f, 3f8fb85): the readiness a turn on the TCP I/O
// thread keeps for itself (`tcp_reactor::yield_ready`) instead of re-arming
// its socket. Hostile tests: many gathered streams both ways with checked
// bytes, pausing / want_writable / close / throw while a kept readiness is
// pending, a handler that blocks the I/O thread, the runtime destroyed
// mid-stream, the request API beside protocols in every gather mode.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/metrics.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_protocol_support.hpp"
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::failures;
using weave::test::latch;
using weave::test::patience;
using weave::test::proto::dial;
using weave::test::proto::port_of;

namespace {

constexpr size_t chunk = 64 * 1024;

const std::vector<char>& ramp() {
  static const std::vector<char> r = [] {
    std::vector<char> v(chunk + 512);
    for (size_t j = 0; j < v.size(); ++j)
      v[j] = static_cast<char>((j * 7 + (j >> 8)) & 0xff);
    return v;
  }();
  return r;
}

/// Chunk `i` of stream `s`: `i` and `s` in its first 16 bytes, then a
/// window of the ramp that depends on both.
void fill_chunk(std::vector<char>& buf, uint64_t s, uint64_t i) {
  std::memcpy(buf.data(), &i, sizeof(i));
  std::memcpy(buf.data() + 8, &s, sizeof(s));
  auto base = static_cast<size_t>((i * 131 + s * 29) & 0x1ff);
  std::memcpy(buf.data() + 16, ramp().data() + base + 16, chunk - 16);
}

/// What every protocol of a test reports (the test thread reads it after
/// the latch).
struct board {
  failures bad;
  std::atomic<uint64_t> rx{0};
  std::atomic<int> lost{0};
  std::atomic<int> clean{0};
  std::atomic<int> writable_calls{0};
  std::atomic<int> alive{0};
  std::atomic<int> made{0};
  std::atomic<int> data_calls{0};
  latch done;
  /// Per stream: bytes received, chunks written, whether it ended.
  std::atomic<uint64_t> rx_of[64] = {};
  std::atomic<uint64_t> tx_of[64] = {};
  std::atomic<int> state_of[64] = {}; // bit 0 lost, 1 paused, 2 off, 4 eof
  explicit board(size_t sides) : done(sides) {
  }
  std::string stuck(size_t sides) {
    std::string out;
    for (size_t i = 0; i < sides && i < 64; ++i)
      if ((state_of[i].load() & 1) == 0)
        out += "stream " + std::to_string(i) + ": rx "
               + std::to_string(rx_of[i].load()) + " tx chunks "
               + std::to_string(tx_of[i].load()) + " state "
               + std::to_string(state_of[i].load()) + "\n";
    return out;
  }
};

/// Knobs of a `duplex`.
struct knobs {
  /// Chunks to send (0: for ever).
  uint64_t chunks = 0;
  /// Every this many chunks received: a `then` pauses reading and a later
  /// one resumes it (0: never).
  uint64_t pause_then_every = 0;
  /// Every this many chunks received: pause in `data_received`, resume in a
  /// `then` (0: never).
  uint64_t pause_cb_every = 0;
  /// Every this many chunks written: `writable` writes nothing and turns
  /// itself off; a `then` turns it on again (0: never).
  uint64_t off_cb_every = 0;
  /// Every this many chunks received: a `then` turns writable off, a later
  /// one on again (0: never).
  uint64_t off_then_every = 0;
  /// Every chunk received: `request(...).await` (the actor takes nothing
  /// else until the answer; a readiness meanwhile is a message).
  bool await_each = false;
  /// After this many bytes received: throw (1), close (2), abort (3).
  uint64_t end_after = 0;
  int end_how = 0;
};

/// Writes numbered chunks of stream `me`, checks the numbered chunks of
/// stream `peer`; half-closes after its chunks, ends when both ways ended.
struct duplex : tcp_protocol {
  board* b;
  caf::actor echo; // answers ints, for `then`s
  uint64_t me;
  uint64_t peer;
  knobs k;
  uint64_t next = 0;
  uint64_t at = 0;
  uint64_t chunks_seen = 0;
  bool paused = false;
  bool write_off = false;
  bool awaiting = false;
  bool ended = false;
  bool shut = false;
  uint64_t last_off = UINT64_MAX;
  std::vector<char> buf = std::vector<char>(chunk);
  std::vector<char> expect = std::vector<char>(chunk);

  duplex(board* b, caf::actor echo, uint64_t me, uint64_t peer, knobs k)
    : b(b), echo(std::move(echo)), me(me), peer(peer), k(k) {
    ++b->alive;
    ++b->made;
  }

  ~duplex() override {
    --b->alive;
  }

  std::string who() const {
    return "stream " + std::to_string(me) + ": ";
  }

  void connected(tcp_transport& t) override {
    t.want_writable(true);
  }

  void writable(tcp_transport& t) override {
    ++b->writable_calls;
    if (write_off)
      b->bad.add(who() + "writable while turned off");
    if (shut)
      b->bad.add(who() + "writable after shutdown_write");
    if (k.chunks != 0 && next == k.chunks) {
      shut = true;
      t.shutdown_write();
      return;
    }
    if (k.off_cb_every != 0 && next > 0 && next % k.off_cb_every == 0
        && last_off != next) {
      last_off = next;
      write_off = true;
      t.want_writable(false);
      auto tp = &t;
      t.self()->request(echo, caf::infinite, 1).then([this, tp](int) {
        write_off = false;
        tp->want_writable(true);
      });
      return;
    }
    fill_chunk(buf, me, next);
    ++next;
    b->tx_of[me % 64] = next;
    // Refused only once the connection ends (a stream for ever: at the
    // runtime's shutdown, or its peer's end).
    if (!t.write(buf.data(), buf.size()) && k.chunks != 0)
      b->bad.add(who() + "write refused");
  }

  void data_received(tcp_transport& t, const char* p, size_t n) override {
    ++b->data_calls;
    if (paused)
      b->bad.add(who() + "data_received while paused");
    if (awaiting)
      b->bad.add(who() + "data_received while awaiting");
    if (ended)
      b->bad.add(who() + "data_received after its end");
    for (size_t i = 0; i < n;) {
      auto off = static_cast<size_t>(at % chunk);
      if (off == 0)
        fill_chunk(expect, peer, at / chunk);
      auto len = std::min(n - i, chunk - off);
      if (std::memcmp(p + i, expect.data() + off, len) != 0) {
        b->bad.add(who() + "bytes differ in chunk " + std::to_string(at / chunk)
                   + " at " + std::to_string(off));
        // one report per chunk is enough
      }
      i += len;
      at += len;
      if (at % chunk == 0)
        on_chunk(t);
    }
    b->rx += n;
    b->rx_of[me % 64] = at;
    if (k.end_after != 0 && at >= k.end_after && !ended) {
      ended = true;
      if (k.end_how == 1)
        throw std::runtime_error("hostile throw");
      if (k.end_how == 2)
        t.close();
      if (k.end_how == 3)
        t.abort();
    }
  }

  void on_chunk(tcp_transport& t) {
    ++chunks_seen;
    auto tp = &t;
    auto self = t.self();
    if (k.pause_cb_every != 0 && chunks_seen % k.pause_cb_every == 0
        && !paused) {
      paused = true;
      b->state_of[me % 64] |= 2;
      t.pause_reading();
      self->request(echo, caf::infinite, 2).then([this, tp](int) {
        paused = false;
        b->state_of[me % 64] &= ~2;
        tp->resume_reading();
      });
    }
    if (k.pause_then_every != 0 && chunks_seen % k.pause_then_every == 0) {
      self->request(echo, caf::infinite, 3).then([this, tp, self](int) {
        if (paused)
          return;
        paused = true;
        b->state_of[me % 64] |= 2;
        tp->pause_reading();
        self->request(echo, caf::infinite, 4).then([this, tp](int) {
          paused = false;
          b->state_of[me % 64] &= ~2;
          tp->resume_reading();
        });
      });
    }
    if (k.off_then_every != 0 && chunks_seen % k.off_then_every == 0) {
      self->request(echo, caf::infinite, 5).then([this, tp, self](int) {
        if (write_off || shut)
          return;
        write_off = true;
        tp->want_writable(false);
        self->request(echo, caf::infinite, 6).then([this, tp](int) {
          write_off = false;
          if (!shut)
            tp->want_writable(true);
        });
      });
    }
    if (k.await_each && !paused) {
      // Paused while awaiting: the rest of this turn reads no more (CAF's
      // await holds the actor's later turns, not this one).
      awaiting = true;
      paused = true;
      t.pause_reading();
      self->request(echo, caf::infinite, 7).await([this, tp](int) {
        awaiting = false;
        paused = false;
        tp->resume_reading();
      });
    }
  }

  void eof_received(tcp_transport&) override {
    b->state_of[me % 64] |= 16;
    if (k.chunks != 0 && k.end_after == 0 && at != k.chunks * chunk)
      b->bad.add(who() + "eof after " + std::to_string(at) + " bytes");
    // Keeps writing: ends once its own half-close is done.
  }

  void connection_lost(const caf::error& err) override {
    b->state_of[me % 64] |= 1;
    ++b->lost;
    if (!err)
      ++b->clean;
    else if (k.end_after == 0 && k.chunks != 0)
      b->bad.add(who() + "lost: " + weave::render(err));
    b->done.count_down();
  }
};

caf::actor spawn_echo(weave::runtime& rt) {
  return rt.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int x) { return x; }};
  });
}

/// `pairs` connected pairs of duplex protocols on `rt`: stream 2i from the
/// client of pair i, 2i+1 from its server; `client_k` / `server_k` per
/// pair.
template <class K>
std::vector<tcp_listener>
spawn_pairs(weave::runtime& rt, board& b, size_t pairs, K knobs_of,
            std::vector<tcp_connection>* clients = nullptr,
            tcp_options opts = {}) {
  caf::scoped_actor self{rt.system()};
  auto echo = spawn_echo(rt);
  std::vector<tcp_listener> servers;
  for (size_t i = 0; i < pairs; ++i) {
    auto ks = knobs_of(i, true);
    auto kc = knobs_of(i, false);
    auto srv = spawn_tcp_server(
      rt, "127.0.0.1", 0,
      [&b, echo, i, ks] {
        return std::make_unique<duplex>(&b, echo, 2 * i + 1, 2 * i, ks);
      },
      opts);
    auto port = port_of(self, srv);
    servers.push_back(srv);
    auto c = spawn_tcp_connect(rt, "127.0.0.1", port,
                               std::make_unique<duplex>(&b, echo, 2 * i,
                                                        2 * i + 1, kc),
                               opts);
    if (clients != nullptr)
      clients->push_back(c);
  }
  // The listeners live as long as the caller holds them.
  return servers;
}

uint64_t kept_of(weave::runtime& rt) {
  return rt.metrics().tcp_io.kept_readiness;
}

struct outcome {
  std::string bad;
  int lost = 0;
  int clean = 0;
  uint64_t rx = 0;
  uint64_t kept = 0;
  bool ended = false;
};

/// `pairs` pairs, `chunks` each way, on a runtime made with `cfg`.
template <class K>
outcome run_pairs(weave::runtime_config cfg, size_t pairs, K knobs_of,
                  std::chrono::milliseconds limit = 45s) {
  board b{2 * pairs};
  outcome out;
  {
    weave::runtime rt{std::move(cfg)};
    auto servers = spawn_pairs(rt, b, pairs, knobs_of);
    out.ended = b.done.wait(limit);
    out.kept = kept_of(rt);
    if (!out.ended)
      MESSAGE("not ended: lost " << b.lost.load() << " of " << 2 * pairs
                                 << ", rx " << b.rx.load() << "\n"
                                 << b.stuck(2 * pairs));
  }
  out.bad = b.bad.messages();
  out.lost = b.lost.load();
  out.clean = b.clean.load();
  out.rx = b.rx.load();
  return out;
}

} // namespace

TEST_CASE("kept: 16 gathered pairs both ways at once, every byte in order, "
          "kept readiness counted (inline turns 8 and 1; auto)" * doctest::timeout(420)) {
  constexpr size_t pairs = 16;
  constexpr uint64_t chunks = 48;
  struct conf {
    size_t turns;
    const char* gather;
  };
  for (auto c : {conf{8, "always"}, conf{1, "always"}, conf{8, "auto"}}) {
    std::string gather{c.gather};
    CAPTURE(gather);
    CAPTURE(c.turns);
    auto out = run_pairs(turns_config(c.turns, c.gather), pairs,
                         [](size_t, bool) {
                           knobs k;
                           k.chunks = chunks;
                           return k;
                         });
    REQUIRE(out.ended);
    CHECK(out.bad == "");
    CHECK(out.lost == 2 * pairs);
    CHECK(out.clean == 2 * pairs);
    CHECK(out.rx == 2 * pairs * chunks * chunk);
    if (gather == "always")
      CHECK(out.kept > 0);
  }
}

// Failed 5/5 on 4203a4f: a reader's turn on the I/O thread that stopped at
// its 1 MiB (read_per_turn) kept its readiness while spreading too, and
// took the pass's one place there each time (`yield_ready` now keeps only
// while the thread gathers).
TEST_CASE("kept: nothing is kept while spreading (tcp-gather=never, 16 "
          "pairs, inline turns 8) nor with tcp-inline-turns=0 (gather always, "
          "8 pairs: nothing runs on the I/O thread)" * doctest::timeout(420)) {
  struct run {
    const char* name;
    size_t turns;
    const char* gather;
    size_t pairs;
    uint64_t chunks;
  };
  for (auto r : {run{"never", 8, "never", 16, 48},
                 run{"turns 0", 0, "always", 8, 32}}) {
    CAPTURE(r.name);
    auto chunks = r.chunks;
    auto out = run_pairs(turns_config(r.turns, r.gather), r.pairs,
                         [chunks](size_t, bool) {
                           knobs k;
                           k.chunks = chunks;
                           return k;
                         });
    REQUIRE(out.ended);
    CHECK(out.bad == "");
    CHECK(out.clean == 2 * r.pairs);
    CHECK(out.rx == 2 * r.pairs * r.chunks * chunk);
    CHECK(out.kept == 0);
  }
}

TEST_CASE("kept: pause / resume and want_writable off / on, from callbacks "
          "and from thens, while kept readiness is pending (16 gathered "
          "pairs)" * doctest::timeout(420)) {
  constexpr size_t pairs = 16;
  constexpr uint64_t chunks = 40;
  auto out = run_pairs(turns_config(8, "always"), pairs, [](size_t i, bool) {
    knobs k;
    k.chunks = chunks;
    switch (i % 4) {
      case 0:
        k.pause_then_every = 1;
        break;
      case 1:
        k.pause_cb_every = 2;
        k.off_cb_every = 3;
        break;
      case 2:
        k.off_then_every = 1;
        k.pause_then_every = 3;
        break;
      default:
        k.pause_cb_every = 1;
        k.off_then_every = 2;
        k.off_cb_every = 5;
        break;
    }
    return k;
  });
  REQUIRE(out.ended);
  CHECK(out.bad == "");
  CHECK(out.clean == 2 * pairs);
  CHECK(out.rx == 2 * pairs * chunks * chunk);
  CHECK(out.kept > 0);
}

TEST_CASE("kept: a protocol that awaits a response per chunk (readiness "
          "while awaiting becomes a message) keeps every byte (gathered)" * doctest::timeout(420)) {
  constexpr size_t pairs = 8;
  constexpr uint64_t chunks = 32;
  auto out = run_pairs(turns_config(8, "always"), pairs, [](size_t i, bool) {
    knobs k;
    k.chunks = chunks;
    k.await_each = (i % 2 == 0);
    return k;
  });
  REQUIRE(out.ended);
  CHECK(out.bad == "");
  CHECK(out.clean == 2 * pairs);
  CHECK(out.rx == 2 * pairs * chunks * chunk);
}

TEST_CASE("kept: throw, close and abort in a gathered turn mid-stream, and "
          "tcp_close from outside; the other streams go on" * doctest::timeout(420)) {
  constexpr size_t pairs = 16;
  constexpr uint64_t chunks = 48;
  board b{2 * pairs};
  {
    weave::runtime rt{turns_config(8, "always")};
    std::vector<tcp_connection> clients;
    auto servers = spawn_pairs(
      rt, b, pairs,
      [](size_t i, bool server) {
        knobs k;
        k.chunks = chunks;
        if (server && i % 4 != 0 && i % 4 != 3) {
          k.end_after = 1024 * 1024 + 17;
          k.end_how = static_cast<int>(i % 4); // 1 throw, 2 close
        }
        if (server && i % 8 == 3) {
          k.end_after = 2 * 1024 * 1024;
          k.end_how = 3; // abort
        }
        if (i % 4 != 0)
          k.chunks = 0; // the ending ones' peers write for ever
        return k;
      },
      &clients);
    // Closed from outside mid-stream: pair 7 and 15's clients.
    REQUIRE(weave::test::eventually(
      [&] { return b.rx.load() > 16 * 1024 * 1024; }, 30s));
    caf::anon_send(clients[7], tcp_close_atom::value);
    caf::anon_send(clients[15], tcp_close_atom::value);
    // Everyone else ends: the normal pairs cleanly, the ended ones' peers
    // by a reset or an eof (their peer went), pairs 7, 15 by the close.
    bool all = b.done.wait(60s);
    if (!all)
      MESSAGE("lost " << b.lost.load() << " of " << 2 * pairs << "\n"
                      << b.stuck(2 * pairs));
    CHECK(all);
  }
  CHECK(b.bad.messages() == "");
  CHECK(b.lost.load() == 2 * pairs);
}

namespace {

/// On the I/O thread only: blocks in `data_received` until released.
struct blocker : tcp_protocol {
  std::promise<void>* entered;
  latch* release;
  std::atomic<int>* elsewhere;
  bool blocked = false;
  blocker(std::promise<void>* e, latch* r, std::atomic<int>* x)
    : entered(e), release(r), elsewhere(x) {
  }
  void data_received(tcp_transport&, const char*, size_t) override {
    if (blocked)
      return;
    if (weave::this_thread_name() != "weave-tcp") {
      ++*elsewhere;
      return;
    }
    blocked = true;
    entered->set_value();
    release->wait(20s);
  }
};

} // namespace

// Failed 3/5 on 4203a4f (also 3/4 with its tcp_stream.cpp /
// tcp_connection.cpp reverted: older than keeping): the readiness the I/O
// thread took in the pass whose turn blocks, the kept ones included, waited
// in its local list behind that turn, where the standby could not see it
// (now the reactor's `pending_`, which the standby takes).
TEST_CASE("kept: a handler that blocks the I/O thread: the gathered streams "
          "whose readiness was kept go on through the standby" * doctest::timeout(420)) {
  constexpr size_t pairs = 16;
  std::promise<void> entered;
  auto entered_f = entered.get_future();
  latch release{1};
  std::atomic<int> elsewhere{0};
  board b{2 * pairs};
  uint64_t during = 0;
  bool blocked_on_io = false;
  {
    auto cfg = turns_config(8, "always");
    cfg.set("weave.blocking-threshold", caf::timespan{100ms});
    weave::runtime rt{std::move(cfg)};
    caf::scoped_actor self{rt.system()};
    auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<blocker>(&entered, &release, &elsewhere);
    });
    auto bport = port_of(self, srv);
    auto servers =
      spawn_pairs(rt, b, pairs, [](size_t, bool) { return knobs{}; });
    REQUIRE(weave::test::eventually(
      [&] { return b.rx.load() > 8 * 1024 * 1024; }, 30s));
    int fd = dial(bport);
    for (int round = 0; round < 100 && !blocked_on_io; ++round) {
      REQUIRE(::send(fd, "b", 1, MSG_NOSIGNAL) == 1);
      blocked_on_io = entered_f.wait_for(200ms) == std::future_status::ready;
    }
    if (blocked_on_io) {
      // Held well past the detector's threshold first: what moves before
      // may be turns the I/O thread handed out before it blocked.
      auto held_from = std::chrono::steady_clock::now();
      weave::test::eventually([&] {
        return std::chrono::steady_clock::now() - held_from > 600ms;
      });
      auto before = b.rx.load();
      uint64_t each[2 * pairs];
      for (size_t i = 0; i < 2 * pairs; ++i)
        each[i] = b.rx_of[i].load();
      // 8 MiB more while the I/O thread is held, and every stream moves
      // (a stream moves hundreds of MiB/s when it flows; the standby looks
      // every 10 ms, the detector's threshold is 100 ms).
      bool moved = weave::test::eventually(
        [&] { return b.rx.load() > before + 8 * 1024 * 1024; }, 5s);
      bool every = weave::test::eventually(
        [&] {
          for (size_t i = 0; i < 2 * pairs; ++i)
            if (b.rx_of[i].load() < each[i] + 256 * 1024)
              return false;
          return true;
        },
        5s);
      std::string still;
      for (size_t i = 0; i < 2 * pairs; ++i)
        if (b.rx_of[i].load() < each[i] + 256 * 1024)
          still += " " + std::to_string(i) + "(+"
                   + std::to_string(b.rx_of[i].load() - each[i]) + ")";
      during = b.rx.load() - before;
      release.count_down();
      CHECK_MESSAGE(every, "streams that did not move while the I/O thread "
                           "was held:" << still);
      CHECK_MESSAGE(moved, "only " << during << " bytes moved in 5 s while "
                                   << "the I/O thread was held");
      CHECK(weave::test::eventually([&] {
        return rt.metrics().tcp_io.slow_handlers > 0;
      }));
    } else {
      release.count_down();
      MESSAGE("the blocker never ran on the I/O thread (" << elsewhere.load()
                                                          << " elsewhere)");
    }
    ::close(fd);
  }
  CHECK(blocked_on_io);
  CHECK(b.lost.load() == 2 * pairs);
  CHECK(b.bad.messages() == "");
}

TEST_CASE("kept: the runtime destroyed mid-stream (16 gathered pairs, kept "
          "readiness pending), from the test thread and from another one" * doctest::timeout(420)) {
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    constexpr size_t pairs = 16;
    board b{2 * pairs};
    auto rt = std::make_unique<weave::runtime>(turns_config(8, "always"));
    std::vector<tcp_listener> servers;
    {
      std::vector<tcp_connection> clients;
      servers = spawn_pairs(*rt, b, pairs,
                  [variant](size_t i, bool) {
                    knobs k;
                    if (variant >= 2 && i % 2 == 0)
                      k.pause_then_every = 1;
                    return k;
                  },
                  &clients);
      // the handles go here: the connections live on their own
    }
    REQUIRE(weave::test::eventually(
      [&] {
        return b.made.load() == 2 * pairs && b.rx.load() > 8 * 1024 * 1024;
      },
      30s));
    auto kept = kept_of(*rt);
    CHECK(kept > 0);
    servers.clear();
    if (variant % 2 == 0) {
      rt.reset();
    } else {
      std::thread t{[&] { rt.reset(); }};
      t.join();
    }
    CHECK_MESSAGE(b.lost.load() == 2 * pairs,
                  "alive protocols: " << b.alive.load() << "\n"
                                      << b.stuck(2 * pairs));
    CHECK(b.done.ready());
    CHECK(b.bad.messages() == "");
  }
}

TEST_CASE("kept: the request API beside protocol streams, every gather mode "
          "and tcp-inline-turns 0, 1, 8" * doctest::timeout(420)) {
  const char* modes[] = {"never", "always", "auto"};
  size_t turns[] = {0, 1, 8};
  for (auto mode : modes) {
    for (auto n : turns) {
      std::string mode_name{mode};
      CAPTURE(mode_name);
      CAPTURE(n);
      constexpr size_t pairs = 4;
      constexpr size_t raw = 4;
      board b{2 * pairs};
      failures bad;
      latch raw_done{raw};
      weave::test::proto::counters echoes;
      uint64_t kept = 0;
      {
        weave::runtime rt{turns_config(n, mode)};
            caf::scoped_actor self{rt.system()};
        auto servers = spawn_pairs(rt, b, pairs, [](size_t i, bool) {
          knobs k;
          k.chunks = 24;
          k.pause_then_every = (i == 1) ? 2 : 0;
          return k;
        });
        auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
          return std::make_unique<weave::test::proto::counted_echo>(&echoes);
        });
        auto port = port_of(self, srv);
        for (size_t i = 0; i < raw; ++i) {
          auto conn = spawn_tcp_connect(rt, "127.0.0.1", port);
          client_plan plan;
          plan.id = i;
          plan.bytes = 1536 * 1024 + 333 * i;
          plan.chunk = 48 * 1024 + i;
          run_client(rt.system(), conn, plan, &bad, &raw_done);
        }
        bool ok = raw_done.wait(90s) && b.done.wait(90s);
        CHECK(ok);
        kept = kept_of(rt);
      }
      CHECK(bad.messages() == "");
      CHECK(b.bad.messages() == "");
      CHECK(b.clean.load() == 2 * pairs);
      CHECK(echoes.early.load() == 0);
      if (n == 0 || std::string{mode} == "never")
        CHECK(kept == 0);
    }
  }
}
