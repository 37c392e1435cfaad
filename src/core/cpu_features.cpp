// The CPU-feature probe (otgen/core/cpu_features.h): cpuid, XGETBV, and Linux's AMX permission.
#include "otgen/core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstdint>

#include "otgen/core/error.h"

namespace otgen {
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(unsigned v, int b) { return (v >> b) & 1u; }

// Linux >= 5.16 makes AMX tile data opt-in per process; a no-op once granted.
bool amx_permitted() {
#ifdef __linux__
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures probe() {
  CpuFeatures f;
  const Regs l1 = cpuid(1, 0);
  if (!bit(l1.c, 27)) return f;  // no OSXSAVE: no XGETBV, no AVX state
  const uint64_t xcr0 = xgetbv0();
  const bool os_avx = (xcr0 & 0x6) == 0x6, os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG | XTILEDATA
  const Regs l7 = cpuid(7, 0), l71 = cpuid(7, 1);
  f.fma = os_avx && bit(l1.c, 12);
  f.avx2 = os_avx && bit(l7.b, 5);
  f.avx512f = os_avx512 && bit(l7.b, 16);
  f.avx512bw = f.avx512f && bit(l7.b, 30);
  f.avx512vl = f.avx512f && bit(l7.b, 31);
  f.avx512_vnni = f.avx512f && bit(l7.c, 11);
  f.avx512_bf16 = f.avx512f && bit(l71.a, 5);
  f.avx512_fp16 = f.avx512f && bit(l7.d, 23);
  const bool amx = os_amx && bit(l7.d, 24);
  if (amx && amx_permitted()) {
    f.amx_tile = true;
    f.amx_bf16 = bit(l7.d, 22);
    f.amx_int8 = bit(l7.d, 25);
  }
  return f;
}

constexpr std::array<std::string_view, 5> kNames = {"auto", "fp32", "vnni", "avx512bf16", "amx"};

}  // namespace

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2"), add(fma, "fma"), add(avx512f, "avx512f"), add(avx512bw, "avx512bw"), add(avx512vl, "avx512vl");
  add(avx512_vnni, "avx512_vnni"), add(avx512_bf16, "avx512_bf16"), add(avx512_fp16, "avx512_fp16");
  add(amx_tile, "amx_tile"), add(amx_bf16, "amx_bf16"), add(amx_int8, "amx_int8");
  return s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = probe();
  return f;
}

std::span<const std::string_view> engine_path_names() { return kNames; }

std::string_view engine_path_name(EnginePath p) { return kNames[static_cast<size_t>(p)]; }

EnginePath parse_engine_path(std::string_view name, std::string_view argument) {
  for (size_t k = 0; k < kNames.size(); ++k)
    if (kNames[k] == name) return static_cast<EnginePath>(k);
  std::string list = "one of ";
  for (auto n : kNames) {
    if (n != kNames[0]) list += ", ";
    list += n;
  }
  std::string value = "'";
  value.append(name).append("'");
  fail_argument(argument, value, list);
}

std::string engine_path_unsupported(EnginePath p) {
  const CpuFeatures& f = cpu_features();
  switch (p) {
    case EnginePath::Auto:
    case EnginePath::Fp32:
      return {};
    case EnginePath::Vnni:
      return f.avx512bw && f.avx512vl && f.avx512_vnni ? std::string() : "this CPU lacks AVX-512 BW/VNNI";
    case EnginePath::Avx512Bf16:
      return f.avx512bw && f.avx512vl && f.avx512_bf16 ? std::string() : "this CPU lacks AVX512-BF16";
    case EnginePath::Amx:  // the screens' AMX kernels (their packing and second stages use AVX-512)
      if (!f.amx_bf16 || !f.amx_int8) return "this CPU lacks AMX-BF16/INT8 (or Linux did not grant the tile state)";
      return f.avx512bw && f.avx512vl && f.avx512_bf16 && f.avx512_vnni ? std::string()
                                                                         : "this CPU lacks AVX512-BF16/VNNI";
  }
  return "unknown path";
}

void require_engine_path(EnginePath p, std::string_view argument) {
  const std::string why = engine_path_unsupported(p);
  if (!why.empty())
    fail_argument(argument, "'" + std::string(engine_path_name(p)) + "'",
                  "a path this machine can run ('" + std::string(engine_path_name(p)) + "': " + why + ")");
}

}  // namespace otgen
