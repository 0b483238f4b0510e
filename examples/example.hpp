#pragma once

// Shared by the examples: a thread-tagged printer, the tutorial's delays, and
// the command line.
//
// Every example prints which thread ran what, the way the tutorial prints
// `threading.current_thread().name`. The examples keep the tutorial's delays
// (the tour takes about 22-26 s); `--fast`, the examples' own flag (the smoke
// tests pass it), divides every delay by ten and changes nothing else in what
// the program does (interleavings and timing-dependent counts vary from run to
// run at either speed). Every other argument goes to the runtime, which reads weave's and
// CAF's options from it (`--weave.pool-size=4`, `--config-file=...`); a bad
// option ends the program with its message and status 2.
//
// Each example file defines one `weave_examples::section_...` function and,
// unless it is compiled into //examples:tour (WEAVE_TOUR), a main() that runs
// it with a fresh runtime.

#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "runtime/weave.hpp"

namespace weave_examples {

/// What `--fast` divides the tutorial's delays by.
constexpr int fast_divisor = 10;

/// Exit status for a bad command line.
constexpr int bad_usage_status = 2;

/// The tutorial's delays, scaled.
struct options {
  int divisor = 1;

  template <class Rep, class Period>
  auto scaled(std::chrono::duration<Rep, Period> d) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d) / divisor;
  }
};

/// Takes the examples' own flag `--fast` out of the command line, leaving
/// the rest (weave's and CAF's options) for the runtime.
inline options take_options(int& argc, char** argv) {
  options opts;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--fast") == 0)
      opts.divisor = fast_divisor;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;
  return opts;
}

/// A runtime configured from the command line (`runtime{argc, argv}`), or
/// null after printing why not: the configuration was refused (the
/// constructor throws `weave::exception` naming the option), or CAF printed
/// its help text (`--help`).
inline std::unique_ptr<weave::runtime> make_runtime(int argc, char** argv,
                                                    int& status) {
  std::unique_ptr<weave::runtime> rt;
  try {
    rt = std::make_unique<weave::runtime>(argc, argv);
  } catch (const weave::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << std::endl;
    status = bad_usage_status;
    return nullptr;
  }
  if (rt->config().cli_helptext_printed) {
    status = 0;
    return nullptr;
  }
  return rt;
}

inline std::mutex& print_mutex() {
  static std::mutex mtx;
  return mtx;
}

/// Prints one line tagged with the calling thread's name.
template <class... Ts>
void say(const Ts&... xs) {
  std::ostringstream line;
  line << "[" << weave::this_thread_name() << "] ";
  (line << ... << xs);
  std::lock_guard<std::mutex> guard{print_mutex()};
  std::cout << line.str() << std::endl;
}

/// Announces a tutorial section.
inline void section(const char* number, const char* title) {
  std::lock_guard<std::mutex> guard{print_mutex()};
  std::cout << "\n== §" << number << " " << title << " ==" << std::endl;
}

} // namespace weave_examples

#ifdef WEAVE_TOUR
#  define WEAVE_EXAMPLE_MAIN(fn)
#else
#  define WEAVE_EXAMPLE_MAIN(fn)                                               \
    int main(int argc, char** argv) {                                          \
      auto opts = weave_examples::take_options(argc, argv);                    \
      int status = 0;                                                          \
      auto rt = weave_examples::make_runtime(argc, argv, status);              \
      if (!rt)                                                                 \
        return status;                                                         \
      fn(*rt, opts);                                                           \
      return 0;                                                                \
    }
#endif
