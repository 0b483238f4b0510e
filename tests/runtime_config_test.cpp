// The runtime's configuration: bad input (an unknown option, a value out of
// range or of the wrong type) gets a clear error naming it, never a silent
// default; copies and moves parse into themselves.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/runtime.hpp"
#include "runtime/runtime_config.hpp"
#include "caf/thread_hook.hpp"
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
  CHECK(weave::render(err).find("--weave.spin=fast") != std::string::npos);
  CHECK(weave::render(err).find("weave.spin takes a duration")
        != std::string::npos);
}

TEST_CASE("a config file named on the command line that does not exist is "
          "refused, naming it") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"--config-file=weave_no_such_file.ini"});
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::invalid_config));
  CHECK(weave::render(err) == "weave::invalid_config: cannot open the config "
                              "file weave_no_such_file.ini");
}

namespace {

/// Writes `text` to a config file at `path`; removes it when done.
class temp_file {
public:
  temp_file(std::string path, const std::string& text)
    : path_(std::move(path)) {
    std::ofstream out{path_};
    out << text;
  }
  ~temp_file() {
    std::remove(path_.c_str());
  }
  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

/// A thread hook that does nothing (for the copy refusal).
struct quiet_hook : caf::thread_hook {
  void init(caf::actor_system&) override {
  }
  void thread_started() override {
  }
  void thread_terminates() override {
  }
};

} // namespace

TEST_CASE("a moved configuration reads the config file named on its command "
          "line") {
  temp_file file{"weave_moved_test.ini", "[weave]\npool-size=3\n"};
  weave::runtime_config source;
  weave::runtime_config moved{std::move(source)};
  REQUIRE(parse(moved, {"--config-file=" + file.path()}) == caf::none);
  CHECK(moved.config_file_path == file.path());
  CHECK(moved.pool_size() == 3u);
}

TEST_CASE("a moved configuration stores CAF's bound options in itself") {
  auto source = std::make_unique<weave::runtime_config>();
  weave::runtime_config moved{std::move(*source)};
  auto old_address = source.get();
  REQUIRE(parse(moved, {"--openssl.certificate=cert.pem",
                        "--weave.pool-size=5"})
          == caf::none);
  CHECK(moved.openssl_certificate == "cert.pem");
  CHECK(old_address->openssl_certificate.empty());
  // Freed: a pointer left into it would now be a use-after-free (ASan).
  source.reset();
  REQUIRE(parse(moved, {"--openssl.key=key.pem"}) == caf::none);
  CHECK(moved.openssl_key == "key.pem");
  CHECK(moved.pool_size() == 5u);
  weave::runtime rt{std::move(moved)};
  CHECK(rt.default_pool().max_workers() == 5u);
}

TEST_CASE("a runtime is built from a configuration it copies; the original "
          "stays usable") {
  weave::runtime_config cfg;
  cfg.set("weave.pool-size", 6);
  {
    weave::runtime rt{cfg};
    CHECK(rt.config().pool_size() == 6u);
    CHECK(rt.default_pool().max_workers() == 6u);
  }
  CHECK(cfg.pool_size() == 6u);
  weave::runtime_config copy{cfg};
  temp_file file{"weave_copy_test.ini", "[weave]\nspin=0us\n"};
  REQUIRE(parse(copy, {"--config-file=" + file.path(),
                       "--openssl.certificate=c.pem"})
          == caf::none);
  CHECK(copy.spin() == caf::timespan{0});
  CHECK(copy.openssl_certificate == "c.pem");
  CHECK(copy.pool_size() == 6u);
  // The original is untouched by parsing the copy.
  CHECK(cfg.spin() == caf::timespan{50us});
  CHECK(cfg.openssl_certificate.empty());
  weave::runtime rt{cfg};
  CHECK(rt.default_pool().max_workers() == 6u);
}

TEST_CASE("copying a configuration that holds thread hooks is refused, "
          "saying to move it") {
  weave::runtime_config cfg;
  cfg.add_thread_hook<quiet_hook>();
  std::string what;
  try {
    weave::runtime_config copy{cfg};
  } catch (const weave::exception& e) {
    CHECK(e.code() == weave::errc::invalid_argument);
    what = e.what();
  }
  CHECK(what.find("thread hook") != std::string::npos);
  CHECK(what.find("move") != std::string::npos);
  weave::runtime_config moved{std::move(cfg)};
  CHECK(moved.thread_hooks_.size() == 1u);
}

TEST_CASE("a negative duration on the command line is refused, printing its "
          "real value") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"--weave.shutdown-deadline=-1s"});
  REQUIRE(err);
  auto msg = weave::render(err);
  CHECK(msg.find("weave.shutdown-deadline: -1s is out of range") !=
        std::string::npos);
  CHECK(msg.find("0d") == std::string::npos);
  weave::runtime_config spin;
  auto serr = parse(spin, {"--weave.spin=-5us"});
  REQUIRE(serr);
  CHECK(weave::render(serr).find("weave.spin: -5us is out of range")
        != std::string::npos);
  weave::runtime_config in_code;
  in_code.set("weave.blocking-threshold", caf::timespan{-1500ms});
  auto what = construction_error(std::move(in_code));
  CHECK(what.find("-1500ms is out of range") != std::string::npos);
}

