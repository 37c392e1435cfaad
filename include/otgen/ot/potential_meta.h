// What a fitted potential was fitted on, in a sidecar JSON beside it (ot layer).
//
// A potential g is one number per data point and means nothing for other data, another weighting,
// another cost or another labelling. `otgen sdot fit --out g.npy` (and train's own fit) writes
// g.npy.json:
//   {"format": "otgen.potential/1", "n": N, "d": d, "data_hash": "...", "labels_hash": "..." | null,
//    "weights_hash": "..." | null, "epsilon": eps, "cost": "sqeuclidean_half" | "dot",
//    "class_penalty": beta | "inf" | null}
// and every command that uses a potential compares it with the data it was given, refusing a
// mismatch with one line naming the potential's argument (`--allow-foreign-potential` overrides; a
// potential without a sidecar is used as is). The hashes are 64-bit content hashes of the float32 /
// int64 / float64 values (fingerprint in otgen/core/points.h's terms: the bytes in row-major order).
//
// PCA-reduced matching (`sdot fit --pca K`, docs/semidiscrete.md): the potential means something only
// with its basis U, written beside it as g.npy.pca.npy ((K, d) float32); the sidecar then also holds
//   "pca": K, "pca_hash": content_hash of U's float32 values
// ("pca": null otherwise), and every user of the potential reads the basis from there
// (read_potential_basis), refusing a missing or mismatching basis file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/points.h"
#include "otgen/ot/semidiscrete.h"

namespace otgen {

// A 64-bit content hash of raw bytes as 16 hex digits (stable across runs and machines).
std::string content_hash(const void* data, size_t bytes);

// content_hash of bytes given in pieces (hex() of the pieces = content_hash of their concatenation):
// for data read in row chunks (a sharded run's rank 0).
class ContentHash {
 public:
  void add(const void* data, size_t bytes);
  std::string hex() const;

 private:
  uint64_t lane_[4] = {0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL, 0x165667b19e3779f9ULL, 0x27d4eb2f165667c5ULL};
  unsigned char tail_[32] = {};
  size_t tail_bytes_ = 0;
  uint64_t total_ = 0;
};

// The sidecar document of a potential fitted on this data.
nlohmann::json potential_meta(PointsView y, std::span<const int64_t> labels, std::span<const double> weights,
                              double epsilon, SdotCost cost, double class_penalty);
// The same from the data's shape and content_hash (of its float32 values in row-major order).
nlohmann::json potential_meta(int64_t n, int64_t d, const std::string& data_hash, std::span<const int64_t> labels,
                              std::span<const double> weights, double epsilon, SdotCost cost, double class_penalty);

// g_path + ".json".
std::string potential_meta_path(const std::string& g_path);
// g_path + ".pca.npy": the PCA basis of a potential fitted with --pca.
std::string potential_basis_path(const std::string& g_path);

// Records the basis (K x d values, row-major; empty = none) in a sidecar document: "pca", "pca_hash".
void set_potential_basis(nlohmann::json& meta, std::span<const float> basis, int64_t d);

// The basis the sidecar of g_path names ((K, d) row-major, d = the data's dimension), read from
// potential_basis_path(g_path) and checked against the recorded K and hash; empty when the potential
// has no sidecar or was fitted in the full space. Throws otgen::Error naming `argument` when the
// basis file is missing, unreadable, of another shape or another content.
std::vector<float> read_potential_basis(const std::string& g_path, int64_t d, std::string_view argument);

// Writes the sidecar of g_path atomically.
void write_potential_meta(const std::string& g_path, const nlohmann::json& meta);

// Compares the sidecar of g_path (if any) with `actual` (potential_meta of the data at hand): data
// shape and hash, labels, weights and cost must match (epsilon and the class penalty are reported,
// not required: a potential may be used at another eps). Throws otgen::Error naming `argument` and
// the first difference, and override_flag as the way out. No sidecar: returns false; a match: true.
bool check_potential_meta(const std::string& g_path, const nlohmann::json& actual, std::string_view argument,
                          std::string_view override_flag = "--allow-foreign-potential");

}  // namespace otgen
