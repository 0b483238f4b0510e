// The tour: every tutorial pattern weave answers, in the tutorial's order,
// each section announced. `./bazelw run //examples:tour` is the README's
// first command; it keeps the tutorial's delays (about 22-26 s). It ends with
// the graceful example: SIGTERM sent to itself runs the phased shutdown.
// `./bazelw run //examples:tour -- --fast` divides them by ten; weave's and
// CAF's options may follow (`-- --fast --weave.pool-size=4`).
#include "examples/example.hpp"

namespace weave_examples {

void section_3_1(weave::runtime& rt, const options& opts);
void section_3_2(weave::runtime& rt, const options& opts);
void section_4_1(weave::runtime& rt, const options& opts);
void section_5_1(weave::runtime& rt, const options& opts);
void section_5_2(weave::runtime& rt, const options& opts);
void section_6_1(weave::runtime& rt, const options& opts);
void section_7_1(weave::runtime& rt, const options& opts);
void section_8_1(weave::runtime& rt, const options& opts);
void section_tcp(weave::runtime& rt, const options& opts);
void section_9_1(weave::runtime& rt, const options& opts);
weave::shutdown_report graceful_example(weave::runtime& rt,
                                        const options& opts);

} // namespace weave_examples

int main(int argc, char** argv) {
  using namespace weave_examples;
  auto opts = take_options(argc, argv);
  int status = 0;
  auto runtime = make_runtime(argc, argv, status);
  if (!runtime)
    return status;
  auto& rt = *runtime;
  std::cout << "weave tour: the patterns of \"python async await 与多线程如何"
               "结合使用\", in C++ on CAF"
            << std::endl;
  section_3_1(rt, opts);
  section_3_2(rt, opts);
  section_4_1(rt, opts);
  section_5_1(rt, opts);
  section_5_2(rt, opts);
  section_6_1(rt, opts);
  section_7_1(rt, opts);
  section_8_1(rt, opts);
  section_tcp(rt, opts);
  section_9_1(rt, opts);
  // Last: SIGTERM ends the runtime (the signal actor runs its shutdown; a
  // later `rt.shutdown()` would return an empty report).
  auto report = graceful_example(rt, opts);
  std::cout << "\ntour finished; runtime shut down cleanly by SIGTERM in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                 report.total)
                 .count()
            << " ms" << std::endl;
  return report.empty() ? 0 : 1;
}
