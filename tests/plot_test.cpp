// Tests of the CLI's PNG plots: canvas and font, atomic PNG writes, 1-2-5 ticks, image grids
// (src/cli/plot.h) and PLplot charts (src/cli/chart.h), read back with stb_image; `otgen plot` and
// `otgen wfr --png`. OTGEN_PLOT_KEEP=<folder> keeps some PNGs there for a look.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>

#include "cli/chart.h"
#include "cli/plot.h"
#include "otgen/core/npy.h"
#include "test_util.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace otgen::cli {

void PrintTo(const Rgb& c, std::ostream* os) { *os << "(" << int(c.r) << ", " << int(c.g) << ", " << int(c.b) << ")"; }

namespace {

namespace fs = std::filesystem;
using test::expect_error_contains;
using test::TempDir;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Decoded {
  int w = 0, h = 0;
  std::vector<unsigned char> px;
  Rgb at(int x, int y) const {
    const auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Decoded decode(const std::string& path) {
  Decoded d;
  int n = 0;
  unsigned char* data = stbi_load(path.c_str(), &d.w, &d.h, &n, 3);
  if (!data) {
    ADD_FAILURE() << "stb_image cannot decode " << path << ": " << stbi_failure_reason();
    return d;
  }
  d.px.assign(data, data + static_cast<size_t>(d.w) * d.h * 3);
  stbi_image_free(data);
  return d;
}

std::vector<std::string> folder_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void keep(const std::string& path) {
  if (const char* dir = std::getenv("OTGEN_PLOT_KEEP"))
    fs::copy_file(path, fs::path(dir) / fs::path(path).filename(), fs::copy_options::overwrite_existing);
}

// Non-background pixels in [x0, x1) x [y0, y1).
int64_t ink(const Canvas& c, int x0, int y0, int x1, int y1, Rgb bg = kWhite) {
  int64_t n = 0;
  for (int y = std::max(y0, 0); y < std::min(y1, c.height()); ++y)
    for (int x = std::max(x0, 0); x < std::min(x1, c.width()); ++x) n += !(c.pixel(x, y) == bg);
  return n;
}

// ------------------------------------------------------------------------------------------ canvas

TEST(Canvas, RejectsSizesOutsideOneToMaxSide) {
  expect_error_contains([] { Canvas(0, 10); }, "canvas size");
  expect_error_contains([] { Canvas(10, Canvas::kMaxSide + 1); }, "canvas size");
}

TEST(Canvas, BlendMixesColourByAlphaAndClipProtectsOutside) {
  Canvas c(4, 4);
  c.blend(1, 1, kBlack, 0.5f);
  EXPECT_EQ(c.pixel(1, 1), (Rgb{128, 128, 128}));  // 255 * 0.5 = 127.5, rounded
  c.blend(1, 1, kBlack, 1.0f);
  EXPECT_EQ(c.pixel(1, 1), kBlack);
  c.clip(2, 2, 4, 4);
  c.fill_rect(0, 0, 4, 4, Rgb{10, 20, 30});
  EXPECT_EQ(c.pixel(0, 3), kWhite);
  EXPECT_EQ(c.pixel(3, 0), kWhite);
  EXPECT_EQ(c.pixel(2, 2), (Rgb{10, 20, 30}));
  c.unclip();
  c.set(0, 0, kBlack);
  EXPECT_EQ(c.pixel(0, 0), kBlack);
  c.set(-1, 7, kBlack);  // outside: ignored
}

TEST(Canvas, DotCoversItsDiscAndAlwaysItsCentrePixel) {
  Canvas c(20, 20);
  c.dot(10.5, 10.5, 1.5, kBlack);
  EXPECT_EQ(ink(c, 0, 0, 20, 20), 9);  // centres within 1.5 px: the 3 x 3 block
  EXPECT_EQ(c.pixel(9, 11), kBlack);
  Canvas d(20, 20);
  d.dot(3.9, 4.1, 0.1, kBlack);  // tiny radius: still the pixel holding the centre
  EXPECT_EQ(ink(d, 0, 0, 20, 20), 1);
  EXPECT_EQ(d.pixel(3, 4), kBlack);
  d.dot(1e30, -1e30, 3, kBlack);  // far away and non-finite centres draw nothing, cost nothing
  d.dot(kNaN, 4, 3, kBlack);
  EXPECT_EQ(ink(d, 0, 0, 20, 20), 1);
}

TEST(Canvas, PolylineBlendsEachPixelOnceAndBreaksAtNonFiniteVertices) {
  Canvas c(60, 20);
  const double back_and_forth[] = {10.5, 10.5, 50.5, 10.5, 10.5, 10.5};
  c.polyline(back_and_forth, kBlack, 0.5f);
  EXPECT_EQ(c.pixel(30, 10), (Rgb{128, 128, 128}));  // once, not twice (64)
  EXPECT_EQ(c.pixel(10, 10), (Rgb{128, 128, 128}));
  EXPECT_EQ(ink(c, 0, 0, 60, 20), 41);
  Canvas d(60, 20);
  const double broken[] = {5.5, 5.5, 20.5, 5.5, std::nan(""), 5.5, 40.5, 5.5, 55.5, 5.5};
  d.polyline(broken, kBlack, 1.0f, 3);
  EXPECT_EQ(d.pixel(12, 5), kBlack);
  EXPECT_EQ(d.pixel(12, 4), kBlack);  // 3 px thick
  EXPECT_EQ(d.pixel(12, 6), kBlack);
  EXPECT_EQ(d.pixel(30, 5), kWhite);  // the segments through the NaN vertex are left out
  EXPECT_EQ(d.pixel(50, 5), kBlack);
  Canvas e(60, 20);
  e.line(-1e12, 10.5, 1e12, 10.5, kBlack);  // clipped, not walked pixel by pixel
  EXPECT_EQ(ink(e, 0, 0, 60, 20), 60);
}

TEST(Canvas, TextDrawsInkInsideItsBoxAndScales) {
  const std::string s = "Wasserstein 0.25 (x, y)";
  Canvas c(200, 40);
  const int w = c.text(3, 5, s, kBlack, 1);
  EXPECT_EQ(w, Canvas::text_width(s, 1));
  EXPECT_EQ(w, static_cast<int>(s.size()) * 6 - 1);
  const int64_t n1 = ink(c, 0, 0, 200, 40);
  EXPECT_GT(n1, 100);
  EXPECT_EQ(ink(c, 3, 5, 3 + w, 5 + Canvas::text_height(1)), n1);  // nothing outside the text box
  Canvas c2(400, 40);
  c2.text(0, 0, s, kBlack, 2);
  EXPECT_EQ(ink(c2, 0, 0, 400, 40), 4 * n1);
  Canvas up(40, 200);
  const int wu = up.text_up(5, 190, s, kBlack, 1);
  EXPECT_EQ(wu, w);
  EXPECT_EQ(ink(up, 5, 190 - wu, 5 + Canvas::text_height(1), 190), n1);  // rotated: same ink, in the rotated box
  EXPECT_EQ(ink(up, 0, 0, 40, 200), n1);
}

TEST(Canvas, FontHasADistinctGlyphForEveryPrintableCharacter) {
  std::vector<std::vector<unsigned char>> seen;
  for (int ch = 32; ch <= 126; ++ch) {
    Canvas c(5, 9);
    c.text(0, 0, std::string(1, static_cast<char>(ch)), kBlack);
    if (ch == ' ') {
      EXPECT_EQ(ink(c, 0, 0, 5, 9), 0);
    } else {
      EXPECT_GT(ink(c, 0, 0, 5, 9), 0) << "glyph " << static_cast<char>(ch) << " is empty";
    }
    for (size_t j = 0; j < seen.size(); ++j)
      EXPECT_FALSE(seen[j] == c.pixels()) << "glyph " << static_cast<char>(ch) << " repeats " << static_cast<char>(32 + j);
    seen.push_back(c.pixels());
  }
  Canvas box(5, 9);
  box.text(0, 0, "\x01", kBlack);  // outside 32..126: a hollow box
  EXPECT_EQ(ink(box, 0, 0, 5, 9), 20);
  Canvas g(5, 9);
  g.text(0, 0, "g", kBlack);  // descenders reach below the capitals' 7 rows
  EXPECT_GT(ink(g, 0, 7, 5, 9), 0);
  Canvas cap(5, 9);
  cap.text(0, 0, "E", kBlack);
  EXPECT_EQ(ink(cap, 0, 7, 5, 9), 0);
}

// --------------------------------------------------------------------------------------------- PNG

TEST(WritePng, RoundTripsPixelsAndLeavesNoTemporaryFile) {
  TempDir dir;
  Canvas c(7, 5, Rgb{1, 2, 3});
  c.set(0, 0, Rgb{255, 0, 0});
  c.set(6, 4, Rgb{0, 0, 255});
  c.set(3, 2, Rgb{17, 99, 200});
  const std::string path = dir.file("a.png");
  write_png(path, c);
  const Decoded d = decode(path);
  ASSERT_EQ(d.w, 7);
  ASSERT_EQ(d.h, 5);
  EXPECT_EQ(d.px, c.pixels());
  EXPECT_EQ(folder_entries(dir.path), std::vector<std::string>{"a.png"});
  // Overwriting replaces the file, still without leftovers.
  Canvas c2(3, 9);
  write_png(path, c2);
  EXPECT_EQ(decode(path).h, 9);
  EXPECT_EQ(folder_entries(dir.path), std::vector<std::string>{"a.png"});
}

TEST(WritePng, MissingFolderThrowsNamingThePathAndCreatesNothing) {
  TempDir dir;
  const std::string path = (dir.path / "missing" / "plot.png").string();
  expect_error_contains([&] { write_png(path, Canvas(4, 4)); }, "cannot write '" + path + "': ");
  EXPECT_TRUE(folder_entries(dir.path).empty());
}

TEST(WritePng, FailedRenameRemovesTheTemporaryFile) {
  TempDir dir;
  fs::create_directories(dir.path / "taken.png" / "inside");  // a non-empty folder where the file should go
  const std::string path = dir.file("taken.png");
  expect_error_contains([&] { write_png(path, Canvas(4, 4)); }, "cannot write '" + path + "': ");
  EXPECT_EQ(folder_entries(dir.path), std::vector<std::string>{"taken.png"});
  EXPECT_TRUE(fs::is_directory(path));
}

// ------------------------------------------------------------------------------------------- ticks

void expect_ticks(double lo, double hi, std::vector<double> want) {
  const auto got = nice_ticks(lo, hi);
  ASSERT_EQ(got.size(), want.size()) << "[" << lo << ", " << hi << "]";
  for (size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << "[" << lo << ", " << hi << "] #" << i;
}

TEST(NiceTicks, FollowTheOneTwoFiveRuleOnKnownRanges) {
  expect_ticks(0, 1, {0, 0.2, 0.4, 0.6, 0.8, 1.0});
  expect_ticks(-3.7, 12.1, {-2, 0, 2, 4, 6, 8, 10, 12});
  expect_ticks(-1, 1, {-1, -0.5, 0, 0.5, 1});
  expect_ticks(0, 100, {0, 20, 40, 60, 80, 100});
  expect_ticks(0.001, 0.0047, {0.001, 0.0015, 0.002, 0.0025, 0.003, 0.0035, 0.004, 0.0045});
  expect_ticks(1e6, 5e6, {1e6, 2e6, 3e6, 4e6, 5e6});
  expect_ticks(-250, -10, {-250, -200, -150, -100, -50});
  expect_ticks(6, 22, {10, 15, 20});  // no 1-2-5 spacing gives 4..8 ticks here
  expect_ticks(0.3, 0.30004, {0.3, 0.30001, 0.30002, 0.30003, 0.30004});
  for (double v : nice_ticks(-1, 1)) EXPECT_FALSE(v == 0 && std::signbit(v)) << "-0 among the ticks";
  EXPECT_EQ(nice_ticks(0, 1, 3), (std::vector<double>{0, 0.5, 1}));
}

// The number of multiples of s in [lo, hi] with nice_ticks' end tolerance.
double multiples(double lo, double hi, double s) { return std::floor(hi / s + 1e-9) - std::ceil(lo / s - 1e-9) + 1; }

TEST(NiceTicks, SweepOfRangesGivesEvenlySpacedOneTwoFiveTicksInsideTheRange) {
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 20000; ++trial) {
    const double width = std::pow(10.0, -6 + 12 * u(rng));
    const double lo = (u(rng) - 0.5) * width * std::pow(10.0, 3 * u(rng)), hi = lo + width;
    const auto t = nice_ticks(lo, hi);
    std::ostringstream range;
    range << "[" << lo << ", " << hi << "]";
    SCOPED_TRACE(range.str());
    ASSERT_GE(t.size(), 3u);
    ASSERT_LE(t.size(), 8u);
    const double s = (t.back() - t.front()) / static_cast<double>(t.size() - 1);
    const double mant = s / std::pow(10.0, std::floor(std::log10(s) + 1e-9));
    EXPECT_TRUE(std::abs(mant - 1) < 1e-6 || std::abs(mant - 2) < 1e-6 || std::abs(mant - 5) < 1e-6) << "spacing " << s;
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_GE(t[i], lo - 1e-9 * s);
      EXPECT_LE(t[i], hi + 1e-9 * s);
      EXPECT_NEAR(t[i] / s, std::round(t[i] / s), 1e-6) << "tick not a multiple of the spacing";
      if (i > 0) {
        EXPECT_NEAR(t[i] - t[i - 1], s, 1e-6 * s);
      }
    }
    EXPECT_LT(t.front() - s, lo);  // every multiple inside is there
    EXPECT_GT(t.back() + s, hi);
    // The spacing is the smallest 1-2-5 one with at most 8 ticks: the next smaller gives more.
    const double smaller = std::abs(mant - 1) < 1e-6 ? s / 2 : std::abs(mant - 2) < 1e-6 ? s / 2 : s * 2 / 5;
    EXPECT_GT(multiples(lo, hi, smaller), 8);
    if (t.size() == 3) {  // 3 only when no 1-2-5 spacing gives 4..8: the next smaller gives >= 9
      EXPECT_GE(multiples(lo, hi, smaller), 9);
    }
  }
}

TEST(NiceTicks, RejectEmptyNonFiniteAndDegenerateRanges) {
  expect_error_contains([] { nice_ticks(1, 1); }, "ticks range");
  expect_error_contains([] { nice_ticks(2, 1); }, "finite lo < hi");
  expect_error_contains([] { nice_ticks(0, std::nan("")); }, "ticks range");
  expect_error_contains([] { nice_ticks(1e15, 1e15 + 0.125); }, "1e-12");
  expect_error_contains([] { nice_ticks(0, 1, 1); }, "max_ticks");
}

TEST(TickLabel, UsesAsManyDecimalsAsTheSpacing) {
  EXPECT_EQ(tick_label(0.2, 0.2), "0.2");
  EXPECT_EQ(tick_label(1.0, 0.2), "1.0");
  EXPECT_EQ(tick_label(-5, 5), "-5");
  EXPECT_EQ(tick_label(120, 20), "120");
  EXPECT_EQ(tick_label(0.0025, 0.0005), "0.0025");
  EXPECT_EQ(tick_label(-1e-17, 0.5), "0.0");  // no "-0.0"
  EXPECT_EQ(tick_label(2e6, 5e5), "2e+06");
  EXPECT_EQ(tick_label(2.5e6, 5e5), "2.5e+06");
  EXPECT_EQ(tick_label(3e-6, 1e-6), "3e-06");
}

// -------------------------------------------------------------------------------------------- grids

TEST(ImageGrid, MapsMinusOneToBlackPlusOneToWhiteZeroToMidGreyAndClips) {
  TempDir dir;
  const int64_t side = 3;
  Points im(5, side * side);
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t j = 0; j < side * side; ++j) im.row(k)[j] = k == 0 ? -1.0f : k == 1 ? 1.0f : k == 2 ? 0.0f : 0.5f;
  im.row(3)[0] = 3.0f;   // clipped to white
  im.row(3)[1] = -7.0f;  // clipped to black
  im.row(4)[4] = kNaN;   // the centre pixel of image 4
  const std::string path = dir.file("grid.png");
  GridOptions opt;
  const GridReport rep = write_image_grid(path, im, side, 1, opt);
  const GridLayout& g = rep.layout;
  EXPECT_EQ(g.cols, 3);  // ceil(sqrt(5))
  EXPECT_EQ(g.rows, 2);
  EXPECT_EQ(g.scale, 44);  // smallest integer with 2 + 3 * (3 * f + 2) >= 400
  EXPECT_GE(g.width, 400);
  EXPECT_EQ(rep.nonfinite_values, 1);
  const Decoded d = decode(path);
  ASSERT_EQ(d.w, g.width);
  ASSERT_EQ(d.h, g.height);
  EXPECT_EQ(d.w, 2 + 3 * (3 * 44 + 2));
  EXPECT_EQ(d.h, 2 + 2 * (3 * 44 + 2));
  auto px = [&](int64_t k, int r, int c) { return d.at(g.cell_x(k) + c * g.scale + g.scale / 2, g.cell_y(k) + r * g.scale + g.scale / 2); };
  EXPECT_EQ(px(0, 1, 1), (Rgb{0, 0, 0}));
  EXPECT_EQ(px(1, 2, 0), (Rgb{255, 255, 255}));
  EXPECT_EQ(px(2, 0, 2), (Rgb{128, 128, 128}));  // 0 -> 127.5, rounded
  EXPECT_EQ(px(3, 0, 0), (Rgb{255, 255, 255}));
  EXPECT_EQ(px(3, 0, 1), (Rgb{0, 0, 0}));
  EXPECT_EQ(px(3, 1, 1), (Rgb{191, 191, 191}));  // 0.5 -> 191.25
  EXPECT_EQ(px(4, 1, 1), opt.nonfinite_color);
  // Every pixel of a cell is its value (integer upscaling), separators and the empty sixth cell are grey.
  EXPECT_EQ(d.at(g.cell_x(0), g.cell_y(0)), kBlack);
  EXPECT_EQ(d.at(g.cell_x(0) + 3 * g.scale - 1, g.cell_y(0) + 3 * g.scale - 1), kBlack);
  EXPECT_EQ(d.at(g.cell_x(0) - 1, g.cell_y(0)), opt.separator_color);
  EXPECT_EQ(d.at(g.cell_x(1) - 2, g.cell_y(1) + 5), opt.separator_color);
  EXPECT_EQ(d.at(g.cell_x(5) + 10, g.cell_y(5) + 10), opt.separator_color);
  EXPECT_EQ(d.at(0, 0), opt.separator_color);
}

TEST(ImageGrid, ReadsColourImagesAsPlanesOrAsPixels) {
  const int64_t side = 2;
  std::vector<float> v(12);
  for (int j = 0; j < 4; ++j) {
    v[j] = 1.0f;       // R plane
    v[4 + j] = -1.0f;  // G plane
    v[8 + j] = 0.0f;   // B plane
  }
  const Points im(v, 1, 12);
  GridOptions opt;
  GridReport rep;
  Canvas chw = render_image_grid(im, side, 3, opt, &rep);
  const GridLayout g = rep.layout;
  EXPECT_EQ(chw.pixel(g.cell_x(0), g.cell_y(0)), (Rgb{255, 0, 128}));
  EXPECT_EQ(chw.pixel(g.cell_x(0) + g.scale, g.cell_y(0) + g.scale), (Rgb{255, 0, 128}));
  opt.order = ChannelOrder::HWC;
  Canvas hwc = render_image_grid(im, side, 3, opt);
  EXPECT_EQ(hwc.pixel(g.cell_x(0), g.cell_y(0)), (Rgb{255, 255, 255}));  // values 0..2: 1, 1, 1
  EXPECT_EQ(hwc.pixel(g.cell_x(0) + g.scale, g.cell_y(0)), (Rgb{255, 0, 0}));  // values 3..5: 1, -1, -1
  // Other value ranges: [0, 1] images, 0.5 -> mid grey.
  GridOptions unit;
  unit.lo = 0;
  unit.hi = 1;
  const Points half(std::vector<float>(4, 0.5f), 1, 4);
  Canvas u = render_image_grid(half, side, 1, unit, &rep);
  EXPECT_EQ(u.pixel(rep.layout.cell_x(0), rep.layout.cell_y(0)), (Rgb{128, 128, 128}));
}

TEST(ImageGrid, RowLabelsAndTitleGetTheirOwnMargins) {
  Points im(6, 16);
  for (float& v : im.data) v = -1.0f;
  GridOptions opt;
  opt.cols = 3;
  opt.title = "flow samples, step 1000";
  opt.row_labels = {"class 0", "class 1"};
  GridReport rep;
  const Canvas c = render_image_grid(im, 4, 1, opt, &rep);
  const GridLayout& g = rep.layout;
  EXPECT_EQ(g.rows, 2);
  EXPECT_GT(g.grid_x, Canvas::text_width("class 0", 2));
  EXPECT_GT(g.grid_y, Canvas::text_height(2));
  EXPECT_EQ(c.width(), g.grid_x + 2 + 3 * (4 * g.scale + 2));
  EXPECT_GT(ink(c, 0, 0, c.width(), g.grid_y), 0);  // the title
  for (int64_t r = 0; r < 2; ++r) {  // each label beside its own row
    const int y0 = g.cell_y(r * 3), y1 = y0 + 4 * g.scale;
    EXPECT_GT(ink(c, 0, y0, g.grid_x, y1), 0) << "row " << r;
  }
  EXPECT_EQ(ink(c, 0, g.grid_y, g.grid_x, g.cell_y(0)), 0);
}

TEST(ImageGrid, RejectsBadShapesOptionsAndOversizedGrids) {
  const Points im(4, 9);
  expect_error_contains([&] { render_image_grid(im, 4, 1, {}); }, "invalid images = (4, 9)");
  expect_error_contains([&] { render_image_grid(im, 3, 2, {}); }, "channels");
  expect_error_contains([&] { render_image_grid(Points(0, 9), 3, 1, {}); }, "at least one image");
  GridOptions labels;
  labels.row_labels = {"a", "b", "c"};
  expect_error_contains([&] { render_image_grid(im, 3, 1, labels); }, "row_labels");
  GridOptions range;
  range.lo = 1;
  range.hi = 1;
  expect_error_contains([&] { render_image_grid(im, 3, 1, range); }, "lo/hi");
  expect_error_contains([&] { image_grid_layout(300000, 28, {}); }, "at most 16384 px");
}

// ------------------------------------------------------------------------------------------ charts

bool close_rgb(Rgb a, Rgb b, int tol) {
  return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
}

int64_t count_near(const Canvas& c, Rgb want, int tol, int x0 = 0, int x1 = -1) {
  if (x1 < 0) x1 = c.width();
  int64_t n = 0;
  for (int y = 0; y < c.height(); ++y)
    for (int x = x0; x < x1; ++x)
      if (close_rgb(c.pixel(x, y), want, tol)) ++n;
  return n;
}

std::vector<Chart> two_charts() {
  const Rgb red{214, 39, 40}, blue{31, 119, 180};
  Chart a{"energy vs NFE", "NFE", "energy", ChartKind::Lines, true, true,
          {{"I-FM", {1, 10, 100}, {1, 0.1, 0.05}, {0.5, 0.05, 0.02}, {2, 0.2, 0.1}, red}}};
  Chart b{"linear", "x", "y", ChartKind::Lines, false, false, {{"B", {0, 1, 2, 3}, {0, 1, 0, 1}, {}, {}, blue}}};
  return {a, b};
}

TEST(Charts, EachChartDrawsItsSeriesInItsColourInItsOwnColumnWithATitleBand) {
  ChartOptions o;
  o.chart_width = 300;
  o.chart_height = 260;
  o.title = "Figure";
  const Canvas c = render_charts(two_charts(), o);
  ASSERT_EQ(c.width(), 600);
  ASSERT_EQ(c.height(), 260 + 36);
  const Rgb red{214, 39, 40}, blue{31, 119, 180};
  EXPECT_GT(count_near(c, red, 30, 0, 300), 100);   // lines, markers, error bars, legend sample
  EXPECT_EQ(count_near(c, red, 30, 300, 600), 0);
  EXPECT_GT(count_near(c, blue, 30, 300, 600), 100);
  EXPECT_EQ(count_near(c, blue, 30, 0, 300), 0);
  auto ink = [](const Canvas& k, int y0, int y1) {
    int64_t n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = 0; x < k.width(); ++x) n += close_rgb(k.pixel(x, y), kBlack, 60);
    return n;
  };
  EXPECT_GT(ink(c, 0, 36), 20);  // the figure title
  // Without the chart titles, axis labels and legends, less ink: they are drawn.
  auto bare = two_charts();
  for (auto& ch : bare) {
    ch.title = ch.xlabel = ch.ylabel = "";
    ch.series[0].label = "";
  }
  const Canvas b = render_charts(bare, o);
  EXPECT_GT(ink(b, 36, b.height()), 300) << "axes, ticks and tick labels";
  EXPECT_GT(ink(c, 36, c.height()), ink(b, 36, b.height()) + 200);
  EXPECT_EQ(render_charts(two_charts(), o).pixels(), c.pixels());  // deterministic
}

