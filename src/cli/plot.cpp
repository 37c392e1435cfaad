// PNG plots for the CLI (plot.h): axis ticks, image grids and chart limits (drawing: canvas.cpp).
#include "cli/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "otgen/core/error.h"

namespace otgen::cli {
namespace {

// s truncated (with "..") to at most max_px wide at `scale`.
std::string fit_text(const std::string& s, int max_px, int scale) {
  if (Canvas::text_width(s, scale) <= max_px) return s;
  std::string t = s;
  while (!t.empty() && Canvas::text_width(t + "..", scale) > max_px) t.pop_back();
  return t.empty() ? std::string() : t + "..";
}

struct Ticks {
  std::vector<double> values;
  double step = 0;
};

Ticks ticks_impl(double lo, double hi, int max_ticks) {
  require(std::isfinite(lo) && std::isfinite(hi) && lo < hi, "ticks range", "[" + to_text(lo) + ", " + to_text(hi) + "]",
          "finite lo < hi");
  const double span = hi - lo;
  require(span > 1e-12 * std::max(std::abs(lo), std::abs(hi)) && span > 1e-280, "ticks range",
          "[" + to_text(lo) + ", " + to_text(hi) + "]", "hi - lo > 1e-12 * max(|lo|, |hi|)");
  require(max_ticks >= 2, "max_ticks", max_ticks, "at least 2");
  constexpr int kMantissa[3] = {1, 2, 5};
  for (int k = static_cast<int>(std::floor(std::log10(span))) - 2;; ++k) {
    const double p = std::pow(10.0, std::abs(k));
    for (const int m : kMantissa) {
      const double s = k >= 0 ? m * p : m / p;
      const double first = std::ceil(lo / s - 1e-9), last = std::floor(hi / s + 1e-9);
      if (last - first + 1 > max_ticks) continue;
      Ticks t;
      t.step = s;
      for (double i = first; i <= last; i += 1) {
        double v = k >= 0 ? i * m * p : i * m / p;
        if (v == 0) v = 0.0;  // no -0
        t.values.push_back(v);
      }
      return t;
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------ ticks

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) { return ticks_impl(lo, hi, max_ticks).values; }

std::string tick_label(double v, double step) {
  if (!(step > 0) || !std::isfinite(step)) step = std::max(std::abs(v), 1.0);
  if (std::abs(v) < step * 1e-9) v = 0.0;
  const int k = static_cast<int>(std::floor(std::log10(step) + 1e-9));
  char buf[64];
  if (std::abs(v) >= 1e6 || k < -5) {
    const int lead = v != 0 ? static_cast<int>(std::floor(std::log10(std::abs(v)))) : k;
    std::snprintf(buf, sizeof buf, "%.*g", std::clamp(lead - k + 1, 1, 15), v);
  } else {
    std::snprintf(buf, sizeof buf, "%.*f", std::max(0, -k), v);
  }
  return buf;
}

// ------------------------------------------------------------------------------------------ grids

void GridOptions::validate() const {
  require(cols >= 0, "cols", cols, "0 (automatic) or a positive number of columns");
  require(std::isfinite(lo) && std::isfinite(hi) && lo < hi, "lo/hi", "[" + to_text(lo) + ", " + to_text(hi) + "]",
          "finite lo < hi");
  require(min_width >= 1 && min_width <= Canvas::kMaxSide, "min_width", min_width, "1.." + to_text(Canvas::kMaxSide));
  require(scale >= 0 && scale <= 64, "scale", scale, "0 (automatic) or 1..64");
  require(separator >= 0 && separator <= 64, "separator", separator, "0..64 px");
}

namespace {
int grid_label_scale(const GridLayout& g) { return g.pitch_y - g.separator >= 20 ? 2 : 1; }
}  // namespace

GridLayout image_grid_layout(int64_t n, int64_t side, const GridOptions& opt) {
  opt.validate();
  require(n >= 1, "images", "n = " + to_text(n), "at least one image");
  require(side >= 1 && side <= Canvas::kMaxSide, "side", side, "a positive image side");
  GridLayout g;
  g.cols = opt.cols;
  if (g.cols == 0) {  // ceil(sqrt(n)), exactly
    g.cols = std::max<int64_t>(1, static_cast<int64_t>(std::sqrt(static_cast<double>(n))) - 1);
    while (g.cols * g.cols < n) ++g.cols;
  }
  g.rows = (n + g.cols - 1) / g.cols;
  g.separator = opt.separator;
  const int64_t sep_total = static_cast<int64_t>(opt.separator) * (g.cols + 1);
  int64_t f = opt.scale;
  if (f == 0) {
    const int64_t want = std::max<int64_t>(opt.min_width - sep_total, 1);
    f = std::max<int64_t>(1, (want + g.cols * side - 1) / (g.cols * side));
  }
  const int64_t pitch = side * f + opt.separator;
  const int64_t grid_w = opt.separator + g.cols * pitch, grid_h = opt.separator + g.rows * pitch;
  require(grid_w <= Canvas::kMaxSide && grid_h <= Canvas::kMaxSide, "images",
          to_text(n) + " images of side " + to_text(side) + " in " + to_text(g.cols) + " columns (" + to_text(grid_w) +
              " x " + to_text(grid_h) + " px)",
          "a grid at most " + to_text(Canvas::kMaxSide) + " px on each side (fewer images or columns, or --scale 1)");
  g.scale = static_cast<int>(f);
  g.pitch_x = g.pitch_y = static_cast<int>(pitch);
  if (!opt.row_labels.empty())
    require(static_cast<int64_t>(opt.row_labels.size()) == g.rows, "row_labels",
            to_text(opt.row_labels.size()) + " labels", "one per grid row (" + to_text(g.rows) + ")");
  const int ls = grid_label_scale(g);
  int left = 0;
  for (const auto& s : opt.row_labels) left = std::max(left, Canvas::text_width(s, ls));
  if (left > 0) left += 16;
  g.grid_x = left;
  g.grid_y = opt.title.empty() ? 0 : Canvas::text_height(2) + 16;
  g.width = static_cast<int>(std::min<int64_t>(g.grid_x + grid_w, Canvas::kMaxSide));
  g.height = static_cast<int>(std::min<int64_t>(g.grid_y + grid_h, Canvas::kMaxSide));
  return g;
}

Canvas render_image_grid(PointsView images, int64_t side, int64_t channels, const GridOptions& opt, GridReport* report) {
  require(channels == 1 || channels == 3, "channels", channels, "1 (grey) or 3 (RGB)");
  require(side >= 1 && side <= Canvas::kMaxSide, "side", side, "a positive image side");
  require(images.n >= 1 && images.data != nullptr, "images", "n = " + to_text(images.n), "at least one image");
  require(images.d == side * side * channels, "images",
          "(" + to_text(images.n) + ", " + to_text(images.d) + ")",
          "rows of side * side * channels = " + to_text(side * side * channels) + " values");
  const GridLayout g = image_grid_layout(images.n, side, opt);
  Canvas c(g.width, g.height);
  c.fill_rect(g.grid_x, g.grid_y, g.width, g.height, opt.separator_color);
  const float lo = static_cast<float>(opt.lo), hi = static_cast<float>(opt.hi);
  const int64_t plane = side * side;
  int64_t bad = 0;
  auto level = [&](float v) {
    const float t = (std::clamp(v, lo, hi) - lo) / (hi - lo);
    return static_cast<unsigned char>(std::clamp(std::lround(t * 255.0f), 0L, 255L));
  };
  for (int64_t k = 0; k < images.n; ++k) {
    const float* im = images.row(k);
    const int x0 = g.cell_x(k), y0 = g.cell_y(k);
    for (int64_t r = 0; r < side; ++r)
      for (int64_t col = 0; col < side; ++col) {
        float v[3];
        bool finite = true;
        for (int64_t ch = 0; ch < channels; ++ch) {
          v[ch] = opt.order == ChannelOrder::CHW ? im[ch * plane + r * side + col] : im[(r * side + col) * channels + ch];
          if (!std::isfinite(v[ch])) {
            finite = false;
            ++bad;
          }
        }
        Rgb px = opt.nonfinite_color;
        if (finite) px = channels == 1 ? Rgb{level(v[0]), level(v[0]), level(v[0])} : Rgb{level(v[0]), level(v[1]), level(v[2])};
        const int X = x0 + static_cast<int>(col) * g.scale, Y = y0 + static_cast<int>(r) * g.scale;
        c.fill_rect(X, Y, X + g.scale, Y + g.scale, px);
      }
  }
  const int ls = grid_label_scale(g);
  for (size_t r = 0; r < opt.row_labels.size(); ++r) {
    const int y = g.cell_y(static_cast<int64_t>(r) * g.cols) + (static_cast<int>(side) * g.scale - 7 * ls) / 2;
    c.text(g.grid_x - 8 - Canvas::text_width(opt.row_labels[r], ls), y, opt.row_labels[r], kBlack, ls);
  }
  if (!opt.title.empty()) {
    const std::string t = fit_text(opt.title, g.width - 8, 2);
    c.text(std::max(4, (g.width - Canvas::text_width(t, 2)) / 2), 8, t, kBlack, 2);
  }
  if (report) {
    report->layout = g;
    report->nonfinite_values = bad;
  }
  return c;
}

GridReport write_image_grid(const std::string& path, PointsView images, int64_t side, int64_t channels,
                            const GridOptions& opt) {
  GridReport rep;
  const Canvas c = render_image_grid(images, side, channels, opt, &rep);
  write_png(path, c);
  return rep;
}

// ------------------------------------------------------------------------------------------ limits

void Limits::validate(std::string_view argument) const {
  const std::string a(argument);
  auto axis = [&](double l, double h, const char* name) {
    const bool ok = std::isfinite(l) && std::isfinite(h) && l < h &&
                    h - l > 1e-12 * std::max(std::abs(l), std::abs(h)) && h - l > 1e-280;
    require(ok, a + "." + name, "[" + to_text(l) + ", " + to_text(h) + "]",
            "finite lo < hi with hi - lo > 1e-12 * max(|lo|, |hi|)");
  };
  axis(xlo, xhi, "x");
  axis(ylo, yhi, "y");
}

}  // namespace otgen::cli
