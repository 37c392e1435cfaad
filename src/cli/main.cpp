// otgen command-line tool. User errors: one line on stderr, exit code 2. Never a stack trace.
#include <fcntl.h>
#include <sys/stat.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "otgen/core/blas_threads.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/communicator.h"
#include "otgen/core/error.h"
#include "otgen/core/interrupt.h"
#include "otgen/core/npy.h"
#include "otgen/core/staging.h"
#include "otgen/core/version.h"
#ifdef OTGEN_WITH_MPI
#include <memory>

#include "otgen/dist/dist.h"
#endif

namespace otgen::cli {

std::vector<std::pair<std::string, Registrar>>& CommandRegistry::all() {
  static std::vector<std::pair<std::string, Registrar>> registry;
  return registry;
}

bool CommandRegistry::add(std::string key, Registrar r) {
  all().emplace_back(std::move(key), std::move(r));
  return true;
}

CLI::App* group(CLI::App& parent, const std::string& name, const std::string& description) {
  for (CLI::App* sub : parent.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  CLI::App* g = parent.add_subcommand(name, description);
  g->require_subcommand(1);
  return g;
}

namespace {
const Communicator* g_world = nullptr;  // set by main under mpirun
}  // namespace

const Communicator* world() { return g_world; }

void add_context_options(CLI::App* cmd, Context& ctx, bool with_seed) {
  ctx.comm = g_world;
  cmd->add_option("--threads", ctx.threads, "threads (0 = all cores)")->check(CLI::Range(0, 65536));
  if (with_seed) cmd->add_option("--seed", ctx.seed, "random seed (results depend on it only)");
  cmd->add_flag("--quiet,-q", ctx.quiet, "no progress on stderr (a bar on a terminal, else a line every few seconds)");
}

void require_output_file(const std::string& path, const std::string& argument, const NamedPaths& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(fs::absolute(path), ec);  // resolves "..", "." and symlinks
  require(!ec && fs::is_directory(out.parent_path()), argument, "'" + path + "'", "a file in an existing folder");
  require(!fs::is_directory(out), argument, "'" + path + "'", "a file name, not a folder");
  for (const auto& [name, input] : inputs)
    if (!input->empty()) {
      const fs::path in = fs::weakly_canonical(fs::absolute(*input), ec);
      const bool same = out == in || (fs::exists(out) && fs::exists(in) && fs::equivalent(out, in, ec));
      require(!same, argument, "'" + path + "'", std::string("a path other than ") + name);
    }
  // Writable: the atomic write creates a temporary file next to it, so try exactly that (and remove it).
  const std::string probe = out.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    fail_argument(argument, "'" + path + "'", std::string("a writable location (") + std::strerror(errno) + ")");
  ::close(fd);
  ::unlink(probe.c_str());
  remove_stale_temporaries(out.string());
}

void require_output_folder(const std::string& dir, const std::string& argument) {
  namespace fs = std::filesystem;
  require(!dir.empty(), argument, "''", "a folder");
  std::error_code ec;
  fs::path existing = fs::absolute(dir, ec);
  while (!existing.empty() && !fs::exists(existing, ec) && existing != existing.parent_path()) existing = existing.parent_path();
  if (existing == fs::absolute(dir, ec)) require(fs::is_directory(existing, ec), argument, "'" + dir + "'", "a folder (it is a file)");
  // Writable: make (and remove) a folder where the first missing one would go.
  const std::string probe = (existing / (".otgen-probe." + std::to_string(::getpid()))).string();
  const bool writable = fs::is_directory(existing, ec) && ::mkdir(probe.c_str(), 0700) == 0;
  const int err = errno;
  if (writable) ::rmdir(probe.c_str());
  require(writable, argument, "'" + dir + "'",
          "a writable folder, or one that can be created ('" + existing.string() + "': " + std::strerror(err) + ")");
}

void prepare_output_folder(const std::string& dir, const std::string& argument) {
  require_output_folder(dir, argument);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail_argument(argument, "'" + dir + "'", "a folder that can be created (" + ec.message() + ")");
}

void require_output_files(const NamedPaths& outputs, const NamedPaths& inputs) {
  for (const auto& [name, path] : outputs) {
    if (path->empty()) continue;
    NamedPaths others = inputs;
    for (const auto& other : outputs)
      if (other.second != path) others.push_back(other);
    require_output_file(*path, name, others);
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t end = s.find(',', pos);
    out.push_back(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) return out;
    pos = end + 1;
  }
}

void add_engine_options(CLI::App* cmd, ScoreOptions& engine) {
  CLI::Option* no_int8 = cmd->add_flag_callback("--no-int8-screen", [&engine] { engine.int8_screen = false; },
                                                "no int8 screen even for 8-bit lattice data (default: int8 screen)");
  std::string names;
  for (std::string_view n : engine_path_names()) {
    if (!names.empty()) names += '|';
    names += n;
  }
  cmd->add_option_function<std::string>(
         "--engine",
         [&engine](const std::string& s) {
           engine.path = parse_engine_path(s, "--engine");
           require_engine_path(engine.path, "--engine");
         },
         "eps = 0 argmax path: " + names +
             " (default auto: the int8 screen for 8-bit lattice data, else the exact AVX512-BF16 screen when the "
             "CPU has it, d >= 32 and OpenBLAS runs non-FMA kernels, else float32; docs/scores.md)")
      ->excludes(no_int8);
}

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& argument) {
  std::vector<int64_t> v;
  for (const std::string& item : split_list(s)) {
    try {
      size_t used = 0;
      v.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail_argument(argument, "'" + s + "'", "comma-separated integers, e.g. 1,2,2");
    }
  }
  return v;
}

bool is_npy_path(const std::string& s) { return s.size() > 4 && s.compare(s.size() - 4, 4, ".npy") == 0; }

Dataset load_data(const std::string& data, int64_t n, uint64_t seed, const std::string& labels) {
  if (is_npy_path(data)) {
    Dataset ds;
    ds.name = data;
    ds.x = read_points_npy(data, "--data");
    require(ds.x.n >= 1, "--data", "'" + data + "' with 0 points", "at least one point");
    if (!labels.empty()) {
      ds.labels = read_int64_npy(labels, "--labels");
      require(static_cast<int64_t>(ds.labels.size()) == ds.x.n, "--labels", "length " + std::to_string(ds.labels.size()),
              "one class per data point (" + std::to_string(ds.x.n) + ")");
      for (size_t i = 0; i < ds.labels.size(); ++i) {
        require(ds.labels[i] >= 0 && ds.labels[i] < (int64_t{1} << 20), "--labels",
                to_text(ds.labels[i]) + " at index " + std::to_string(i), "classes in [0, 2^20)");
        ds.num_classes = std::max(ds.num_classes, ds.labels[i] + 1);
      }
    }
    if (n > 0) {
      require(n <= ds.x.n, "--n", n, "at most the file's " + std::to_string(ds.x.n) + " points");
      ds.x.data.resize(static_cast<size_t>(n * ds.x.d));
      ds.x.n = n;
      if (!ds.labels.empty()) ds.labels.resize(static_cast<size_t>(n));
    }
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(ds.x.d))));
    if (side * side == ds.x.d && side > 1) ds.image_side = side;
    return ds;
  }
  require(labels.empty(), "--labels", "'" + labels + "'", "a .npy --data (named datasets bring their labels)");
  DatasetOptions o;
  o.n = n;
  o.seed = seed;
  return load_dataset(data, o);
}

}  // namespace otgen::cli

