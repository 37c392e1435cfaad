// Internal: the AMX tile configuration of the screens (kernels/bf16_screen.cpp, lattice.cpp) and the
// benchmarks' AMX peak. Palette 1, eight tiles of 16 rows x 64 bytes: 0-3 the 16 x 16 accumulators of a
// 32 x 32 micro-tile, 4-5 two row tiles, 6-7 two column tiles. Tile state is per thread: each worker
// loads it (_tile_loadconfig(&kAmxTiles)) before its tile code and releases it (_tile_release()) after.
// A constant object in memory: _tile_loadconfig's asm names only the pointer as its input.
#pragma once

#include <cstdint>

namespace otgen::kernels {

struct alignas(64) AmxTileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(AmxTileConfig) == 64);

inline constexpr AmxTileConfig kAmxTiles = {
    1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

}  // namespace otgen::kernels
