// Shared test helpers: temporary folders, error-message checks, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "otgen/core/error.h"
#include "otgen/core/points.h"
#include "otgen/core/rng.h"

namespace otgen::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("otgen_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Expects fn() to throw otgen::Error whose message contains `fragment`.
template <class F>
void expect_error_contains(F fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected otgen::Error containing '" << fragment << "', nothing was thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message '" << e.what() << "' lacks '" << fragment << "'";
  }
}

// n points in R^d with coordinates scale * N(0, 1) + shift, from Rng(seed).
inline Points gaussian_points(int64_t n, int64_t d, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Points p(n, d);
  Rng r(seed);
  r.fill_normal(p.data);
  for (float& v : p.data) v = v * scale + shift;
  return p;
}

// The argmax of h_j + <x_i, y_j> evaluated in double, k in order (lowest j on ties; masked columns
// skipped): the definition the exact screens (int8 lattice, bf16) must reproduce bit for bit.
struct Naive {
  std::vector<int64_t> index;
  std::vector<double> value;
};

inline Naive naive_argmax(PointsView x, PointsView y, std::span<const float> h) {
  Naive out;
  for (int64_t i = 0; i < x.n; ++i) {
    double best = -std::numeric_limits<double>::infinity();
    int64_t arg = -1;
    for (int64_t j = 0; j < y.n; ++j) {
      if (!h.empty() && std::isinf(h[j])) continue;
      double s = h.empty() ? 0.0 : h[j];
      for (int64_t k = 0; k < x.d; ++k) s += static_cast<double>(x.row(i)[k]) * y.row(j)[k];
      if (s > best) best = s, arg = j;
    }
    out.index.push_back(arg);
    out.value.push_back(best);
  }
  return out;
}

struct CliResult {
  int exit_code;
  std::string out;  // stdout and stderr together
};

// The whole content of a file ("" when it cannot be read).
inline std::string file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs `script` with /bin/sh, capturing its stdout and stderr together.
inline CliResult run_shell(const std::string& script) {
  CliResult r{-1, {}};
  FILE* p = popen(("{ " + script + "\n} 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), got);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs the built CLI with `args` (a shell-quoted string), capturing its output.
inline CliResult run_cli(const std::string& args) { return run_shell(std::string(OTGEN_CLI_PATH) + " " + args); }

}  // namespace otgen::test
