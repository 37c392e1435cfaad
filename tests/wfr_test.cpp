// Tests of the WFR samplers against closed forms, hand computations and naive loops.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <numeric>

#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/wfr/wfr.h"
#include "test_util.h"

namespace otgen::wfr {
namespace {

Context quiet_ctx(uint64_t seed = 1, int threads = 1) {
  Context c;
  c.seed = seed;
  c.threads = threads;
  c.quiet = true;
  return c;
}

RunOptions steps(int64_t k) {
  RunOptions r;
  r.steps = k;
  r.progress_bar = false;
  return r;
}

struct Moments {
  double mean, var, ess;
};
Moments weighted_moments(const WeightedParticles& p) {
  const auto w = p.weights();
  double m = 0, v = 0;
  for (int64_t i = 0; i < p.size(); ++i) m += w[i] * p.x.row(i)[0];
  for (int64_t i = 0; i < p.size(); ++i) v += w[i] * (p.x.row(i)[0] - m) * (p.x.row(i)[0] - m);
  return {m, v, p.ess()};
}

double left_mass(const WeightedParticles& p, double xs) {
  const auto w = p.weights();
  double s = 0;
  for (int64_t i = 0; i < p.size(); ++i)
    if (p.x.row(i)[0] < xs) s += w[i];
  return s;
}

// ------------------------------------------------------------------------------------------ targets

TEST(DoubleWell, LeftWellMassByQuadratureMatchesSpec) {
  const double H[] = {2, 4, 6, 8};
  const double expected[] = {0.7096, 0.7181, 0.7232, 0.7256};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(DoubleWell(H[k]).left_well_mass(), expected[k], 5e-4) << "H = " << H[k];
}

TEST(DoubleWell, BarrierIsTheLocalMaximumAndGradientMatchesFiniteDifferences) {
  DoubleWell t(6);
  const double xs = t.barrier();
  EXPECT_NEAR(4 * 6 * xs * (xs * xs - 1) + 0.5, 0.0, 1e-9);  // V'(x*) = 0
  EXPECT_LT(std::abs(xs), 0.1);
  std::vector<float> x{-1.3f, -0.2f, 0.7f, 1.1f};
  std::vector<double> lp(4), g(4);
  t.log_density({x.data(), 4, 1}, lp, g);
  for (int i = 0; i < 4; ++i) {
    const double e = 1e-4;
    auto f = [](double v) { return -(6 * (v * v - 1) * (v * v - 1) + 0.5 * v); };
    EXPECT_NEAR(lp[i], f(x[i]), 1e-12);
    EXPECT_NEAR(g[i], (f(x[i] + e) - f(x[i] - e)) / (2 * e), 1e-5);
  }
}

TEST(DoubleWell, MassLeftOfBarrierMatchesANaiveLoopAndIsStrictAtTheBarrier) {
  // tilt = 4 H b (1 - b^2) puts the barrier exactly at b = 0.0625, a float: one particle sits on it.
  const double b = 0.0625;
  DoubleWell t(4, 4 * 4 * b * (1 - b * b));
  ASSERT_EQ(t.barrier(), b);
  WeightedParticles p(Points({-1.2f, 0.3f, static_cast<float>(b), -0.4f, 0.0624f, 1.1f, 0.0626f}, 7, 1));
  p.logw = {0.5, -1.0, 2.0, 0.0, -0.3, 1.5, -2.0};  // unnormalised, non-uniform
  // The naive sums: exp(logw) over the particles with x < b, over the total.
  double left = 0, total = 0;
  for (int64_t i = 0; i < p.size(); ++i) total += std::exp(p.logw[i]);
  for (int64_t i = 0; i < p.size(); ++i)
    if (p.x.row(i)[0] < b) left += std::exp(p.logw[i]);
  EXPECT_NEAR(t.mass_left_of_barrier(p), left / total, 1e-14);
  const double on_left = std::exp(0.5) + std::exp(0.0) + std::exp(-0.3);  // -1.2, -0.4, 0.0624; not 0.0625
  EXPECT_NEAR(t.mass_left_of_barrier(p), on_left / total, 1e-14);
  p.x.row(2)[0] = std::nextafter(static_cast<float>(b), 0.0f);  // just left of the barrier: now counted
  EXPECT_NEAR(t.mass_left_of_barrier(p), (on_left + std::exp(2.0)) / total, 1e-14);
  EXPECT_NEAR(t.mass_left_of_barrier(p), left_mass(p, t.barrier()), 1e-15);
  WeightedParticles two(Points({0.f, 1.f, 2.f, 3.f}, 2, 2));
  EXPECT_THROW(t.mass_left_of_barrier(two), Error);
}

TEST(GaussianMixture, LogDensityMatchesNaiveFormulaAndIntegratesToOne) {
  // 1-D: 0.3 N(-2, 0.5) + 0.7 N(3, 1)
  GaussianMixture gm({0.3, 0.7}, {-2, 3}, {0.5, 1.0}, 1);
  double integral = 0;
  const double hstep = 1e-3;
  for (double v = -12; v <= 14; v += hstep) {
    float xf = static_cast<float>(v);
    std::vector<double> lp(1), g(1);
    gm.log_density({&xf, 1, 1}, lp, g);
    const double xv = xf;
    const double naive = 0.3 * std::exp(-(xv + 2) * (xv + 2) / (2 * 0.5)) / std::sqrt(2 * std::numbers::pi * 0.5) +
                         0.7 * std::exp(-(xv - 3) * (xv - 3) / 2) / std::sqrt(2 * std::numbers::pi);
    EXPECT_NEAR(std::exp(lp[0]), naive, 1e-12);
    integral += std::exp(lp[0]) * hstep;
  }
  EXPECT_NEAR(integral, 1.0, 1e-3);
}

TEST(GaussianMixture, GradientMatchesFiniteDifferencesWithFullCovariances) {
  auto t = make_named_mixture("mixture4-cp");
  std::vector<float> x{3.5f, 2.0f, 9.5f, 4.5f, 6.0f, 6.0f};
  std::vector<double> lp(3), g(6);
  t->log_density({x.data(), 3, 2}, lp, g);
  for (int i = 0; i < 3; ++i)
    for (int a = 0; a < 2; ++a) {
      const float e = 1e-2f;
      std::vector<float> xp(x.begin() + 2 * i, x.begin() + 2 * i + 2), xm = xp;
      xp[a] += e;
      xm[a] -= e;
      std::vector<double> lpp(1), lpm(1);
      t->log_density({xp.data(), 1, 2}, lpp, {});
      t->log_density({xm.data(), 1, 2}, lpm, {});
      const double fd = (lpp[0] - lpm[0]) / (static_cast<double>(xp[a]) - xm[a]);
      EXPECT_NEAR(g[2 * i + a], fd, 2e-3 * (1 + std::abs(fd))) << i << "," << a;
    }
}

TEST(GaussianMixture, SamplesHaveTheMixtureMeanAndNamedTargetsBuild) {
  auto t = make_named_mixture("mixture4-lln");
  Rng rng(3);
  Points s = t->sample(40000, rng);
  double my = 0;
  for (int64_t i = 0; i < s.n; ++i) my += s.row(i)[1];
  my /= s.n;
  // E[y] = (8 + 2 + 5 + 5) / 4 = 5; Var[y] <= 9 + 2, SE < 0.02
  EXPECT_NEAR(my, 5.0, 0.1);
  EXPECT_EQ(make_named_mixture("mixture20d")->dim(), 20);
  EXPECT_EQ(make_target("doublewell", 4)->dim(), 1);
}

// ------------------------------------------------------------------------------ particles / resampling

TEST(WeightedParticles, EssOfKnownWeights) {
  WeightedParticles p(Points(4, 1));
  p.logw = {std::log(0.1), std::log(0.2), std::log(0.3), std::log(0.4)};
  EXPECT_NEAR(p.ess(), 1.0 / (0.01 + 0.04 + 0.09 + 0.16), 1e-12);
  p.logw.assign(4, 5.0);
  EXPECT_NEAR(p.ess(), 4.0, 1e-12);
}

class ResamplingUnbiased : public ::testing::TestWithParam<ResampleScheme> {};

TEST_P(ResamplingUnbiased, ExpectedOffspringEqualsNTimesWeight) {
  const std::vector<double> w{0.05, 0.3, 0.15, 0.4, 0.1, 0.0};
  for (int64_t n : {5, 7}) {
    const int R = 20000;
    std::vector<double> sum(w.size(), 0), sum2(w.size(), 0);
    Rng rng(11, n);
    for (int r = 0; r < R; ++r) {
      const auto idx = resample_indices(w, n, GetParam(), rng);
      ASSERT_EQ(static_cast<int64_t>(idx.size()), n);
      ASSERT_TRUE(std::is_sorted(idx.begin(), idx.end()));
      std::vector<double> c(w.size(), 0);
      for (int64_t a : idx) c[a] += 1;
      for (size_t i = 0; i < w.size(); ++i) {
        sum[i] += c[i];
        sum2[i] += c[i] * c[i];
      }
    }
    for (size_t i = 0; i < w.size(); ++i) {
      const double mean = sum[i] / R;
      const double var = std::max(sum2[i] / R - mean * mean, 0.0);
      const double se = std::sqrt(var / R);
      EXPECT_NEAR(mean, n * w[i], 5 * se + 1e-12) << resample_scheme_name(GetParam()) << " n=" << n << " i=" << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, ResamplingUnbiased,
                         ::testing::Values(ResampleScheme::Multinomial, ResampleScheme::Stratified,
                                           ResampleScheme::Systematic, ResampleScheme::Residual));

TEST(Resampling, SystematicKeepsFloorOfNTimesWeight) {
  const std::vector<double> w{0.5, 0.25, 0.25};
  Rng rng(5);
  for (int r = 0; r < 100; ++r) {
    const auto idx = resample_indices(w, 8, ResampleScheme::Systematic, rng);
    EXPECT_EQ(std::count(idx.begin(), idx.end(), 0), 4);
    EXPECT_EQ(std::count(idx.begin(), idx.end(), 1), 2);
  }
}

// ------------------------------------------------------------------------------------------ samplers

TEST(Mala, LogAcceptanceMatchesHandComputation) {
  // pi = N(0, 1): log pi = -x^2/2, grad = -x. x = 0.5, y = 0.9, dt = 0.1:
  // log pi(y) - log pi(x) = -0.405 + 0.125 = -0.28
  // |x - y - dt grad(y)|^2 / (4 dt) = (0.5 - 0.9 + 0.09)^2 / 0.4 = 0.0961 / 0.4 = 0.24025
  // |y - x - dt grad(x)|^2 / (4 dt) = (0.4 + 0.05)^2 / 0.4 = 0.2025 / 0.4 = 0.50625
  // log alpha = -0.28 - 0.24025 + 0.50625 = -0.014
  std::vector<double> x{0.5}, gx{-0.5}, y{0.9}, gy{-0.9};
  EXPECT_NEAR(mala_log_acceptance(x, -0.125, gx, y, -0.405, gy, 0.1), -0.014, 1e-12);
  // the reverse move has log alpha = +0.014, capped at 0
  EXPECT_EQ(mala_log_acceptance(y, -0.405, gy, x, -0.125, gx, 0.1), 0.0);
}

TEST(SmcWfr, LogWeightsMatchNaiveDoubleLoop) {
  auto target = make_named_mixture("mixture4-cp");
  const int64_t n = 37, d = 2;
  const double gamma = 0.2;
  Rng rng(9);
  Points m(n, d), xn(n, d);
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < d; ++a) {
      m.row(i)[a] = static_cast<float>(5 + 3 * rng.normal());
      xn.row(i)[a] = static_cast<float>(m.row(i)[a] + std::sqrt(2 * gamma) * rng.normal());
    }
  std::vector<double> lwp(n);
  for (auto& v : lwp) v = rng.normal();
  const double z = std::log(std::accumulate(lwp.begin(), lwp.end(), 0.0, [](double s, double v) { return s + std::exp(v); }));
  for (auto& v : lwp) v -= z;
  for (bool uniform : {true, false}) {
    const auto got = smc_wfr_log_weights(*target, m, xn, uniform ? std::span<const double>() : lwp, gamma, quiet_ctx());
    std::vector<double> lp(n), naive(n);
    target->log_density(xn, lp, {});
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) {
        double d2 = 0;
        for (int a = 0; a < d; ++a) {
          const double e = static_cast<double>(xn.row(i)[a]) - m.row(j)[a];
          d2 += e * e;
        }
        s += std::exp((uniform ? 0.0 : lwp[j]) - d2 / (4 * gamma));
      }
      naive[i] = (uniform ? 0.0 : lwp[i]) + (1 - std::exp(-gamma)) * (lp[i] - std::log(s));
    }
    double mx = -1e300, tot = 0;
    for (double v : naive) mx = std::max(mx, v);
    for (double v : naive) tot += std::exp(v - mx);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], naive[i] - mx - std::log(tot), 1e-4) << i;
  }
}

