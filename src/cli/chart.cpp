#include "cli/chart.h"

#include <plplot/plplot.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "otgen/core/error.h"

namespace otgen::cli {

namespace {

constexpr int kBackground = 0, kInk = 1, kGrid = 2, kFirstSeries = 3, kField = kFirstSeries + 16;
double symbol_scale = 1.0;  // the page's dot size (render_charts sets it; PLplot is not reentrant anyway)

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // Padded by `pad` of the span each side (a flat range gets +-0.5, or +-1 decade on a log axis).
  Range padded(double pad) const {
    if (hi - lo <= 1e-12 * std::max(1.0, std::abs(hi))) return {lo - 0.5, hi + 0.5};
    return {lo - pad * (hi - lo), hi + pad * (hi - lo)};
  }
};

double axis_value(double v, bool log) { return log ? std::log10(v) : v; }

void validate_values(const std::vector<double>& v, bool log, const std::string& name) {
  for (size_t i = 0; i < v.size(); ++i) {
    require(std::isfinite(v[i]), name, "[" + to_text(i) + "] = " + to_text(v[i]), "a finite value");
    require(!log || v[i] > 0, name, "[" + to_text(i) + "] = " + to_text(v[i]), "a positive value on a log axis");
  }
}

void validate_chart(const Chart& c, size_t k) {
  const std::string at = "charts[" + to_text(k) + "]";
  require(!c.series.empty() && c.series.size() <= 16, at + ".series", to_text(c.series.size()) + " series", "1..16");
  require(c.kind == ChartKind::Lines || (!c.logx && !c.logy), at, "a log axis on a bar or scatter chart", "linear axes");
  require(!c.limits || c.kind == ChartKind::Points, at + ".limits", "set", "only on a scatter chart");
  if (c.limits) c.limits->validate(at + ".limits");
  require(!c.field || (c.limits && c.field->eval && c.field->cells >= 2 && c.field->cells <= 2048), at + ".field",
          "set", "fixed limits, an eval function and 2..2048 cells");
  for (size_t s = 0; s < c.series.size(); ++s) {
    const ChartSeries& ser = c.series[s];
    const std::string name = at + ".series[" + to_text(s) + "]";
    const size_t n = ser.y.size();
    if (ser.histogram) {
      require(c.kind == ChartKind::Points && ser.x.size() == n + 1 && n >= 1, name + ".x",
              to_text(ser.x.size()) + " edges", "one more than the " + to_text(n) + " heights, on a scatter chart");
      validate_values(ser.x, false, name + ".x");
      for (size_t k = 0; k < n; ++k)
        require(ser.x[k] < ser.x[k + 1] && std::isfinite(ser.y[k]) && ser.y[k] >= 0, name + ".y", "bin " + to_text(k),
                "increasing edges and a finite height >= 0");
      continue;
    }
    if (c.kind == ChartKind::Bars) require(n == 1, name + ".y", to_text(n) + " values", "one value per bar");
    else require(ser.x.size() == n && (n >= 1 || c.kind == ChartKind::Points), name + ".x", to_text(ser.x.size()) + " values", "as many as y (" + to_text(n) + ", >= 1)");
    require(ser.lo.size() == ser.hi.size() && (ser.lo.empty() || ser.lo.size() == n), name + ".lo/hi",
            to_text(ser.lo.size()) + " and " + to_text(ser.hi.size()) + " values", "none, or one each per point");
    if (c.kind == ChartKind::Points) {
      require(ser.lo.empty(), name + ".lo/hi", "error bars", "none on a scatter plot");
      require(ser.alpha >= 0 && ser.alpha <= 1, name + ".alpha", ser.alpha, "0..1");
      continue;
    }
    if (c.kind == ChartKind::Lines) validate_values(ser.x, c.logx, name + ".x");
    validate_values(ser.y, c.logy, name + ".y");
    validate_values(ser.lo, c.logy, name + ".lo");
    validate_values(ser.hi, c.logy, name + ".hi");
  }
}

// A log axis is labelled at its decades: data spanning less than a factor of 10 get a linear axis
// (which looks the same over so short a range) instead.
Chart effective_axes(Chart c) {
  if (c.kind != ChartKind::Lines) return c;
  Range x, y;
  for (const ChartSeries& ser : c.series) {
    for (double v : ser.x) x.add(v);
    for (const auto* vals : {&ser.y, &ser.lo, &ser.hi})
      for (double v : *vals) y.add(v);
  }
  c.logx = c.logx && x.hi >= 10 * x.lo;
  c.logy = c.logy && y.hi >= 10 * y.lo;
  return c;
}

// Data limits in axis coordinates (log10 on a log axis), padded.
void chart_limits(const Chart& c, Range& x, Range& y) {
  if (c.limits) {
    x = Range{c.limits->xlo, c.limits->xhi};
    y = Range{c.limits->ylo, c.limits->yhi};
    return;
  }
  x = Range{};
  y = Range{};
  bool histogram = false;
  for (size_t s = 0; s < c.series.size(); ++s) {
    const ChartSeries& ser = c.series[s];
    if (ser.histogram) {
      histogram = true;
      x.add(ser.x.front());
      x.add(ser.x.back());
      for (double v : ser.y) y.add(v);
      continue;
    }
    for (size_t i = 0; i < ser.x.size(); ++i)
      if (std::isfinite(ser.x[i]) && std::isfinite(ser.y[i])) x.add(axis_value(ser.x[i], c.logx));
    for (const auto* vals : {&ser.y, &ser.lo, &ser.hi})
      for (size_t i = 0; i < vals->size(); ++i)
        if (std::isfinite((*vals)[i]) && (ser.x.empty() || std::isfinite(ser.x[i]))) y.add(axis_value((*vals)[i], c.logy));
  }
  if (!(x.lo <= x.hi)) x = Range{-1, 1};  // a scatter plot without a finite point
  if (!(y.lo <= y.hi)) y = Range{-1, 1};
  if (c.kind == ChartKind::Bars) {
    x = Range{-0.6, static_cast<double>(c.series.size()) - 0.4};
    y.add(0.0);
    y = Range{std::min(y.lo, 0.0), y.hi + 0.12 * (y.hi - y.lo)};
    if (y.hi <= y.lo) y.hi = y.lo + 1;
    return;
  }
  x = x.padded(0.05);
  if (histogram) y = Range{0.0, std::max(y.hi, 0.0)}.padded(0.08), y.lo = 0;  // bars stand on 0
  else y = y.padded(0.08);
}

void set_colour(int index, Rgb c) { plscol0a(index, c.r, c.g, c.b, 1.0); }

// Tick labels: decades as 10^k on a log axis (PLplot passes log10 of the value), otherwise %g-style
// with up to 4 significant digits (no "x10^k" factor beside the axis).
struct AxisLog {
  bool x = false, y = false;
};

void tick_text(PLINT axis, PLFLT value, char* label, PLINT length, PLPointer data) {
  const auto* log = static_cast<const AxisLog*>(data);
  const bool is_log = axis == PL_X_AXIS ? log->x : log->y;
  if (is_log) std::snprintf(label, static_cast<size_t>(length), "10#u%d#d", static_cast<int>(std::lround(value)));
  else std::snprintf(label, static_cast<size_t>(length), "%.4g", std::abs(value) < 1e-12 ? 0.0 : value);
}

std::vector<PLFLT> on_axis(const std::vector<double>& v, bool log) {
  std::vector<PLFLT> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = axis_value(v[i], log);
  return out;
}

// The field shaded over the whole window of a chart with limits (cmap1 from low to high).
void draw_field(const ChartField& f, const Limits& lim) {
  const int n = f.cells;
  Points centres(static_cast<int64_t>(n) * n, 2);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      float* xy = centres.row(static_cast<int64_t>(i) * n + j);
      xy[0] = static_cast<float>(lim.xlo + (i + 0.5) / n * (lim.xhi - lim.xlo));
      xy[1] = static_cast<float>(lim.ylo + (j + 0.5) / n * (lim.yhi - lim.ylo));
    }
  const std::vector<double> v = f.eval(centres.view());
  require(static_cast<int64_t>(v.size()) == centres.n, "field", to_text(v.size()) + " values",
          "one per cell (" + to_text(centres.n) + ")");
  double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
  for (double x : v)
    if (std::isfinite(x)) vmin = std::min(vmin, x), vmax = std::max(vmax, x);
  if (!(vmin <= vmax)) vmin = vmax = 0;
  if (f.span > 0) vmin = vmax - f.span;
  if (vmax <= vmin) vmax = vmin + 1;
  std::vector<PLFLT> cells(v.size());
  std::vector<PLFLT*> rows(static_cast<size_t>(n));
  for (size_t k = 0; k < v.size(); ++k) cells[k] = std::isfinite(v[k]) ? std::clamp(v[k], vmin, vmax) : (v[k] > 0 ? vmax : vmin);
  for (int i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = &cells[static_cast<size_t>(i) * n];
  PLFLT pos[2] = {0, 1}, r[2] = {f.low.r / 255.0, f.high.r / 255.0}, g[2] = {f.low.g / 255.0, f.high.g / 255.0},
        b[2] = {f.low.b / 255.0, f.high.b / 255.0};
  plscmap1n(256);
  plscmap1l(1, 2, pos, r, g, b, nullptr);
  plimage(rows.data(), n, n, lim.xlo, lim.xhi, lim.ylo, lim.yhi, vmin, vmax, lim.xlo, lim.xhi, lim.ylo, lim.yhi);
}

// Scatter dots, or a path broken at non-finite points, in colour `index` at the series' opacity.
void draw_points(const ChartSeries& ser, int index) {
  PLINT r = 0, g = 0, b = 0;
  PLFLT a = 1;
  plgcol0a(index, &r, &g, &b, &a);
  plscol0a(index, r, g, b, ser.alpha);
  plcol0(index);
  if (ser.histogram) {
    for (size_t k = 0; k < ser.y.size(); ++k) {
      PLFLT bx[4] = {ser.x[k], ser.x[k], ser.x[k + 1], ser.x[k + 1]}, by[4] = {0, ser.y[k], ser.y[k], 0};
      if (ser.y[k] > 0) plfill(4, bx, by);
    }
    plscol0a(index, r, g, b, 1.0);
    return;
  }
  plwidth(ser.width);
  std::vector<PLFLT> x, y;
  auto flush = [&] {
    if (ser.path && x.size() >= 2) plline(static_cast<PLINT>(x.size()), x.data(), y.data());
    if (!ser.path && !x.empty()) {
      plssym(0, symbol_scale * ser.size);
      plpoin(static_cast<PLINT>(x.size()), x.data(), y.data(), 17);
      plssym(0, symbol_scale);
    }
    x.clear();
    y.clear();
  };
  for (size_t i = 0; i < ser.x.size(); ++i) {
    if (std::isfinite(ser.x[i]) && std::isfinite(ser.y[i])) {
      x.push_back(ser.x[i]);
      y.push_back(ser.y[i]);
    } else if (ser.path) {
      flush();
    }
  }
  flush();
  plwidth(1.0);
  plscol0a(index, r, g, b, 1.0);  // the legend shows the colour opaque
}

void draw_series(const Chart& c) {
  for (size_t s = 0; s < c.series.size(); ++s) {
    const ChartSeries& ser = c.series[s];
    plcol0(kFirstSeries + static_cast<int>(s));
    if (c.kind == ChartKind::Bars) {
      const PLFLT x0 = static_cast<double>(s) - 0.35, x1 = static_cast<double>(s) + 0.35, y = ser.y[0];
      PLFLT bx[4] = {x0, x0, x1, x1}, by[4] = {0, y, y, 0};
      plfill(4, bx, by);
      if (!ser.lo.empty()) {
        plcol0(kInk);
        PLFLT xs = static_cast<double>(s), lo = ser.lo[0], hi = ser.hi[0];
        plerry(1, &xs, &lo, &hi);
      }
      continue;
    }
    if (c.kind == ChartKind::Points) {
      draw_points(ser, kFirstSeries + static_cast<int>(s));
      continue;
    }
    const auto x = on_axis(ser.x, c.logx), y = on_axis(ser.y, c.logy);
    plwidth(2.0);
    if (x.size() >= 2) plline(static_cast<PLINT>(x.size()), x.data(), y.data());
    plwidth(1.0);
    plpoin(static_cast<PLINT>(x.size()), x.data(), y.data(), 17);  // a filled dot at each point
    if (!ser.lo.empty()) {
      const auto lo = on_axis(ser.lo, c.logy), hi = on_axis(ser.hi, c.logy);
      plerry(static_cast<PLINT>(x.size()), x.data(), lo.data(), hi.data());
    }
  }
}

// text: the page's text scale (pllegend sizes relative to PLplot's default size, not plschr's).
void draw_legend(const Chart& c, double text) {
  std::vector<PLINT> opts, colours, symbol_numbers, styles, text_colours;
  std::vector<PLFLT> widths, scales;
  std::vector<const char*> texts, symbols;
  for (size_t s = 0; s < c.series.size(); ++s) {
    if (c.series[s].label.empty()) continue;
    const ChartSeries& ser = c.series[s];
    const bool dots = c.kind == ChartKind::Points && !ser.path && !ser.histogram;
    opts.push_back(c.kind == ChartKind::Bars || ser.histogram ? PL_LEGEND_COLOR_BOX
                   : dots                                    ? PL_LEGEND_SYMBOL
                                                             : PL_LEGEND_LINE);
    colours.push_back(kFirstSeries + static_cast<int>(s));
    text_colours.push_back(kInk);
    texts.push_back(c.series[s].label.c_str());
    symbols.push_back("#[0x25cf]");  // a filled dot
    symbol_numbers.push_back(1);
    styles.push_back(1);
    widths.push_back(ser.path ? std::max(ser.width, 1.5) : 2.0);
    scales.push_back(1.2 * text * ser.size);
  }
  if (c.field && !c.field->label.empty()) {
    set_colour(kField, c.field->high);
    opts.push_back(PL_LEGEND_COLOR_BOX);
    colours.push_back(kField);
    text_colours.push_back(kInk);
    texts.push_back(c.field->label.c_str());
    symbols.push_back("");
    symbol_numbers.push_back(1);
    styles.push_back(1);
    widths.push_back(1.0);
    scales.push_back(1.0);
  }
  if (texts.empty()) return;
  std::vector<PLINT> patterns(texts.size(), 0);
  PLFLT w = 0, h = 0;
  pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_TOP | PL_POSITION_RIGHT | PL_POSITION_INSIDE,
           0.02, 0.02, 0.1, kBackground, kInk, 1, 0, 0, static_cast<PLINT>(texts.size()), opts.data(), 0.8, 1.1 * text, 2.0,
           0.0, text_colours.data(), texts.data(), colours.data(), patterns.data(), scales.data(), widths.data(),
           colours.data(), styles.data(), widths.data(), colours.data(), scales.data(), symbol_numbers.data(),
           symbols.data());
}

