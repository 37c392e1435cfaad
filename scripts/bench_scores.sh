#!/usr/bin/env bash
# Score engine benchmarks (issue 3) on x = 1024 N(0, I) draws, y = Fashion-MNIST train (60000 x 784):
# the engine vs one OpenBLAS SGEMM of the same shape (roofline) and Faiss IndexFlatIP (k = 1) in
# bench/scores_bench, then the semidiscrete gradient vs an unfused PyTorch reference, all in one run.
# Prints medians and same-run ratios; the raw JSON goes to $BUILD/scores_bench.json.
set -euo pipefail
BUILD=${BUILD:-build}
THREADS=${OTGEN_BENCH_THREADS:-2}
REPS=${OTGEN_BENCH_REPS:-5}
BIN=$BUILD/bench/scores_bench
JSON=$BUILD/scores_bench.json
FM=$BUILD/fashion_mnist_train.npy
export OTGEN_BENCH_THREADS=$THREADS

echo "scores: $(nproc) cores, $THREADS threads; load before: $(uptime | sed 's/.*load average: //')"
# Repetitions are randomly interleaved so that a load change during the run biases no benchmark.
"$BIN" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_enable_random_interleaving=true \
  --benchmark_out="$JSON" --benchmark_out_format=json 2>&1 | grep -v '^\*\*\*WARNING'
[ -f "$FM" ] || "$BUILD/otgen" data export --dataset fashion-mnist --out "$FM" >/dev/null

/usr/bin/python3 - "$JSON" "$FM" "$THREADS" "$REPS" "$BIN" <<'PY'
import json, os, subprocess, sys, time
import numpy as np

path, fm, threads, reps, binary = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def medians(path):
    out = {}
    for b in json.load(open(path))["benchmarks"]:  # medians (plain runs when there was one repetition)
        if b.get("aggregate_name") == "median" or (reps == 1 and b.get("run_type") == "iteration"):
            out[b["run_name"]] = b["real_time"] * {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
    return out

med = medians(path)

def t(name):
    return med.get(name + "/real_time")

torch_s = None
try:
    import torch
    torch.set_num_threads(threads)
    y = torch.from_numpy(np.load(fm))
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1024, y.shape[1]), dtype=np.float32))
    h = -0.5 * (y * y).sum(1) + torch.from_numpy(rng.standard_normal(y.shape[0], dtype=np.float32))
    yt = y.t()
    def grad():  # unfused: matmul (+ bias), softmax over each row, sum down the columns
        with torch.no_grad():
            logits = torch.addmm(h, x, yt).mul_(0.1)
            return torch.softmax(logits, dim=1).sum(0)
    grad()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); grad(); times.append(time.perf_counter() - t0)
    torch_s = float(np.median(times))
    del y, x, h, yt
    # The engine's gradient and the roofline once more, right after PyTorch: the ratio uses the mean
    # of the medians before and after, so a load change between the two programs cancels to first order.
    again = path + ".again.json"
    subprocess.run([binary, "--benchmark_filter=SoftmaxColumnSums/1|SgemmFull", f"--benchmark_repetitions={reps}",
                    "--benchmark_report_aggregates_only=true", "--benchmark_enable_random_interleaving=true",
                    f"--benchmark_out={again}", "--benchmark_out_format=json"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, OTGEN_BENCH_SKIP_MEMORY="1"))
    med2 = medians(again)
    for k in med2:
        print(f"  {k}: {med[k] * 1e3:.1f} ms before PyTorch, {med2[k] * 1e3:.1f} ms after")
        med[k] = 0.5 * (med[k] + med2[k])
except ImportError:
    print("python3-torch not installed: no PyTorch anchor (apt-get install -y python3-torch)")

roof = t("BM_SgemmFull")
flops = 2.0 * 1024 * 60000 * 784
def line(label, s, ref=None, refname=""):
    if s is None: return
    extra = f"   {s / ref:.2f}x {refname}" if ref else ""
    print(f"  {label:<34} {s * 1e3:9.1f} ms  {flops / s * 1e-9:7.1f} GFLOP/s  {roof / s * 100:5.1f}% of roofline{extra}")

