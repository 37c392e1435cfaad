// Weighted SDEs on flow fields (otgen/wfr/flow_sde.h) against closed forms: the exact Gaussian-mixture
// field satisfies the continuity equation; tilted, tempered and guidance-product targets of exact
// fields are Gaussians / mixtures with known moments, mode weights and normalising constants.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <numeric>

#include "otgen/wfr/flow_sde.h"
#include "test_util.h"

namespace otgen {
namespace {

// The 8 Gaussians of otgen's 8gaussians data set: radius 4, sd 0.3, equal weights.
std::vector<double> eight_means() {
  std::vector<double> m;
  for (int k = 0; k < 8; ++k) {
    const double a = 2 * std::numbers::pi * k / 8;
    m.push_back(4 * std::cos(a));
    m.push_back(4 * std::sin(a));
  }
  return m;
}

// log p_t(x) of the mixture sum_k w_k N(t mu_k, ((1-t)^2 + t^2 s_k^2) I), in double.
double mixture_log_density(const std::vector<double>& mu, const std::vector<double>& w, const std::vector<double>& s,
                           int64_t d, double t, const std::vector<double>& x) {
  const double W = std::accumulate(w.begin(), w.end(), 0.0);
  double p = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    const double var = (1 - t) * (1 - t) + t * t * s[k] * s[k];
    double q = 0;
    for (int64_t c = 0; c < d; ++c) q += std::pow(x[c] - t * mu[k * d + c], 2);
    p += w[k] / W * std::exp(-0.5 * q / var) / std::pow(2 * std::numbers::pi * var, 0.5 * d);
  }
  return std::log(p);
}

std::vector<double> mode_shares(const Points& x, const std::vector<double>& mu) {
  const int64_t K = static_cast<int64_t>(mu.size()) / x.d;
  std::vector<double> share(K, 0.0);
  for (int64_t i = 0; i < x.n; ++i) {
    int64_t best = 0;
    double bd = INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      double q = 0;
      for (int64_t c = 0; c < x.d; ++c) q += std::pow(x.row(i)[c] - mu[k * x.d + c], 2);
      if (q < bd) bd = q, best = k;
    }
    share[best] += 1.0 / static_cast<double>(x.n);
  }
  return share;
}

double tv(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += std::abs(a[k] - b[k]);
  return 0.5 * s;
}

std::vector<double> column_mean(const Points& x) {
  std::vector<double> m(x.d, 0.0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t c = 0; c < x.d; ++c) m[c] += x.row(i)[c] / static_cast<double>(x.n);
  return m;
}

double mean_variance(const Points& x) {  // mean over coordinates of the per-coordinate variance
  const auto m = column_mean(x);
  double v = 0;
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t c = 0; c < x.d; ++c) v += std::pow(x.row(i)[c] - m[c], 2);
  return v / static_cast<double>(x.n - 1) / static_cast<double>(x.d);
}

TEST(GaussianMixtureField, SatisfiesTheContinuityEquationAndItsDivergenceIsTheJacobianTrace) {
  const std::vector<double> mu = {2, 0, -1, 1.5, 0, -2}, w = {0.5, 0.3, 0.2}, s = {0.4, 0.7, 0.3};
  const FlowFieldFn field = gaussian_mixture_field(mu, w, s, 2);
  Rng rng(3);
  for (double t : {0.0, 0.2, 0.5, 0.8, 0.95}) {
    for (int rep = 0; rep < 5; ++rep) {
      const std::vector<double> x = {2 * rng.normal(), 2 * rng.normal()};
      Points p({static_cast<float>(x[0]), static_cast<float>(x[1])}, 1, 2);
      std::vector<double> xd = {p.data[0], p.data[1]};  // the float point, exactly
      FlowFieldValues f;
      field(t, p.view(), FlowFieldRequest{true, false}, f);
      // div v by central differences of v
      const double e = 1e-3;
      double fd_div = 0;
      for (int c = 0; c < 2; ++c) {
        Points a = p, b = p;
        a.data[c] += static_cast<float>(e);
        b.data[c] -= static_cast<float>(e);
        FlowFieldValues fa, fb;
        field(t, a.view(), {}, fa);
        field(t, b.view(), {}, fb);
        fd_div += (fa.v[c] - fb.v[c]) / (a.data[c] - b.data[c]);
      }
      EXPECT_NEAR(f.div[0], fd_div, 2e-3 * (1 + std::abs(fd_div))) << "t = " << t;
      // continuity: d/dt log p + div v + v . grad log p = 0, log p in closed form
      const double et = 1e-5;
      const double dlogp_dt = (mixture_log_density(mu, w, s, 2, t + et, xd) -
                               (t > 0 ? mixture_log_density(mu, w, s, 2, t - et, xd) : mixture_log_density(mu, w, s, 2, t, xd))) /
                              (t > 0 ? 2 * et : et);
      double vg = 0;
      for (int c = 0; c < 2; ++c) {
        std::vector<double> a = xd, b = xd;
        a[c] += 1e-5, b[c] -= 1e-5;
        vg += f.v[c] * (mixture_log_density(mu, w, s, 2, t, a) - mixture_log_density(mu, w, s, 2, t, b)) / 2e-5;
      }
      EXPECT_NEAR(dlogp_dt + f.div[0] + vg, 0.0, 2e-3 * (1 + std::abs(dlogp_dt))) << "t = " << t;
    }
  }
}

