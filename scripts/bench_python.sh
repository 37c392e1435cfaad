#!/usr/bin/env bash
# Python call overhead (issue 7): assign from Python vs the same call from C++, same run.
set -euo pipefail
/usr/bin/python3 bench/python_overhead.py "${BUILD:-build}" 5
