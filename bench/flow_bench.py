#!/usr/bin/env python3
"""Flow-matching benchmarks (issue 12): otgen's C++ trainer against the same model and loop in eager
PyTorch (bench/flow_torch_ref.py), the semidiscrete coupling's overhead, bf16 against fp32, and the
8 Gaussians quality target (SD-FM vs I-FM energy distance at small Euler step counts).

    /usr/bin/python3 bench/flow_bench.py build/otgen [--quick] [--json docs/results/flow.json]

Speed runs alternate otgen and PyTorch, `--repeats` times each, and report medians of per-window
rates (warm-up excluded) and their ratio. Both run with 2 threads and OMP_WAIT_POLICY=PASSIVE (the
anchor's best setting here: the spinning default is ~4x slower for both on 2 cores) and the same glibc
malloc settings that otgen's train command uses.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", MALLOC_MMAP_THRESHOLD_=str(32 << 20),
           MALLOC_TRIM_THRESHOLD_=str(1 << 30), MALLOC_TOP_PAD_=str(64 << 20))


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            f = set(line.split(":", 1)[1].split())
            return sorted(f & {"amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f"})
    return []


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def otgen_train(cli, out, data, steps, log_every, extra):
    """Median steps/s over the history windows after the first (warm-up), the coupling's share."""
    run([cli, "train", "--data", data, "--steps", str(steps), "--log-every", str(log_every), "--threads", "2",
         "--seed", "1", "-q", "--out", out, *extra])
    rec = json.load(open(os.path.join(out, "record.json")))["result"]
    h = rec["history"]
    rates = [log_every / (b["seconds"] - a["seconds"]) for a, b in zip(h, h[1:])]
    return {"steps_per_second": statistics.median(rates), "windows": rates,
            "coupling_fraction": rec["coupling_fraction"], "loss": h[-1]["loss"], "parameters": rec["parameters"],
            "precision": rec["precision"]}


def torch_train(args, tmp):
    path = os.path.join(tmp, "ref.json")
    run([sys.executable, os.path.join(HERE, "flow_torch_ref.py"), "--threads", "2", "--json", path, *args],
        cwd=os.path.dirname(HERE))
    r = json.load(open(path))
    return {"steps_per_second": r["steps_per_second"], "loss": r.get("final_loss"), "parameters": r.get("parameters"),
            "eval": r.get("eval")}


def speed_pair(cli, tmp, name, data, steps, window, repeats, otgen_extra, torch_args):
    ours, theirs = [], []
    for k in range(repeats):
        ours.append(otgen_train(cli, os.path.join(tmp, f"{name}-{k}"), data, steps, window, otgen_extra))
        theirs.append(torch_train(["--steps", str(steps), "--window", str(window), "--warmup", str(window),
                                   *torch_args], tmp))
    o = statistics.median(r["steps_per_second"] for r in ours)
    t = statistics.median(r["steps_per_second"] for r in theirs)
    row = {"case": name, "otgen_steps_per_second": o, "torch_steps_per_second": t, "ratio": o / t,
           "otgen_runs": [r["steps_per_second"] for r in ours], "torch_runs": [r["steps_per_second"] for r in theirs],
           "parameters": ours[0]["parameters"], "otgen_loss": ours[0]["loss"], "torch_loss": theirs[0]["loss"],
           "coupling_fraction": ours[0]["coupling_fraction"], "precision": ours[0]["precision"]}
    print(f"{name:<34} otgen {o:8.2f} steps/s   torch {t:8.2f} steps/s   ratio {o / t:5.2f}x"
          f"   (loss {ours[0]['loss']:.3f} vs {theirs[0]['loss']:.3f})", flush=True)
    return row


