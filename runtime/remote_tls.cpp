#include "runtime/remote_tls.hpp"

#include <unistd.h>

#include "caf/actor_cast.hpp"
#include "caf/openssl/manager.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/remote_tls_hook.hpp"
#include "runtime/remote_pool.hpp"

namespace weave {

namespace {

void check_readable(const std::string& what, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0)
    raise(make_error(errc::invalid_argument,
                     "enable_remote_tls: " + what + " '" + path
                       + "' is not a readable file"));
}

} // namespace

void enable_remote_tls(runtime_config& cfg, const std::string& app_id,
                       const tls_options& tls) {
  auto bad = [](const std::string& why) {
    raise(make_error(errc::invalid_argument, "enable_remote_tls: " + why));
  };
  bool any = !tls.certificate.empty() || !tls.key.empty()
             || !tls.ca_file.empty() || !tls.passphrase.empty();
  if (tls.allow_unauthenticated) {
    if (any)
      bad("allow_unauthenticated together with certificates: choose one");
  } else {
    if (!any)
      bad("no certificate, key and CA given: that would be unauthenticated "
          "TLS, which needs tls_options::allow_unauthenticated = true "
          "(--weave-tls-unauthenticated)");
    if (tls.certificate.empty() || tls.key.empty() || tls.ca_file.empty())
      bad("authenticated TLS needs a certificate, its key and a CA file "
          "(got certificate '"
          + tls.certificate + "', key '" + tls.key + "', CA '" + tls.ca_file
          + "')");
    check_readable("certificate", tls.certificate);
    check_readable("key", tls.key);
    check_readable("CA file", tls.ca_file);
  }
  enable_remote_pools(cfg, app_id);
  cfg.openssl_certificate = tls.certificate;
  cfg.openssl_key = tls.key;
  cfg.openssl_cafile = tls.ca_file;
  cfg.openssl_passphrase = tls.passphrase;
  cfg.load<caf::openssl::manager>();
}

namespace {

/// Offers TLS to workers started with `--weave-worker-listen`.
[[maybe_unused]] const bool hook_installed = [] {
  internal::tls_hook() = &enable_remote_tls;
  internal::tls_actor_hook() = [](caf::actor_system& sys) {
    return caf::actor_cast<caf::actor>(sys.openssl_manager().actor_handle());
  };
  return true;
}();

} // namespace

} // namespace weave
