"""Shared compiler options and test macros for weave's targets."""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

# -std and -Wall/-Wextra come from .bazelrc for every C++ action; weave's own
# code must also be warning-free.
WEAVE_COPTS = ["-Werror", "-Wshadow=local", "-Wnon-virtual-dtor"]

def weave_library(name, **kwargs):
    cc_library(name = name, copts = WEAVE_COPTS + kwargs.pop("copts", []), **kwargs)

def weave_binary(name, **kwargs):
    cc_binary(name = name, copts = WEAVE_COPTS + kwargs.pop("copts", []), **kwargs)

def weave_test(name, srcs, deps = [], size = "small", tags = [], data = [], **kwargs):
    """A doctest suite; //tests:test_support provides main() and the watchdog."""
    cc_test(
        name = name,
        srcs = srcs,
        copts = WEAVE_COPTS,
        deps = deps + ["//tests:test_support", "@doctest"],
        data = data + ["//tools:lsan.supp", "//tools:ubsan.supp"],
        size = size,
        tags = tags,
        **kwargs
    )

def example(name, srcs, deps = [], size = "small", local_defines = []):
    """An example program, and the smoke test that runs it (see smoke.sh)."""
    cc_binary(
        name = name,
        srcs = srcs,
        copts = WEAVE_COPTS,
        local_defines = local_defines,
        deps = deps + ["//runtime", "//examples:example_support"],
    )
    native.sh_test(
        name = name + "_smoke",
        srcs = ["//examples:smoke.sh"],
        args = ["$(location :%s)" % name, name],
        data = [":" + name, "//examples:expected/%s.txt" % name,
                "//tools:lsan.supp", "//tools:ubsan.supp"],
        size = size,
    )
