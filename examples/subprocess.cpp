// asyncio.create_subprocess_exec, in C++: child processes whose stdin,
// stdout and stderr are weave channels. `ls` is run from the main thread
// (its output read chunk by chunk, its exit code shown, also for a path
// that does not exist); `sort` is run by an actor that owns it: the actor
// pipes lines into its stdin without blocking, has the sorted output read
// on a pool thread (offload) and receives its exit status as a message. Each line says
// which thread printed it: the pipes are pumped by weave's own threads
// (weave-proc-in/out/err), the child is reaped by weave-proc-wait.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include "actors/process_actor.hpp"
#include "examples/example.hpp"

namespace weave_examples {

namespace {

/// A directory with three files in it, removed again by `remove`.
struct scratch_dir {
  std::string path;

  scratch_dir() {
    std::string tmpl = "/tmp/weave-subprocess-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr)
      path = tmpl;
    for (auto name : {"pears.txt", "apples.txt", "quinces.txt"})
      if (auto f = std::fopen((path + "/" + name).c_str(), "w"))
        std::fclose(f);
  }

  ~scratch_dir() {
    for (auto name : {"pears.txt", "apples.txt", "quinces.txt"})
      std::remove((path + "/" + name).c_str());
    ::rmdir(path.c_str());
  }
};

/// Prints each line of `text` after `prefix`.
void say_lines(const char* prefix, const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    auto nl = text.find('\n', i);
    say(prefix, text.substr(i, nl - i));
    i = nl == std::string::npos ? text.size() : nl + 1;
  }
}

/// Runs `ls` with `args` in `cwd` and prints its output and exit code.
void run_ls(weave::runtime& rt, std::vector<std::string> args,
            const std::string& cwd) {
  weave::actors::process_options opts;
  opts.argv = {"ls"};
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.cwd = cwd;
  opts.stdin_mode = weave::actors::stdio_mode::null;
  auto p = weave::actors::spawn_process(rt, opts);
  auto read_all = [](weave::channel<std::string>& ch) {
    std::string all;
    while (auto chunk = ch.get()) // `closed` at end of file
      all += *chunk.value;
    return all;
  };
  say_lines("ls: ", read_all(*p.out));
  say_lines("ls (stderr): ", read_all(*p.err));
  say("ls ", args.back(), ": ", p.exited.get().to_string());
}

} // namespace

void section_9_1(weave::runtime& rt, const options&) {
  section("9.1", "subprocesses: ls and sort with data piped through");
  scratch_dir dir;

  // 1. From a plain thread: read stdout until end of file, then the status.
  run_ls(rt, {"-1", "."}, dir.path);
  run_ls(rt, {"weave-no-such-file"}, dir.path);

  // 2. From an actor that owns the child: stdin fed without blocking,
  //    stdout drained on a pool thread, the exit status as a message.
  weave::promise<int> done;
  rt.system().spawn([done](caf::event_based_actor* self) mutable {
    weave::actors::process_options opts;
    opts.argv = {"sort"};
    opts.env = std::vector<std::string>{"LC_ALL=C", "PATH=/usr/bin:/bin"};
    auto p = weave::actors::spawn_process(self, opts);
    // From an actor the spawn runs on weave-proc-wait: this never blocks.
    say("actor: started sort");
    auto in = *p.in;
    std::vector<std::string> fruits{"quince\n", "apple\n", "pear\n",
                                    "fig\n"};
    for (size_t i = 0; i < fruits.size(); ++i) {
      // Accepted in the order sent; after the last one, close: end of file.
      bool last = i + 1 == fruits.size();
      in.send(self, std::move(fruits[i])).then([in, last]() mutable {
        if (last) {
          say("actor: all lines are in sort's stdin; closing it");
          in.close();
        }
      });
    }
    // The output is read on a pool thread (run_in_executor), its end
    // comes back to the actor.
    auto out = *p.out;
    // The output's end and the exit status arrive in either order.
    struct progress {
      std::string lines;
      bool closed = false;
      int code = -1;
    };
    auto st = std::make_shared<progress>();
    auto finish = [st, self, done]() mutable {
      if (!st->closed || st->code < 0)
        return;
      say_lines("actor: sorted: ", st->lines);
      done.set_value(st->code);
      self->quit();
    };
    weave::offload(self, [out]() mutable {
      std::string all;
      while (auto chunk = out.get()) // `closed` at end of file
        all += *chunk.value;
      say("pool: read ", all.size(), " bytes of sort's output");
      return all;
    }).then([st, finish](std::string& all) mutable {
      st->lines = std::move(all);
      st->closed = true;
      finish();
    });
    self->become(
      [st, finish](weave::actors::exited_atom,
                   const weave::actors::exit_status& status) mutable {
        say("actor: sort ended: ", status.to_string());
        st->code = status.signal == 0 ? status.code : 128 + status.signal;
        finish();
      });
  });
  auto code = done.get_future().get();
  say("sort's exit code: ", code);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_9_1)
