// PCA-reduced semidiscrete matching (docs/semidiscrete.md, "PCA-reduced matching"): the basis against a
// naive covariance, K = d against the full fit, data inside a K-dim subspace against the full fit (the
// dropped cost term does not depend on j there, so the pairs are the same), the CLI's files and refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/npy.h"
#include "otgen/ot/pca.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::gaussian_points;
using test::run_cli;
using test::TempDir;

Context quiet_ctx(uint64_t seed = 0) {
  Context c;
  c.threads = 1;
  c.seed = seed;
  c.quiet = true;
  return c;
}

// Points with very different spreads per coordinate (distinct eigenvalues), rotated by a seeded
// orthonormal matrix so the principal directions are not the axes.
Points spread_points(int64_t n, int64_t d, uint64_t seed) {
  Points p = gaussian_points(n, d, seed);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) p.data[i * d + k] *= static_cast<float>(3.0 / (1 + k));
  return p;
}

// A seeded (d x d) orthonormal matrix (Gram-Schmidt of Gaussian rows, in double), row-major.
std::vector<double> random_rotation(int64_t d, uint64_t seed) {
  Rng r(seed);
  std::vector<double> q(static_cast<size_t>(d * d));
  for (auto& v : q) v = r.normal();
  for (int64_t a = 0; a < d; ++a) {
    for (int64_t b = 0; b < a; ++b) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += q[a * d + k] * q[b * d + k];
      for (int64_t k = 0; k < d; ++k) q[a * d + k] -= dot * q[b * d + k];
    }
    double nrm = 0;
    for (int64_t k = 0; k < d; ++k) nrm += q[a * d + k] * q[a * d + k];
    for (int64_t k = 0; k < d; ++k) q[a * d + k] /= std::sqrt(nrm);
  }
  return q;
}

TEST(PcaBasis, WeightedBasisIsTheEigenbasisOfTheNaiveWeightedCovariance) {
  const int64_t n = 60, d = 6;
  const Points y = spread_points(n, d, 3);
  std::vector<double> b(n);
  Rng r(4);
  double s = 0;
  for (auto& w : b) s += (w = 0.1 + r.uniform());
  for (auto& w : b) w /= s;
  const PcaBasis B = pca_basis(y, b, 4, "pca");
  ASSERT_EQ(B.dim, 4);
  // The naive weighted covariance, double loops.
  std::vector<double> mu(d, 0.0), C(d * d, 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < d; ++k) mu[k] += b[j] * y.row(j)[k];
  for (int64_t j = 0; j < n; ++j)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t c = 0; c < d; ++c) C[a * d + c] += b[j] * (y.row(j)[a] - mu[a]) * (y.row(j)[c] - mu[c]);
  for (int64_t k = 0; k < d; ++k) EXPECT_NEAR(B.mean[k], mu[k], 1e-9);
  for (int64_t c = 0; c < B.dim; ++c) {
    const double* v = B.components.data() + c * d;
    for (int64_t a = 0; a < d; ++a) {  // C v = lambda v
      double cv = 0;
      for (int64_t k = 0; k < d; ++k) cv += C[a * d + k] * v[k];
      EXPECT_NEAR(cv, B.variances[c] * v[a], 1e-9);
    }
    if (c > 0) EXPECT_GT(B.variances[c - 1], B.variances[c]);
  }
  // Uniform weights: the same directions as the sample covariance of pca_basis (metrics' basis).
  const PcaBasis U = pca_basis(y, {}, 3, "pca"), M = pca_basis(y, 3);
  for (size_t k = 0; k < U.components.size(); ++k) EXPECT_NEAR(U.components[k], M.components[k], 1e-12);
}

TEST(PcaBasis, DimensionOutsideOneToDIsRefusedNamingTheArgument) {
  const Points y = spread_points(5, 3, 1);
  test::expect_error_contains([&] { pca_basis(y, {}, 0, "pca"); }, "invalid pca = 0");
  test::expect_error_contains([&] { pca_basis(y, {}, 4, "pca"); }, "[1, 3]");
  // Above the covariance's rank (N - 1 = 1 here): completed to an orthonormal basis.
  const PcaBasis B = pca_basis(spread_points(2, 3, 1), {}, 3, "pca");
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t c = 0; c < 3; ++c) {
      double dot = 0;
      for (int64_t k = 0; k < 3; ++k) dot += B.components[a * 3 + k] * B.components[c * 3 + k];
      EXPECT_NEAR(dot, a == c ? 1.0 : 0.0, 1e-12);
    }
}

SemidiscreteOT::Options short_fit(double eps = 0) {
  SemidiscreteOT::Options o;
  o.epsilon = eps;
  o.steps = 300;
  o.batch_size = 256;
  o.chi2_every = 0;
  o.lr = 0.5;
  o.lr_final = 0.05;
  return o;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float a : v) m = std::max(m, static_cast<double>(std::abs(a)));
  return m;
}

