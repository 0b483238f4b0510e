#include "actors/internal/resolver_state.hpp"

#include <cerrno>
#include <cstring>
#include <netdb.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace weave::actors::internal_resolver {

caf::expected<addresses> run_lookup(const resolver_options& opts,
                                    const lookup& l) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  auto service = std::to_string(l.port);
  int rc = opts.lookup ? opts.lookup(l.host.c_str(), service.c_str(), &hints,
                                     &res)
                       : ::getaddrinfo(l.host.c_str(), service.c_str(),
                                       &hints, &res);
  if (rc != 0) {
    std::string text = rc == EAI_SYSTEM ? std::strerror(errno)
                                        : ::gai_strerror(rc);
    return make_error(errc::io_error,
                      "getaddrinfo '" + l.host + "': " + text);
  }
  addresses xs;
  for (auto p = res; p != nullptr; p = p->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    const void* src = nullptr;
    if (p->ai_family == AF_INET)
      src = &reinterpret_cast<const sockaddr_in*>(p->ai_addr)->sin_addr;
    else if (p->ai_family == AF_INET6)
      src = &reinterpret_cast<const sockaddr_in6*>(p->ai_addr)->sin6_addr;
    if (src == nullptr
        || ::inet_ntop(p->ai_family, src, text, sizeof(text)) == nullptr)
      continue;
    resolved_address a{p->ai_family, text, l.port};
    if (std::find(xs.begin(), xs.end(), a) == xs.end())
      xs.emplace_back(std::move(a));
  }
  if (res != nullptr) {
    if (opts.free_result)
      opts.free_result(res);
    else
      ::freeaddrinfo(res);
  }
  return xs;
}

} // namespace weave::actors::internal_resolver
