"""fastloop's benchmark suite: fastloop vs stock asyncio vs uvloop.

Run it with ``python -m benchmarks`` from the repository root (``make
bench``); ``--instructions`` counts instructions under callgrind instead of
timing (``make bench-instructions``).  See README.md in this directory.
"""
