#pragma once

/// Registered jobs: named functions with serialisable arguments and result,
/// which a thread pool and a process pool run alike.
///
/// A job that may cross a process boundary is declared once, in a header
/// that both ends (the program and its worker processes) include, and
/// implemented once, in one source file:
///
///     // jobs.hpp
///     WEAVE_JOB(resize_image, std::string(std::string path, int width));
///     WEAVE_IDEMPOTENT_JOB(checksum, uint64_t(std::vector<char> data));
///
///     // jobs.cpp
///     WEAVE_JOB_IMPL(resize_image, [](std::string path, int width) {
///       return resize(path, width);
///     });
///
/// Calling the declared name binds arguments without running anything:
/// `resize_image("a.png", 640)` is a `bound_job`, a function object that any
/// pool accepts, so the same code runs on a thread pool and on a process
/// pool:
///
///     pool.submit(resize_image("a.png", 640))                 // future
///     offload(self, pool, resize_image("a.png", 640), 2s)     // in an actor
///     process_pool.submit(resize_image, "a.png", 640)         // shorthand
///
/// On a `blocking_pool` (or `offload` to one) the bound job calls the local
/// implementation directly, without encoding anything; on a `process_pool`
/// its arguments are encoded, sent to a worker process, run there, and the
/// result comes back the same way.
///
/// Types: arguments and the result must be default-constructible and
/// serialisable by CAF 0.17's `inspect` (built-in types, strings, standard
/// containers, or a user type with an `inspect` overload visible where the
/// job is declared). They travel as bytes, so no `add_message_type` is
/// needed. `void` results are allowed.
///
/// Identity: a job is known by its name (the first macro argument, without
/// namespace) and its signature (the function type with parameters
/// decayed). When a worker joins a pool, both sides compare their tables: a
/// job declared on both sides with different signatures refuses the worker
/// (`registry_mismatch` naming the job); a job the worker does not
/// implement fails at submit with `registry_mismatch` naming it, before any
/// message is sent. Two declarations of one name with different signatures
/// in one program make every process pool refuse to start.
///
/// Idempotence (`WEAVE_IDEMPOTENT_JOB`): a job whose worker process is lost
/// while it holds the job is retried once on another worker; its caller
/// sees one outcome. Other jobs fail with `worker_lost` (see
/// process_pool.hpp).
///
/// Thread-safety: declarations and `WEAVE_JOB_IMPL` run during static
/// initialisation; afterwards everything here is read-only and may be used
/// from any thread. A bound job is a plain value (call it once).

#include <functional>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "caf/unit.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/remote_registry.hpp"

namespace weave {

/// Tag for `registered_job`'s constructor: the job is idempotent.
struct idempotent_t {};
constexpr idempotent_t idempotent{};

template <class Signature>
class registered_job;

template <class Signature>
class bound_job;

/// A registered job with its arguments bound; calling it runs the local
/// implementation (what a thread pool does with it).
template <class R, class... Args>
class bound_job<R(Args...)> {
public:
  using result_type = R;
  using args_type = std::tuple<std::decay_t<Args>...>;

  bound_job(const registered_job<R(Args...)>& job, args_type args)
    : job_(&job), args_(std::move(args)) {
    // nop
  }

  /// Runs the local implementation; throws `registry_mismatch` if this
  /// process has none (the job is implemented only in a worker program).
  R operator()() {
    return job_->invoke_local(std::move(args_));
  }

  const registered_job<R(Args...)>& job() const noexcept {
    return *job_;
  }

  /// The arguments encoded for a worker process.
  std::vector<char> encode_args() {
    return std::apply(
      [](auto&... xs) { return internal::encode(xs...); }, args_);
  }

private:
  const registered_job<R(Args...)>* job_;
  args_type args_;
};

/// A job declared by `WEAVE_JOB`; see the header comment.
template <class R, class... Args>
class registered_job<R(Args...)> {
public:
  using result_type = R;
  using args_type = std::tuple<std::decay_t<Args>...>;
  using value_type = std::conditional_t<std::is_void<R>::value, caf::unit_t, R>;

