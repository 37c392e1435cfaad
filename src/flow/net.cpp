// Velocity networks (src/flow/net.h): one template per architecture, three backends.
#include "flow/net.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/forward_grad.h>

#include "otgen/core/error.h"
#include "otgen/core/rng.h"

namespace otgen::flow::detail {
namespace {

// ---- backends --------------------------------------------------------------------------------
// Each backend has a value type V and the operations the architectures use. Parameter-taking
// operations name their parameters; the init backend records (name, shape) in call order.

struct InitBackend {
  using V = int;
  std::vector<std::pair<std::string, std::vector<int64_t>>> params;
  std::vector<int64_t> fan_in;  // per parameter: the bound of U(-1/sqrt(fan_in), ...); 0 = GroupNorm,
                                // -1 = N(0, 1) (embedding)
  std::vector<int> gn_value;    // GroupNorm: 1 for weight, 0 for bias
  void add(std::string name, std::vector<int64_t> shape, int64_t fan, int gn = -1) {
    params.emplace_back(std::move(name), std::move(shape));
    fan_in.push_back(fan);
    gn_value.push_back(gn);
  }
  V temb(V, int64_t) { return 0; }
  V cat(V, V) { return 0; }
  V silu(V) { return 0; }
  V add(V, V) { return 0; }
  V sub(V, V) { return 0; }
  V embed(V, const std::string& n, int64_t rows, int64_t dim) {
    add(n + "_w", {rows, dim}, -1);
    return 0;
  }
  V linear(V, const std::string& n, int64_t in, int64_t out) {
    add(n + "_w", {out, in}, in);
    add(n + "_b", {out}, in);
    return 0;
  }
  V conv(V, const std::string& n, int64_t cin, int64_t cout, int64_t k, int64_t /*stride*/) {
    add(n + "_w", {cout, cin, k, k}, cin * k * k);
    add(n + "_b", {cout}, cin * k * k);
    return 0;
  }
  V group_norm(V, const std::string& n, int64_t ch, int64_t /*groups*/) {
    add(n + "_w", {ch}, 0, 1);
    add(n + "_b", {ch}, 0, 0);
    return 0;
  }
  V to_image(V, int64_t, int64_t) { return 0; }
  V flatten(V) { return 0; }
  V upsample2(V) { return 0; }
  V spatial(V) { return 0; }  // (B, C) -> (B, C, 1, 1)
};

struct EagerBackend {
  using V = at::Tensor;
  const Net& net;
  size_t next = 0;  // parameters are consumed in the init backend's order
  const at::Tensor& param() { return net.params[next++]; }
  V temb(const V& t, int64_t dim) {
    const at::Tensor a = (t.unsqueeze(1) * net.spec.time_scale) * net.freqs.narrow(0, 0, dim / 2).to(t.scalar_type());
    return at::cat({at::sin(a), at::cos(a)}, 1);
  }
  V cat(const V& a, const V& b) { return at::cat({a, b}, 1); }
  V silu(const V& a) { return at::silu(a); }
  V add(const V& a, const V& b) { return a + b; }
  V sub(const V& a, const V& b) { return a - b; }
  V embed(const V& y, const std::string&, int64_t, int64_t) { return param().index_select(0, y); }
  V linear(const V& h, const std::string&, int64_t, int64_t) {
    const auto& w = param();
    const auto& b = param();
    return at::linear(h, w, b);
  }
  V conv(const V& h, const std::string&, int64_t, int64_t, int64_t k, int64_t stride) {
    const auto& w = param();
    const auto& b = param();
    return at::conv2d(h, w, b, {stride, stride}, {k / 2, k / 2});
  }
  V group_norm(const V& h, const std::string&, int64_t, int64_t groups) {
    const auto& w = param();
    const auto& b = param();
    // In float32 under bf16 autocast (torch 1.13's CPU autocast leaves group_norm's mixed
    // bf16-input / fp32-weight case unsupported); as is otherwise (float32, or float64 in tests).
    return at::group_norm(at::autocast::is_cpu_enabled() ? h.to(at::kFloat) : h, groups, w, b, 1e-5);
  }
  V to_image(const V& x, int64_t channels, int64_t side) { return x.reshape({x.size(0), channels, side, side}); }
  V flatten(const V& h) { return h.reshape({h.size(0), -1}); }
  V upsample2(const V& h) { return at::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)}); }
  V spatial(const V& h) { return h.unsqueeze(2).unsqueeze(3); }
};

// A double as a TorchScript float literal that reads back exactly.
std::string float_literal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

