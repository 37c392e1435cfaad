#!/usr/bin/python3
"""Plot the convergence curve of `otgen sdot fit --record run.json`: chi2, and the pooled TV estimate
with the TV upper bound from chi2 (eps = 0), against steps. Several records may be given (one curve
each).

Usage: sdot_plot.py OUT.png RUN.json [RUN2.json[@OFFSET] ...] [--title TEXT]
(RUN.json@10000 shifts a run's steps by 10000: a resumed fit drawn after the one it continues.)
--check STEP=CHECK.json (repeatable) adds the output of `otgen sdot check` (large fresh samples) as a
star at that step. chi2 estimates below 1e-3 (they can be negative) are drawn at 1e-3.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    args = sys.argv[1:]
    title = None
    if "--title" in args:
        i = args.index("--title")
        title = args[i + 1]
        del args[i:i + 2]
    checks = []
    while "--check" in args:
        i = args.index("--check")
        step, _, path = args[i + 1].partition("=")
        checks.append((int(step), json.load(open(path))))
        del args[i:i + 2]
    out, runs = args[0], args[1:]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for arg in runs:
        path, _, offset = arg.partition("@")
        rec = json.load(open(path))
        rows = [h for h in rec["history"] if h["chi2"] is not None]
        steps = [h["step"] + int(offset or 0) for h in rows]
        for h, s in zip(rows, steps):
            h["step"] = s
        o = rec["options"]
        label = f'{o["optimizer"]} lr {o["lr"]:g}->{o["lr_final"]:g}, eps {o["epsilon"]:g}, B {o["batch_size"]}'
        if offset:
            label += f", resumed at step {offset}"
        ax1.plot(steps, [max(h["chi2"], 1e-3) for h in rows], marker="o", ms=3, label=label)
        line, = ax2.plot(steps, [h["tv"] for h in rows], marker="o", ms=3, label=label + ": TV of the draws")
        bound = [(h["step"], h["tv_bound"]) for h in rows if h.get("tv_bound") is not None]
        if bound:
            ax2.plot(*zip(*bound), marker="s", ms=3, ls="--", color=line.get_color(),
                     label=label + ": bound 0.5 sqrt(chi2 + 2 sd)")
    for k, (step, c) in enumerate(checks):
        label = f'check, {c["draws"]} draws' if k == 0 else None
        ax1.errorbar([step], [c["chi2"]], yerr=[2 * (c.get("chi2_sd") or 0)], fmt="*", ms=11, color="k", label=label)
        if c.get("tv_bound") is not None:
            ax2.plot([step], [c["tv_bound"]], "*", ms=11, color="k", label=(f"bound from the check" if k == 0 else None))
    for ax, name in ((ax1, "chi2 (pooled unbiased estimate)"), (ax2, "TV: pooled draws (biased up), and upper bound")):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax1.axhline(0.05, color="k", ls="--", lw=0.8)
    ax2.axhline(0.05, color="k", ls="--", lw=0.8)
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
