#!/usr/bin/python3
"""The README tour test: runs README.md's shell tour and its Python snippets exactly as written.

The README's blocks are extracted, not copied: every ```sh block except the ``make`` ones (the CLI
tour is the one that starts with ``otgen=build/otgen``) and every ```python block. They run in a fresh temporary directory where ``build`` is a
symbolic link to the build tree and ``examples`` to the source tree's examples, so ``otgen=build/otgen``
and ``PYTHONPATH=build/python`` work unchanged. Each shell block runs command by command (a command may
continue over lines ending in a backslash) under ``bash -euo pipefail`` with the variable assignments
seen so far; the Python blocks then run one after the other, in the same directory, with
``PYTHONPATH=build/python``. The test fails at the first command that exits non-zero.

A command whose line carries the marker ``# slow: skipped by the tour test`` is listed and not run; the
README says why for each one. Usage:

    readme_tour.py --readme README.md --build build [--keep DIR] [--list]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

SLOW = "# slow: skipped by the tour test"
ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


def fenced_blocks(text):
    """(language, body) of every fenced ``` block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def tour_blocks(text):
    """The shell blocks (every ```sh block but the `make` ones) and the Python blocks."""
    blocks = fenced_blocks(text)
    shell = [b for lang, b in blocks if lang == "sh" and not b.lstrip().startswith("make ")]
    python = [b for lang, b in blocks if lang == "python"]
    if not any(b.lstrip().startswith("otgen=build/otgen") for b in shell):
        sys.exit("README: no ```sh block starting with otgen=build/otgen (the CLI tour)")
    if not python:
        sys.exit("README: no ```python block")
    return shell, python


def commands(block):
    """Shell commands of a block: backslash continuations joined, comment-only and blank lines dropped."""
    out, cur = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip() and not cur.strip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def run_shell(block, cwd, env):
    """Runs one shell block command by command; False at the first failure."""
    cmds, assigns = commands(block), []
    for k, cmd in enumerate(cmds, 1):
        if SLOW in cmd:
            print(f"[{k}/{len(cmds)}] skipped (slow): {cmd}", flush=True)
            continue
        if ASSIGN.match(cmd):
            assigns.append(cmd)
            continue
        t0 = time.monotonic()
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(assigns + [cmd])], cwd=cwd, env=env,
                           capture_output=True, text=True)
        secs = time.monotonic() - t0
        print(f"[{k}/{len(cmds)}] {secs:6.1f} s  rc={r.returncode}  {cmd}", flush=True)
        if r.returncode != 0:
            print(f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")
            return False
    return True


def run_python(blocks, cwd, env):
    for k, body in enumerate(blocks, 1):
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/python3", "-c", body], cwd=cwd, env=env, capture_output=True, text=True)
        print(f"[python {k}/{len(blocks)}] {time.monotonic() - t0:6.1f} s  rc={r.returncode}", flush=True)
        if r.returncode != 0:
            print(f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", required=True)
    ap.add_argument("--build", required=True, help="the build tree (holds otgen and python/)")
    ap.add_argument("--keep", help="run in this (new or empty) directory and keep it")
    ap.add_argument("--list", action="store_true", help="print the extracted commands and exit")
    a = ap.parse_args()
    with open(a.readme, encoding="utf-8") as f:
        shell, python = tour_blocks(f.read())
    if a.list:
        for block in shell:
            print("--- sh\n" + "\n".join(commands(block)))
        for body in python:
            print("--- python\n" + body)
        return 0
    build = os.path.abspath(a.build)
    examples = os.path.join(os.path.dirname(os.path.abspath(a.readme)), "examples")
    for need in (os.path.join(build, "otgen"), os.path.join(build, "python", "otgen")):
        if not os.path.exists(need):
            sys.exit(f"--build: {need} does not exist; build otgen_cli and the Python module first")
    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="otgen-tour-")
    cwd = a.keep or tmp.name
    os.makedirs(cwd, exist_ok=True)
    os.symlink(build, os.path.join(cwd, "build"))
    os.symlink(examples, os.path.join(cwd, "examples"))
    env = dict(os.environ, PYTHONPATH="build/python")
    t0 = time.monotonic()
    ok = all(run_shell(block, cwd, env) for block in shell) and run_python(python, cwd, env)
    print(f"README tour {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s ({cwd})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
