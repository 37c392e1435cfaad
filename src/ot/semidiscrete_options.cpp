// SemidiscreteOT options: the names of its enums (CLI, record, errors) and their checks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/core/progress.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"

namespace otgen {

const char* to_string(SdotCost v) { return v == SdotCost::Dot ? "dot" : "sqeuclidean_half"; }
const char* to_string(SdotOptimizer v) { return v == SdotOptimizer::Adam ? "adam" : "sgd"; }
const char* to_string(SdotSchedule v) {
  switch (v) {
    case SdotSchedule::Constant: return "constant";
    case SdotSchedule::Linear: return "linear";
    case SdotSchedule::Cosine: return "cosine";
  }
  return "?";
}
const char* to_string(SdotAveraging v) {
  switch (v) {
    case SdotAveraging::None: return "none";
    case SdotAveraging::Ema: return "ema";
    case SdotAveraging::Polyak: return "polyak";
    case SdotAveraging::Poly: return "poly";
  }
  return "?";
}
const char* to_string(SdotInit v) {
  switch (v) {
    case SdotInit::Auto: return "auto";
    case SdotInit::Zero: return "zero";
    case SdotInit::HalfNorm: return "half-norm";
    case SdotInit::Gaussian: return "gaussian";
  }
  return "?";
}

SdotCost parse_sdot_cost(std::string_view s, std::string_view argument) {
  if (s == "sqeuclidean_half") return SdotCost::SqEuclideanHalf;
  if (s == "dot") return SdotCost::Dot;
  fail_argument(argument, s, "one of sqeuclidean_half, dot");
}
SdotOptimizer parse_sdot_optimizer(std::string_view s, std::string_view argument) {
  if (s == "sgd") return SdotOptimizer::Sgd;
  if (s == "adam") return SdotOptimizer::Adam;
  fail_argument(argument, s, "one of sgd, adam");
}
SdotSchedule parse_sdot_schedule(std::string_view s, std::string_view argument) {
  if (s == "constant") return SdotSchedule::Constant;
  if (s == "linear") return SdotSchedule::Linear;
  if (s == "cosine") return SdotSchedule::Cosine;
  fail_argument(argument, s, "one of constant, linear, cosine");
}
SdotAveraging parse_sdot_averaging(std::string_view s, std::string_view argument) {
  if (s == "none") return SdotAveraging::None;
  if (s == "ema") return SdotAveraging::Ema;
  if (s == "polyak") return SdotAveraging::Polyak;
  if (s == "poly") return SdotAveraging::Poly;
  fail_argument(argument, s, "one of none, ema, polyak, poly");
}
SdotInit parse_sdot_init(std::string_view s, std::string_view argument) {
  if (s == "auto") return SdotInit::Auto;
  if (s == "zero") return SdotInit::Zero;
  if (s == "half-norm") return SdotInit::HalfNorm;
  if (s == "gaussian") return SdotInit::Gaussian;
  fail_argument(argument, s, "one of auto, zero, half-norm, gaussian");
}

void SemidiscreteOT::Options::validate() const {
  require(std::isfinite(epsilon) && epsilon >= 0, "epsilon", epsilon, "a finite number >= 0 (0 = hard OT)");
  require(batch_size >= 2, "batch_size", batch_size, "an integer >= 2");
  require(steps >= 1, "steps", steps, "a positive integer");
  if (lr) require(std::isfinite(*lr) && *lr > 0, "lr", *lr, "a positive finite step size (or unset = auto)");
  if (lr_final)
    require(std::isfinite(*lr_final) && *lr_final >= 0 && (!lr || *lr_final <= *lr), "lr_final", *lr_final,
            lr ? "a number in [0, lr = " + to_text(*lr) + "]" : std::string("a finite number >= 0"));
  require(adam_beta1 >= 0 && adam_beta1 < 1, "adam_beta1", adam_beta1, "a number in [0, 1)");
  require(adam_beta2 >= 0 && adam_beta2 < 1, "adam_beta2", adam_beta2, "a number in [0, 1)");
  require(std::isfinite(adam_eps) && adam_eps > 0, "adam_eps", adam_eps, "a positive finite number");
  require(poly_gamma >= 0 && std::isfinite(poly_gamma), "poly_gamma", poly_gamma, "a finite number >= 0");
  require(ema_decay >= 0 && ema_decay < 1, "ema_decay", ema_decay, "a number in [0, 1)");
  require(polyak_start >= 0 && polyak_start < 1, "polyak_start", polyak_start, "a fraction in [0, 1)");
  require(polyak_prior >= 0 && std::isfinite(polyak_prior), "polyak_prior", polyak_prior, "a finite number >= 0");
  require(std::isfinite(warmup_delta) && warmup_delta >= 0, "warmup_delta", warmup_delta, "a finite number >= 0");
  require(warmup_steps >= 0, "warmup_steps", warmup_steps, "an integer >= 0");
  if (chi2_every) require(*chi2_every >= 0, "chi2_every", *chi2_every, "an integer >= 0 (0 = never)");
  if (chi2_repeats) require(*chi2_repeats >= 1, "chi2_repeats", *chi2_repeats, "a positive integer");
  require(std::isfinite(chi2_threshold) && chi2_threshold >= 0, "chi2_threshold", chi2_threshold,
          "a finite number >= 0 (0 = never stop early)");
  require(std::isfinite(target_chi2) && target_chi2 >= 0, "target_chi2", target_chi2,
          "a finite number >= 0 (0 = no target)");
  require(std::isfinite(time_limit) && time_limit >= 0, "time_limit", time_limit,
          "a finite number of seconds >= 0 (0 = none)");
  if (log_every) require(*log_every >= 1, "log_every", *log_every, "a positive integer (or unset = auto)");
  require(class_penalty > 0 && !std::isnan(class_penalty), "class_penalty", class_penalty,
          "a positive number (infinity = one potential per class)");
  require(reference_draws >= 1, "reference_draws", reference_draws, "a positive integer");
  require(reference_points >= 1, "reference_points", reference_points, "a positive integer");
  require(pca >= 0, "pca", pca, "an integer >= 0 (0 = off; else the number of principal directions, <= d)");
  engine.validate();
}

int64_t SemidiscreteOT::Options::history_every() const {
  if (log_every) return *log_every;
  return chi2_every && *chi2_every > 0 ? std::min<int64_t>(100, *chi2_every) : 100;
}

}  // namespace otgen
