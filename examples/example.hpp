#pragma once

// Shared by the examples: a thread-tagged printer and the tutorial's delays.
//
// Every example prints which thread ran what, the way the tutorial prints
// `threading.current_thread().name`. With `--fast` (used by the smoke tests)
// the tutorial's delays are divided by ten; the output is the same.
//
// Each example file defines one `weave_examples::section_...` function and,
// unless it is compiled into //examples:tour (WEAVE_TOUR), a main() that runs
// it with a fresh runtime.

#include <chrono>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>

#include "runtime/weave.hpp"

namespace weave_examples {

/// The tutorial's delays, scaled.
struct options {
  int divisor = 1;

  template <class Rep, class Period>
  auto scaled(std::chrono::duration<Rep, Period> d) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d) / divisor;
  }
};

inline options parse_options(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--fast") == 0)
      opts.divisor = 10;
  return opts;
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
      auto opts = weave_examples::parse_options(argc, argv);                   \
      weave::runtime rt{weave::runtime_config{}};                              \
      fn(rt, opts);                                                            \
      return 0;                                                                \
    }
#endif
