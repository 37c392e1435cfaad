// The library's random streams and the one rule that keys them (core layer).
//
// Every random draw comes from a stream keyed by (seed, stream, step):
//
//   key = stream_key(seed, stream, step) = mix_seed(seed, tag of stream, step)
//
// seed is the user's (`--seed S` in the CLI, `seed=S` in Python and otgen.torch); stream names what is
// drawn; step counts the draws of that stream within one run from 0 (the fit's batches, a coupling's
// calls, a training run's chunks). Row i of a noise batch is Rng(key, i).fill_normal(row), so noise
// does not depend on the thread count; noise classes come from the stream's Classes twin
// (classes_of). The same (seed, stream, step) gives the same draws in the library, the CLI, the
// Python module and otgen.torch: `sdot assign --n N --seed S --epsilon E` draws
// noise (S, Noise, 0) and samples with key (S, Assign, 0); Python's SemidiscreteOT.noise(N, seed=S)
// and sample(x, seed=S), and otgen.torch's first batch with seed=S, do the same.
//
// The tags are fixed values: changing one changes every result drawn from that stream.
#pragma once

#include <cstdint>

#include "otgen/core/rng.h"

namespace otgen {

enum class Stream : uint64_t {
  Noise = 0x4e6f697365,        // N(0, I) noise batches (semidiscrete fit, sdot assign --n, couplings)
  Classes = 0x436c61737365,    // xor-ed into a noise stream's tag: the classes of its noise rows
  Assign = 0x417373,           // Gumbel-max draws of j ~ s(x) at eps > 0 (sdot assign, sample, couplings)
  ClassGumbel = 0x47756d62656c,  // per-class Gumbel keys inside one conditional sampling call
  Chi2 = 0x43686932,           // the fit's chi2 checks
  Check = 0x436865636b,        // sdot check's fresh batches
  Floor = 0x466c6f6f72,        // the TV noise floor's multinomial draw
  Reference = 0x52656645,      // the fit: the seed it gives the std(C) estimate
  FitInit = 0x496e6974,        // the fit's start: marginal statistics of g0 and the Gaussian start's noise (step 1)
  Confirm = 0x436f6e66,        // the fit: the larger check confirming a chi2 stop (step = the fit's step)
  Coarse = 0x436f617273,       // coarse-to-fine start: the support shuffle (step = support size), the coarse fit's seed
  CoarseCells = 1,             // coarse-to-fine start: the noise placing the coarse cells (keyed by the coarse seed;
                               // the value is TrainNoise's, kept so that earlier fits keep their bits)
  CostScale = 0x526566,        // std(C) estimate: its noise (step 0) and data subsample (step 1)
  BatchOT = 0x5a,              // batch-OT couplings: the plan's rounding per class
  SdFit = 0x736466,            // the semidiscrete fit inside otgen train
  ModelInit = 0x6d6f64656c,    // flow models: parameter initialisation
  TrainNoise = 1,              // flow training, per chunk: noise (a torch generator seeded by the key)
  TrainTime = 2,               // per step: t ~ U(0, 1) (and MeanFlow's r)
  TrainPairs = 3,              // per chunk: the coupling's own draws
  TrainLabels = 4,             // per chunk: noise classes
  TrainDropout = 5,            // per step: label dropout
  // The flow SDE sampler (sample_flow_sde). Its tags share the values 1-3 with Train* on purpose: they
  // are the literals it drew from before the tags had names, kept so its earlier results stay the same.
  SdeNoise = 1,                // per step: the Brownian increments of the Euler-Maruyama step
  SdeResample = 2,             // per step: the resampling when the ESS falls below the threshold
  SdeFinalResample = 3,        // step 0: the final resampling at t = 1
  Bootstrap = 0xB0075794A9E5,  // metrics: bootstrap replicates
};

inline uint64_t stream_key(uint64_t seed, Stream s, uint64_t step = 0) {
  return mix_seed(seed, static_cast<uint64_t>(s), step);
}

// The tag of the classes drawn with a noise stream.
inline uint64_t classes_tag(Stream s) { return static_cast<uint64_t>(s) ^ static_cast<uint64_t>(Stream::Classes); }

}  // namespace otgen
