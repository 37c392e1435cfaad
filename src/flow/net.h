// Internal to otgen_flow: the velocity networks on LibTorch tensors. Each architecture is written
// once, as a template over a "backend" (see net.cpp): run with the init backend it lists the
// parameters, with the eager backend it computes (training and sampling), and with the script backend
// it emits the TorchScript source of the exported model.pt. The three cannot drift apart.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "otgen/flow/flow.h"

namespace otgen::flow::detail {

struct Net {
  ModelSpec spec;
  std::vector<std::string> names;   // parameter names, in a fixed order
  std::vector<at::Tensor> params;   // float32, the same order
  at::Tensor freqs;                 // the sinusoidal embedding's frequencies (a buffer)

  // A new network; weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's Linear/Conv default),
  // GroupNorm weight 1 and bias 0, class embeddings N(0, 1) (nn.Embedding's), drawn from `seed` by
  // otgen's Philox streams.
  static Net create(const ModelSpec& spec, uint64_t seed);
  // x (B, dim) float32, t (B,) float32 -> (B, dim). Differentiable in the parameters. r (B,): the
  // destination time of a MeanFlow model (required iff spec.meanflow); y (B,) int64 in [0, K]: the
  // class of a conditional model (required iff spec.num_classes > 0; K = null).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& r = {}, const at::Tensor& y = {}) const;
  // The output and its directional derivative along (dx, dt, dr) by forward-mode AD (one pass with
  // dual numbers); the output stays differentiable in the parameters, the derivative is detached.
  std::pair<at::Tensor, at::Tensor> forward_jvp(const at::Tensor& x, const at::Tensor& t, const at::Tensor& r,
                                                const at::Tensor& y, const at::Tensor& dx, const at::Tensor& dt,
                                                const at::Tensor& dr) const;
  // The TorchScript source of `def forward(self, x: Tensor, t: Tensor[, r: Tensor][, y: Tensor])`,
  // parameters as self.<name> and the frequencies as self.freqs.
  std::string script() const;
  // Parameter shapes in order (from the init backend), e.g. for loading.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> layout(const ModelSpec& spec);
  int64_t numel() const;
};

// A copy of the parameters (detached, contiguous).
std::vector<at::Tensor> clone_all(const std::vector<at::Tensor>& v);

// The embedding frequencies f_k = 10000^(-k / half) of a spec.
at::Tensor frequencies(const ModelSpec& spec);

// LibTorch's intra-op threads = ctx's thread count (set once; torch keeps it process-wide).
void use_threads(const Context& ctx);
// A FlowModel owning `net` (parameters detached, no grad).
FlowModel make_model(Net net, nlohmann::json meta);
// Runs write(tmp) for a temporary name beside `path`, then renames it to `path`; on any failure the
// temporary file is removed and otgen::Error("cannot write <path>: ...") thrown.
void atomic_save(const std::string& path, const std::function<void(const std::string& tmp)>& write);

}  // namespace otgen::flow::detail