FlowSdeOptions options(int64_t steps, double noise) {
  FlowSdeOptions o;
  o.steps = steps;
  o.noise = noise;
  return o;
}

// A linear tilt of the 8 Gaussians: component k of weight w_k N(mu_k, s^2 I) becomes
// w_k exp(a . mu_k + s^2 |a|^2 / 2) N(mu_k + s^2 a, s^2 I), so the exact mode weights are
// proportional to exp(a . mu_k) and Z = sum_k w_k exp(a . mu_k + s^2 |a|^2 / 2).
struct TiltCase {
  std::vector<double> mu = eight_means(), w = std::vector<double>(8, 1.0), s = std::vector<double>(8, 0.3);
  std::vector<double> a = {0.35, 0.2};
  std::vector<double> exact_shares() const {
    std::vector<double> e(8);
    double z = 0;
    for (int k = 0; k < 8; ++k) z += (e[k] = std::exp(a[0] * mu[2 * k] + a[1] * mu[2 * k + 1]));
    for (double& v : e) v /= z;
    return e;
  }
  double log_z() const {
    double z = 0;
    for (int k = 0; k < 8; ++k) z += std::exp(a[0] * mu[2 * k] + a[1] * mu[2 * k + 1] + 0.5 * 0.09 * (a[0] * a[0] + a[1] * a[1])) / 8;
    return std::log(z);
  }
};

TEST(FlowSde, TiltedEightGaussiansMatchTheClosedFormModeWeightsAndLogZ) {
  const TiltCase c;
  const FlowFieldFn field = gaussian_mixture_field(c.mu, c.w, c.s, 2);
  const LogRewardFn reward = parse_log_reward("linear:0.35,0.2", 2);
  const auto exact = c.exact_shares();
  // Weighted SDE (noise 1), weighted ODE (noise 0) and the reward-guided drift with weights: all exact.
  for (const auto& [noise, kappa] : std::vector<std::pair<double, double>>{{1.0, 0.0}, {0.0, 0.0}, {1.0, 1.0}}) {
    std::vector<double> logz;
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      FlowSdeOptions o = options(200, noise);
      o.tilt_drift = kappa;
      const FlowSdeResult r = sample_flow_sde(field, 4000, 2, reward, o, seed);
      ASSERT_EQ(r.termination, Termination::Converged) << r.message;
      EXPECT_EQ(r.nfe, 200);
      // Mode shares of 4000 resampled particles: TV's Monte-Carlo error is about 0.02 here.
      EXPECT_LT(tv(mode_shares(r.particles.x, c.mu), exact), 0.05) << "noise " << noise << " kappa " << kappa;
      logz.push_back(r.log_z);
    }
    const double m = std::accumulate(logz.begin(), logz.end(), 0.0) / 3;
    double v = 0;
    for (double z : logz) v += (z - m) * (z - m) / 2;
    EXPECT_NEAR(m, c.log_z(), 4 * std::sqrt(v / 3) + 0.01) << "noise " << noise << " kappa " << kappa;
  }
  // The same reward-guided SDE without weights does not reach the tilted target.
  FlowSdeOptions o = options(200, 1.0);
  o.tilt_drift = 1.0;
  o.weighted = false;
  const FlowSdeResult plain = sample_flow_sde(field, 4000, 2, reward, o, 1);
  EXPECT_GT(tv(mode_shares(plain.particles.x, c.mu), exact), 0.15);
}