// One chart in the viewport [vx0, vx1] x [vy0, vy1] (normalised device coordinates); text as in draw_legend.
void draw_chart(const Chart& requested, PLFLT vx0, PLFLT vx1, PLFLT vy0, PLFLT vy1, double text) {
  const Chart c = effective_axes(requested);
  Range x, y;
  chart_limits(c, x, y);
  plvpor(vx0, vx1, vy0, vy1);
  plwind(x.lo, x.hi, y.lo, y.hi);
  AxisLog log{c.logx, c.logy};
  plslabelfunc(tick_text, &log);
  const std::string lx = c.logx ? "l" : "", ly = c.logy ? "l" : "";
  if (c.field) draw_field(*c.field, *c.limits);
  plcol0(kGrid);
  if (!c.field) plbox(c.kind == ChartKind::Bars ? "" : ("g" + lx).c_str(), 0, 0, ("g" + ly).c_str(), 0, 0);
  draw_series(c);
  plcol0(kInk);
  plbox(c.kind == ChartKind::Bars ? "bc" : ("bcnsto" + lx).c_str(), 0, 0, ("bcnstvo" + ly).c_str(), 0, 0);
  plslabelfunc(nullptr, nullptr);
  pllab(c.xlabel.c_str(), c.ylabel.c_str(), c.title.c_str());
  if (c.kind == ChartKind::Bars)
    for (size_t s = 0; s < c.series.size(); ++s)
      plmtex("b", 1.3, (static_cast<double>(s) - x.lo) / (x.hi - x.lo), 0.5, c.series[s].label.c_str());
  draw_legend(c, text);
}

}  // namespace

