// PNG output for the CLI: an RGB canvas with an embedded 5x7 bitmap font, atomic PNG writes and image
// grids (flow-model samples, class-conditional rows). Charts with axes (scatter, lines, bars,
// histograms, density fields) are drawn by PLplot into a Canvas: cli/chart.h. Internal to the CLI; the
// only user of stb_image_write.
//
// Coordinates: canvas pixel (x, y) covers [x, x + 1) x [y, y + 1), y grows downwards; shapes take
// continuous coordinates, so a point mapped to (px, py) lands in pixel (floor(px), floor(py)).
// Everything is deterministic: the same inputs give the same PNG bytes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otgen/core/points.h"

namespace otgen::cli {

struct Rgb {
  unsigned char r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

// One colour channel blended: old + (c - old) * alpha, rounded and clamped to 0..255.
inline unsigned char blend_channel(unsigned char old, unsigned char c, float alpha) {
  const float v = static_cast<float>(old) + (static_cast<float>(c) - static_cast<float>(old)) * alpha;
  return static_cast<unsigned char>(std::clamp(std::lround(v), 0L, 255L));
}

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};
// Ten distinct series colours (matplotlib's tab10); palette(i) cycles through them.
Rgb palette(int i);

class Canvas {
 public:
  static constexpr int kMaxSide = 16384;
  // width and height in [1, kMaxSide], else otgen::Error naming the size.
  Canvas(int width, int height, Rgb background = kWhite);

  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<unsigned char>& pixels() const { return px_; }  // row-major RGB, width * height * 3
  Rgb pixel(int x, int y) const;                                    // (x, y) inside the canvas

  // Drawing is limited to the clip box [x0, x1) x [y0, y1) (the whole canvas by default); pixels outside
  // it are silently left alone.
  void clip(int x0, int y0, int x1, int y1);
  void unclip();

  void set(int x, int y, Rgb c);
  void blend(int x, int y, Rgb c, float alpha);  // c * alpha + old * (1 - alpha), alpha clamped to [0, 1]
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c, float alpha = 1.0f);  // [x0, x1) x [y0, y1)
  void rect(int x0, int y0, int x1, int y1, Rgb c);                           // 1-px outline of that box
  // A disc on the pixel holding (cx, cy): the pixels whose centres lie within `radius` of that pixel's
  // centre (so every dot of one radius has the same shape; radius 1.5 is a 3 x 3 block).
  void dot(double cx, double cy, double radius, Rgb c, float alpha = 1.0f);
  // A polyline through (xy[0], xy[1]), (xy[2], xy[3]), ... in pixel coordinates, `width` px thick; each
  // pixel it covers is blended once per call (so joints do not darken). Non-finite vertices break it.
  void polyline(std::span<const double> xy, Rgb c, float alpha = 1.0f, int width = 1);
  void line(double x0, double y0, double x1, double y1, Rgb c, float alpha = 1.0f, int width = 1);

  // Text in the embedded 5x7 font (ASCII 32..126; other bytes draw as a hollow box) with two rows below
  // for descenders: one 6 * scale px advance per character, 9 * scale px tall (capitals 7 * scale).
  // text(): top-left corner at (x, y). text_up(): rotated a quarter turn anticlockwise (reads bottom to
  // top), its bottom-left corner at (x, y). Both return the text's length along the baseline in px.
  int text(int x, int y, std::string_view s, Rgb c, int scale = 1);
  int text_up(int x, int y, std::string_view s, Rgb c, int scale = 1);
  static int text_width(std::string_view s, int scale = 1);
  static int text_height(int scale = 1) { return 9 * std::max(scale, 1); }

 private:
  int w_, h_;
  int cx0_, cy0_, cx1_, cy1_;
  std::vector<unsigned char> px_;
  void glyph(int x, int y, unsigned char ch, Rgb c, int scale, bool up);
};