// The PCA fit (pca = K) and the full fit of y (same seed): potentials within rel_tol of each other
// (relative to max |g|) and the same pairs for 3000 fresh draws.
void expect_same_fit(const Points& y, int64_t K, SemidiscreteOT::Options o, std::span<const int64_t> labels = {}) {
  const Context ctx = quiet_ctx(7);
  const SemidiscreteOT full(o);
  o.pca = K;
  const SemidiscreteOT reduced(o);
  const auto rf = full.fit(y, {}, ctx, labels), rp = reduced.fit(y, {}, ctx, labels);
  ASSERT_EQ(rp.pca, K);
  ASSERT_EQ(rp.pca_basis.size(), static_cast<size_t>(K * y.d));
  EXPECT_TRUE(rf.pca_basis.empty());
  double diff = 0;
  for (size_t j = 0; j < rf.g.size(); ++j) diff = std::max(diff, std::abs(static_cast<double>(rf.g[j]) - rp.g[j]));
  EXPECT_LE(diff, 1e-4 * max_abs(rf.g)) << "max |g_pca - g_full| = " << diff;
  const Points x = sdot_noise(3000, y.d, 11, ctx);
  const auto xl = sdot_noise_classes(full.map(y, {}, rf, labels), 3000, 11);
  const auto pf = sdot_assign(full.map(y, {}, rf, labels), x, ctx, xl);
  const auto pp = sdot_assign(reduced.map(y, {}, rp, labels), x, ctx, xl);
  EXPECT_EQ(pf, pp);
}

TEST(SdotPca, KEqualsDReproducesTheFullFit) {
  const Points y = spread_points(12, 5, 21);
  expect_same_fit(y, 5, short_fit());
}

TEST(SdotPca, KEqualsDReproducesTheFullFitAtPositiveEpsilonAndWithLabels) {
  const Points y = spread_points(12, 5, 22);
  expect_same_fit(y, 5, short_fit(0.5));
  std::vector<int64_t> labels(12);
  for (size_t j = 0; j < labels.size(); ++j) labels[j] = static_cast<int64_t>(j % 3);
  expect_same_fit(y, 5, short_fit(), labels);
}

// y_j = Q a_j + c with a_j in R^3 and Q (8 x 3) orthonormal columns, c a constant offset: the centred
// data span Q, so |x - y_j|^2 = |U x - U y_j|^2 + |(I - P)(x - c)|^2 and the last term does not depend
// on j: the K = 3 problem has the full problem's argmax for every x and g, step by step. (From the same
// start: the Gaussian start's variance s^2 = E|y - mu|^2 / d depends on the dimension, so init zero.)
TEST(SdotPca, DataInsideTheSubspaceGiveTheFullFitsPairs) {
  const int64_t n = 15, k = 3, d = 8;
  const Points a = spread_points(n, k, 31);
  const std::vector<double> Q = random_rotation(d, 32);  // its first k rows: an orthonormal k-frame
  Points y(n, d);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) {
      double v = 0.25 * static_cast<double>(c % 3);  // the offset c
      for (int64_t t = 0; t < k; ++t) v += a.row(j)[t] * Q[t * d + c];
      y.data[j * d + c] = static_cast<float>(v);
    }
  SemidiscreteOT::Options o = short_fit();
  o.init = SdotInit::Zero;
  expect_same_fit(y, k, o);
}

TEST(SdotPca, BadDimensionsAndBasesAreRefused) {
  const Points y = spread_points(10, 4, 41);
  SemidiscreteOT::Options o = short_fit();
  o.pca = -1;
  test::expect_error_contains([&] { SemidiscreteOT{o}; }, "invalid pca = -1");
  o.pca = 5;
  test::expect_error_contains([&] { SemidiscreteOT(o).fit(y, {}, quiet_ctx()); }, "invalid pca = 5");
  o.pca = 2;
  const auto r = SemidiscreteOT(o).fit(y, {}, quiet_ctx());
  SemidiscreteMap m = SemidiscreteOT(o).map(y, {}, r);
  const Points x = sdot_noise(10, 4, 1, quiet_ctx());
  EXPECT_EQ(sdot_assign(m, x, quiet_ctx()).size(), 10u);
  std::vector<float> bad(r.pca_basis);
  bad.resize(7);
  m.pca_basis = bad;
  test::expect_error_contains([&] { sdot_assign(m, x, quiet_ctx()); }, "pca basis");
  bad = r.pca_basis;
  bad[0] += 0.1f;  // no longer orthonormal
  m.pca_basis = bad;
  test::expect_error_contains([&] { m.validate(); }, "orthonormal");
}

