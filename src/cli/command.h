// Subcommand registration for the otgen CLI. Each src/cli/<name>.cpp defines its subcommands and
// registers them with OTGEN_REGISTER_COMMAND, so adding a command never edits main.cpp.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "otgen/core/communicator.h"
#include "otgen/core/context.h"
#include "otgen/data/data.h"
#include "otgen/kernels/scores.h"

namespace otgen::cli {

using Registrar = std::function<void(CLI::App&)>;

struct CommandRegistry {
  static std::vector<std::pair<std::string, Registrar>>& all();
  static bool add(std::string key, Registrar r);
};

// The subcommand `name` of `parent`, created (with `description`) the first time it is asked for:
// several files may add leaves under one group (e.g. `sdot assign`, `sdot fit`).
CLI::App* group(CLI::App& parent, const std::string& name, const std::string& description);

// The ranks under mpirun (otgen/core/communicator.h), or null (one process).
const Communicator* world();
// Adds --threads, --seed and --quiet to `cmd`, bound to `ctx` (and sets ctx.comm = world()).
void add_context_options(CLI::App* cmd, Context& ctx, bool with_seed = true);
// Option names and paths; empty paths are skipped.
using NamedPaths = std::vector<std::pair<const char*, const std::string*>>;
// An output file named by `argument`: its folder must exist and be writable, and it must not be one of
// the inputs (same path or same file). Checked before any work is done; temporary files of killed
// earlier runs next to it are removed (otgen/core/staging.h).
void require_output_file(const std::string& path, const std::string& argument, const NamedPaths& inputs = {});
// An output folder named by `argument`: a writable folder, or one that can be created (its nearest
// existing ancestor is a writable folder). prepare_output_folder also creates it (with its parents).
void require_output_folder(const std::string& dir, const std::string& argument);
void prepare_output_folder(const std::string& dir, const std::string& argument);
// Every non-empty output as above, against the inputs and against every other output.
void require_output_files(const NamedPaths& outputs, const NamedPaths& inputs);
// "a,b,c" -> {"a", "b", "c"} (empty items kept: "a,,b" has three).
std::vector<std::string> split_list(const std::string& s);
// "1,2,2" -> {1, 2, 2}; anything else fails naming `argument`.
std::vector<int64_t> parse_int_list(const std::string& s, const std::string& argument);
// --data as a named dataset (`digits`, `8gaussians`, ...: n points, seed for generators) or an
// (n, d) float .npy file with optional --labels (int64 .npy; then the first n points when n > 0).
// Square dimensions (d = side^2) of a .npy are taken as images.
Dataset load_data(const std::string& data, int64_t n, uint64_t seed, const std::string& labels = {});
bool is_npy_path(const std::string& s);
// --engine auto|fp32|vnni|avx512bf16|amx (ScoreOptions::path; a path this CPU lacks exits 2) and
// --no-int8-screen (no int8 screen even for 8-bit lattice data, otgen/kernels/lattice.h).
void add_engine_options(CLI::App* cmd, ScoreOptions& engine);

}  // namespace otgen::cli

#define OTGEN_CLI_CONCAT2(a, b) a##b
#define OTGEN_CLI_CONCAT(a, b) OTGEN_CLI_CONCAT2(a, b)
// OTGEN_REGISTER_COMMAND("sdot assign", fn): fn(CLI::App& root) adds its subcommand. The key orders --help.
#define OTGEN_REGISTER_COMMAND(key, fn) \
  static const bool OTGEN_CLI_CONCAT(otgen_registered_, __LINE__) = ::otgen::cli::CommandRegistry::add(key, fn)
