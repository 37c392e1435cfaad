// The CPU-feature probe and the score engine's path names (core layer), shared by the kernels'
// run-time dispatch (otgen/kernels/scores.h, otgen/kernels/lattice.h) and anything else that picks an instruction set.
//
// The library is compiled for x86-64-v3 (AVX2 + FMA); AVX-512 code is compiled per function with
// target attributes and runs only after this probe said yes: the CPU reports the instructions (cpuid)
// AND the OS saves their register state (XGETBV), and for AMX Linux granted the tile-data permission
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), requested once, only when cpuid reports AMX).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace otgen {

struct CpuFeatures {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false;  // with the OS's zmm/opmask state
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;  // with the OS's tile state and permission
  std::string summary() const;  // e.g. "avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
};

// Probed once per process (thread-safe).
const CpuFeatures& cpu_features();

// The score engine's argmax paths. auto: the best exact path for the data and the CPU; the others force
// one (tests force every path the CPU supports). New paths go at the end of the name table
// (engine_path_names) with their support rule (engine_path_unsupported).
enum class EnginePath { Auto, Fp32, Vnni, Avx512Bf16, Amx };

// "auto", "fp32", "vnni", "avx512bf16", "amx".
std::span<const std::string_view> engine_path_names();
std::string_view engine_path_name(EnginePath p);
// The path named `name`; an unknown name fails naming `argument` (otgen::Error).
EnginePath parse_engine_path(std::string_view name, std::string_view argument);
// Empty when path p can run on this CPU (auto and fp32 always can), else the reason it cannot.
std::string engine_path_unsupported(EnginePath p);
// Fails naming `argument` (otgen::Error: exit 2 in the CLI, ValueError in Python) when p cannot run here.
void require_engine_path(EnginePath p, std::string_view argument);

}  // namespace otgen