TEST(Charts, BarsFillTheirAreaAndWriteChartsGivesADecodablePngWithoutLeftovers) {
  TempDir dir;
  const Rgb green{44, 160, 44}, orange{255, 127, 14};
  Chart bars{"cost", "coupling", "seconds", ChartKind::Bars, false, false,
             {{"A", {}, {2.0}, {1.5}, {2.5}, green}, {"B", {}, {1.0}, {}, {}, orange}}};
  const std::string path = dir.file("cost.png");
  write_charts(path, {bars});
  const Decoded d = decode(path);
  ASSERT_EQ(d.w, 480);
  ASSERT_EQ(d.h, 400);
  EXPECT_EQ(folder_entries(dir.path), std::vector<std::string>{"cost.png"});
  Canvas c(d.w, d.h);
  for (int y = 0; y < d.h; ++y)
    for (int x = 0; x < d.w; ++x) c.set(x, y, d.at(x, y));
  const int64_t g = count_near(c, green, 8), o = count_near(c, orange, 8);
  EXPECT_GT(g, 5000);  // the bar of height 2 ...
  EXPECT_GT(o, 2000);  // ... and the one of height 1, about half its area
  EXPECT_LT(o, g);
  keep(path);
}

TEST(Charts, SamplesChartScattersDataSamplesAndPathsSkippingNonFinitePoints) {
  Points data(200, 2), samples(100, 2);
  Rng(4).fill_normal(data.data);
  Rng(5).fill_normal(samples.data);
  samples.data[7] = kNaN;  // a diverged sample is left out, not an error
  std::vector<float> paths;
  for (int f = 0; f < 5; ++f)
    for (int i = 0; i < 3; ++i) paths.insert(paths.end(), {0.5f * f, 0.4f * f * (i - 1)});
  const Chart c = samples_chart("samples (euler, NFE 2)", samples.view(), data.view(), paths, 3);
  ASSERT_EQ(c.series.size(), 3u);
  EXPECT_EQ(c.series[0].label, "data");
  EXPECT_EQ(c.series[2].x.size(), 3u * 6u);  // 5 frames and a break per path
  const Canvas k = render_charts({c});
  EXPECT_GT(count_near(k, palette(0), 40), 200);  // sample dots
  EXPECT_GT(count_near(k, palette(3), 60), 50);   // the paths (and their legend line)
  EXPECT_GT(count_near(k, Rgb{170, 170, 170}, 30), 200);
  expect_error_contains([&] { samples_chart("", Points(3, 3).view(), PointsView{}); }, "samples");
}