// Writes `canvas` as an RGB PNG: encoded in memory, written to a temporary file in path's folder, then
// renamed over `path`. Throws otgen::Error("cannot write <path>: <reason>") on failure and leaves no
// temporary file (and no `path` if none was there).
void write_png(const std::string& path, const Canvas& canvas);

// ------------------------------------------------------------------------------------------- ticks

// Axis ticks on [lo, hi]: the multiples of a spacing s = m * 10^k (m in {1, 2, 5}) that lie inside
// [lo, hi] (ends included up to 1e-9 * s), with s the smallest such spacing giving at most max_ticks
// ticks. With max_ticks = 8 that is 4..8 ticks whenever a 1-2-5 spacing allows it, otherwise 3 (e.g.
// [6, 22]: spacing 2 gives 9, spacing 5 gives 10, 15, 20). Ticks are computed as i * s (no drift), and
// -0 is returned as 0. Throws otgen::Error unless lo < hi are finite with hi - lo > 1e-12 * max(|lo|,
// |hi|), and max_ticks >= 2.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 8);
// The label of tick value v on an axis with tick spacing `step`: fixed notation with as many decimals as
// the spacing needs ("0.2", "1.0", "-5", "0.0025"); %g-style with enough digits for |v| >= 1e6 or
// spacings below 1e-5.
std::string tick_label(double v, double step);

// ------------------------------------------------------------------------------------------- grids

enum class ChannelOrder { CHW, HWC };  // a flattened colour image: planes (torch's view(n, -1)) or pixels

struct GridOptions {
  int64_t cols = 0;        // images per row; 0: ceil(sqrt(n))
  double lo = -1.0;        // value shown black (values are clipped to [lo, hi])
  double hi = 1.0;         // value shown white
  int min_width = 400;     // upscale factor: the smallest integer that makes the image grid this wide
  int scale = 0;           // fixed upscale factor instead (1..64); 0: from min_width
  int separator = 2;       // px between images and around the grid (0..64)
  Rgb separator_color{200, 200, 200};
  Rgb nonfinite_color{255, 0, 255};     // NaN / inf pixels (counted in the report)
  std::string title;                    // optional line above the grid
  std::vector<std::string> row_labels;  // empty, or one per row, drawn left of it ("class 3")
  ChannelOrder order = ChannelOrder::CHW;
  void validate() const;
};

// Where everything goes: image k sits in row k / cols, column k % cols, its top-left pixel at
// cell_x(k), cell_y(k), each source pixel a scale x scale block.
struct GridLayout {
  int64_t rows = 0, cols = 0;
  int scale = 1;
  int grid_x = 0, grid_y = 0;  // top-left of the separator frame
  int pitch_x = 0, pitch_y = 0;
  int separator = 0;
  int width = 0, height = 0;   // of the whole PNG
  int cell_x(int64_t k) const { return grid_x + separator + static_cast<int>(k % cols) * pitch_x; }
  int cell_y(int64_t k) const { return grid_y + separator + static_cast<int>(k / cols) * pitch_y; }
};

struct GridReport {
  GridLayout layout;
  int64_t nonfinite_values = 0;  // drawn in nonfinite_color
};

// images: n >= 1 rows of side * side * channels values (channels 1: grey, 3: RGB). Throws otgen::Error
// naming the argument for a wrong row length, channels not 1 or 3, row labels not one per row, bad
// options, or a PNG side beyond Canvas::kMaxSide.
GridLayout image_grid_layout(int64_t n, int64_t side, const GridOptions& opt);
Canvas render_image_grid(PointsView images, int64_t side, int64_t channels, const GridOptions& opt,
                         GridReport* report = nullptr);
GridReport write_image_grid(const std::string& path, PointsView images, int64_t side, int64_t channels,
                            const GridOptions& opt = {});

// ------------------------------------------------------------------------------------------ limits

// Axis limits of a chart (cli/chart.h).
struct Limits {
  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  void validate(std::string_view argument) const;  // finite, lo < hi (nice_ticks' rule) on both axes
};

}  // namespace otgen::cli