ChartSeries points_series(PointsView xy, std::string label, Rgb color, double alpha, std::string_view argument) {
  require(xy.d == 2, argument, "points of dimension " + to_text(xy.d), "2-D points");
  ChartSeries s;
  s.label = std::move(label);
  s.color = color;
  s.alpha = alpha;
  s.x.resize(static_cast<size_t>(xy.n));
  s.y.resize(static_cast<size_t>(xy.n));
  for (int64_t i = 0; i < xy.n; ++i) {
    s.x[static_cast<size_t>(i)] = xy.data[i * 2];
    s.y[static_cast<size_t>(i)] = xy.data[i * 2 + 1];
  }
  return s;
}

Chart samples_chart(std::string title, PointsView samples, PointsView data, std::span<const float> paths,
                    int64_t npaths) {
  Chart c{std::move(title), "x", "y", ChartKind::Points, false, false, {}};
  if (data.n > 0) c.series.push_back(points_series(data, "data", {170, 170, 170}, 0.5, "data"));
  c.series.push_back(points_series(samples, "samples", palette(0), 0.6, "samples"));
  if (npaths <= 0) return c;
  // One series, the paths separated by a NaN vertex (a break).
  const int64_t frames = static_cast<int64_t>(paths.size()) / (2 * npaths);
  ChartSeries p{"ODE paths", {}, {}, {}, {}, palette(3), true, 0.8};
  for (int64_t i = 0; i < npaths; ++i) {
    for (int64_t f = 0; f < frames; ++f) {
      p.x.push_back(paths[static_cast<size_t>((f * npaths + i) * 2)]);
      p.y.push_back(paths[static_cast<size_t>((f * npaths + i) * 2 + 1)]);
    }
    p.x.push_back(std::numeric_limits<double>::quiet_NaN());
    p.y.push_back(std::numeric_limits<double>::quiet_NaN());
  }
  c.series.push_back(std::move(p));
  return c;
}

