// Potential sidecars (otgen/ot/potential_meta.h).
#include "otgen/ot/potential_meta.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/core/record.h"

namespace otgen {
namespace {

constexpr const char* kFormat = "otgen.potential/1";

inline uint64_t mix(uint64_t h) {  // the splitmix64 finaliser
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

nlohmann::json hash_or_null(const void* data, size_t bytes, bool present) {
  return present ? nlohmann::json(content_hash(data, bytes)) : nlohmann::json(nullptr);
}

std::string describe(const nlohmann::json& m) {
  return std::to_string(m.value("n", int64_t{0})) + " x " + std::to_string(m.value("d", int64_t{0})) + " points (hash " +
         m.value("data_hash", std::string("?")) + ")";
}

}  // namespace

std::string content_hash(const void* data, size_t bytes) {
  ContentHash h;
  h.add(data, bytes);
  return h.hex();
}

// Four independent lanes over 8-byte words (fast on large arrays), then the tail and the length.
void ContentHash::add(const void* data, size_t bytes) {
  if (bytes == 0) return;
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += bytes;
  auto block = [&](const unsigned char* q) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, q + 8 * l, 8);
      lane_[l] = mix(lane_[l] ^ w) * 0x9e3779b97f4a7c15ULL;
    }
  };
  size_t k = 0;
  if (tail_bytes_ > 0) {  // complete the block begun by the previous piece
    const size_t take = std::min(bytes, 32 - tail_bytes_);
    std::memcpy(tail_ + tail_bytes_, p, take);
    tail_bytes_ += take, k = take;
    if (tail_bytes_ < 32) return;
    block(tail_);
    tail_bytes_ = 0;
  }
  for (; k + 32 <= bytes; k += 32) block(p + k);
  if (bytes > k) std::memcpy(tail_, p + k, bytes - k);
  tail_bytes_ = bytes - k;
}

std::string ContentHash::hex() const {
  uint64_t h = mix(lane_[0] ^ mix(lane_[1] ^ mix(lane_[2] ^ mix(lane_[3]))));
  for (size_t k = 0; k < tail_bytes_; ++k) h = mix(h ^ tail_[k]);
  h = mix(h ^ total_);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json potential_meta(PointsView y, std::span<const int64_t> labels, std::span<const double> weights,
                              double epsilon, SdotCost cost, double class_penalty) {
  return potential_meta(y.n, y.d, content_hash(y.data, static_cast<size_t>(y.n * y.d) * sizeof(float)), labels, weights,
                        epsilon, cost, class_penalty);
}

nlohmann::json potential_meta(int64_t n, int64_t d, const std::string& data_hash, std::span<const int64_t> labels,
                              std::span<const double> weights, double epsilon, SdotCost cost, double class_penalty) {
  nlohmann::json m{{"format", kFormat},
                   {"n", n},
                   {"d", d},
                   {"data_hash", data_hash},
                   {"labels_hash", hash_or_null(labels.data(), labels.size_bytes(), !labels.empty())},
                   {"weights_hash", hash_or_null(weights.data(), weights.size_bytes(), !weights.empty())},
                   {"epsilon", epsilon},
                   {"cost", to_string(cost)}};
  if (labels.empty()) m["class_penalty"] = nullptr;
  else if (std::isinf(class_penalty)) m["class_penalty"] = "inf";
  else m["class_penalty"] = class_penalty;
  return m;
}

std::string potential_meta_path(const std::string& g_path) { return g_path + ".json"; }

std::string potential_basis_path(const std::string& g_path) { return g_path + ".pca.npy"; }

void set_potential_basis(nlohmann::json& meta, std::span<const float> basis, int64_t d) {
  if (basis.empty() || d <= 0) {
    meta["pca"] = nullptr;
    meta["pca_hash"] = nullptr;
    return;
  }
  meta["pca"] = static_cast<int64_t>(basis.size()) / d;
  meta["pca_hash"] = content_hash(basis.data(), basis.size_bytes());
}

namespace {

// The sidecar of g_path, or nothing when there is none; an unreadable one fails naming `argument`.
std::optional<nlohmann::json> read_sidecar(const std::string& g_path, std::string_view argument) {
  const std::string side = potential_meta_path(g_path);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(side, ec)) return std::nullopt;
  try {
    std::ifstream in(side);
    nlohmann::json m;
    in >> m;
    return m;
  } catch (const std::exception&) {
    fail_argument(argument, "'" + g_path + "' with an unreadable " + side, "a valid sidecar JSON (or delete it)");
  }
}

}  // namespace