  explicit registered_job(const char* name) {
    init(name, false);
  }

  registered_job(const char* name, idempotent_t) {
    init(name, true);
  }

  registered_job(const registered_job&) = delete;
  registered_job& operator=(const registered_job&) = delete;

  /// Binds arguments (converted to the declared parameter types).
  template <class... Xs>
  bound_job<R(Args...)> operator()(Xs&&... xs) const {
    static_assert(sizeof...(Xs) == sizeof...(Args),
                  "wrong number of arguments for this registered job");
    return {*this, args_type{std::forward<Xs>(xs)...}};
  }

  /// Sets the implementation (`WEAVE_JOB_IMPL`); once per program.
  template <class F>
  void define(F fn) {
    impl_ = std::move(fn);
    entry_.invoke = &invoke_encoded;
  }

  const std::string& name() const noexcept {
    return entry_.name;
  }

  bool is_idempotent() const noexcept {
    return entry_.idempotent;
  }

  /// True if this process has the implementation.
  bool defined() const noexcept {
    return entry_.invoke != nullptr;
  }

  const internal::job_entry& entry() const noexcept {
    return entry_;
  }

  /// Runs the implementation here.
  R invoke_local(args_type&& args) const {
    if (!impl_)
      raise(make_error(errc::registry_mismatch,
                       "job '" + entry_.name
                         + "' has no implementation in this process "
                           "(WEAVE_JOB_IMPL)"));
    return std::apply(impl_, std::move(args));
  }

  /// Decodes a result sent back by a worker.
  static caf::error decode_result(const std::vector<char>& bytes,
                                  value_type& out) {
    if constexpr (std::is_void<R>::value) {
      std::tuple<> none;
      return internal::decode(bytes, none);
    } else {
      std::tuple<R&> ref{out};
      return internal::decode(bytes, ref);
    }
  }

private:
  void init(const char* name, bool is_idempotent) {
    entry_.name = name;
    entry_.signature = typeid(R(std::decay_t<Args>...)).name();
    entry_.idempotent = is_idempotent;
    entry_.owner = this;
    internal::job_registry::instance().declare(&entry_);
  }

  /// The worker's side: decode, run, encode.
  static std::vector<char> invoke_encoded(const internal::job_entry& e,
                                          const std::vector<char>& in) {
    auto* self = static_cast<const registered_job*>(e.owner);
    args_type args;
    if (auto err = internal::decode(in, args))
      raise(make_error(errc::registry_mismatch,
                       "job '" + e.name
                         + "': cannot decode its arguments: " + render(err)));
    if constexpr (std::is_void<R>::value) {
      self->invoke_local(std::move(args));
      return {};
    } else {
      R result = self->invoke_local(std::move(args));
      return internal::encode(result);
    }
  }

  internal::job_entry entry_;
  std::function<R(Args...)> impl_;
};

} // namespace weave

/// Declares a job (in a header both ends include); `...` is its function
/// type, e.g. `WEAVE_JOB(resize, std::string(std::string path, int w));`.
#define WEAVE_JOB(name, ...)                                                   \
  inline ::weave::registered_job<__VA_ARGS__> name {                           \
    #name                                                                      \
  }

/// Declares an idempotent job: retried once if its worker is lost.
#define WEAVE_IDEMPOTENT_JOB(name, ...)                                        \
  inline ::weave::registered_job<__VA_ARGS__> name {                           \
    #name, ::weave::idempotent                                                 \
  }

#define WEAVE_JOB_CAT_(a, b) a##b
#define WEAVE_JOB_CAT(a, b) WEAVE_JOB_CAT_(a, b)

/// Implements a declared job, once per program (in one source file): the
/// function must be callable with the declared parameters and return the
/// declared result.
#define WEAVE_JOB_IMPL(name, ...)                                              \
  [[maybe_unused]] static const bool WEAVE_JOB_CAT(weave_job_impl_, __LINE__)                   \
    = ((name).define(__VA_ARGS__), true)