TEST(Charts, RejectBadSeriesNamingThem) {
  auto charts = two_charts();
  charts[0].series[0].y[1] = 0;  // log axis
  expect_error_contains([&] { render_charts(charts); }, "charts[0].series[0].y");
  charts = two_charts();
  charts[1].series[0].x.pop_back();
  expect_error_contains([&] { render_charts(charts); }, "charts[1].series[0].x");
  charts = two_charts();
  charts[1].series[0].lo = {1};
  expect_error_contains([&] { render_charts(charts); }, "charts[1].series[0].lo/hi");
  charts = two_charts();
  charts[1].series[0].y[2] = std::numeric_limits<double>::quiet_NaN();
  expect_error_contains([&] { render_charts(charts); }, "charts[1].series[0].y");
  ChartSeries hist{"h", {0, 1}, {1, 2}, {}, {}, kBlack};
  hist.histogram = true;  // n heights need n + 1 edges
  expect_error_contains([&] { render_charts({Chart{"", "", "", ChartKind::Points, false, false, {hist}}}); },
                        "charts[0].series[0].x");
  Chart bars{"", "", "", ChartKind::Bars, false, false, {{"A", {}, {1.0, 2.0}, {}, {}, kBlack}}};
  expect_error_contains([&] { render_charts({bars}); }, "charts[0].series[0].y");
  expect_error_contains([&] { render_charts({}); }, "charts");
}