struct ScriptBackend {
  using V = std::string;
  std::ostringstream code;
  int count = 0;
  V emit(const std::string& expr) {
    const std::string v = "v" + std::to_string(count++);
    code << "    " << v << " = " << expr << "\n";
    return v;
  }
  double time_scale = 1000.0;
  V temb(const V& t, int64_t dim) {
    const V a = emit("(" + t + ".unsqueeze(1) * " + float_literal(time_scale) + ") * self.freqs.narrow(0, 0, " + std::to_string(dim / 2) + ")");
    return emit("torch.cat([torch.sin(" + a + "), torch.cos(" + a + ")], 1)");
  }
  V cat(const V& a, const V& b) { return emit("torch.cat([" + a + ", " + b + "], 1)"); }
  V silu(const V& a) { return emit("torch.silu(" + a + ")"); }
  V add(const V& a, const V& b) { return emit(a + " + " + b); }
  V sub(const V& a, const V& b) { return emit(a + " - " + b); }
  V embed(const V& y, const std::string& n, int64_t, int64_t) { return emit("self." + n + "_w.index_select(0, " + y + ")"); }
  V linear(const V& h, const std::string& n, int64_t, int64_t) {
    return emit("torch.linear(" + h + ", self." + n + "_w, self." + n + "_b)");
  }
  V conv(const V& h, const std::string& n, int64_t, int64_t, int64_t k, int64_t s) {
    const std::string S = std::to_string(s), P = std::to_string(k / 2);
    return emit("torch.conv2d(" + h + ", self." + n + "_w, self." + n + "_b, [" + S + ", " + S + "], [" + P + ", " + P + "])");
  }
  V group_norm(const V& h, const std::string& n, int64_t, int64_t groups) {
    return emit("torch.group_norm(" + h + ", " + std::to_string(groups) + ", self." + n + "_w, self." + n + "_b, 1e-05)");
  }
  V to_image(const V& x, int64_t c, int64_t side) {
    return emit(x + ".reshape([" + x + ".size(0), " + std::to_string(c) + ", " + std::to_string(side) + ", " +
                std::to_string(side) + "])");
  }
  V flatten(const V& h) { return emit(h + ".reshape([" + h + ".size(0), -1])"); }
  // Nearest-neighbour x2 as expand + reshape: the same values as the eager upsample_nearest2d (a copy),
  // with ops that TorchScript's C++ front end resolves.
  V upsample2(const V& h) {
    const std::string B = h + ".size(0)", C = h + ".size(1)", H = h + ".size(2)", W = h + ".size(3)";
    return emit(h + ".unsqueeze(3).unsqueeze(5).expand([" + B + ", " + C + ", " + H + ", 2, " + W + ", 2]).reshape([" +
                B + ", " + C + ", 2 * " + H + ", 2 * " + W + "])");
  }
  V spatial(const V& h) { return emit(h + ".unsqueeze(2).unsqueeze(3)"); }
};

// ---- architectures ---------------------------------------------------------------------------

// The network's inputs in a backend's values: x and t always, r for MeanFlow, y for conditional models.
template <class B>
struct Inputs {
  typename B::V x, t, r, y;
};

template <class B>
typename B::V mlp(B& b, const ModelSpec& s, const Inputs<B>& in_) {
  auto h = b.cat(in_.x, b.temb(in_.t, s.time_dim));
  int64_t in = s.dim + s.time_dim;
  if (s.meanflow) {  // the interval length r - t
    h = b.cat(h, b.temb(b.sub(in_.r, in_.t), s.time_dim));
    in += s.time_dim;
  }
  if (s.num_classes > 0) {
    h = b.cat(h, b.embed(in_.y, "cls", s.num_classes + 1, s.time_dim));
    in += s.time_dim;
  }
  for (int64_t l = 0; l < s.depth; ++l) {
    h = b.silu(b.linear(h, "l" + std::to_string(l), in, s.width));
    in = s.width;
  }
  return b.linear(h, "out", in, s.dim);
}

template <class B>
typename B::V res_block(B& b, const ModelSpec& s, const std::string& n, typename B::V x, int64_t cin, int64_t cout,
                        const typename B::V& temb, int64_t temb_dim) {
  auto h = b.conv(b.silu(b.group_norm(x, n + "_gn1", cin, s.groups)), n + "_c1", cin, cout, 3, 1);
  h = b.add(h, b.spatial(b.linear(temb, n + "_t", temb_dim, cout)));
  h = b.conv(b.silu(b.group_norm(h, n + "_gn2", cout, s.groups)), n + "_c2", cout, cout, 3, 1);
  return b.add(h, cin != cout ? b.conv(x, n + "_skip", cin, cout, 1, 1) : x);
}

