// Potential sidecars (otgen/potential_meta.h).
#include "otgen/potential_meta.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "otgen/error.h"
#include "otgen/record.h"

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
  // Four independent lanes over 8-byte words (fast on large arrays), then the tail and the length.
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL, 0x165667b19e3779f9ULL, 0x27d4eb2f165667c5ULL};
  size_t k = 0;
  for (; k + 32 <= bytes; k += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + k + 8 * l, 8);
      lane[l] = mix(lane[l] ^ w) * 0x9e3779b97f4a7c15ULL;
    }
  uint64_t h = mix(lane[0] ^ mix(lane[1] ^ mix(lane[2] ^ mix(lane[3]))));
  for (; k < bytes; ++k) h = mix(h ^ p[k]);
  h = mix(h ^ static_cast<uint64_t>(bytes));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json potential_meta(PointsView y, std::span<const int64_t> labels, std::span<const double> weights,
                              double epsilon, SdotCost cost, double class_penalty) {
  nlohmann::json m{{"format", kFormat},
                   {"n", y.n},
                   {"d", y.d},
                   {"data_hash", content_hash(y.data, static_cast<size_t>(y.n * y.d) * sizeof(float))},
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

void write_potential_meta(const std::string& g_path, const nlohmann::json& meta) {
  write_json(potential_meta_path(g_path), meta);
}

bool check_potential_meta(const std::string& g_path, const nlohmann::json& actual, std::string_view argument,
                          std::string_view override_flag) {
  const std::string anyway = " (" + std::string(override_flag) + " to use it anyway)";
  const std::string side = potential_meta_path(g_path);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(side, ec)) return false;
  nlohmann::json m;
  try {
    std::ifstream in(side);
    in >> m;
  } catch (const std::exception&) {
    fail_argument(argument, "'" + g_path + "' with an unreadable " + side, "a valid sidecar JSON (or delete it)");
  }
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