// The check of a PCA map is the K-dim problem's: the projected noise is exactly N(0, I_K), so a
// potential fitted to convergence there checks as well as a full fit does.
TEST(SdotPca, CheckDrawsFullNoiseAndMeasuresTheReducedProblem) {
  const Points y = spread_points(40, 6, 51);
  SemidiscreteOT::Options o;
  o.pca = 2;
  o.steps = 3000;
  const auto r = SemidiscreteOT(o).fit(y, {}, quiet_ctx(3));
  ASSERT_EQ(r.stopped_by, "target_chi2");
  const auto st = sdot_check(SemidiscreteOT(o).map(y, {}, r), 4096, 8, 99, quiet_ctx());
  EXPECT_LT(st.chi2 + 2 * st.chi2_sd.value_or(0), 0.05);
}

void write_y(const std::string& path, const Points& y) { write_npy(path, y); }

TEST(SdotPcaCli, FitWritesTheBasisAndAssignAndCheckUseIt) {
  TempDir dir;
  const Points y = spread_points(30, 6, 61);
  write_y(dir.file("y.npy"), y);
  const std::string data = " --data " + dir.file("y.npy"), g = dir.file("g.npy");
  const auto fit = run_cli("sdot fit" + data + " --pca 3 --steps 200 --chi2-every 0 --quiet --out " + g);
  ASSERT_EQ(fit.exit_code, 0) << fit.out;
  const auto meta = nlohmann::json::parse(test::file_text(g + ".json"));
  EXPECT_EQ(meta["pca"], 3);
  const Points U = read_points_npy(g + ".pca.npy", "basis");
  ASSERT_EQ(U.n, 3);
  ASSERT_EQ(U.d, 6);
  EXPECT_EQ(meta["pca_hash"], content_hash(U.data.data(), U.data.size() * sizeof(float)));
  // The library's fit with the same options and seed gives the same basis.
  SemidiscreteOT::Options o;
  o.pca = 3, o.steps = 200, o.chi2_every = 0;
  const auto r = SemidiscreteOT(o).fit(y, {}, quiet_ctx());
  EXPECT_EQ(r.pca_basis, U.data);
  // assign: the noise written by --noise-out, paired through U, as the library pairs it.
  const auto as = run_cli("sdot assign" + data + " --potential " + g + " --n 400 --seed 5 --quiet --out " +
                          dir.file("idx.npy") + " --noise-out " + dir.file("x.npy"));
  ASSERT_EQ(as.exit_code, 0) << as.out;
  const Points x = read_points_npy(dir.file("x.npy"), "x");
  const std::vector<double> gd = read_vector_npy(g, "g");
  const std::vector<float> gf(gd.begin(), gd.end());
  SemidiscreteMap m;
  m.y = y, m.g = gf, m.pca_basis = U.data;
  EXPECT_EQ(read_int64_npy(dir.file("idx.npy"), "idx"), sdot_assign(m, x, quiet_ctx()));
  const auto ck = run_cli("sdot check" + data + " --potential " + g + " --draws 8192 --quiet");
  ASSERT_EQ(ck.exit_code, 0) << ck.out;
  const auto st = nlohmann::json::parse(ck.out);
  EXPECT_EQ(st["pca"], 3);
  EXPECT_NEAR(st["chi2"].get<double>(), sdot_check(m, 4096, 2, 0, quiet_ctx()).chi2, 1e-12);
}

TEST(SdotPcaCli, BadDimensionAndMissingOrForeignBasisAreRefusedInOneLine) {
  TempDir dir;
  write_y(dir.file("y.npy"), spread_points(30, 6, 71));
  const std::string data = " --data " + dir.file("y.npy"), g = dir.file("g.npy");
  auto expect_user_error = [](const test::CliResult& r, const std::string& fragment) {
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  const std::string fit = "sdot fit" + data + " --steps 20 --chi2-every 0 --quiet --out " + g;
  expect_user_error(run_cli(fit + " --pca 7"), "invalid --pca = 7");
  expect_user_error(run_cli(fit + " --pca -2"), "invalid --pca = -2");
  ASSERT_EQ(run_cli(fit + " --pca 2").exit_code, 0);
  const std::string assign = "sdot assign" + data + " --potential " + g + " --n 10 --quiet --out " + dir.file("i.npy");
  const std::string check = "sdot check" + data + " --potential " + g + " --draws 1024 --quiet";
  ASSERT_EQ(run_cli(assign).exit_code, 0);
  // Another basis of the right shape: the sidecar's hash tells.
  std::filesystem::copy_file(g + ".pca.npy", dir.file("keep.npy"));
  Points U = read_points_npy(g + ".pca.npy", "basis");
  std::swap_ranges(U.data.begin(), U.data.begin() + 6, U.data.begin() + 6);  // rows swapped
  write_npy(g + ".pca.npy", U);
  expect_user_error(run_cli(assign), "invalid --potential");
  expect_user_error(run_cli(check), "content hash");
  std::filesystem::remove(g + ".pca.npy");
  expect_user_error(run_cli(assign), "is missing");
  expect_user_error(run_cli(check), "invalid --potential");
  std::filesystem::copy_file(dir.file("keep.npy"), g + ".pca.npy");
  EXPECT_EQ(run_cli(check).exit_code, 0);
}

}  // namespace
}  // namespace otgen