def energy(cli, samples, ref):
    return json.loads(run([cli, "eval", "--samples", samples, "--reference", ref, "--metrics", "energy"]))["energy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cli")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of the script)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    ap.add_argument("--only", choices=["speed", "overhead", "quality"], default=None, help="run one part")
    a = ap.parse_args()
    q = a.quick
    reps = 1 if q else a.repeats
    res = {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "load_before": os.getloadavg(),
           "speed": [], "overhead": [], "quality": {}}
    print(f"== {res['cpu']}, {res['cores']} cores, flags {res['cpu_flags']}, load {res['load_before']}")
    with tempfile.TemporaryDirectory() as tmp:
        # The same training set for both sides.
        y8 = os.path.join(tmp, "8g.npy")
        run([a.cli, "data", "export", "--dataset", "8gaussians", "--n", "4096", "--seed", "1", "--out", y8])
        digits = os.path.join(tmp, "digits.npy")
        run([a.cli, "data", "export", "--dataset", "digits", "--out", digits])

        usteps, uwin = (6, 2) if q else (24, 6)
        if a.only in (None, "speed"):
            speed_part(a, res, tmp, y8, digits, reps, q, usteps, uwin)
        if a.only in (None, "overhead"):
            overhead_part(a, res, tmp, digits, reps, q, usteps, uwin)
        if a.only in (None, "quality"):
            quality_part(a, res, tmp, y8, q)
    res["load_after"] = os.getloadavg()
    if a.json:
        tmpf = a.json + ".tmp"
        with open(tmpf, "w") as f:
            json.dump(res, f, indent=2)
        os.replace(tmpf, a.json)
        print(f"recorded in {a.json}")


def speed_part(a, res, tmp, y8, digits, reps, q, usteps, uwin):
    print("-- training speed (same model, loop, batch, threads, dtype)")
    res["speed"].append(speed_pair(a.cli, tmp, "mlp 3x128, 8 Gaussians, batch 256", y8, 300 if q else 1500, 100,
                                   reps, [], ["--model", "mlp", "--data", y8, "--batch", "256"]))
    res["speed"].append(speed_pair(a.cli, tmp, "mlp 3x128, digits (d=64), batch 256", digits,
                                   300 if q else 1500, 100, reps, [],
                                   ["--model", "mlp", "--data", digits, "--batch", "256"]))
    for prec in ["fp32", "bf16"]:
        res["speed"].append(speed_pair(a.cli, tmp, f"unet 694k, fashion-mnist, batch 128, {prec}", "fashion-mnist",
                                       usteps, uwin, reps, ["--model", "unet", "--batch", "128", "--precision", prec],
                                       ["--model", "unet", "--data", "fashion-mnist", "--batch", "128",
                                        "--dtype", prec]))
    f32, b16 = res["speed"][-2]["otgen_steps_per_second"], res["speed"][-1]["otgen_steps_per_second"]
    res["bf16_over_fp32_unet"] = b16 / f32
    print(f"   otgen U-Net bf16 / fp32: {b16 / f32:.2f}x (losses {res['speed'][-1]['otgen_loss']:.1f} vs "
          f"{res['speed'][-2]['otgen_loss']:.1f})")