TEST(Kde, LogDensityMatchesNaiveDoubleLoop) {
  const int64_t n = 53, d = 3;
  Rng rng(13);
  Points x(n, d);
  rng.fill_normal(std::span<float>(x.data));
  std::vector<double> lw(n);
  for (auto& v : lw) v = 0.5 * rng.normal() + 3.0;  // unnormalised on purpose
  const double h = 0.7;
  for (bool weighted : {false, true}) {
    const auto got = kde_log_density(x, weighted ? std::span<const double>(lw) : std::span<const double>(), h, quiet_ctx());
    double z = 0;
    for (double v : lw) z += std::exp(v);
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) {
        double d2 = 0;
        for (int a = 0; a < d; ++a) d2 += (double(x.row(i)[a]) - x.row(j)[a]) * (double(x.row(i)[a]) - x.row(j)[a]);
        const double wj = weighted ? std::exp(lw[j]) / z : 1.0 / n;
        s += wj * std::exp(-d2 / (2 * h * h)) / std::pow(2 * std::numbers::pi * h * h, d / 2.0);
      }
      EXPECT_NEAR(got[i], std::log(s), 1e-4) << i;
    }
  }
}

class KeepsStandardNormal : public ::testing::TestWithParam<const char*> {};

TEST_P(KeepsStandardNormal, WithinMonteCarloError) {
  auto target = make_standard_normal(1);
  Rng rng(21, 0);
  const int64_t n = 800;
  WeightedParticles start(target->sample(n, rng));
  SamplerSpec spec;
  spec.step = 0.01;
  spec.adaptive = false;
  auto s = make_sampler(GetParam(), spec);
  const auto r = s->run(*target, start, steps(150), quiet_ctx(4));
  const auto mo = weighted_moments(r.particles);
  // the weighted sample is worth at most ESS independent draws: SE(mean) = 1/sqrt(ESS),
  // SE(var) = sqrt(2/ESS); ULA's own variance bias at dt = 0.01 is 1/(1 - dt/2) - 1 = 0.005.
  const double ess = std::min<double>(mo.ess, n);
  EXPECT_NEAR(mo.mean, 0.0, 4 / std::sqrt(ess)) << GetParam();
  EXPECT_NEAR(mo.var, 1.0, 4 * std::sqrt(2 / ess) + 0.005) << GetParam();
  EXPECT_EQ(r.steps, 150);
  EXPECT_EQ(static_cast<int64_t>(r.trace.size()), 150);
}

