"""Shared by the tests/mpi scripts: how they launch ranks and run a command expecting an exit code."""
import subprocess

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe"]


def run(cmd, expect=0, timeout=120):
    """Runs cmd; AssertionError with its output unless it exits with `expect`."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != expect:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode} (expected {expect})\n{p.stdout}\n{p.stderr}")
    return p
