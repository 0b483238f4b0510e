#!/usr/bin/env bash
# Smoke test for an example: runs it (with --fast), then checks that every
# line of expected/<name>.txt appears in its output, in that order; a line
# starting with "~ " must appear anywhere (for output of concurrent threads
# whose order is not fixed).
set -euo pipefail
bin=$1
name=$2
expected="examples/expected/$name.txt"
out=$(timeout 60 "$bin" --fast 2>&1) || {
  echo "$name exited with status $?"; echo "$out"; exit 1; }
echo "$out"
rest=$out
while IFS= read -r want; do
  [[ -z $want ]] && continue
  if [[ $want == "~ "* ]]; then
    if [[ $out != *"${want#\~ }"* ]]; then
      echo "FAIL: '${want#\~ }' not found in the output of $name"
      exit 1
    fi
    continue
  fi
  if [[ $rest != *"$want"* ]]; then
    echo "FAIL: '$want' not found (in order) in the output of $name"
    exit 1
  fi
  rest=${rest#*"$want"}
done <"$expected"
echo "OK: $name"
