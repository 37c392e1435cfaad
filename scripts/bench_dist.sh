#!/usr/bin/env bash
# More than one process (issue 16, docs/dist.md): the sharded fit's scaling model from a rank's measured
# compute per step and the collectives' cost under mpirun (needs a build with OTGEN_MPI).
set -euo pipefail
BUILD=${BUILD:-build}
if ! command -v mpirun >/dev/null; then echo "dist: no mpirun (apt-get install -y openmpi-bin): skipped"; exit 0; fi
PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/dist_scaling.py "$BUILD/otgen"