INSTANTIATE_TEST_SUITE_P(AllSamplers, KeepsStandardNormal,
                         ::testing::Values("ula", "mala", "birth-death", "wfr", "smc-wfr", "tempered-smc"));

TEST(SmcWfr, DoubleWellH4ReachesTheExactLeftWellMass) {
  DoubleWell t(4);
  Points x(300, 1);
  std::fill(x.data.begin(), x.data.end(), 1.0f);
  SmcWfrOptions o;
  o.step = 0.005;
  const auto r = make_smc_wfr(o)->run(t, WeightedParticles(x), steps(1000), quiet_ctx(2));
  // SPEC.md §4: SMC-WFR 0.718 at t = 5 against exact 0.7181 (ULA: 0.335)
  EXPECT_NEAR(left_mass(r.particles, t.barrier()), t.left_well_mass(), 0.06);
  EXPECT_EQ(r.resamplings, 1000);
}

// SamplerSpec reaches every sampler that reads it: smc-wfr resamples at every step by default and only
// when the ESS falls below a given threshold; the weighted WFR and tempered SMC take the threshold too.
TEST(MakeSampler, EssThresholdReachesSmcWfrWfrAndTemperedSmc) {
  DoubleWell t(4);
  Points x(200, 1);
  std::fill(x.data.begin(), x.data.end(), 1.0f);
  auto resamplings = [&](const std::string& name, std::optional<double> threshold) {
    SamplerSpec spec;
    spec.step = 0.005;
    spec.ess_threshold = threshold;
    spec.bandwidth = 0.1;
    return make_sampler(name, spec)->run(t, WeightedParticles(x), steps(300), quiet_ctx(2)).resamplings;
  };
  EXPECT_EQ(resamplings("smc-wfr", std::nullopt), 300);
  const int64_t adaptive = resamplings("smc-wfr", 0.3);
  EXPECT_GT(adaptive, 0);
  EXPECT_LT(adaptive, 300);
  EXPECT_LT(resamplings("smc-wfr", 0.05), adaptive);
  EXPECT_LT(resamplings("wfr", 0.05), resamplings("wfr", 0.9));
  EXPECT_LT(resamplings("tempered-smc", 0.05), resamplings("tempered-smc", 0.9));
}

