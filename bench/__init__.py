"""Benchmarks: each app path measured against a raw-database baseline in the same run.

See bench/README.md for how to run them and bench/RESULTS.md for the last recorded numbers.
"""
