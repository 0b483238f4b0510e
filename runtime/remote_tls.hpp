#pragma once

/// TLS for remote pools: every connection of a remote pool (and of a
/// worker that serves one) goes through OpenSSL (CAF's `libcaf-openssl`).
///
/// Link the target `//runtime:remote_tls` (it brings `libcaf_openssl`) and
/// call `enable_remote_tls(cfg, app_id, tls)` instead of
/// `enable_remote_pools(cfg, app_id)`, on both ends, before the runtime is
/// made. A worker started with `--weave-worker-listen` takes the same
/// settings as flags: `--weave-tls-certificate=PEM`, `--weave-tls-key=PEM`,
/// `--weave-tls-ca=PEM`, `--weave-tls-passphrase=TEXT`, or
/// `--weave-tls-unauthenticated` (its program must link the target too).
///
/// Authenticated TLS (the default): each end presents `certificate` (with
/// its private `key`) and verifies the other's against `ca_file`; both
/// must be given, and readable. Unauthenticated TLS (anonymous ciphers:
/// encrypted, but anyone may connect) only when `allow_unauthenticated` is
/// set, and then without certificates. Anything else is `invalid_argument`
/// naming the problem. The application id applies inside TLS as well.
///
/// Thread-safety: call before the runtime exists, from one thread.
/// Shutdown: nothing of its own (the middleman's OpenSSL module stops with
/// the actor system).

#include <string>

#include "runtime/runtime_config.hpp"

namespace weave {

struct tls_options {
  /// PEM files: this end's certificate and private key, and the CA that
  /// signed the peers' certificates.
  std::string certificate;
  std::string key;
  std::string ca_file;
  /// Unlocks `key` if it is encrypted.
  std::string passphrase;
  /// Opts in to TLS without certificates (no authentication).
  bool allow_unauthenticated = false;
};

/// `enable_remote_pools(cfg, app_id)`, then CAF's OpenSSL module with
/// `tls`. Throws `weave::exception` (`invalid_argument`) on bad settings.
void enable_remote_tls(runtime_config& cfg, const std::string& app_id,
                       const tls_options& tls);

} // namespace weave
