// Couplings for flow-matching training (SPEC.md §2, §3): given a batch of noise draws x0, choose the
// data point each one is paired with. A pair i is (noise row i, data row target[i]).
//
//   IndependentCoupling   target[i] uniform over the dataset (I-FM).
//   BatchOTCoupling       draw n data points uniformly without replacement, then match them to the
//                         n noise rows by exact assignment (a permutation) or by Sinkhorn (one partner
//                         per row drawn from the plan's row, optionally rounded to a permutation) (OT-FM).
//   SemidiscreteCoupling  target[i] = argmax_j <x0_i, y_j> + g_j - |y_j|^2/2 over the whole dataset at
//                         eps = 0, or a Gumbel-max draw from softmax_j(log b_j + (that score)/eps) at
//                         eps > 0 (SD-FM), for a potential g fitted elsewhere (otgen sdot).
//
// Conditional generation: pass noise_labels (one class per noise row) and each noise row is matched
// only inside its class: a per-class data batch for the batch couplings (class-wise matching), the
// class's points and potential entries for the semidiscrete one (one potential per class, SPEC.md §1).
// Without noise_labels the matching ignores labels; Pairs::labels then carries the chosen points'
// labels when the dataset has them.
//
// Randomness: every draw of sample() is a pure function of (seed, ctx.threads); the same arguments
// give the same pairs bit for bit. The coupling keeps views of the dataset: it must outlive them.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/ot/sinkhorn.h"

namespace otgen {

struct Pairs {
  std::vector<int64_t> target;  // length n: data row paired with noise row i
  std::vector<int64_t> labels;  // empty (unlabelled data) or length n: the class of pair i
};

// The target data set: points (N, d) and optional labels (length N, values in [0, num_classes)).
struct CouplingData {
  PointsView x;
  std::span<const int64_t> labels;  // empty = unlabelled
  int64_t num_classes = 0;          // > max label when labelled; ignored otherwise
  void validate() const;
};

class Coupling {
 public:
  virtual ~Coupling() = default;
  // noise: (n, d) with the data's d, n >= 1, finite. noise_labels: empty, or length n with classes of
  // the data (requires labelled data).
  virtual Pairs sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
                       const Context& ctx) const = 0;
  Pairs sample(PointsView noise, uint64_t seed, const Context& ctx) const { return sample(noise, {}, seed, ctx); }
  virtual std::string name() const = 0;
  // The score engine's path of its searches (otgen/core/cpu_features.h: "fp32", "vnni", "amx", ...; the
  // semidiscrete coupling's map), empty when it runs none (independent, batch OT). Run records name it.
  virtual std::string engine() const { return {}; }
  // Whether each noise row's partner depends only on that row (and the seed), not on the other rows of
  // the batch: then one call may draw the pairs of several training steps at once (fewer, larger
  // engine calls). True for the independent and semidiscrete couplings, false for batch OT.
  virtual bool rows_independent() const { return false; }
  // Labelled data: the probability of each class as a noise class, w_k = sum of the target weights
  // over class k (uniform weights: the class's share of the points). Empty for unlabelled data.
  virtual std::vector<double> class_weights() const = 0;
};

class IndependentCoupling final : public Coupling {
 public:
  using Coupling::sample;
  explicit IndependentCoupling(CouplingData data);
  Pairs sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
               const Context& ctx) const override;
  std::string name() const override { return "independent"; }
  bool rows_independent() const override { return true; }
  std::vector<double> class_weights() const override;

 private:
  CouplingData data_;
  std::vector<std::vector<int64_t>> by_class_;
};

enum class BatchOTMethod { Exact, Sinkhorn };

struct BatchOTOptions {
  BatchOTMethod method = BatchOTMethod::Exact;
  SinkhornOptions sinkhorn;           // method Sinkhorn (default: relative eps 0.05, tol 1e-3)
  bool round_to_permutation = false;  // method Sinkhorn: resolve collisions (see sinkhorn_pairs)
  BatchOTOptions();
  void validate() const;
};

class BatchOTCoupling final : public Coupling {
 public:
  using Coupling::sample;
  BatchOTCoupling(CouplingData data, BatchOTOptions opt = {});
  Pairs sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
               const Context& ctx) const override;
  std::string name() const override { return opt_.method == BatchOTMethod::Exact ? "batch-ot-exact" : "batch-ot-sinkhorn"; }
  std::vector<double> class_weights() const override;

 private:
  // Matches noise rows `rows` to data indices `batch` (same length); writes target.
  void match(PointsView noise, const std::vector<int64_t>& rows, const std::vector<int64_t>& batch, uint64_t seed,
             const Context& ctx, std::vector<int64_t>& target) const;
  CouplingData data_;
  BatchOTOptions opt_;
  std::vector<std::vector<int64_t>> by_class_;
};

class SemidiscreteCoupling final : public Coupling {
 public:
  using Coupling::sample;
  // g: length N potential (SPEC.md §1 convention, cost |x - y|^2 / 2); eps >= 0; b: empty (uniform)
  // or length N target weights summing to 1 (b_j = 0 never assigned). With per-class potentials, g
  // holds each class's potential on that class's points. Pairs are drawn by sdot_sample
  // (otgen/ot/semidiscrete.h): argmax at eps = 0, Gumbel-max from s(x) at eps > 0; with noise labels,
  // noise of class k is matched only inside class k.
  // class_penalty: with noise labels, beta of the cost c(x, y) + beta [k != l] (SPEC.md §1; the
  // potential must be fitted with the same beta); infinity = one potential per class.
  // pca_basis: the (K, d) basis of a potential fitted with PCA-reduced matching (Result::pca_basis,
  // the g.npy.pca.npy beside it); noise is paired through its projection. Empty = the full space.
  SemidiscreteCoupling(CouplingData data, std::vector<float> g, double eps, std::vector<double> b = {},
                       double class_penalty = std::numeric_limits<double>::infinity(),
                       std::vector<float> pca_basis = {});
  Pairs sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
               const Context& ctx) const override;
  std::string name() const override { return eps_ > 0 ? "semidiscrete-soft" : "semidiscrete"; }
  std::string engine() const override;
  bool rows_independent() const override { return true; }
  std::vector<double> class_weights() const override;

 private:
  CouplingData data_;
  std::vector<float> g_;
  std::vector<double> b_;
  std::vector<float> basis_;
  double eps_;
  double class_penalty_;
  std::vector<std::vector<int64_t>> by_class_;
  // The two maps' preparations (sdot_prepare), made once: unconditional and, with labels, per class.
  std::shared_ptr<const sdot_detail::Prepared> prepared_[2];
  SemidiscreteMap map(bool per_class) const;  // views into data_, g_, b_
};

}  // namespace otgen