void ChartOptions::validate() const {
  require(chart_width >= 200 && chart_width <= 4096, "chart_width", chart_width, "200..4096 px");
  require(chart_height >= 200 && chart_height <= 4096, "chart_height", chart_height, "200..4096 px");
}

Canvas render_charts(const std::vector<Chart>& charts, const ChartOptions& opt) {
  opt.validate();
  require(!charts.empty(), "charts", "none", "at least one chart");
  require(static_cast<int64_t>(charts.size()) * opt.chart_width <= Canvas::kMaxSide, "charts",
          to_text(charts.size()) + " charts of " + to_text(opt.chart_width) + " px",
          "at most " + to_text(Canvas::kMaxSide) + " px in all");
  for (size_t k = 0; k < charts.size(); ++k) validate_chart(charts[k], k);
  const int top = opt.title.empty() ? 0 : 36;
  const int W = static_cast<int>(charts.size()) * opt.chart_width, H = opt.chart_height + top;
  std::vector<unsigned char> rgba(static_cast<size_t>(W) * H * 4, 255);
  plsdev("memcairo");
  plsmema(W, H, rgba.data());
  plscmap0n(kField + 1);
  plinit();
  pladv(0);
  set_colour(kBackground, kWhite);
  set_colour(kInk, kBlack);
  set_colour(kGrid, {225, 225, 225});
  // PLplot sizes text and symbols in proportion to the page: scale them to the size they have on one
  // 480 x 400 chart, whatever the page.
  const double text = 880.0 / (W + H);
  plschr(0, 1.25 * text);
  symbol_scale = 2.0 * text;
  plssym(0, symbol_scale);
  const PLFLT top_ndc = 1.0 - static_cast<double>(top) / H;
  if (!opt.title.empty()) {
    plvpor(0, 1, top_ndc, 1);
    plwind(0, 1, 0, 1);
    plcol0(kInk);
    plschr(0, 1.45 * text);
    plmtex("t", -1.8, 0.5, 0.5, opt.title.c_str());
    plschr(0, 1.25 * text);
  }
  for (size_t k = 0; k < charts.size(); ++k) {
    const Chart& c = charts[k];
    for (size_t s = 0; s < c.series.size(); ++s) set_colour(kFirstSeries + static_cast<int>(s), c.series[s].color);
    const double x0 = static_cast<double>(k) / static_cast<double>(charts.size()), w = 1.0 / static_cast<double>(charts.size());
    const double px = 1.0 / W, py = 1.0 / H;  // margins in px: tick labels and axis labels
    draw_chart(c, x0 + 80 * px, x0 + w - 18 * px, 60 * py, top_ndc - 36 * py, text);
  }
  plend();
  Canvas canvas(W, H);
  for (int r = 0; r < H; ++r)
    for (int q = 0; q < W; ++q) {
      const unsigned char* p = &rgba[(static_cast<size_t>(r) * W + q) * 4];
      canvas.set(q, r, {p[0], p[1], p[2]});
    }
  return canvas;
}

void write_charts(const std::string& path, const std::vector<Chart>& charts, const ChartOptions& opt) {
  write_png(path, render_charts(charts, opt));
}

}  // namespace otgen::cli