TEST(SmcWfr, SameSeedSameBitsOnAnyThreadCountOtherSeedDiffers) {
  auto t = make_named_mixture("mixture4-lln");
  Rng rng(1);
  WeightedParticles start(t->sample_component(0, 60, rng));
  SmcWfrOptions o;
  o.step = 0.01;
  auto s = make_smc_wfr(o);
  const auto a = s->run(*t, start, steps(20), quiet_ctx(7));
  const auto b = s->run(*t, start, steps(20), quiet_ctx(7));
  const auto c = s->run(*t, start, steps(20), quiet_ctx(8));
  const auto two = s->run(*t, start, steps(20), quiet_ctx(7, 2));
  EXPECT_EQ(a.particles.x.data, b.particles.x.data);
  EXPECT_EQ(a.particles.logw, b.particles.logw);
  EXPECT_EQ(a.particles.x.data, two.particles.x.data);  // thread count changes nothing
  EXPECT_EQ(a.particles.logw, two.particles.logw);
  EXPECT_NE(a.particles.x.data, c.particles.x.data);
}

TEST(TemperedSmc, FixedScheduleFollowsOneMinusExpAndEndsAtOne) {
  auto t = make_standard_normal(1);
  Rng rng(2);
  TemperedSmcOptions o;
  o.step = 0.05;
  const auto r = make_tempered_smc(o)->run(*t, WeightedParticles(t->sample(100, rng)), steps(10), quiet_ctx());
  ASSERT_EQ(r.trace.size(), 10u);
  for (int k = 1; k < 10; ++k) EXPECT_NEAR(*r.trace[k - 1].lambda, 1 - std::exp(-k * 0.05), 1e-15);
  EXPECT_EQ(*r.trace.back().lambda, 1.0);
}

