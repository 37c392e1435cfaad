// PNG plots for the CLI (plot.h): axis ticks, image grids and 2-D panels (drawing: canvas.cpp).
#include "cli/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "otgen/error.h"

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

// Ticks whose labels fit: along x, labels at least 8 px apart; along y, rows at least 5 px apart.
Ticks fitted_ticks(double lo, double hi, int axis_px, bool horizontal, int scale) {
  for (int max_ticks = 8;; --max_ticks) {
    Ticks t = ticks_impl(lo, hi, max_ticks);
    if (max_ticks == 2 || t.values.size() < 2) return t;
    int need = Canvas::text_height(scale) + 5;
    if (horizontal) {
      need = 0;
      for (double v : t.values) need = std::max(need, Canvas::text_width(tick_label(v, t.step), scale) + 8);
    }
    if (t.step / (hi - lo) * axis_px >= need) return t;
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

// ----------------------------------------------------------------------------------------- panels

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

void PanelOptions::validate() const {
  require(panel_width >= 160 && panel_width <= 4096, "panel_width", panel_width, "160..4096 px");
  require(panel_height >= 160 && panel_height <= 4096, "panel_height", panel_height, "160..4096 px");
  if (limits) limits->validate("limits");
  require(std::isfinite(pad) && pad >= 0 && pad <= 1, "pad", pad, "a fraction in [0, 1]");
  require(text_scale >= 1 && text_scale <= 4, "text_scale", text_scale, "1..4");
}

namespace {

struct Bounds {
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  bool bars = false;
  void add(double x, double y) {
    xlo = std::min(xlo, x);
    xhi = std::max(xhi, x);
    ylo = std::min(ylo, y);
    yhi = std::max(yhi, y);
  }
  void merge(const Bounds& b) {
    xlo = std::min(xlo, b.xlo);
    xhi = std::max(xhi, b.xhi);
    ylo = std::min(ylo, b.ylo);
    yhi = std::max(yhi, b.yhi);
    bars = bars || b.bars;
  }
};

Bounds data_bounds(const Panel& p) {
  Bounds b;
  for (const auto& s : p.series)
    for (int64_t i = 0; i < s.points.n; ++i) {
      const float* q = s.points.row(i);
      if (std::isfinite(q[0]) && std::isfinite(q[1])) b.add(q[0], q[1]);
    }
  for (const auto& l : p.lines)
    for (size_t i = 0; i + 1 < l.xy.size(); i += 2)
      if (std::isfinite(l.xy[i]) && std::isfinite(l.xy[i + 1])) b.add(l.xy[i], l.xy[i + 1]);
  for (const auto& bar : p.bars) {
    b.bars = true;
    for (size_t k = 0; k < bar.heights.size(); ++k) {
      b.add(bar.edges[k], 0.0);
      b.add(bar.edges[k + 1], bar.heights[k]);
    }
  }
  return b;
}

void pad_axis(double& lo, double& hi, double pad, bool sticky_zero) {
  if (!(lo <= hi)) {  // no data
    lo = 0;
    hi = 1;
    return;
  }
  const double mag = std::max(std::abs(lo), std::abs(hi));
  const double r = hi - lo;
  if (!(r > 1e-9 * mag) || r < 1e-200) {  // one value (or nearly): a window around it
    const double c = 0.5 * (lo + hi), half = c != 0 ? 0.1 * std::abs(c) : 0.5;
    lo = c - half;
    hi = c + half;
    return;
  }
  const bool stick = sticky_zero && lo == 0;
  lo -= pad * r;
  hi += pad * r;
  if (stick) lo = 0;
}

Limits auto_limits(Bounds b, double pad) {
  Limits l;
  l.xlo = b.xlo;
  l.xhi = b.xhi;
  l.ylo = b.ylo;
  l.yhi = b.yhi;
  pad_axis(l.xlo, l.xhi, pad, false);
  pad_axis(l.ylo, l.yhi, pad, b.bars);
  return l;
}

std::string item(size_t panel, const char* kind, size_t k) {
  return "panels[" + to_text(panel) + "]." + kind + "[" + to_text(k) + "]";
}

void validate_panel(const Panel& p, size_t i) {
  for (size_t k = 0; k < p.series.size(); ++k) {
    const auto& s = p.series[k];
    require(s.points.d == 2 || s.points.n == 0, item(i, "series", k) + ".points",
            "(" + to_text(s.points.n) + ", " + to_text(s.points.d) + ")", "(n, 2) points");
    require(s.points.n >= 0 && (s.points.n == 0 || s.points.data), item(i, "series", k) + ".points",
            "n = " + to_text(s.points.n), "n >= 0 with data");
    require(std::isfinite(s.radius) && s.radius >= 0 && s.radius <= 64, item(i, "series", k) + ".radius", s.radius,
            "0..64 px");
    require(std::isfinite(s.alpha) && s.alpha >= 0 && s.alpha <= 1, item(i, "series", k) + ".alpha", s.alpha, "[0, 1]");
  }
  for (size_t k = 0; k < p.lines.size(); ++k) {
    const auto& l = p.lines[k];
    require(l.xy.size() % 2 == 0, item(i, "lines", k) + ".xy", to_text(l.xy.size()) + " values",
            "an even count (x0, y0, x1, y1, ...)");
    require(std::isfinite(l.alpha) && l.alpha >= 0 && l.alpha <= 1, item(i, "lines", k) + ".alpha", l.alpha, "[0, 1]");
    require(l.width >= 1 && l.width <= 64, item(i, "lines", k) + ".width", l.width, "1..64 px");
  }
  for (size_t k = 0; k < p.bars.size(); ++k) {
    const auto& b = p.bars[k];
    require(b.edges.size() == b.heights.size() + 1 && !b.heights.empty(), item(i, "bars", k),
            to_text(b.edges.size()) + " edges, " + to_text(b.heights.size()) + " heights", "k + 1 edges for k >= 1 heights");
    for (size_t j = 0; j < b.edges.size(); ++j) {
      require(std::isfinite(b.edges[j]) && (j == 0 || b.edges[j] > b.edges[j - 1]), item(i, "bars", k) + ".edges",
              "edges[" + to_text(j) + "] = " + to_text(b.edges[j]), "finite, strictly increasing edges");
      if (j < b.heights.size())
        require(std::isfinite(b.heights[j]), item(i, "bars", k) + ".heights",
                "heights[" + to_text(j) + "] = " + to_text(b.heights[j]), "finite heights");
    }
    require(std::isfinite(b.alpha) && b.alpha >= 0 && b.alpha <= 1, item(i, "bars", k) + ".alpha", b.alpha, "[0, 1]");
  }
  if (p.field) {
    require(static_cast<bool>(p.field->eval), "panels[" + to_text(i) + "].field", "empty", "an eval function");
    if (p.field->span)
      require(std::isfinite(*p.field->span) && *p.field->span > 0, "panels[" + to_text(i) + "].field.span",
              *p.field->span, "a positive finite span");
  }
  if (p.limits) p.limits->validate("panels[" + to_text(i) + "].limits");
}

constexpr Rgb kAxis{60, 60, 60};
constexpr Rgb kGrid{232, 232, 232};
constexpr int kTick = 4;

struct LegendEntry {
  enum Kind { Dot, Line, Box } kind;
  Rgb color;
  std::string label;
  double radius = 0;
  int width = 1;
};

// marks: pixel positions of the drawn data, for LegendPlace::Best (the corner covering the fewest; ties go
// to the earlier of top right, top left, bottom right, bottom left).
void draw_legend(Canvas& c, const PanelFrame& f, const std::vector<LegendEntry>& entries, LegendPlace place, int ts,
                 const std::vector<std::pair<double, double>>& marks) {
  if (entries.empty() || place == LegendPlace::None) return;
  const int th = Canvas::text_height(ts), row = th + 5, sw = 16;
  int tw = 0;
  std::vector<std::string> labels;
  const int max_text = std::max(20, (f.x1 - f.x0) - 12 - sw - 14);
  for (const auto& e : entries) {
    labels.push_back(fit_text(e.label, max_text, ts));
    tw = std::max(tw, Canvas::text_width(labels.back(), ts));
  }
  const int bw = 6 + sw + 6 + tw + 6;
  const int bh = std::min<int>(f.y1 - f.y0 - 12, 5 + static_cast<int>(entries.size()) * row);
  auto corner = [&](LegendPlace q) {
    const bool r = q == LegendPlace::TopRight || q == LegendPlace::BottomRight;
    const bool t = q == LegendPlace::TopRight || q == LegendPlace::TopLeft;
    return std::pair<int, int>{r ? f.x1 - 6 - bw : f.x0 + 6, t ? f.y0 + 6 : f.y1 - 6 - bh};
  };
  if (place == LegendPlace::Best) {
    int64_t fewest = std::numeric_limits<int64_t>::max();
    for (const LegendPlace q : {LegendPlace::TopRight, LegendPlace::TopLeft, LegendPlace::BottomRight, LegendPlace::BottomLeft}) {
      const auto [qx, qy] = corner(q);
      int64_t n = 0;
      for (const auto& [mx, my] : marks) n += mx >= qx - 3 && mx < qx + bw + 3 && my >= qy - 3 && my < qy + bh + 3;
      if (n < fewest) {
        fewest = n;
        place = q;
      }
    }
  }
  const bool right = place == LegendPlace::TopRight || place == LegendPlace::BottomRight;
  const bool top = place == LegendPlace::TopRight || place == LegendPlace::TopLeft;
  const int x = right ? f.x1 - 6 - bw : f.x0 + 6;
  const int y = top ? f.y0 + 6 : f.y1 - 6 - bh;
  c.clip(f.x0, f.y0, f.x1, f.y1);
  c.fill_rect(x, y, x + bw, y + bh, kWhite, 0.85f);
  c.rect(x, y, x + bw, y + bh, {170, 170, 170});
  for (size_t k = 0; k < entries.size(); ++k) {
    const int ry = y + 5 + static_cast<int>(k) * row;
    if (ry + th > y + bh) break;
    const double mid = ry + 7 * ts / 2.0;  // the middle of the capitals
    const auto& e = entries[k];
    switch (e.kind) {
      case LegendEntry::Dot: c.dot(x + 6 + sw / 2.0, mid, std::clamp(e.radius, 1.5, 5.0), e.color); break;
      case LegendEntry::Line: c.line(x + 6, mid, x + 6 + sw, mid, e.color, 1.0f, std::max(2, e.width)); break;
      case LegendEntry::Box: c.fill_rect(x + 6, ry, x + 6 + sw, ry + 7 * ts, e.color); break;
    }
    c.text(x + 6 + sw + 6, ry, labels[k], kBlack, ts);
  }
  c.unclip();
}

}  // namespace

Canvas render_panels(const std::vector<Panel>& panels, const PanelOptions& opt, PanelReport* report) {
  opt.validate();
  require(!panels.empty(), "panels", "none", "at least one panel");
  require(static_cast<int64_t>(panels.size()) * opt.panel_width <= Canvas::kMaxSide, "panels",
          to_text(panels.size()) + " panels of " + to_text(opt.panel_width) + " px",
          "at most " + to_text(Canvas::kMaxSide) + " px in all");
  for (size_t i = 0; i < panels.size(); ++i) validate_panel(panels[i], i);

  std::vector<Bounds> bounds;
  Bounds all;
  for (const auto& p : panels) {
    bounds.push_back(data_bounds(p));
    all.merge(bounds.back());
  }
  const int ts = opt.text_scale, ls = opt.text_scale + 1;
  const int th = Canvas::text_height(ts), lh = Canvas::text_height(ls);
  const int fig_top = opt.title.empty() ? 0 : 8 + lh + 4;
  const int W = static_cast<int>(panels.size()) * opt.panel_width, H = fig_top + opt.panel_height;
  Canvas c(W, H);
  PanelReport rep;
  rep.width = W;
  rep.height = H;
  if (!opt.title.empty()) {
    const int sc = Canvas::text_width(opt.title, ls) <= W - 8 ? ls : ts;
    const std::string t = fit_text(opt.title, W - 8, sc);
    c.text((W - Canvas::text_width(t, sc)) / 2, 8 + (7 * (ls - sc)) / 2, t, kBlack, sc);
  }

  for (size_t i = 0; i < panels.size(); ++i) {
    const Panel& p = panels[i];
    const int ox = static_cast<int>(i) * opt.panel_width, oy = fig_top;
    const Limits lim = p.limits ? *p.limits : opt.limits ? *opt.limits : auto_limits(opt.share_limits ? all : bounds[i], opt.pad);
    lim.validate("panels[" + to_text(i) + "] limits");

    // Margins: title above; tick labels and axis labels below and to the left.
    PanelFrame f;
    f.limits = lim;
    f.y0 = oy + 8 + (p.title.empty() ? 0 : lh + 8);
    f.y1 = oy + opt.panel_height - (kTick + 3 + th + 6 + (p.xlabel.empty() ? 0 : lh + 6));
    const Ticks yt = fitted_ticks(lim.ylo, lim.yhi, f.y1 - f.y0, false, ts);
    int ylab_w = 0;
    for (double v : yt.values) ylab_w = std::max(ylab_w, Canvas::text_width(tick_label(v, yt.step), ts));
    f.x0 = ox + 6 + (p.ylabel.empty() ? 0 : lh + 6) + ylab_w + 3 + kTick + 1;
    f.x1 = ox + opt.panel_width - 16;
    require(f.x1 - f.x0 >= 40 && f.y1 - f.y0 >= 40, "panel size",
            to_text(opt.panel_width) + " x " + to_text(opt.panel_height), "room for a plot area next to the labels");
    const Ticks xt = fitted_ticks(lim.xlo, lim.xhi, f.x1 - f.x0, true, ts);
    const int pw = f.x1 - f.x0, ph = f.y1 - f.y0;

    // Background field, then grid lines, bars, polylines and series, all clipped to the plot area.
    c.clip(f.x0, f.y0, f.x1, f.y1);
    if (p.field) {
      Points centres(static_cast<int64_t>(pw) * ph, 2);
      for (int r = 0; r < ph; ++r)
        for (int q = 0; q < pw; ++q) {
          float* xy = centres.row(static_cast<int64_t>(r) * pw + q);
          xy[0] = static_cast<float>(lim.xlo + (q + 0.5) / pw * (lim.xhi - lim.xlo));
          xy[1] = static_cast<float>(lim.yhi - (r + 0.5) / ph * (lim.yhi - lim.ylo));
        }
      const std::vector<double> v = p.field->eval(centres.view());
      require(static_cast<int64_t>(v.size()) == centres.n, "panels[" + to_text(i) + "].field",
              to_text(v.size()) + " values", "one value per point (" + to_text(centres.n) + ")");
      double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
      for (double x : v)
        if (std::isfinite(x)) {
          vmin = std::min(vmin, x);
          vmax = std::max(vmax, x);
        }
      if (p.field->span) vmin = vmax - *p.field->span;
      const double range = vmax > vmin ? vmax - vmin : 1.0;
      const Rgb lo = p.field->low, hi = p.field->high;
      for (int r = 0; r < ph; ++r)
        for (int q = 0; q < pw; ++q) {
          const double x = v[static_cast<size_t>(r) * pw + q];
          const float t = std::isfinite(x) ? static_cast<float>(std::clamp((x - vmin) / range, 0.0, 1.0))
                                           : (x > 0 ? 1.0f : 0.0f);
          c.set(f.x0 + q, f.y0 + r,
                {blend_channel(lo.r, hi.r, t), blend_channel(lo.g, hi.g, t), blend_channel(lo.b, hi.b, t)});
        }
    }
    if (opt.grid) {
      for (double v : xt.values) {
        const int x = static_cast<int>(std::floor(f.to_px(v)));
        c.fill_rect(x, f.y0, x + 1, f.y1, kGrid, p.field ? 0.5f : 1.0f);
      }
      for (double v : yt.values) {
        const int y = std::min(f.y1 - 1, static_cast<int>(std::floor(f.to_py(v))));
        c.fill_rect(f.x0, y, f.x1, y + 1, kGrid, p.field ? 0.5f : 1.0f);
      }
    }
    std::vector<LegendEntry> legend;
    std::vector<std::pair<double, double>> marks;  // where data is drawn (legend placement)
    if (p.field && !p.field->label.empty()) legend.push_back({LegendEntry::Box, p.field->high, p.field->label});
    for (const auto& b : p.bars) {
      const double base = f.to_py(0.0);
      for (size_t k = 0; k < b.heights.size(); ++k) {
        const double xa = f.to_px(b.edges[k]), xb = f.to_px(b.edges[k + 1]), yh = f.to_py(b.heights[k]);
        auto cl = [](double v) { return static_cast<int>(std::clamp(std::floor(v), -1e6, 1e6)); };
        c.fill_rect(cl(xa), cl(std::min(base, yh)), cl(xb), cl(std::max(base, yh)), b.color, b.alpha);
        for (double y = std::max<double>(std::min(base, yh), f.y0); y <= std::min<double>(std::max(base, yh), f.y1); y += 6) marks.push_back({0.5 * (xa + xb), y});
      }
      if (!b.label.empty()) legend.push_back({LegendEntry::Box, b.color, b.label});
    }
    int64_t nonfinite = 0, outside = 0;
    for (const auto& l : p.lines) {
      std::vector<double> xy(l.xy.size());
      for (size_t k = 0; k + 1 < l.xy.size(); k += 2) {
        if (!std::isfinite(l.xy[k]) || !std::isfinite(l.xy[k + 1])) ++nonfinite;
        xy[k] = f.to_px(l.xy[k]);
        xy[k + 1] = f.to_py(l.xy[k + 1]);
        marks.push_back({xy[k], xy[k + 1]});
      }
      c.polyline(xy, l.color, l.alpha, l.width);
      if (!l.label.empty()) legend.push_back({LegendEntry::Line, l.color, l.label, 0, l.width});
    }
    for (const auto& s : p.series) {
      for (int64_t k = 0; k < s.points.n; ++k) {
        const float* q = s.points.row(k);
        if (!std::isfinite(q[0]) || !std::isfinite(q[1])) {
          ++nonfinite;
          continue;
        }
        if (q[0] < lim.xlo || q[0] > lim.xhi || q[1] < lim.ylo || q[1] > lim.yhi) ++outside;
        c.dot(f.to_px(q[0]), f.to_py(q[1]), s.radius, s.color, s.alpha);
        marks.push_back({f.to_px(q[0]), f.to_py(q[1])});
      }
      if (!s.label.empty()) legend.push_back({LegendEntry::Dot, s.color, s.label, s.radius});
    }
    c.unclip();

    // Frame, ticks and labels.
    c.rect(f.x0 - 1, f.y0 - 1, f.x1 + 1, f.y1 + 1, kAxis);
    for (double v : xt.values) {
      const int x = static_cast<int>(std::floor(f.to_px(v)));
      c.fill_rect(x, f.y1 + 1, x + 1, f.y1 + 1 + kTick, kAxis);
      const std::string s = tick_label(v, xt.step);
      const int w = Canvas::text_width(s, ts);
      c.text(std::clamp(x - w / 2, ox + 1, ox + opt.panel_width - w - 1), f.y1 + 1 + kTick + 3, s, kAxis, ts);
    }
    for (double v : yt.values) {
      const int y = std::min(f.y1 - 1, static_cast<int>(std::floor(f.to_py(v))));
      c.fill_rect(f.x0 - 1 - kTick, y, f.x0 - 1, y + 1, kAxis);
      const std::string s = tick_label(v, yt.step);
      c.text(f.x0 - 1 - kTick - 3 - Canvas::text_width(s, ts), y - 7 * ts / 2, s, kAxis, ts);
    }
    if (!p.xlabel.empty()) {
      const std::string s = fit_text(p.xlabel, pw, ls);
      c.text(f.x0 + (pw - Canvas::text_width(s, ls)) / 2, oy + opt.panel_height - 6 - lh, s, kBlack, ls);
    }
    if (!p.ylabel.empty()) {
      const std::string s = fit_text(p.ylabel, ph, ls);
      c.text_up(ox + 6, f.y1 - (ph - Canvas::text_width(s, ls)) / 2, s, kBlack, ls);
    }
    if (!p.title.empty()) {  // at the label scale if it fits, else smaller, else truncated
      const int sc = Canvas::text_width(p.title, ls) <= opt.panel_width - 8 ? ls : ts;
      const std::string s = fit_text(p.title, opt.panel_width - 8, sc);
      const int w = Canvas::text_width(s, sc);
      int x = f.x0 + (pw - w) / 2;  // centred over the plot area, or over the panel if that overflows
      if (x + w > ox + opt.panel_width - 4) x = ox + (opt.panel_width - w) / 2;
      c.text(x, oy + 8 + (7 * (ls - sc)) / 2, s, kBlack, sc);
    }
    draw_legend(c, f, legend, opt.legend, ts, marks);
    if (nonfinite > 0) {
      c.clip(f.x0, f.y0, f.x1, f.y1);
      c.text(f.x0 + 4, f.y1 - 4 - th, to_text(nonfinite) + " non-finite skipped", {200, 0, 0}, ts);
      c.unclip();
    }
    rep.frames.push_back(f);
    rep.nonfinite_points.push_back(nonfinite);
    rep.outside_points.push_back(outside);
  }
  if (report) *report = std::move(rep);
  return c;
}

PanelReport write_panels(const std::string& path, const std::vector<Panel>& panels, const PanelOptions& opt) {
  PanelReport rep;
  const Canvas c = render_panels(panels, opt, &rep);
  write_png(path, c);
  return rep;
}

}  // namespace otgen::cli
