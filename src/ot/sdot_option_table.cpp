// The semidiscrete fit's options, described once (otgen/ot/sdot_options.h): the table and the typed
// conversions between its values and the Options fields.
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "otgen/core/cpu_features.h"
#include "otgen/core/error.h"
#include "otgen/ot/sdot_options.h"

namespace otgen {
namespace {

using Options = SemidiscreteOT::Options;
using Value = SdotOptionValue;
using Kind = SdotOptionKind;

// ---- field <-> value, by the field's type ------------------------------------------------------

Value to_value(bool v) { return v; }
Value to_value(int64_t v) { return v; }
Value to_value(double v) { return v; }
Value to_value(EnginePath v) { return std::string(engine_path_name(v)); }
template <class E>
  requires std::is_enum_v<E>
Value to_value(E v) { return std::string(to_string(v)); }
template <class T>
Value to_value(const std::optional<T>& v) { return v ? to_value(*v) : Value{}; }

std::string kind_text(const Value& v) {
  static const char* names[] = {"unset (None)", "a bool", "an integer", "a real", "a string"};
  return names[v.index()];
}

[[noreturn]] void wrong_type(std::string_view argument, const Value& v, std::string_view expected) {
  fail_argument(argument, sdot_option_text(v) + " (" + kind_text(v) + ")", expected);
}

void from_value(bool& f, const Value& v, std::string_view a) {
  if (!std::holds_alternative<bool>(v)) wrong_type(a, v, "true or false");
  f = std::get<bool>(v);
}
void from_value(int64_t& f, const Value& v, std::string_view a) {
  if (!std::holds_alternative<int64_t>(v)) wrong_type(a, v, "an integer");
  f = std::get<int64_t>(v);
}
void from_value(double& f, const Value& v, std::string_view a) {
  if (std::holds_alternative<int64_t>(v)) f = static_cast<double>(std::get<int64_t>(v));
  else if (std::holds_alternative<double>(v)) f = std::get<double>(v);
  else wrong_type(a, v, "a number");
}
const std::string& name_of(const Value& v, std::string_view a, std::string_view expected) {
  if (!std::holds_alternative<std::string>(v)) wrong_type(a, v, expected);
  return std::get<std::string>(v);
}
void from_value(SdotCost& f, const Value& v, std::string_view a) { f = parse_sdot_cost(name_of(v, a, "a cost name"), a); }
void from_value(SdotOptimizer& f, const Value& v, std::string_view a) {
  f = parse_sdot_optimizer(name_of(v, a, "an optimizer name"), a);
}
void from_value(SdotSchedule& f, const Value& v, std::string_view a) {
  f = parse_sdot_schedule(name_of(v, a, "a schedule name"), a);
}
void from_value(SdotAveraging& f, const Value& v, std::string_view a) {
  f = parse_sdot_averaging(name_of(v, a, "an averaging name"), a);
}
void from_value(SdotInit& f, const Value& v, std::string_view a) { f = parse_sdot_init(name_of(v, a, "an init name"), a); }
void from_value(EnginePath& f, const Value& v, std::string_view a) {
  f = parse_engine_path(name_of(v, a, "an engine path name"), a);
  require_engine_path(f, a);
}
template <class T>
void from_value(std::optional<T>& f, const Value& v, std::string_view a) {
  if (std::holds_alternative<std::monostate>(v)) {
    f.reset();
    return;
  }
  T t{};
  from_value(t, v, a);
  f = t;
}

// The two accessors of one field.
#define OTGEN_SDOT_FIELD(member)                                         \
  [](const Options& o) { return to_value(o.member); },                  \
      [](Options& o, const Value& v, std::string_view a) { from_value(o.member, v, a); }

constexpr bool kAuto = true, kFixed = false, kGeneric = true, kOwnFlag = false;

const SdotOption kOptions[] = {
    {"epsilon", "--epsilon", Kind::Real, kFixed, kGeneric, "",
     "entropic regularisation (0 = hard OT; cost |x-y|^2/2)", OTGEN_SDOT_FIELD(epsilon)},
    {"relative_epsilon", "--relative-epsilon", Kind::Flag, kFixed, kGeneric, "",
     "--epsilon (and --warmup-delta) are multiples of std(C)", OTGEN_SDOT_FIELD(relative_epsilon)},
    {"cost", "--cost", Kind::Name, kFixed, kGeneric, "sqeuclidean_half, dot", "the cost: sqeuclidean_half | dot",
     OTGEN_SDOT_FIELD(cost)},
    {"steps", "--steps", Kind::Integer, kFixed, kGeneric, "", "maximum number of steps", OTGEN_SDOT_FIELD(steps)},
    {"batch_size", "--batch", Kind::Integer, kFixed, kGeneric, "", "noise draws per step", OTGEN_SDOT_FIELD(batch_size)},
    {"optimizer", "--optimizer", Kind::Name, kFixed, kGeneric, "sgd, adam", "sgd | adam", OTGEN_SDOT_FIELD(optimizer)},
    {"schedule", "--schedule", Kind::Name, kFixed, kGeneric, "constant, linear, cosine",
     "step size schedule: constant | linear | cosine", OTGEN_SDOT_FIELD(schedule)},
    {"lr", "--lr", Kind::Real, kAuto, kGeneric, "", "initial step size, or auto (from the data: docs/semidiscrete.md)",
     OTGEN_SDOT_FIELD(lr)},
    {"lr_final", "--lr-final", Kind::Real, kAuto, kGeneric, "", "final step size (linear, cosine), or auto",
     OTGEN_SDOT_FIELD(lr_final)},
    {"adam_beta1", "--adam-beta1", Kind::Real, kFixed, kGeneric, "", "Adam: first-moment decay",
     OTGEN_SDOT_FIELD(adam_beta1)},
    {"adam_beta2", "--adam-beta2", Kind::Real, kFixed, kGeneric, "", "Adam: second-moment decay",
     OTGEN_SDOT_FIELD(adam_beta2)},
    {"adam_eps", "--adam-eps", Kind::Real, kFixed, kGeneric, "", "Adam: denominator offset", OTGEN_SDOT_FIELD(adam_eps)},
    {"averaging", "--averaging", Kind::Name, kFixed, kGeneric, "none, ema, polyak, poly",
     "returned iterate: poly | ema | polyak | none", OTGEN_SDOT_FIELD(averaging)},
    {"poly_gamma", "--poly-gamma", Kind::Real, kFixed, kGeneric, "",
     "poly averaging: weight (1 + gamma) / (t + 1 + gamma)", OTGEN_SDOT_FIELD(poly_gamma)},
    {"ema_decay", "--ema-decay", Kind::Real, kFixed, kGeneric, "", "EMA decay", OTGEN_SDOT_FIELD(ema_decay)},
    {"polyak_start", "--polyak-start", Kind::Real, kFixed, kGeneric, "", "Polyak: average from this fraction of --steps",
     OTGEN_SDOT_FIELD(polyak_start)},
    {"polyak_prior", "--polyak-prior", Kind::Real, kFixed, kGeneric, "",
     "Polyak with --init g0.npy: g0 counts as this many averaged steps (resume an averaged fit)",
     OTGEN_SDOT_FIELD(polyak_prior)},
    {"init", "--init", Kind::Name, kFixed, kOwnFlag, "auto, zero, half-norm, gaussian",
     "start: auto | zero | half-norm (g0 = |y|^2 / 2, h = 0) | gaussian, or a (N,) potential .npy",
     OTGEN_SDOT_FIELD(init)},
    {"warmup_delta", "--warmup-delta", Kind::Real, kFixed, kGeneric, "", "eps warm-up: start at eps + delta ...",
     OTGEN_SDOT_FIELD(warmup_delta)},
    {"warmup_steps", "--warmup-steps", Kind::Integer, kFixed, kGeneric, "",
     "... decaying linearly to eps over these steps", OTGEN_SDOT_FIELD(warmup_steps)},
    {"chi2_every", "--chi2-every", Kind::Integer, kAuto, kGeneric, "",
     "evaluate chi2 every K steps and at the end (0 = never), or auto", OTGEN_SDOT_FIELD(chi2_every)},
    {"chi2_repeats", "--chi2-repeats", Kind::Integer, kAuto, kGeneric, "", "over R batches of fresh noise, or auto",
     OTGEN_SDOT_FIELD(chi2_repeats)},
    {"target_chi2", "--target-chi2", Kind::Real, kFixed, kGeneric, "",
     "stop when chi2 + 2 sd <= this at a check (0 = no target)", OTGEN_SDOT_FIELD(target_chi2)},
    {"chi2_threshold", "--chi2-threshold", Kind::Real, kFixed, kGeneric, "",
     "also stop when the chi2 estimate alone is <= this (0 = never)", OTGEN_SDOT_FIELD(chi2_threshold)},
    {"time_limit", "--time-limit", Kind::Real, kFixed, kGeneric, "", "stop after this many seconds (0 = none)",
     OTGEN_SDOT_FIELD(time_limit)},
    {"log_every", "--log-every", Kind::Integer, kAuto, kGeneric, "",
     "a history row every K steps (and at every check), or auto: min(100, --chi2-every) when that is given and "
     "> 0, else 100",
     OTGEN_SDOT_FIELD(log_every)},
    {"class_penalty", "--class-penalty", Kind::Real, kFixed, kGeneric, "",
     "labels: beta of c + beta [k != l] (inf = one potential per class)", OTGEN_SDOT_FIELD(class_penalty)},
    {"reference_draws", "--reference-draws", Kind::Integer, kFixed, kGeneric, "",
     "--relative-epsilon: noise draws of the reference cost matrix", OTGEN_SDOT_FIELD(reference_draws)},
    {"reference_points", "--reference-points", Kind::Integer, kFixed, kGeneric, "",
     "--relative-epsilon: at most this many data points in it", OTGEN_SDOT_FIELD(reference_points)},
    {"pca", "--pca", Kind::Integer, kFixed, kGeneric, "",
     "match in the span of the top K principal directions of the data (1 <= K <= d; 0 = off); the basis is "
     "written to OUT.pca.npy",
     OTGEN_SDOT_FIELD(pca)},
    {"engine", "--engine", Kind::Name, kFixed, kOwnFlag, "auto, fp32, vnni, avx512bf16, amx",
     "eps = 0 argmax path (docs/scores.md)", OTGEN_SDOT_FIELD(engine.path)},
    {"int8_screen", "--no-int8-screen", Kind::Flag, kFixed, kOwnFlag, "",
     "the exact int8 screen for 8-bit lattice data (the CLI's --no-int8-screen turns it off)",
     OTGEN_SDOT_FIELD(engine.int8_screen)},
};

#undef OTGEN_SDOT_FIELD

std::optional<int64_t> parse_integer(std::string_view s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_real(std::string_view s) {
  if (s == "inf" || s == "+inf" || s == "infinity") return std::numeric_limits<double>::infinity();
  double v = 0;
  const char* first = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || std::isnan(v)) return std::nullopt;
  return v;
}

}  // namespace

std::span<const SdotOption> sdot_options() { return kOptions; }

const SdotOption* find_sdot_option(std::string_view name) {
  for (const SdotOption& o : kOptions)
    if (o.name == name) return &o;
  return nullptr;
}

std::string sdot_option_names() {
  std::string s;
  for (const SdotOption& o : kOptions) s += (s.empty() ? "" : ", ") + std::string(o.name);
  return s;
}

SdotOptionValue parse_sdot_option_text(const SdotOption& option, std::string_view text, std::string_view argument) {
  if (option.can_be_auto && text == "auto") return {};
  const std::string_view or_auto = option.can_be_auto ? " or 'auto'" : "";
  switch (option.kind) {
    case Kind::Flag:
      if (text == "true") return true;
      if (text == "false") return false;
      fail_argument(argument, text, "true or false");
    case Kind::Integer:
      if (const auto v = parse_integer(text)) return *v;
      fail_argument(argument, text, std::string("an integer") + std::string(or_auto));
    case Kind::Real:
      if (const auto v = parse_real(text)) return *v;
      fail_argument(argument, text, std::string("a number") + std::string(or_auto));
    case Kind::Name: return std::string(text);
  }
  fail_argument(argument, text, "a value");
}

std::string sdot_option_text(const SdotOptionValue& value) {
  struct Text {
    std::string operator()(std::monostate) const { return "auto"; }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const {
      if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
      return ec == std::errc() ? std::string(buf, end) : to_text(v);
    }
    std::string operator()(const std::string& v) const { return v; }
  };
  return std::visit(Text{}, value);
}

}  // namespace otgen