TEST(TemperedSmc, AdaptiveReachesOneAndLogZMatchesKnownNormaliser) {
  // pi = exp(1.7) * (0.3 N(-2, 0.5) + 0.7 N(3, 1)): log Z = 1.7. Reference N(0, 3^2).
  GaussianMixture t({0.3, 0.7}, {-2, 3}, {0.5, 1.0}, 1, "mix", 1.7);
  TemperedSmcOptions o;
  o.adaptive = true;
  o.step = 0.05;
  o.moves = 3;
  o.reference_std = 3.0;
  const int R = 6;
  std::vector<double> est;
  for (int r = 0; r < R; ++r) {
    Rng rng(100 + r, 0);
    Points x(1000, 1);
    for (auto& v : x.data) v = static_cast<float>(3.0 * rng.normal());
    const auto res = make_tempered_smc(o)->run(t, WeightedParticles(x), steps(500), quiet_ctx(100 + r));
    EXPECT_EQ(res.termination, Termination::Converged);
    EXPECT_EQ(*res.trace.back().lambda, 1.0);
    EXPECT_LT(res.steps, 500);
    ASSERT_TRUE(res.log_z.has_value());
    est.push_back(*res.log_z);
  }
  const double mean = std::accumulate(est.begin(), est.end(), 0.0) / R;
  double var = 0;
  for (double v : est) var += (v - mean) * (v - mean);
  const double se = std::sqrt(var / (R - 1) / R);
  EXPECT_NEAR(mean, 1.7, 4 * se) << "se " << se;
  EXPECT_LT(se, 0.05);
}