std::vector<float> read_potential_basis(const std::string& g_path, int64_t d, std::string_view argument) {
  const auto sidecar = read_sidecar(g_path, argument);
  if (!sidecar) return {};
  const nlohmann::json& m = *sidecar;
  std::error_code ec;
  const nlohmann::json K = m.is_object() ? m.value("pca", nlohmann::json(nullptr)) : nlohmann::json(nullptr);
  if (K.is_null()) return {};
  const std::string path = potential_basis_path(g_path);
  const std::string fitted = "'" + g_path + "', fitted with --pca " + K.dump();
  if (!std::filesystem::is_regular_file(path, ec))
    fail_argument(argument, fitted + " but its basis " + path + " is missing",
                  "the basis file sdot fit --pca wrote beside it");
  Points U;
  try {
    U = read_points_npy(path, "basis");
  } catch (const Error& e) {
    fail_argument(argument, fitted + " with an unreadable basis " + path + " (" + e.what() + ")",
                  "the basis file sdot fit --pca wrote beside it");
  }
  if (!K.is_number_integer() || U.n != K.get<int64_t>() || U.d != d)
    fail_argument(argument, fitted + " with a basis " + path + " of shape (" + std::to_string(U.n) + ", " +
                                std::to_string(U.d) + ")",
                  "shape (" + K.dump() + ", " + std::to_string(d) + ") (K and the data's dimension)");
  if (content_hash(U.data.data(), U.data.size() * sizeof(float)) != m.value("pca_hash", std::string()))
    fail_argument(argument, fitted + " with a basis " + path + " whose content hash differs from the sidecar's",
                  "the basis file written with this potential (fit again, or restore it)");
  return std::move(U.data);
}

void write_potential_meta(const std::string& g_path, const nlohmann::json& meta) {
  write_json(potential_meta_path(g_path), meta);
}

bool check_potential_meta(const std::string& g_path, const nlohmann::json& actual, std::string_view argument,
                          std::string_view override_flag) {
  const std::string anyway = " (" + std::string(override_flag) + " to use it anyway)";
  const std::string side = potential_meta_path(g_path);
  const auto sidecar = read_sidecar(g_path, argument);
  if (!sidecar) return false;
  const nlohmann::json& m = *sidecar;
  if (!m.is_object() || m.value("format", "") != kFormat)
    fail_argument(argument, "'" + g_path + "' with sidecar " + side, std::string("format ") + kFormat);
  const std::string fitted = "'" + g_path + "', fitted on ";
  if (m.value("n", int64_t{-1}) != actual["n"] || m.value("d", int64_t{-1}) != actual["d"] ||
      m.value("data_hash", std::string()) != actual["data_hash"])
    fail_argument(argument, fitted + describe(m), "the data it was fitted on; this data is " + describe(actual) +
                                                      anyway);
  auto same = [&](const char* key, const std::string& what) {
    const nlohmann::json a = m.value(key, nlohmann::json(nullptr)), b = actual[key];
    if (a == b) return;
    auto text = [](const nlohmann::json& v) { return v.is_null() ? std::string("none") : v.dump(); };
    fail_argument(argument, fitted + what + " " + text(a), "the same " + what + " as now (" + text(b) +
                                                               ")" + anyway);
  };
  same("labels_hash", "labels (hash)");
  same("weights_hash", "weights (hash)");
  same("cost", "cost");
  return true;
}

}  // namespace otgen
