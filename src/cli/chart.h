// Line and bar charts drawn by PLplot (Debian's libplplot, its memcairo device: anti-aliased, headless,
// no display needed): axes with ticks (log axes labelled by decades), axis labels, a title per chart, a
// figure title, a legend and error bars. The charts are rendered into a Canvas, so files are written by
// write_png (atomically: a temporary file, then a rename). Used for the study's metric_vs_nfe.png,
// cost.png and samples.png, `otgen sample --png` of 2-D models and `otgen wfr --png` of 1-D targets;
// image grids, `otgen plot` and the 2-D `wfr --png` (particles over a density field) stay in plot.h.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/plot.h"

namespace otgen::cli {

struct ChartSeries {
  std::string label;           // legend entry (empty: none)
  std::vector<double> x, y;    // Lines: a line with markers through (x[i], y[i]); Bars: y[0], x unused
  std::vector<double> lo, hi;  // empty, or an error bar from lo[i] to hi[i] at each point
  Rgb color = palette(0);
  bool path = false;           // Points: a polyline (e.g. an ODE trajectory) instead of dots
  double alpha = 1.0;          // Points: opacity of the dots or path
  double width = 1.0;          // Points: line width of a path
  double size = 1.0;           // Points: dot size (a multiple of the default)
  bool histogram = false;      // Points: bars from x[k] to x[k + 1] (n + 1 edges) of height y[k] >= 0
};

// Lines: curves with markers; Bars: one bar per series; Points: a scatter plot (non-finite points are
// left out, not an error: samples of a diverged model still plot).
enum class ChartKind { Lines, Bars, Points };

// A scalar field (e.g. a log density) shaded under a scatter chart: eval gets the centres of a grid of
// cells over the chart's limits, (m, 2), and returns m values, shaded from `low` (the range's bottom,
// also NaN and -inf) to `high` (its top). Range: [max - span, max] with span > 0, else [min, max].
struct ChartField {
  std::function<std::vector<double>(PointsView xy)> eval = {};
  double span = 0;
  Rgb low = kWhite;
  Rgb high{135, 165, 255};
  std::string label = {};  // legend entry (a swatch of `high`)
  int cells = 200;         // grid cells along each axis
};

struct Chart {
  std::string title, xlabel, ylabel;
  ChartKind kind = ChartKind::Lines;
  // log10 axes, ticks at decades (Lines only): every x, y, lo, hi must be > 0; data spanning less than
  // a factor of 10 on that axis get a linear one (no decade to label; the two look alike there).
  bool logx = false, logy = false;
  std::vector<ChartSeries> series;  // 1..16; Bars: one bar per series, left to right, labelled below the axis
  std::optional<Limits> limits = {};    // Points: fixed limits instead of the padded data bounds
  std::optional<ChartField> field = {};  // Points with limits: a shaded background
};

struct ChartOptions {
  int chart_width = 480;  // each chart's size in px (200..4096)
  int chart_height = 400;
  std::string title;      // a line above all charts (optional)
  void validate() const;
};

// A scatter series of (n, 2) points (otgen::Error naming `argument` for another dimension).
ChartSeries points_series(PointsView xy, std::string label, Rgb color, double alpha, std::string_view argument);
// The 2-D samples of a model over its data (grey; omitted when data.n == 0), and optional paths, e.g.
// ODE trajectories: path i is paths[(f * npaths + i) * 2 + {0, 1}] for frames f.
Chart samples_chart(std::string title, PointsView samples, PointsView data, std::span<const float> paths = {},
                    int64_t npaths = 0);

// The charts side by side, left to right. Throws otgen::Error naming the chart and series
// ("charts[0].series[1].x") for mismatched lengths, non-finite values, values <= 0 on a log axis, a
// bar without exactly one value, or no data at all.
Canvas render_charts(const std::vector<Chart>& charts, const ChartOptions& opt = {});
void write_charts(const std::string& path, const std::vector<Chart>& charts, const ChartOptions& opt = {});

}  // namespace otgen::cli
