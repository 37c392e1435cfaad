// JSON read from user files: run.json of `otgen train --resume` (TrainOptions) and the otgen.json of a
// model (ModelSpec), both in src/flow/options.cpp, after nlohmann's parser.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "otgen/core/error.h"
#include "otgen/flow/flow.h"

// Finding F1 (docs/RELIABILITY.md), fixed: integer fields given as floats beyond int64 are refused
// by from_json; tests/data/fuzz_regressions/fuzz_json/ keeps the input (replayed in flow_test).

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try { otgen::flow::TrainOptions::from_json(j); } catch (const otgen::Error&) {}
  if (j.is_object() && j.contains("model"))
    try { otgen::flow::ModelSpec::from_json(j["model"]); } catch (const otgen::Error&) {}
  try { otgen::flow::ModelSpec::from_json(j); } catch (const otgen::Error&) {}
  return 0;
}
