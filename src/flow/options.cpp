// Flow options: names, validation, JSON (otgen/flow/flow.h). Torch-free.
#include <cmath>
#include <string>

#include "otgen/core/error.h"
#include "otgen/flow/flow.h"

namespace otgen::flow {
namespace {

template <class E, size_t N>
E parse_name(std::string_view s, std::string_view argument, const std::pair<const char*, E> (&names)[N]) {
  std::string valid;
  for (const auto& [name, value] : names) {
    if (s == name) return value;
    valid += (valid.empty() ? "" : " | ") + std::string(name);
  }
  fail_argument(argument, std::string("'") + std::string(s) + "'", "one of " + valid);
}

constexpr std::pair<const char*, ModelKind> kModels[] = {{"mlp", ModelKind::Mlp}, {"unet", ModelKind::Unet}};
constexpr std::pair<const char*, TimeSampling> kTimes[] = {{"uniform", TimeSampling::Uniform},
                                                           {"logit-normal", TimeSampling::LogitNormal}};
constexpr std::pair<const char*, OptimizerKind> kOptimizers[] = {{"adam", OptimizerKind::Adam},
                                                                 {"adamw", OptimizerKind::AdamW}};
constexpr std::pair<const char*, LrSchedule> kSchedules[] = {{"constant", LrSchedule::Constant},
                                                             {"cosine", LrSchedule::Cosine}};
constexpr std::pair<const char*, Precision> kPrecisions[] = {{"fp32", Precision::Fp32}, {"bf16", Precision::Bf16}};

template <class E, size_t N>
const char* name_of(E v, const std::pair<const char*, E> (&names)[N]) {
  for (const auto& [name, value] : names)
    if (value == v) return name;
  return "unknown";
}

}  // namespace

const char* to_string(ModelKind v) { return name_of(v, kModels); }
const char* to_string(TimeSampling v) { return name_of(v, kTimes); }
const char* to_string(OptimizerKind v) { return name_of(v, kOptimizers); }
const char* to_string(LrSchedule v) { return name_of(v, kSchedules); }
const char* to_string(Precision v) { return name_of(v, kPrecisions); }
ModelKind parse_model_kind(std::string_view s, std::string_view a) { return parse_name(s, a, kModels); }
TimeSampling parse_time_sampling(std::string_view s, std::string_view a) { return parse_name(s, a, kTimes); }
OptimizerKind parse_optimizer(std::string_view s, std::string_view a) { return parse_name(s, a, kOptimizers); }
LrSchedule parse_schedule(std::string_view s, std::string_view a) { return parse_name(s, a, kSchedules); }
Precision parse_precision(std::string_view s, std::string_view a) { return parse_name(s, a, kPrecisions); }

void ModelSpec::validate() const {
  require(dim >= 1, "dim", dim, "the data dimension (>= 1)");
  require(std::isfinite(time_scale) && time_scale > 0 && time_scale <= 1e6, "--time-scale", time_scale,
          "a number in (0, 1e6]");
  require(num_classes >= 0 && num_classes <= (int64_t{1} << 20), "classes", num_classes,
          "a number of classes in [0, 2^20] (0 = unconditional)");
  if (kind == ModelKind::Mlp) {
    require(width >= 1 && width <= 65536, "--width", width, "an integer in [1, 65536]");
    require(depth >= 1 && depth <= 64, "--depth", depth, "an integer in [1, 64]");
    require(time_dim >= 2 && time_dim % 2 == 0 && time_dim <= 4096, "--time-dim", time_dim,
            "an even integer in [2, 4096]");
    return;
  }
  require(channels >= 1 && channels <= 64, "--image-channels", channels, "an integer in [1, 64]");
  require(image_side >= 1, "image side", image_side, "square images: dim = channels * side^2 (use --image-side)");
  require(dim == channels * image_side * image_side, "dim", dim,
          "channels * side^2 = " + std::to_string(channels * image_side * image_side) + " for the U-Net");
  require(groups >= 1, "--groups", groups, "a positive integer");
  require(base_channels >= groups && base_channels % groups == 0 && base_channels <= 1024, "--channels",
          base_channels, "a multiple of --groups (" + std::to_string(groups) + ") up to 1024");
  require(!mults.empty() && mults.size() <= 6, "--mults", mults.size(), "1 to 6 levels");
  for (int64_t m : mults) require(m >= 1 && m <= 16, "--mults", m, "multipliers in [1, 16]");
  const int64_t f = int64_t{1} << (mults.size() - 1);
  require(image_side % f == 0, "image side", image_side,
          "divisible by 2^(levels - 1) = " + std::to_string(f) + " for " + std::to_string(mults.size()) +
              " U-Net levels (use fewer --mults)");
}

nlohmann::json ModelSpec::to_json() const {
  return {{"kind", to_string(kind)}, {"dim", dim},           {"width", width},
          {"depth", depth},          {"time_dim", time_dim}, {"image_side", image_side},
          {"channels", channels},    {"base_channels", base_channels}, {"mults", mults},
          {"groups", groups}, {"num_classes", num_classes}, {"meanflow", meanflow},
          {"time_scale", time_scale}};
}

namespace {

// An integer field of a stored spec or run: only JSON integers within int64 (a float such as 1e69 would
// be an out-of-range conversion in nlohmann's get<int64_t>(): docs/RELIABILITY.md, finding F1).
int64_t integer_of(const nlohmann::json& v, const char* key) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
    throw Error(std::string("malformed options: ") + key + " = " + v.dump() + ", expected an integer");
  return v.get<int64_t>();
}
int64_t integer_at(const nlohmann::json& j, const char* key) { return integer_of(j.at(key), key); }

}  // namespace