TEST(PlotCli, SideBySideScatterChartsOfPointSetsWithAFigureTitle) {
  TempDir dir;
  Points a(300, 2), b(300, 2), r(500, 2), bad(10, 3);
  Rng(1).fill_normal(a.data);
  Rng(2).fill_normal(b.data);
  Rng(3).fill_normal(r.data);
  write_npy(dir.file("a.npy"), a);
  write_npy(dir.file("b.npy"), b);
  write_npy(dir.file("r.npy"), r);
  write_npy(dir.file("bad.npy"), bad);
  const auto res = test::run_cli("plot --points " + dir.file("a.npy") + "," + dir.file("b.npy") + " --titles A,B --reference " +
                                 dir.file("r.npy") + " --title Samples --out " + dir.file("p.png"));
  ASSERT_EQ(res.exit_code, 0) << res.out;
  const Decoded d = decode(dir.file("p.png"));
  EXPECT_EQ(d.w, 960);
  EXPECT_EQ(d.h, 436);
  int64_t left = 0, right = 0;  // each set in its own colour in its own chart
  for (int y = 0; y < d.h; ++y)
    for (int x = 0; x < d.w; ++x) {
      left += x < 480 && close_rgb(d.at(x, y), palette(0), 40);
      right += x >= 480 && close_rgb(d.at(x, y), palette(1), 40);
    }
  EXPECT_GT(left, 300);
  EXPECT_GT(right, 300);
  const auto err = test::run_cli("plot --points " + dir.file("bad.npy") + " --out " + dir.file("q.png"));
  EXPECT_EQ(err.exit_code, 2);
  EXPECT_NE(err.out.find("--points"), std::string::npos) << err.out;
  EXPECT_FALSE(fs::exists(dir.file("q.png")));
}