namespace {

// Thread policy of the LibTorch commands (train, sample): LibTorch's OpenMP pool and OpenBLAS's own
// threads share the cores, and OpenMP's default spin-waiting after each parallel region starves the
// BLAS threads (measured: 4x slower MLP training on 2 cores). OpenMP reads OMP_WAIT_POLICY only when
// it starts, so these commands re-execute themselves once with OMP_WAIT_POLICY=PASSIVE unless the
// user chose a policy. Other commands keep OpenMP's default.
//
// Memory: LibTorch allocates and frees the same large activations every step; glibc returns them to
// the kernel (mmap/munmap, trimming), so each step page-faults them in again (a quarter of a U-Net
// step in kernel time). These commands keep freed memory in the heap instead (M_MMAP_THRESHOLD,
// M_TRIM_THRESHOLD): measured 15% faster U-Net steps.
bool torch_command_policies(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string cmd = argv[1];
  if (cmd != "train" && cmd != "sample") return false;
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_TOP_PAD, 64 << 20);
  return std::getenv("OMP_WAIT_POLICY") == nullptr && ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;
}

// OpenBLAS picks its kernels from the CPU model when it loads. Debian 12's 0.3.21 does not know recent
// Xeons (family 6 model 207) and falls back to its SSE3 "Prescott" kernels: SGEMM (the fp32 engine,
// LibTorch's float matmul) runs about 8x slower than with the AVX-512 ones. The choice is the user's
// (OPENBLAS_CORETYPE): the CLI and the Python module must run the same kernels to give the same bits,
// and Python cannot re-execute itself, so the CLI only says so, once, on a terminal.
void blas_kernel_notice() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || otgen::blas_has_fma_kernels() || !::isatty(STDERR_FILENO)) return;
  const otgen::CpuFeatures& c = otgen::cpu_features();
  const char* core = c.avx512f && c.avx512bw && c.avx512vl ? "SkylakeX" : c.avx2 && c.fma ? "Haswell" : nullptr;
  if (core)
    std::fprintf(stderr,
                 "otgen: note: OpenBLAS runs its generic '%s' kernels on this CPU (it does not know the model); "
                 "export OPENBLAS_CORETYPE=%s for up to 8x faster float32 search and training (docs/ARCHITECTURE.md)\n",
                 otgen::blas_core_name(), core);
}