ModelSpec ModelSpec::from_json(const nlohmann::json& j) {
  try {
    ModelSpec s;
    s.kind = parse_model_kind(j.at("kind").get<std::string>(), "model kind");
    s.dim = integer_at(j, "dim");
    s.width = integer_at(j, "width");
    s.depth = integer_at(j, "depth");
    s.time_dim = integer_at(j, "time_dim");
    s.image_side = integer_at(j, "image_side");
    s.channels = integer_at(j, "channels");
    s.base_channels = integer_at(j, "base_channels");
    s.mults.clear();
    for (const auto& m : j.at("mults")) s.mults.push_back(integer_of(m, "mults"));
    s.groups = integer_at(j, "groups");
    s.num_classes = j.contains("num_classes") ? integer_at(j, "num_classes") : 0;  // absent in unconditional models of otgen <= 0.1
    s.meanflow = j.value("meanflow", false);
    s.time_scale = j.value("time_scale", 1000.0);
    s.validate();
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed model spec: ") + e.what());
  }
}

void TrainOptions::validate() const {
  model.validate();
  require(batch >= 1 && batch <= (int64_t{1} << 24), "--batch", batch, "an integer in [1, 2^24]");
  require(batch <= (int64_t{1} << 27) / model.dim, "--batch", batch,
          "at most 2^27 / dim = " + std::to_string((int64_t{1} << 27) / model.dim) + " rows for dimension " +
              std::to_string(model.dim) + " (512 MiB per batch array)");
  require(steps >= 1, "--steps", steps, "a positive integer");
  require(std::isfinite(logit_mean), "--logit-mean", logit_mean, "a finite number");
  require(std::isfinite(logit_std) && logit_std > 0, "--logit-std", logit_std, "a positive number");
  require(std::isfinite(lr) && lr > 0, "--lr", lr, "a positive number");
  require(beta1 >= 0 && beta1 < 1, "--beta1", beta1, "a number in [0, 1)");
  require(beta2 >= 0 && beta2 < 1, "--beta2", beta2, "a number in [0, 1)");
  require(adam_eps > 0 && std::isfinite(adam_eps), "adam_eps", adam_eps, "a positive number");
  require(std::isfinite(weight_decay) && weight_decay >= 0, "--weight-decay", weight_decay, "a number >= 0");
  require(optimizer == OptimizerKind::AdamW || weight_decay == 0, "--weight-decay", weight_decay,
          "0 with --optimizer adam (decoupled decay needs --optimizer adamw)");
  require(warmup >= 0 && warmup < steps, "--warmup", warmup, "an integer in [0, --steps)");
  require(std::isfinite(lr_final) && lr_final >= 0 && lr_final <= lr, "--lr-final", lr_final,
          "a number in [0, --lr]");
  require(ema_decay >= 0 && ema_decay < 1, "--ema-decay", ema_decay, "a number in [0, 1)");
  require(std::isfinite(grad_clip) && grad_clip >= 0, "--grad-clip", grad_clip, "a number >= 0 (0 = off)");
  require(checkpoint_every >= 0, "--checkpoint-every", checkpoint_every, "an integer >= 0");
  require(log_every >= 1, "--log-every", log_every, "a positive integer");
  require(label_dropout >= 0 && label_dropout < 1, "--label-dropout", label_dropout, "a probability in [0, 1)");
  require(mf_ratio >= 0 && mf_ratio <= 1, "--mf-ratio", mf_ratio, "a fraction in [0, 1]");
  require(std::isfinite(mf_power) && mf_power >= 0 && mf_power <= 4, "--mf-power", mf_power, "a number in [0, 4]");
  require(std::isfinite(mf_c) && mf_c > 0, "--mf-c", mf_c, "a positive number");
  require(!(model.meanflow && precision == Precision::Bf16), "--precision", "bf16",
          "fp32 with --meanflow (its Jacobian-vector product runs in fp32)");
}

