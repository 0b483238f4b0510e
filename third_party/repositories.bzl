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

def weave_dependencies():
    debian_rules_cc(name = "rules_cc", path = "/usr/share/bazel/rules/cc")
    native.local_repository(name = "rules_java", path = "/usr/share/bazel/rules/java")
    native.local_repository(name = "platforms", path = "/usr/share/bazel/platforms")
    offline_coverage_tools(name = "remote_coverage_tools")
    native.new_local_repository(
        name = "caf",
        path = "/usr",
        build_file = "@weave//third_party:caf.BUILD",
    )
    native.new_local_repository(
        name = "doctest",
        path = "/usr",
        build_file = "@weave//third_party:doctest.BUILD",
    )
