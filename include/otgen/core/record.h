// JSON run records: what was run (command, options, seed, threads), with which versions, how long
// it took and the history of the run. Written atomically. nlohmann::json is the document type.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "otgen/core/context.h"

namespace otgen {

// {"otgen_version", "compiler", "command", "seed", "threads", "blas_core" (OpenBLAS's kernels), "started_at"(UTC ISO 8601)}.
nlohmann::json run_record(const std::string& command, const Context& ctx);

// Writes the document (2-space indented) atomically.
void write_json(const std::string& path, const nlohmann::json& doc);

}  // namespace otgen
