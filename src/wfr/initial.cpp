#include <algorithm>
#include <cmath>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/wfr/wfr.h"

namespace otgen::wfr {

Points initial_particles(const Target& target, std::string_view spec_view, int64_t n, uint64_t seed) {
  const std::string spec(spec_view);
  require(n >= 1, "particles", n, "a positive count");
  const int64_t d = target.dim();
  require_memory("particles", n, 48.0 * static_cast<double>(n) * static_cast<double>(d),
                 std::to_string(n) + " particles of dimension " + std::to_string(d) +
                     " (positions, gradients, proposals: about 48 bytes a coordinate)");
  Rng rng(seed, 0);  // stream 0: the start (steps use streams 1, 2, ...)
  if (spec == "gaussian") {
    Points x(n, d);
    rng.fill_normal(std::span<float>(x.data));
    return x;
  }
  if (spec.rfind("point:", 0) == 0) {
    const std::string v = spec.substr(6);
    double p = 0;
    try {
      size_t used = 0;
      p = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail_argument("init", spec, "point:<number>, gaussian or mode:<K>");
    }
    require(std::isfinite(p), "init", spec, "a finite point");
    Points x(n, d);
    std::fill(x.data.begin(), x.data.end(), static_cast<float>(p));
    return x;
  }
  if (spec.rfind("mode:", 0) == 0) {
    const auto* gm = dynamic_cast<const GaussianMixture*>(&target);
    require(gm != nullptr, "init", spec, "mode:K only with a mixture target");
    int64_t k = 0;
    try {
      k = std::stoll(spec.substr(5));
    } catch (const std::exception&) {
      fail_argument("init", spec, "mode:<K> with K a component number");
    }
    require(k >= 1 && k <= gm->components(), "init", spec, "mode:K with 1 <= K <= " + std::to_string(gm->components()));
    return gm->sample_component(k - 1, n, rng);
  }
  fail_argument("init", spec, "point:<number>, gaussian or mode:<K>");
}

}  // namespace otgen::wfr