TEST(TemperedSmc, FixedScheduleWithResamplingEstimatesLogZ) {
  // Same mixture as above, lambda_k = 1 - exp(-k dt) with resampling whenever ESS < 0.95 N.
  GaussianMixture t({0.3, 0.7}, {-2, 3}, {0.5, 1.0}, 1, "mix", 1.7);
  TemperedSmcOptions o;
  o.step = 0.1;
  o.moves = 3;
  o.reference_std = 3.0;
  o.ess_threshold = 0.95;
  const int R = 8;
  std::vector<double> est;
  int64_t resamplings = 0;
  for (int r = 0; r < R; ++r) {
    Rng rng(200 + r, 0);
    Points x(1000, 1);
    for (auto& v : x.data) v = static_cast<float>(3.0 * rng.normal());
    const auto res = make_tempered_smc(o)->run(t, WeightedParticles(x), steps(40), quiet_ctx(200 + r));
    est.push_back(*res.log_z);
    resamplings += res.resamplings;
  }
  EXPECT_GT(resamplings, R);  // the check covers particles permuted by resampling
  const double mean = std::accumulate(est.begin(), est.end(), 0.0) / R;
  double var = 0;
  for (double v : est) var += (v - mean) * (v - mean);
  const double se = std::sqrt(var / (R - 1) / R);
  EXPECT_NEAR(mean, 1.7, 4 * se) << "se " << se;
  EXPECT_LT(se, 0.05);
}

// Gaussian path p_t(x) = exp(-x^2 / (2 s_t^2)), s_t = 1 + t / 2: Z_t = sqrt(2 pi) s_t.
void gaussian_path(double t, PointsView x, PathPoint out) {
  const double s = 1 + 0.5 * t, sp = 0.5;
  for (int64_t i = 0; i < x.n; ++i) {
    const double v = x.data[i];
    out.logp[i] = -v * v / (2 * s * s);
    out.dlogp_dt[i] = v * v * sp / (s * s * s);
    out.grad[i] = -v / (s * s);
    out.laplacian[i] = -1 / (s * s);
  }
}

TEST(WeightedSde, LangevinDriftReducesToAnnealedImportanceSampling) {
  const int64_t n = 500, K = 100;
  const double dt = 0.01;
  Rng rng(31, 0);
  Points x0(n, 1);
  rng.fill_normal(std::span<float>(x0.data));
  auto target = make_standard_normal(1);  // only fixes the dimension for run()
  WeightedSdeOptions o;
  o.step = dt;
  o.path = gaussian_path;
  // the Langevin drift given explicitly, so the full weight-rate formula is exercised
  o.drift = [](double t, PointsView x, std::span<const double> g, DriftPoint out) {
    for (int64_t i = 0; i < x.n; ++i) {
      out.b[i] = g[i];
      out.div_b[i] = -1 / ((1 + 0.5 * t) * (1 + 0.5 * t));
    }
  };
  o.ess_threshold = 1e-9;  // never resample: compare with plain AIS
  const auto r = make_weighted_sde(o)->run(*target, WeightedParticles(x0), steps(K), quiet_ctx(5));
  // Hand-written AIS with the same noise stream: weight d/dt log p_t, then a Langevin move on p_t.
  std::vector<double> x(x0.data.begin(), x0.data.end()), lw(n, 0.0);
  for (int64_t k = 1; k <= K; ++k) {
    Rng step_rng(5, k);
    const double t = (k - 1) * dt, s = 1 + 0.5 * t;
    for (int64_t i = 0; i < n; ++i) lw[i] += dt * x[i] * x[i] * 0.5 / (s * s * s);
    for (int64_t i = 0; i < n; ++i) {
      const double v = static_cast<float>(x[i]);
      x[i] = static_cast<float>(v + dt * (-v / (s * s)) + std::sqrt(2.0) * std::sqrt(dt) * step_rng.normal());
    }
  }
  double mx = *std::max_element(lw.begin(), lw.end()), tot = 0;
  for (double v : lw) tot += std::exp(v - mx);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(r.particles.x.row(i)[0], x[i], 1e-5) << i;
    EXPECT_NEAR(r.particles.logw[i], lw[i] - mx - std::log(tot), 1e-9) << i;
  }
  EXPECT_EQ(r.resamplings, 0);
}