def overhead_part(a, res, tmp, digits, reps, q, usteps, uwin):
    print("-- semidiscrete coupling overhead: (SD pair time - I-FM pair time) per step / I-FM step time")
    gd = os.path.join(tmp, "digits-g.npy")
    run([a.cli, "sdot", "fit", "--data", digits, "--steps", "1500", "--batch", "1024", "--lr", "100", "--lr-final",
         "0.1", "--chi2-every", "125", "--chi2-threshold", "0.02", "--seed", "1", "-q", "--out", gd])
    gf = os.path.join(os.path.dirname(HERE), "docs", "results", "fmnist_g_eps0.npy")
    cases = [("digits mlp", digits, gd, ["--batch", "256"], 300 if q else 1500, 100),
             ("fashion-mnist unet", "fashion-mnist", gf, ["--model", "unet", "--batch", "128"], usteps, uwin)]
    for name, data, g, extra, steps, win in cases:
        runs = []
        for k in range(reps):  # alternating, medians: this machine's rates swing between runs
            ind = otgen_train(a.cli, os.path.join(tmp, "ind"), data, steps, win, extra)
            sd = otgen_train(a.cli, os.path.join(tmp, "sd"), data, steps, win,
                             extra + ["--coupling", "semidiscrete", "--potential", g])
            pair_i = ind["coupling_fraction"] / ind["steps_per_second"]
            pair_sd = sd["coupling_fraction"] / sd["steps_per_second"]
            runs.append({"independent_steps_per_second": ind["steps_per_second"],
                         "semidiscrete_steps_per_second": sd["steps_per_second"],
                         "independent_pair_seconds": pair_i, "semidiscrete_pair_seconds": pair_sd,
                         "overhead": (pair_sd - pair_i) * ind["steps_per_second"]})
        row = {"case": name, "runs": runs, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}
        res["overhead"].append(row)
        print(f"{name:<20} I-FM {row['independent_steps_per_second']:8.2f} steps/s, pairs "
              f"{1e3 * row['independent_pair_seconds']:.3f} ms/step; SD-FM pairs "
              f"{1e3 * row['semidiscrete_pair_seconds']:.3f} ms/step: overhead {row['overhead']:.1%} of the I-FM step "
              f"(runs: {', '.join(format(r['overhead'], '.1%') for r in runs)})",
              flush=True)


def quality_part(a, res, tmp, y8, q):
    print("-- quality: 8 Gaussians (radius 4, sd 0.3, 4096 points), MLP 3x128, batch 256, 3000 steps")
    ref = os.path.join(tmp, "8g-fresh.npy")
    run([a.cli, "data", "export", "--dataset", "8gaussians", "--n", "4096", "--seed", "99", "--out", ref])
    g8 = os.path.join(tmp, "8g-g.npy")
    run([a.cli, "sdot", "fit", "--data", y8, "--steps", "10000", "--batch", "1024", "--chi2-every", "1000",
         "--chi2-threshold", "0.01", "--seed", "1", "-q", "--out", g8])
    steps = "500" if q else "3000"
    table = {}
    for c in ["independent", "exact", "semidiscrete"]:
        out = os.path.join(tmp, f"q-{c}")
        extra = ["--potential", g8] if c == "semidiscrete" else []
        run([a.cli, "train", "--data", y8, "--coupling", c, *extra, "--steps", steps, "--seed", "2", "-q",
             "--out", out])
        row = {}
        for solver, st in [("euler", 1), ("euler", 2), ("euler", 4), ("euler", 8), ("dopri5", 0)]:
            x = os.path.join(tmp, "x.npy")
            info = json.loads(run([a.cli, "sample", "--model", os.path.join(out, "model.pt"), "--n", "4096",
                                   "--solver", solver, "--steps", str(max(st, 1)), "--seed", "3", "--out", x]))
            row[f"{solver}{st if st else ''}"] = {"nfe": info["nfe"], "energy": energy(a.cli, x, ref)}
        table[c] = row
        print(f"{c:<14}" + "".join(f"  {k} {v['energy']:.4f}" for k, v in row.items()), flush=True)
    res["quality"]["otgen"] = table
    ratio = table["semidiscrete"]["euler2"]["energy"] / table["independent"]["euler2"]["energy"]
    res["quality"]["sd_over_i_euler2"] = ratio
    print(f"   SD-FM / I-FM energy distance at Euler 2: {ratio:.3f} (target < 0.2)")
    # The PyTorch loop on the same data and potential (its own EMA, Adam, seeds).
    py = {}
    for c in ["independent", "semidiscrete"]:
        extra = ["--potential", g8] if c == "semidiscrete" else []
        r = torch_train(["--model", "mlp", "--data", y8, "--coupling", c, *extra, "--steps", steps, "--eval",
                         "--eval-points", "4096", "--seed", "2"], tmp)
        py[c] = r["eval"]
    res["quality"]["torch_reference"] = py
    print(f"   PyTorch loop: {json.dumps(py)[:300]}")


if __name__ == "__main__":
    main()
