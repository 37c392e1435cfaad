import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def cli_path():
    return os.environ.get("OTGEN_CLI", os.path.join(ROOT, "build", "otgen"))


@pytest.fixture
def cli():
    """Runs the otgen CLI; returns CompletedProcess with text output."""
    path = cli_path()
    if not os.path.exists(path):
        pytest.fail(f"otgen CLI not found at {path}: build first (make build)")

    def run(*args, check=True):
        r = subprocess.run([path, *map(str, args)], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"otgen {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
        return r

    return run
