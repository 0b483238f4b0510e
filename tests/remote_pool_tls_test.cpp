// remote_pool over TLS (CAF's OpenSSL module): a round trip with a
// certificate made at test time by the `openssl` command; a plain client
// cannot talk to a TLS worker; unauthenticated TLS only when opted in, at
// both ends; bad TLS settings get a clear weave error.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "runtime/remote_pool.hpp"
#include "runtime/remote_tls.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/remote_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// A self-signed certificate (its own CA) and its key, made once.
struct test_cert {
  std::string cert;
  std::string key;
  bool made = false;

  test_cert() {
    auto dir = scratch_dir();
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
               "/CN=weave-test -keyout "
               + key + " -out " + cert + " >/dev/null 2>&1";
    made = std::system(cmd.c_str()) == 0;
  }
};

const test_cert& certificate() {
  static test_cert c;
  return c;
}

weave::tls_options authenticated() {
  auto& c = certificate();
  weave::tls_options tls;
  tls.certificate = c.cert;
  tls.key = c.key;
  tls.ca_file = c.cert;
  return tls;
}

std::vector<std::string> worker_flags(const weave::tls_options& tls) {
  if (tls.allow_unauthenticated)
    return {"--weave-tls-unauthenticated"};
  return {"--weave-tls-certificate=" + tls.certificate,
          "--weave-tls-key=" + tls.key, "--weave-tls-ca=" + tls.ca_file};
}

} // namespace

TEST_CASE("a remote pool round trip over TLS with certificates") {
  REQUIRE_MESSAGE(certificate().made, "the openssl command failed");
  auto tls = authenticated();
  weave::runtime_config cfg;
  weave::enable_remote_tls(cfg, weave::default_app_id, tls);
  weave::runtime rt{std::move(cfg)};
  worker_process w{worker_flags(tls), tls_worker_program};
  REQUIRE_MESSAGE(w.port() != 0, w.line());
  weave::remote_pool pool{rt, {{w.address()}}};
  CHECK(pool.submit(square(9)).get() == 81);
  CHECK(pool.submit(whoami()).get() == w.pid());
  auto f = pool.submit(fail_with("over tls"));
  CHECK(weave::render(error_of(f)).find("over tls") != std::string::npos);
}

TEST_CASE("a client without TLS cannot use a TLS worker, and says why") {
  REQUIRE_MESSAGE(certificate().made, "the openssl command failed");
  weave::runtime rt{remote_config()};
  worker_process w{worker_flags(authenticated()), tls_worker_program};
  REQUIRE_MESSAGE(w.port() != 0, w.line());
  weave::remote_pool_options opts;
  opts.workers = {w.address()};
  opts.connect_timeout = 500ms;
  opts.start_timeout = 1s;
  std::string what;
  weave::errc code{};
  try {
    weave::remote_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
    code = e.code();
  }
  CHECK(code == weave::errc::io_error);
  CHECK_MESSAGE(what.find(w.address()) != std::string::npos, what);
}

TEST_CASE("unauthenticated TLS works only when both ends opt in") {
  weave::tls_options anon;
  anon.allow_unauthenticated = true;
  weave::runtime_config cfg;
  weave::enable_remote_tls(cfg, weave::default_app_id, anon);
  weave::runtime rt{std::move(cfg)};
  worker_process w{worker_flags(anon), tls_worker_program};
  REQUIRE_MESSAGE(w.port() != 0, w.line());
  weave::remote_pool pool{rt, {{w.address()}}};
  CHECK(pool.submit(square(4)).get() == 16);
}

TEST_CASE("bad TLS settings get a clear weave error") {
  auto message = [](const weave::tls_options& tls) {
    weave::runtime_config cfg;
    try {
      weave::enable_remote_tls(cfg, weave::default_app_id, tls);
    } catch (const weave::exception& e) {
      CHECK(e.code() == weave::errc::invalid_argument);
      return std::string{e.what()};
    }
    return std::string{"accepted"};
  };
  // No certificate and no opt-in: refused, and the opt-in is named.
  CHECK(message({}).find("allow_unauthenticated") != std::string::npos);
  auto no_ca = authenticated();
  no_ca.ca_file.clear();
  CHECK(message(no_ca).find("CA") != std::string::npos);
  auto missing = authenticated();
  missing.key = "/no/such/key.pem";
  CHECK(message(missing).find("/no/such/key.pem") != std::string::npos);
  auto both = authenticated();
  both.allow_unauthenticated = true;
  CHECK(message(both).find("choose one") != std::string::npos);
  // A worker started with TLS flags it cannot use exits with status 2.
  worker_process plain{{"--weave-tls-unauthenticated"}, worker_program};
  CHECK(plain.port() == 0);
}
