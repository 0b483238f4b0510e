// Promise 7 (bad input gets a clear error) for the runtime's configuration.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/runtime.hpp"
#include "runtime/runtime_config.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// Parses `args` (after a fake program name) into `cfg`.
caf::error parse(weave::runtime_config& cfg, std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string prog = "weave_test";
  argv.push_back(prog.data());
  for (auto& a : args)
    argv.push_back(a.data());
  return cfg.parse(static_cast<int>(argv.size()), argv.data());
}

/// The message of the error a runtime throws for `cfg`, or "" if none.
std::string construction_error(weave::runtime_config cfg) {
  try {
    weave::runtime rt{std::move(cfg)};
  } catch (const weave::exception& e) {
    CHECK(e.code() == weave::errc::invalid_config);
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("defaults fit the tutorial: pool size min(32, cores + 4)") {
  weave::runtime_config cfg;
  CHECK(cfg.validate() == caf::none);
  auto cores = std::max(1u, std::thread::hardware_concurrency());
  CHECK(cfg.pool_size() == std::min<size_t>(32, cores + 4));
  CHECK(cfg.shutdown_deadline() == caf::timespan{5s});
  CHECK(cfg.spin() == caf::timespan{50us});
  CHECK(caf::get_or(cfg, "scheduler.policy", caf::atom("")) ==
        caf::atom("stealing"));
  CHECK(caf::get_or(cfg, "work-stealing.moderate-poll-attempts", size_t{99})
        == 0u);
}

TEST_CASE("weave options are read from the command line") {
  weave::runtime_config cfg;
  REQUIRE(parse(cfg, {"--weave.pool-size=7", "--weave.shutdown-deadline=250ms"})
          == caf::none);
  CHECK(cfg.pool_size() == 7u);
  CHECK(cfg.shutdown_deadline() == caf::timespan{250ms});
  weave::runtime rt{std::move(cfg)};
  CHECK(rt.default_pool().max_workers() == 7u);
}

TEST_CASE("weave options are read from the config file") {
  auto path = std::string{"weave_config_test.ini"};
  {
    std::ofstream out{path};
    out << "[weave]\npool-size=3\nspin=0us\n";
  }
  weave::runtime_config cfg;
  REQUIRE(parse(cfg, {"--config-file=" + path}) == caf::none);
  CHECK(cfg.pool_size() == 3u);
  CHECK(cfg.spin() == caf::timespan{0});
  std::remove(path.c_str());
}

TEST_CASE("a pool size of 0 is refused, naming the option and range") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"--weave.pool-size=0"});
  REQUIRE(err);
  auto msg = weave::render(err);
  CHECK(msg.find("weave.pool-size") != std::string::npos);
  CHECK(msg.find("1..4096") != std::string::npos);
  weave::runtime_config set_in_code;
  set_in_code.set("weave.pool-size", 0);
  auto what = construction_error(std::move(set_in_code));
  CHECK(what.find("weave.pool-size") != std::string::npos);
  CHECK(what.find("1..4096") != std::string::npos);
}

TEST_CASE("a negative duration is refused") {
  weave::runtime_config cfg;
  cfg.set("weave.shutdown-deadline", caf::timespan{-1s});
  auto what = construction_error(std::move(cfg));
  CHECK(what.find("weave.shutdown-deadline") != std::string::npos);
  CHECK(what.find("0s..1h") != std::string::npos);
  weave::runtime_config spin;
  spin.set("weave.spin", caf::timespan{-5us});
  CHECK(construction_error(std::move(spin)).find("weave.spin")
        != std::string::npos);
}

TEST_CASE("an unknown weave option is refused") {
  weave::runtime_config cli;
  auto err = parse(cli, {"--weave.pool-sise=4"});
  REQUIRE(err);
  CHECK(weave::render(err).find("weave.pool-sise") != std::string::npos);
  auto path = std::string{"weave_unknown_test.ini"};
  {
    std::ofstream out{path};
    out << "[weave]\nturbo=true\n";
  }
  weave::runtime_config file;
  auto ferr = parse(file, {"--config-file=" + path});
  std::remove(path.c_str());
  REQUIRE(ferr);
  CHECK(weave::is(ferr, weave::errc::invalid_config));
  CHECK(weave::render(ferr).find("weave.turbo") != std::string::npos);
}

TEST_CASE("a weave option after a positional argument is refused, saying so") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"input.txt", "--weave.spin=0us"});
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::invalid_config));
  auto msg = weave::render(err);
  CHECK(msg.find("--weave.spin=0us") != std::string::npos);
  CHECK(msg.find("put options first") != std::string::npos);
  weave::runtime_config first;
  CHECK(parse(first, {"--weave.spin=0us", "input.txt"}) == caf::none);
  CHECK(first.spin() == caf::timespan{0});
}

TEST_CASE("a value of the wrong type is refused") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"--weave.spin=fast"});
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::invalid_config));
  CHECK(weave::render(err).find("weave.spin") != std::string::npos);
}