TEST(WeightedSde, LogZMatchesTheGaussianPathRatio) {
  // log(Z_2 / Z_0) = log 2 for s_t = 1 + t / 2 over t in [0, 2].
  const int R = 5;
  std::vector<double> est;
  auto target = make_standard_normal(1);
  for (int r = 0; r < R; ++r) {
    Rng rng(40 + r, 0);
    Points x0(2000, 1);
    rng.fill_normal(std::span<float>(x0.data));
    WeightedSdeOptions o;
    o.step = 0.01;
    o.path = gaussian_path;
    const auto res = make_weighted_sde(o)->run(*target, WeightedParticles(x0), steps(200), quiet_ctx(40 + r));
    est.push_back(*res.log_z);
  }
  const double mean = std::accumulate(est.begin(), est.end(), 0.0) / R;
  double var = 0;
  for (double v : est) var += (v - mean) * (v - mean);
  const double se = std::sqrt(var / (R - 1) / R);
  EXPECT_NEAR(mean, std::log(2.0), 4 * se) << "se " << se;
  EXPECT_LT(se, 0.03);
}

// ------------------------------------------------------------------------------------------ bad input

TEST(BadInput, TooFewParticlesNonPositiveStepUnknownNames) {
  auto t = make_standard_normal(1);
  test::expect_error_contains([&] { make_ula({0.01})->run(*t, WeightedParticles(Points(1, 1)), steps(5), quiet_ctx()); },
                              "particles");
  test::expect_error_contains([&] { make_ula({0.0}); }, "step");
  test::expect_error_contains([&] { make_smc_wfr({-1.0}); }, "step");
  SamplerSpec spec;
  spec.step = -0.1;
  test::expect_error_contains([&] { make_sampler("mala", spec); }, "step");
  test::expect_error_contains([&] { make_sampler("langevin", SamplerSpec{}); }, "sampler");
  test::expect_error_contains([&] { make_target("banana"); }, "target");
  test::expect_error_contains([&] { parse_resample_scheme("best"); }, "resample");
  test::expect_error_contains([&] { make_ula({0.01})->run(*t, WeightedParticles(Points(4, 2)), steps(5), quiet_ctx()); },
                              "dimension");
}

TEST(BadInput, NaNFromUserTargetNamesStepAndParticle) {
  auto calls = std::make_shared<int>(0);
  FunctionTarget t(1, [calls](PointsView x, std::span<double> lp, std::span<double> g) {
    ++*calls;
    for (int64_t i = 0; i < x.n; ++i) {
      lp[i] = -0.5 * x.data[i] * x.data[i];
      if (!g.empty()) g[i] = -x.data[i];
    }
    if (*calls == 4) lp[7] = std::nan("");  // call 1 = start, calls 2, 3, 4 = steps 1, 2, 3
  });
  Points x(10, 1);
  test::expect_error_contains([&] { make_ula({0.01})->run(t, WeightedParticles(x), steps(5), quiet_ctx()); },
                              "step 3 for particle 7");
}

// ------------------------------------------------------------------------------------------ CLI

TEST(Cli, WfrWritesParticlesWeightsAndTrace) {
  test::TempDir dir;
  const auto out = dir.file("run");
  auto r = test::run_cli("wfr --target doublewell --H 2 --sampler smc-wfr --particles 50 --step 0.01 --steps 30 "
                         "--init point:1.0 --seed 3 --quiet --png --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto x = read_npy(out + "/x.npy");
  EXPECT_EQ(x.shape, (std::vector<int64_t>{50, 1}));
  const auto lw = read_npy(out + "/logw.npy");
  EXPECT_EQ(lw.shape, (std::vector<int64_t>{50}));
  EXPECT_TRUE(std::filesystem::exists(out + "/trace.json"));
  EXPECT_TRUE(std::filesystem::exists(out + "/plot.png"));
  auto bad = test::run_cli("wfr --target doublewell --sampler nope --particles 50 --step 0.01 --steps 3 --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("sampler"), std::string::npos) << bad.out;
  bad = test::run_cli("wfr --target doublewell --sampler ula --particles 1 --step 0.01 --steps 3 --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
  bad = test::run_cli("wfr --target doublewell --sampler ula --particles 10 --step 0 --steps 3 --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
}  // namespace otgen::wfr
