"""Repositories that adapt Debian's packages to Bazel 4.2.3, offline."""

def _debian_rules_cc_impl(rctx):
    """Copies Debian's rules_cc 0.0.4 and adapts it to Bazel 4.2.3.

    rules_cc 0.0.4 loads `use_cpp_toolchain` from @bazel_tools, which Bazel
    4.2.3 does not have; the two files that use it get the plain toolchain type.
    """
    src = rctx.path(rctx.attr.path)
    if not src.exists:
        fail("rules_cc not found at %s: install Debian's bazel-rules-cc (./bazelw does)" % src)
    res = rctx.execute(["cp", "-R", str(src) + "/.", "."])
    if res.return_code != 0:
        fail("copying rules_cc failed: " + res.stderr)
    for f in [
        "cc/private/rules_impl/cc_flags_supplier.bzl",
        "cc/private/rules_impl/compiler_flag.bzl",
    ]:
        text = rctx.read(f)
        text = text.replace(', "use_cpp_toolchain")', ")")
        text = text.replace("use_cpp_toolchain()", '["@bazel_tools//tools/cpp:toolchain_type"]')
        rctx.file(f, text, executable = False)

debian_rules_cc = repository_rule(
    implementation = _debian_rules_cc_impl,
    attrs = {"path": attr.string(mandatory = True)},
    local = True,
)

def _offline_coverage_tools_impl(rctx):
    """A stand-in for @remote_coverage_tools, which `bazel test` references.

    weave does not collect coverage through Bazel; the targets exist so that
    test rules resolve their implicit attributes without a download.
    """
    rctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
    rctx.file("coverage_unavailable.sh", "#!/bin/sh\necho 'coverage is not available offline' >&2\nexit 1\n", executable = True)
    rctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])
sh_binary(name = "coverage_report_generator", srcs = ["coverage_unavailable.sh"])
sh_binary(name = "lcov_merger", srcs = ["coverage_unavailable.sh"])
filegroup(name = "coverage_output_generator", srcs = ["coverage_unavailable.sh"])
""")

offline_coverage_tools = repository_rule(implementation = _offline_coverage_tools_impl)

def _caf_tsan_impl(rctx):
    """CAF 0.17.6 built from Debian's source with ThreadSanitizer.

    The source comes from tools/fetch_caf_source.sh (apt-get source); until it
    has run, the repository holds only a target that says so.
    """
    src = rctx.path(Label("@weave//third_party:BUILD")).dirname
    for part in rctx.attr.source.split("/"):
        src = src.get_child(part)
    # Only --config=tsan-caf sets WEAVE_CAF_TSAN; declaring it in `environ`
    # makes Bazel build this repository anew whenever it changes, so the
    # source fetched after a plain build is picked up.
    if rctx.os.environ.get("WEAVE_CAF_TSAN") != "1" or not src.exists:
        rctx.file("missing.cc", "#error \"CAF's source is missing: run tools/fetch_caf_source.sh, then build with --config=tsan-caf\"\n")
        rctx.file("BUILD", """
load("@rules_cc//cc:defs.bzl", "cc_library")
cc_library(name = "caf", srcs = ["missing.cc"], visibility = ["//visibility:public"])
""")
        return
    for entry in ["libcaf_core", "libcaf_io"]:
        rctx.symlink(src.get_child(entry), entry)
    # The same configuration as Debian's build of the headers in /usr/include.
    rctx.file("generated/caf/detail/build_config.hpp",
              rctx.read("/usr/include/caf/detail/build_config.hpp"))
    # The sources CAF's own CMakeLists.txt files compile, in their order:
    # the core, and the I/O module (the middleman) that process pools use.
    srcs = []
    for lib, var in [("libcaf_core", "LIBCAF_CORE_SRCS"), ("libcaf_io", "LIBCAF_IO_SRCS")]:
        cmake = rctx.read(src.get_child(lib).get_child("CMakeLists.txt"))
        start = cmake.find("set(" + var)
        end = cmake.find(")", start)
        srcs += ["%s/%s" % (lib, l.strip()) for l in cmake[start:end].split("\n")[1:] if l.strip().endswith(".cpp")]
    rctx.file("BUILD", """
load("@rules_cc//cc:defs.bzl", "cc_library")
cc_library(
    name = "caf",
    srcs = [%s],
    hdrs = glob(["libcaf_core/caf/**/*.hpp", "libcaf_io/caf/**/*.hpp"]) + ["generated/caf/detail/build_config.hpp"],
    includes = ["libcaf_core", "libcaf_io", "generated"],
    # -include limits: CAF 0.17.6's receive_buffer.hpp uses std::numeric_limits
    # without including <limits>; included first, it compiles in every order.
    copts = ["-w", "-fsanitize=thread", "-include", "limits"],
    linkopts = ["-lpthread", "-fsanitize=thread"],
    visibility = ["//visibility:public"],
)
""" % ", ".join(['"%s"' % f for f in srcs]))

caf_tsan = repository_rule(
    implementation = _caf_tsan_impl,
    attrs = {"source": attr.string(mandatory = True)},  # below third_party/
    environ = ["WEAVE_CAF_TSAN"],
    local = True,
)

def weave_dependencies():
    debian_rules_cc(name = "rules_cc", path = "/usr/share/bazel/rules/cc")
    native.local_repository(name = "rules_java", path = "/usr/share/bazel/rules/java")
    native.local_repository(name = "platforms", path = "/usr/share/bazel/platforms")
    offline_coverage_tools(name = "remote_coverage_tools")
    native.new_local_repository(
        name = "caf_system",
        path = "/usr",
        build_file = "@weave//third_party:caf.BUILD",
    )
    caf_tsan(
        name = "caf_tsan",
        source = "caf_src/actor-framework-0.17.6",
    )
    native.new_local_repository(
        name = "doctest",
        path = "/usr",
        build_file = "@weave//third_party:doctest.BUILD",
    )