TEST(FlowSde, TiltedComponentsMoveToTheirClosedFormMeans) {
  // One Gaussian N(mu, s^2 I) tilted by a quadratic reward -(k/2)|x - m|^2 is N(mu', s'^2 I) with
  // 1/s'^2 = 1/s^2 + k and mu' = s'^2 (mu / s^2 + k m).
  const std::vector<double> mu = {1.0, -0.5};
  const double s = 0.6, k = 2.0;
  const FlowFieldFn field = gaussian_mixture_field(mu, {1.0}, {s}, 2);
  const LogRewardFn reward = parse_log_reward("quadratic:2,-1,1", 2);
  const double v1 = 1 / (1 / (s * s) + k);
  // Averages over three seeds: the Monte-Carlo error of one run of 8000 particles is about 0.01 here,
  // Euler-Maruyama's O(h) bias at 200 steps about 0.012 (measured over 8 runs); 0.025 covers both.
  std::vector<double> m(2, 0.0);
  double var = 0, lz = 0;
  for (uint64_t seed = 7; seed < 10; ++seed) {
    const FlowSdeResult r = sample_flow_sde(field, 8000, 2, reward, options(200, 1.0), seed);
    const auto mi = column_mean(r.particles.x);
    for (int c = 0; c < 2; ++c) m[c] += mi[c] / 3;
    var += mean_variance(r.particles.x) / 3, lz += r.log_z / 3;
  }
  EXPECT_NEAR(m[0], v1 * (mu[0] / (s * s) + k * -1.0), 0.025);
  EXPECT_NEAR(m[1], v1 * (mu[1] / (s * s) + k * 1.0), 0.025);
  EXPECT_NEAR(var, v1, 0.08 * v1);
  // Z = int N(x; mu, s^2) exp(-(k/2)|x - m|^2) dx = (v1 / s^2)^(d/2) exp(-(k/2) |mu - m|^2 s'^2 / s^2 ... )
  // per coordinate: sqrt(v1) / s * exp(-0.5 * k * (mu - m)^2 / (1 + k s^2)).
  double logz = 0;
  const double mm[2] = {-1.0, 1.0};
  for (int c = 0; c < 2; ++c) logz += std::log(std::sqrt(v1) / s) - 0.5 * k * std::pow(mu[c] - mm[c], 2) / (1 + k * s * s);
  EXPECT_NEAR(lz, logz, 0.05);
}

TEST(FlowSde, TemperedGaussianHasTheClosedFormVarianceAndNormaliser) {
  // p_1 = N(mu, s^2 I): p_1^gamma / Z = N(mu, s^2 / gamma I), Z = (2 pi s^2)^(d (1 - gamma) / 2) gamma^(-d / 2).
  const std::vector<double> mu = {0.5, -1.0, 2.0};
  const double s = 0.8;
  const int64_t d = 3;
  const FlowFieldFn field = gaussian_mixture_field(mu, {1.0}, {s}, d);
  for (const double gamma : {2.0, 0.5}) {
    FlowSdeOptions o = options(200, 1.0);
    o.temperature = gamma;
    o.schedule = NoiseSchedule::Linear;
    const FlowSdeResult r = sample_flow_sde(field, 10000, d, {}, o, 11);
    ASSERT_EQ(r.termination, Termination::Converged) << r.message;
    const auto m = column_mean(r.particles.x);
    for (int64_t c = 0; c < d; ++c) EXPECT_NEAR(m[c], mu[c], 0.03) << "gamma " << gamma;
    EXPECT_NEAR(mean_variance(r.particles.x), s * s / gamma, 0.08 * s * s / gamma) << "gamma " << gamma;
    const double logz = 0.5 * d * (1 - gamma) * std::log(2 * std::numbers::pi * s * s) - 0.5 * d * std::log(gamma);
    EXPECT_NEAR(r.log_z, logz, 0.05) << "gamma " << gamma;
    // Without the weights (started from p_0) the variance stays s^2.
    o.weighted = false;
    const FlowSdeResult plain = sample_flow_sde(field, 10000, d, {}, o, 11);
    EXPECT_NEAR(mean_variance(plain.particles.x), s * s, 0.05 * s * s);
  }
}

