#!/usr/bin/env python3
"""Medians per variant of a bench/ab_alternate output file.

usage: bench/ab_summary.py OUT
Prints one line per (measure, field): each variant's median and its count.
"""
import collections
import json
import statistics
import sys

rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    rep, variant, text = line.split(' ', 2)
    try:
        results = json.loads(text)['results']
    except (ValueError, KeyError):
        continue  # a run that printed no result line
    for measure, fields in results.items():
        for field, value in fields.items():
            rows[(measure, field)][variant].append(value)
for (measure, field), by_variant in sorted(rows.items()):
    print(measure, field, '  '.join(
        f"{v}={statistics.median(xs):.4g}(n{len(xs)})"
        for v, xs in by_variant.items()))