nlohmann::json TrainOptions::to_json() const {
  return {{"model", model.to_json()}, {"batch", batch},
          {"steps", steps},           {"time", to_string(time)},
          {"logit_mean", logit_mean}, {"logit_std", logit_std},
          {"optimizer", to_string(optimizer)}, {"lr", lr},
          {"beta1", beta1},           {"beta2", beta2},
          {"adam_eps", adam_eps},     {"weight_decay", weight_decay},
          {"warmup", warmup},         {"schedule", to_string(schedule)},
          {"lr_final", lr_final},     {"ema_decay", ema_decay},
          {"grad_clip", grad_clip},   {"precision", to_string(precision)},
          {"checkpoint_every", checkpoint_every}, {"log_every", log_every},
          {"label_dropout", label_dropout}, {"mf_ratio", mf_ratio},
          {"mf_power", mf_power},     {"mf_c", mf_c}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  try {
    TrainOptions o;
    o.model = ModelSpec::from_json(j.at("model"));
    o.batch = integer_at(j, "batch");
    o.steps = integer_at(j, "steps");
    o.time = parse_time_sampling(j.at("time").get<std::string>(), "time");
    o.logit_mean = j.at("logit_mean").get<double>();
    o.logit_std = j.at("logit_std").get<double>();
    o.optimizer = parse_optimizer(j.at("optimizer").get<std::string>(), "optimizer");
    o.lr = j.at("lr").get<double>();
    o.beta1 = j.at("beta1").get<double>();
    o.beta2 = j.at("beta2").get<double>();
    o.adam_eps = j.at("adam_eps").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
    o.warmup = integer_at(j, "warmup");
    o.schedule = parse_schedule(j.at("schedule").get<std::string>(), "schedule");
    o.lr_final = j.at("lr_final").get<double>();
    o.ema_decay = j.at("ema_decay").get<double>();
    o.grad_clip = j.at("grad_clip").get<double>();
    o.precision = parse_precision(j.at("precision").get<std::string>(), "precision");
    o.checkpoint_every = integer_at(j, "checkpoint_every");
    o.log_every = integer_at(j, "log_every");
    o.label_dropout = j.value("label_dropout", 0.1);
    o.mf_ratio = j.value("mf_ratio", 0.25);
    o.mf_power = j.value("mf_power", 1.0);
    o.mf_c = j.value("mf_c", 0.01);
    o.validate();
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed training options: ") + e.what());
  }
}

}  // namespace otgen::flow
