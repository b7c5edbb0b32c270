"""Support code for the tests and the benchmarks: local corpora of human text and calibration helpers.

Not part of the runtime package: nothing under ``src/`` imports it.  Benchmarks and scripts put
the repository root on ``sys.path`` to import it.
"""