template <class B>
typename B::V unet(B& b, const ModelSpec& s, const Inputs<B>& in) {
  const int64_t C = s.base_channels, E = 4 * C, L = static_cast<int64_t>(s.mults.size());
  auto e = b.temb(in.t, C);
  if (s.meanflow) e = b.cat(e, b.temb(b.sub(in.r, in.t), C));
  auto temb = b.linear(b.silu(b.linear(e, "t1", s.meanflow ? 2 * C : C, E)), "t2", E, E);
  if (s.num_classes > 0) temb = b.add(temb, b.embed(in.y, "cls", s.num_classes + 1, E));
  temb = b.silu(temb);
  auto h = b.conv(b.to_image(in.x, s.channels, s.image_side), "in", s.channels, C, 3, 1);
  std::vector<typename B::V> skips;
  std::vector<int64_t> level_ch;
  int64_t ch = C;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t out = C * s.mults[i];
    h = res_block(b, s, "d" + std::to_string(i), h, ch, out, temb, E);
    ch = out;
    skips.push_back(h);
    level_ch.push_back(ch);
    if (i + 1 < L) h = b.conv(h, "down" + std::to_string(i), ch, ch, 3, 2);
  }
  h = res_block(b, s, "mid", h, ch, ch, temb, E);
  for (int64_t i = L - 1; i >= 0; --i) {
    h = res_block(b, s, "u" + std::to_string(i), b.cat(h, skips[i]), ch + level_ch[i], level_ch[i], temb, E);
    ch = level_ch[i];
    if (i > 0) h = b.conv(b.upsample2(h), "up" + std::to_string(i), ch, ch, 3, 1);
  }
  h = b.conv(b.silu(b.group_norm(h, "out_gn", ch, s.groups)), "out", ch, s.channels, 3, 1);
  return b.flatten(h);
}

template <class B>
typename B::V run(B& b, const ModelSpec& s, const Inputs<B>& in) {
  return s.kind == ModelKind::Mlp ? mlp(b, s, in) : unet(b, s, in);
}

// RAII forward-AD level (dual numbers live while it does).
struct DualLevel {
  uint64_t idx = torch::autograd::ForwardADLevel::get_next_idx();
  DualLevel() = default;
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
  ~DualLevel() { torch::autograd::ForwardADLevel::release_idx(idx); }
};

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> Net::layout(const ModelSpec& spec) {
  InitBackend b;
  run(b, spec, Inputs<InitBackend>{});
  return b.params;
}

Net Net::create(const ModelSpec& spec, uint64_t seed) {
  spec.validate();
  InitBackend b;
  run(b, spec, Inputs<InitBackend>{});
  Net net;
  net.spec = spec;
  for (size_t p = 0; p < b.params.size(); ++p) {
    const auto& [name, shape] = b.params[p];
    at::Tensor w = at::empty(shape, at::kFloat);
    float* v = w.data_ptr<float>();
    const int64_t n = w.numel();
    if (b.gn_value[p] >= 0) {
      std::fill(v, v + n, static_cast<float>(b.gn_value[p]));
    } else if (b.fan_in[p] < 0) {
      Rng rng(seed, 1000 + p);
      for (int64_t k = 0; k < n; ++k) v[k] = static_cast<float>(rng.normal());
    } else {
      const double bound = 1.0 / std::sqrt(static_cast<double>(b.fan_in[p]));
      Rng rng(seed, 1000 + p);  // one stream per parameter tensor
      for (int64_t k = 0; k < n; ++k) v[k] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    }
    net.names.push_back(name);
    net.params.push_back(w);
  }
  net.freqs = frequencies(spec);
  return net;
}

at::Tensor frequencies(const ModelSpec& spec) {
  const int64_t half = (spec.kind == ModelKind::Mlp ? spec.time_dim : spec.base_channels) / 2;
  at::Tensor f = at::empty({half}, at::kFloat);
  for (int64_t k = 0; k < half; ++k)
    f.data_ptr<float>()[k] = static_cast<float>(std::exp(-std::log(10000.0) * static_cast<double>(k) / half));
  return f;
}

at::Tensor Net::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& r, const at::Tensor& y) const {
  TORCH_CHECK(r.defined() == spec.meanflow, "otgen: r is required exactly for MeanFlow models");
  TORCH_CHECK(y.defined() == (spec.num_classes > 0), "otgen: y is required exactly for conditional models");
  EagerBackend b{*this};
  return run(b, spec, Inputs<EagerBackend>{x, t, r, y});
}

std::pair<at::Tensor, at::Tensor> Net::forward_jvp(const at::Tensor& x, const at::Tensor& t, const at::Tensor& r,
                                                   const at::Tensor& y, const at::Tensor& dx, const at::Tensor& dt,
                                                   const at::Tensor& dr) const {
  const DualLevel level;
  const at::Tensor out = forward(at::_make_dual(x, dx, level.idx), at::_make_dual(t, dt, level.idx),
                                 r.defined() ? at::_make_dual(r, dr, level.idx) : r, y);
  auto [primal, tangent] = at::_unpack_dual(out, level.idx);
  return {primal, tangent.detach().clone()};
}

std::string Net::script() const {
  ScriptBackend b;
  b.time_scale = spec.time_scale;
  const std::string out = run(b, spec, Inputs<ScriptBackend>{"x", "t", "r", "y"});
  return std::string("def forward(self, x: Tensor, t: Tensor") + (spec.meanflow ? ", r: Tensor" : "") +
         (spec.num_classes > 0 ? ", y: Tensor" : "") + ") -> Tensor:\n" + b.code.str() + "    return " + out + "\n";
}

int64_t Net::numel() const {
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  return n;
}

std::vector<at::Tensor> clone_all(const std::vector<at::Tensor>& v) {
  std::vector<at::Tensor> out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(t.detach().clone());
  return out;
}

}  // namespace otgen::flow::detail