// The environment policies above take effect only from a process start: re-execute once when one
// changed the environment (never twice: the second start finds it set).
void process_policies(int argc, char** argv) {
  if (torch_command_policies(argc, argv)) ::execv("/proc/self/exe", argv);  // returns only on failure
  blas_kernel_notice();
}

// The library names its fields in errors ("invalid batch_size = 0: ...", "labels_path: ..."); the user
// typed options. The field at the head of the message becomes the option of the command that ran: "--"
// + the field with dashes ("--chi2-every"), or the command's own spelling of it ("--batch"), when the
// command has that option.
std::string with_typed_names(const std::string& msg, CLI::App& app) {
  static const std::pair<const char*, const char*> kSpellings[] = {
      {"batch_size", "--batch"}, {"n_particles", "--particles"}, {"max_iterations", "--max-iter"},
      {"num_classes", "--classes"}, {"d", "--dim"}, {"path", "--data"}, {"labels_path", "--labels"}, {"mala_moves", "--ula-moves"}};
  const bool invalid = msg.rfind("invalid ", 0) == 0;
  const size_t start = invalid ? 8 : 0, end = msg.find_first_of(" :", start);
  if (end == std::string::npos || (!invalid && msg[end] != ':')) return msg;
  const std::string field = msg.substr(start, end - start);
  if (field.empty() || field.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) return msg;
  CLI::App* cmd = &app;
  for (auto subs = cmd->get_subcommands(); !subs.empty(); subs = cmd->get_subcommands()) cmd = subs.front();
  std::string flag = "--" + field;
  std::replace(flag.begin(), flag.end(), '_', '-');
  for (const auto& [name, spelling] : kSpellings)
    if (field == name && cmd->get_option_no_throw(flag) == nullptr) flag = spelling;
  if (cmd == &app || cmd->get_option_no_throw(flag) == nullptr) return msg;
  return msg.substr(0, start) + flag + msg.substr(end);
}

}  // namespace

// Under mpirun (OTGEN_MPI builds): one MPI session for the process, its world in every Context.
// Errors every rank agreed on (otgen::CollectiveError) are printed once, by rank 0, and every rank
// exits 2; any other error on a multi-rank run may leave ranks waiting, so it ends them all (MPI_Abort).
struct World {
#ifdef OTGEN_WITH_MPI
  std::unique_ptr<otgen::dist::MpiWorld> mpi;
#endif
  World(int* argc, char*** argv) {
#ifdef OTGEN_WITH_MPI
    if (otgen::dist::launched_by_mpirun()) {
      mpi = std::make_unique<otgen::dist::MpiWorld>(argc, argv);
      otgen::cli::g_world = &mpi->world();
    }
#else
    (void)argc, (void)argv;
#endif
  }
  int rank() const { return otgen::cli::g_world ? otgen::cli::g_world->rank() : 0; }
  int size() const { return otgen::cli::g_world ? otgen::cli::g_world->size() : 1; }
  // An error some ranks may not know of: print it (with the rank) and end every rank.
  void fail(int code, const char* what) const {
    if (size() == 1) return;
    std::fprintf(stderr, "otgen: rank %d: %s\n", rank(), what);
    std::fflush(stderr);
#ifdef OTGEN_WITH_MPI
    mpi->abort(code);
#else
    (void)code;
#endif
  }
};

int main(int argc, char** argv) {
  process_policies(argc, argv);
  World world(&argc, &argv);
  CLI::App app{"otgen: optimal-transport generative modelling (semidiscrete and batch OT couplings, flow "
               "matching, Wasserstein-Fisher-Rao samplers)"};
  app.set_version_flag("--version", std::string("otgen ") + OTGEN_VERSION_STRING);
  app.require_subcommand(1);
  auto& registry = otgen::cli::CommandRegistry::all();
  std::sort(registry.begin(), registry.end(), [](auto& a, auto& b) { return a.first < b.first; });
  try {
    for (auto& [key, reg] : registry) reg(app);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "otgen: internal error while building the command line: %s\n", e.what());
    return 1;
  }
  // Every output of the command is staged and published together when it succeeds (otgen/core/staging.h);
  // Ctrl-C removes the staged files (otgen/core/interrupt.h).
  otgen::install_interrupt_handlers(/*announce=*/world.size() == 1);
  try {
    otgen::OutputBatch outputs;
    app.parse(argc, argv);
    outputs.commit();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // the same on every rank
    if (world.rank() == 0) std::fprintf(stderr, "otgen: %s (see --help)\n", e.what());
    return 2;
  } catch (const otgen::CollectiveError& e) {
    if (world.rank() == 0) std::fprintf(stderr, "otgen: %s\n", with_typed_names(e.what(), app).c_str());
    return 2;
  } catch (const otgen::Error& e) {
    const std::string msg = with_typed_names(e.what(), app);
    world.fail(2, msg.c_str());
    std::fprintf(stderr, "otgen: %s\n", msg.c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    world.fail(1, "out of memory");
    std::fprintf(stderr, "otgen: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    world.fail(1, e.what());
    std::fprintf(stderr, "otgen: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
