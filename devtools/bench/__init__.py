"""Benchmarks: ``make bench`` (end to end) and ``make bench-parse`` (the X12 reader); figures go to README.md."""