TEST(WfrCli, PngOfTheDoubleWellIsAHistogramChartWithAxes) {
  TempDir dir;
  const auto r = test::run_cli("wfr --target doublewell --sampler smc-wfr --particles 200 --steps 40 --quiet --png --out " +
                               dir.path.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Decoded d = decode(dir.file("plot.png"));
  EXPECT_EQ(d.w, 720);
  EXPECT_EQ(d.h, 400);
  int64_t bars = 0, curve = 0;
  for (int y = 0; y < d.h; ++y)
    for (int x = 0; x < d.w; ++x) {
      bars += d.at(x, y) == Rgb{150, 170, 210};
      curve += d.at(x, y) == Rgb{200, 30, 30};
    }
  EXPECT_GT(bars, 500);
  EXPECT_GT(curve, 500);
  keep(dir.file("plot.png"));
}

TEST(WfrCli, PngOfA2DTargetIsAScatterOverTheDensity) {
  TempDir dir;
  const auto r = test::run_cli("wfr --target mixture4-lln --sampler mala --particles 300 --steps 40 --step 0.01 --quiet "
                               "--png --out " + dir.path.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Decoded d = decode(dir.file("plot.png"));
  EXPECT_EQ(d.w, 560);
  EXPECT_EQ(d.h, 540);
  int64_t red = 0;
  for (int y = 0; y < d.h; ++y)
    for (int x = 0; x < d.w; ++x) red += d.at(x, y) == Rgb{200, 20, 20};
  EXPECT_GT(red, 300);
}

TEST(WfrCli, PngOfA3DTargetIsRefusedBeforeTheRun) {
  TempDir dir;
  const auto r = test::run_cli("wfr --target gaussian --dim 3 --sampler ula --steps 5 --quiet --png --out " +
                               dir.path.string() + "/run");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("invalid --png = dimension 3"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.path / "run"));
}

}  // namespace
}  // namespace otgen::cli