faiss = [v for v in (t("BM_FaissFlatIP/1"), t("BM_FaissFlatIP/2")) if v]
faiss_best = min(faiss) if faiss else None
print(f"medians of {reps} runs, {threads} threads (roofline = one OpenBLAS SGEMM 1024 x 60000 x 784):")
line("SGEMM full (roofline)", roof)
line("SGEMM tiled, empty reduction", t("BM_SgemmTiled"))
line("Faiss IndexFlatIP k=1 (omp 1)", t("BM_FaissFlatIP/1"))
line("Faiss IndexFlatIP k=1 (omp 2)", t("BM_FaissFlatIP/2"))
line("row_argmax", t("BM_RowArgmax"), faiss_best, "Faiss at its best")
line("row_argmax, int8 screen VNNI (8-bit y)", t("BM_ScreenArgmax/0"), faiss_best, "Faiss at its best")
line("row_argmax, int8 screen AMX-INT8", t("BM_ScreenArgmax/1"), faiss_best, "Faiss at its best")
# Non-lattice float data (y + 1e-3 N(0, 1)): the float32 engine vs the exact AVX512-BF16 screen, each
# against Faiss and against its own instruction peak measured in this run (BM_Peak: register-only loops).
# amx: the bf16 screen on AMX-BF16 tiles, per call (packing y included) and with y packed once.
fma_peak, bf16_peak, amx_peak = t("BM_Peak/0"), t("BM_Peak/1"), t("BM_Peak/2")
peak_flops = lambda s, per_iter: 4000000 * per_iter * threads / s if s else None
fp32_s, bf16_s, amx_s, amx_packed = t("BM_FloatArgmax/1"), t("BM_FloatArgmax/3"), t("BM_FloatArgmax/4"), t("BM_PackedBf16Argmax/4")
line("row_argmax float data, fp32", fp32_s, faiss_best, "Faiss at its best")
line("row_argmax float data, avx512bf16", bf16_s, faiss_best, "Faiss at its best")
line("row_argmax float data, amx", amx_s, faiss_best, "Faiss at its best")
line("  amx, y packed once", amx_packed, faiss_best, "Faiss at its best")
for label, s, pk in (("fp32 (FMA peak)", fp32_s, peak_flops(fma_peak, 24 * 16 * 2)),
                     ("avx512bf16 (vdpbf16ps peak)", bf16_s, peak_flops(bf16_peak, 24 * 16 * 4)),
                     ("amx packed (AMX-BF16 peak)", amx_packed, peak_flops(amx_peak, 4 * 16 * 16 * 32 * 2 / 16))):
    if s and pk:
        print(f"    {label:<30} {flops / s * 1e-12:.3f} TFLOP/s of a measured {pk * 1e-12:.3f} peak ({flops / s / pk * 100:.0f}%)")
if fp32_s and bf16_s:
    print(f"    avx512bf16 / fp32: {bf16_s / fp32_s:.2f}x")
line("row_logsumexp", t("BM_RowLogsumexp"))
line("softmax_column_sums (one pass)", t("BM_SoftmaxColumnSums/1"), torch_s, "PyTorch")
line("softmax_column_sums (two passes)", t("BM_SoftmaxColumnSums/2"), torch_s, "PyTorch")
line("PyTorch addmm+softmax+sum", torch_s)
line("row_gumbel_argmax scale 0.1", t("BM_RowGumbelArgmax/100"))
line("row_gumbel_argmax scale 1", t("BM_RowGumbelArgmax/1000"))
for k, v in sorted(med.items()):
    if "LowDim" in k:
        print(f"  {k:<52} {v * 1e6:9.1f} us")
PY
echo "== where the int8 screen pays (auto's size rule, docs/scores.md)"
PYTHONPATH=$BUILD/python /usr/bin/python3 bench/int8_crossover.py --reps "$REPS"
echo "== the argmax paths on this CPU (auto's AMX size rule; a Fashion-MNIST fit step per path)"
PYTHONPATH=$BUILD/python /usr/bin/python3 bench/screen_paths.py --reps "$REPS"
echo "load after: $(uptime | sed 's/.*load average: //')"
