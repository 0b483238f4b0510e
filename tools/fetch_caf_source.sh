#!/usr/bin/env bash
# Fetches the source of Debian's CAF 0.17.6 (package actor-framework) into
# third_party/caf_src/, for `--config=tsan-caf` (a CAF built with
# ThreadSanitizer). It needs a deb-src entry: derived from the machine's own
# apt source entry (same archive, same suites), never a host name of ours.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/third_party/caf_src"
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo

if ! apt-get source --print-uris actor-framework >/dev/null 2>&1; then
  src=/etc/apt/sources.list.d/debian.sources
  [[ -f $src ]] || { echo "no $src to derive a deb-src entry from" >&2; exit 1; }
  sed 's/^Types: deb$/Types: deb-src/' "$src" |
    $sudo tee /etc/apt/sources.list.d/weave-deb-src.sources >/dev/null
  $sudo apt-get update -q >&2
fi
mkdir -p "$dest"
cd "$dest"
# The Debian part may be missing from a snapshot mirror; the upstream
# tarball is what gets built, so its absence is the only fatal case.
apt-get source --download-only actor-framework >&2 || true
tarball=$(ls actor-framework_*.orig.tar.gz 2>/dev/null | head -1)
[[ -n $tarball ]] || { echo "could not download actor-framework's source" >&2; exit 1; }
tar xzf "$tarball"
echo "CAF source ready in $dest/$(tar tzf "$tarball" | head -1 | cut -d/ -f1)"