TEST(FlowSde, GuidanceProductOfTwoGaussiansIsTheClosedFormGaussian) {
  // p(x|y) = N(mu_c, s_c^2 I), p(x) = N(mu_u, s_u^2 I): p(x|y)^w p(x)^(1-w) ∝ N(m, 1/lambda I) with
  // lambda = w / s_c^2 + (1 - w) / s_u^2, m = (w mu_c / s_c^2 + (1 - w) mu_u / s_u^2) / lambda.
  const double sc = 0.5, su = 1.0, w = 2.0;
  const std::vector<double> mu = {1.0, 0.0, 0.0, 0.0};  // component 0: conditional, 1: unconditional
  const FlowFieldFn field = gaussian_mixture_field(mu, {0.0, 1.0}, {sc, su}, 2, {1.0, 0.0});
  const double lambda = w / (sc * sc) + (1 - w) / (su * su);
  const double m0 = (w * 1.0 / (sc * sc)) / lambda;
  FlowSdeOptions o = options(400, 1.0);
  o.guidance = w;
  // Averages over three seeds (one run's error is about 0.015 in the mean; see the quadratic tilt).
  std::vector<double> m(2, 0.0);
  double var = 0, lz = 0;
  for (uint64_t seed = 5; seed < 8; ++seed) {
    const FlowSdeResult r = sample_flow_sde(field, 6000, 2, {}, o, seed);
    ASSERT_EQ(r.termination, Termination::Converged) << r.message;
    EXPECT_EQ(r.nfe, 800);  // two velocities per step
    const auto mi = column_mean(r.particles.x);
    for (int c = 0; c < 2; ++c) m[c] += mi[c] / 3;
    var += mean_variance(r.particles.x) / 3, lz += r.log_z / 3;
  }
  EXPECT_NEAR(m[0], m0, 0.025);
  EXPECT_NEAR(m[1], 0.0, 0.025);
  EXPECT_NEAR(var, 1 / lambda, 0.1 / lambda);
  // log Z = log int N_c^w N_u^(1-w), per coordinate in closed form.
  auto coord_logz = [&](double mc, double mu_) {
    const double a = w, b = 1 - w;
    const double lin = a * mc / (sc * sc) + b * mu_ / (su * su), quad = a * mc * mc / (sc * sc) + b * mu_ * mu_ / (su * su);
    return -0.5 * a * std::log(2 * std::numbers::pi * sc * sc) - 0.5 * b * std::log(2 * std::numbers::pi * su * su) +
           0.5 * std::log(2 * std::numbers::pi / lambda) + 0.5 * lin * lin / lambda - 0.5 * quad;
  };
  EXPECT_NEAR(lz, coord_logz(1.0, 0.0) + coord_logz(0.0, 0.0), 0.05);
  // Plain guided sampling (same SDE, no weights) misses the product's variance.
  o.weighted = false;
  const FlowSdeResult plain = sample_flow_sde(field, 6000, 2, {}, o, 5);
  EXPECT_GT(std::abs(mean_variance(plain.particles.x) - 1 / lambda), 0.3 / lambda);
}

TEST(FlowSde, SameSeedSameParticlesAndTheTraceCountsSteps) {
  const TiltCase c;
  const FlowFieldFn field = gaussian_mixture_field(c.mu, c.w, c.s, 2);
  const LogRewardFn reward = parse_log_reward("linear:0.35,0.2", 2);
  FlowSdeOptions o = options(50, 1.0);
  o.trace_every = 10;
  const FlowSdeResult a = sample_flow_sde(field, 500, 2, reward, o, 9), b = sample_flow_sde(field, 500, 2, reward, o, 9);
  const FlowSdeResult other = sample_flow_sde(field, 500, 2, reward, o, 10);
  EXPECT_EQ(a.particles.x.data, b.particles.x.data);
  EXPECT_EQ(a.log_z, b.log_z);
  EXPECT_NE(a.particles.x.data, other.particles.x.data);
  ASSERT_EQ(a.trace.size(), 5u);
  EXPECT_EQ(a.trace.back().step, 50);
  EXPECT_DOUBLE_EQ(a.trace.back().t, 1.0);
  EXPECT_GT(a.resamples, 0);
  for (const auto& st : a.trace) EXPECT_TRUE(st.ess > 0 && st.ess <= 1.0 + 1e-12);
}

TEST(FlowSde, BadOptionsAndRewardsNameTheArgument) {
  using test::expect_error_contains;
  const FlowFieldFn field = gaussian_mixture_field({0.0, 0.0}, {1.0}, {1.0}, 2);
  expect_error_contains([] { parse_log_reward("linear:1", 2); }, "--tilt");
  expect_error_contains([] { parse_log_reward("linear:1,x", 2); }, "linear:a1,...,a2");
  expect_error_contains([] { parse_log_reward("cubic:1", 2); }, "--tilt");
  expect_error_contains([] { parse_log_reward("quadratic:1,2", 2); }, "quadratic:k");
  expect_error_contains([] { parse_noise_schedule("cosine"); }, "--noise-schedule");
  FlowSdeOptions o;
  o.steps = 0;
  expect_error_contains([&] { sample_flow_sde(field, 10, 2, {}, o, 0); }, "--steps");
  o = {};
  o.noise = -1;
  expect_error_contains([&] { sample_flow_sde(field, 10, 2, {}, o, 0); }, "--sde-noise");
  o = {};
  o.temperature = 2, o.guidance = 3;
  expect_error_contains([&] { sample_flow_sde(field, 10, 2, {}, o, 0); }, "--temperature");
  o = {};
  o.tilt_drift = 1;
  expect_error_contains([&] { sample_flow_sde(field, 10, 2, {}, o, 0); }, "--tilt-drift");
  o = {};
  o.guidance = 2;  // an unconditional field cannot guide
  expect_error_contains([&] { sample_flow_sde(field, 10, 2, {}, o, 0); }, "--guidance");
}

}  // namespace
}  // namespace otgen