TEST_CASE("an unknown weave option on the command line is named and the known "
          "options listed") {
  const std::string known = "known: weave.pool-size, weave.shutdown-deadline, "
                            "weave.spin, weave.blocking-threshold";
  weave::runtime_config cli;
  auto err = parse(cli, {"--weave.pool-sise=4"});
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::invalid_config));
  auto msg = weave::render(err);
  CHECK(msg.find("unknown option weave.pool-sise") != std::string::npos);
  CHECK(msg.find(known) != std::string::npos);
  CHECK(msg.find("parser_error") == std::string::npos);
  // After a positional argument CAF leaves it to us: the same message.
  weave::runtime_config late;
  auto lerr = parse(late, {"input.txt", "--weave.turbo"});
  REQUIRE(lerr);
  CHECK(weave::render(lerr).find("unknown option weave.turbo (" + known)
        != std::string::npos);
  // The config file gives the same list.
  temp_file file{"weave_unknown_list_test.ini", "[weave]\nturbo=true\n"};
  weave::runtime_config from_file;
  auto ferr = parse(from_file, {"--config-file=" + file.path()});
  REQUIRE(ferr);
  CHECK(weave::render(ferr).find("unknown option weave.turbo (" + known)
        != std::string::npos);
}

TEST_CASE("an unknown non-weave option on the command line is named") {
  weave::runtime_config cfg;
  auto err = parse(cfg, {"--bogus-flag=1"});
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::invalid_config));
  auto msg = weave::render(err);
  CHECK(msg.find("unknown option --bogus-flag=1") != std::string::npos);
  CHECK(msg.find("parser_error") == std::string::npos);
}

TEST_CASE("weave.tcp-inline-turns: 0..1024 turns, refused outside, named") {
  weave::runtime_config ok;
  REQUIRE(!parse(ok, {"--weave.tcp-inline-turns=0"}));
  CHECK(ok.tcp_inline_turns() == 0u);
  CHECK(weave::runtime_config{}.tcp_inline_turns() == 8u);
  for (auto arg : {"--weave.tcp-inline-turns=1025",
                   "--weave.tcp-inline-turns=-1",
                   "--weave.tcp-inline-turns=many"}) {
    CAPTURE(arg);
    weave::runtime_config cfg;
    auto err = parse(cfg, {arg});
    REQUIRE(err);
    CHECK(weave::is(err, weave::errc::invalid_config));
    CHECK(weave::render(err).find("weave.tcp-inline-turns")
          != std::string::npos);
  }
  weave::runtime_config in_code;
  in_code.set("weave.tcp-inline-turns", 5000);
  auto what = construction_error(std::move(in_code));
  CHECK(what.find("weave.tcp-inline-turns") != std::string::npos);
  CHECK(what.find("0..1024") != std::string::npos);
}

TEST_CASE("weave.tcp-gather: auto, always or never; anything else refused, "
          "named") {
  CHECK(weave::runtime_config{}.tcp_gather() == "auto");
  for (auto mode : {"auto", "always", "never"}) {
    CAPTURE(mode);
    weave::runtime_config ok;
    REQUIRE(!parse(ok, {std::string{"--weave.tcp-gather="} + mode}));
    CHECK(ok.tcp_gather() == mode);
  }
  for (auto arg : {"--weave.tcp-gather=sometimes", "--weave.tcp-gather=",
                   "--weave.tcp-gather=Always"}) {
    CAPTURE(arg);
    weave::runtime_config cfg;
    auto err = parse(cfg, {arg});
    REQUIRE(err);
    CHECK(weave::is(err, weave::errc::invalid_config));
    auto msg = weave::render(err);
    CHECK(msg.find("weave.tcp-gather") != std::string::npos);
    CHECK_MESSAGE(msg.find("auto, always") != std::string::npos, msg);
  }
  weave::runtime_config in_code;
  in_code.set("weave.tcp-gather", std::string{"sometimes"});
  auto what = construction_error(std::move(in_code));
  CHECK_MESSAGE(what.find("weave.tcp-gather") != std::string::npos, what);
  CHECK(what.find("\"sometimes\" is not a mode") != std::string::npos);
  CHECK(what.find("auto, always, never") != std::string::npos);
}
