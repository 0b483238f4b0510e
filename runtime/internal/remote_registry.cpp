#include "runtime/internal/remote_registry.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace weave::internal {

namespace {

/// The three fields of a `describe()` line.
struct described {
  std::string name;
  std::string signature;
  bool defined = false;
};

bool parse(const std::string& line, described& out) {
  auto a = line.find('\t');
  if (a == std::string::npos)
    return false;
  auto b = line.find('\t', a + 1);
  if (b == std::string::npos)
    return false;
  out.name = line.substr(0, a);
  out.signature = line.substr(a + 1, b - a - 1);
  out.defined = line.substr(b + 1) == "1";
  return true;
}

} // namespace

std::string readable_signature(const std::string& signature) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text{
    abi::__cxa_demangle(signature.c_str(), nullptr, nullptr, &status),
    std::free};
  if (status != 0 || text == nullptr)
    return signature;
  return text.get();
}

job_registry& job_registry::instance() {
  static job_registry registry;
  return registry;
}

void job_registry::declare(job_entry* e) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto [i, added] = entries_.emplace(e->name, e);
  if (!added && i->second != e && conflict_.empty()
      && i->second->signature != e->signature)
    conflict_ = "job '" + e->name + "' is declared twice in this program: as "
                + readable_signature(i->second->signature) + " and as "
                + readable_signature(e->signature);
}

const job_entry* job_registry::find(const std::string& name) const {
  std::unique_lock<std::mutex> guard{mtx_};
  auto i = entries_.find(name);
  return i != entries_.end() ? i->second : nullptr;
}

std::vector<std::string> job_registry::describe() const {
  std::unique_lock<std::mutex> guard{mtx_};
  std::vector<std::string> result;
  for (auto& [name, e] : entries_)
    result.emplace_back(name + "\t" + e->signature + "\t"
                        + (e->invoke != nullptr ? "1" : "0"));
  return result;
}

caf::error job_registry::check(const std::vector<std::string>& worker,
                               std::set<std::string>& runnable) const {
  std::unique_lock<std::mutex> guard{mtx_};
  runnable.clear();
  for (auto& line : worker) {
    described d;
    if (!parse(line, d))
      return make_error(errc::registry_mismatch,
                        "the worker sent an unreadable job table entry");
    auto i = entries_.find(d.name);
    if (i == entries_.end())
      continue; // a job only the worker knows: never sent
    if (i->second->signature != d.signature)
      return make_error(errc::registry_mismatch,
                        "job '" + d.name + "': this process declares "
                          + readable_signature(i->second->signature)
                          + ", the worker "
                          + readable_signature(d.signature));
    if (d.defined)
      runnable.insert(d.name);
  }
  return caf::error{};
}

caf::error job_registry::conflict() const {
  std::unique_lock<std::mutex> guard{mtx_};
  if (conflict_.empty())
    return caf::error{};
  return make_error(errc::registry_mismatch, conflict_);
}

} // namespace weave::internal
