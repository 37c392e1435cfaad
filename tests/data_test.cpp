#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "otgen/data/data.h"
#include "otgen/core/npy.h"
#include "test_util.h"

namespace otgen {
namespace {

DatasetOptions opts(int64_t n, uint64_t seed = 0, bool shuffle = false) {
  DatasetOptions o;
  o.n = n;
  o.seed = seed;
  o.shuffle = shuffle;
  return o;
}

DatasetOptions npy_opts(const std::string& path, const std::string& labels = "") {
  DatasetOptions o;
  o.path = path;
  o.labels_path = labels;
  return o;
}

void expect_in_range(const Points& x, float lo, float hi) {
  auto [mn, mx] = std::minmax_element(x.data.begin(), x.data.end());
  EXPECT_GE(*mn, lo);
  EXPECT_LE(*mx, hi);
}

TEST(Data, FashionMnistIs60000By784InMinusOneOneWithTenClasses) {
  Dataset ds = load_dataset("fashion-mnist");
  EXPECT_EQ(ds.x.n, 60000);
  EXPECT_EQ(ds.x.d, 784);
  EXPECT_EQ(ds.num_classes, 10);
  EXPECT_EQ(ds.image_side, 28);
  ASSERT_EQ(ds.labels.size(), 60000u);
  expect_in_range(ds.x, -1.0f, 1.0f);
  // Pixel byte 0 -> -1, 255 -> 1: both occur in Fashion-MNIST.
  EXPECT_EQ(*std::min_element(ds.x.data.begin(), ds.x.data.end()), -1.0f);
  EXPECT_EQ(*std::max_element(ds.x.data.begin(), ds.x.data.end()), 1.0f);
  std::vector<int> counts(10);
  for (auto l : ds.labels) counts.at(l)++;
  for (int c : counts) EXPECT_EQ(c, 6000);  // the training set is balanced
  Dataset test = load_dataset("fashion-mnist", [] { DatasetOptions o; o.test_split = true; return o; }());
  EXPECT_EQ(test.x.n, 10000);
}

TEST(Data, DigitsIs1797By64WithTenClasses) {
  Dataset ds = load_dataset("digits");
  EXPECT_EQ(ds.x.n, 1797);
  EXPECT_EQ(ds.x.d, 64);
  EXPECT_EQ(ds.num_classes, 10);
  expect_in_range(ds.x, -1.0f, 1.0f);
  EXPECT_EQ(ds.labels[0], 0);  // the first digit in sklearn's file is a 0
  EXPECT_EQ(ds.labels[1], 1);
  // First row of digits.csv: 0,0,5,13,9,1,0,0 -> x/8 - 1
  EXPECT_FLOAT_EQ(ds.x.data[2], 5.0f / 8 - 1);
  EXPECT_FLOAT_EQ(ds.x.data[3], 13.0f / 8 - 1);
}

TEST(Data, SubsetAndSeededShuffleAreReproducible) {
  Dataset a = load_dataset("digits", opts(100, 3, true));
  Dataset b = load_dataset("digits", opts(100, 3, true));
  Dataset c = load_dataset("digits", opts(100, 4, true));
  Dataset head = load_dataset("digits", opts(100));
  EXPECT_EQ(a.x.n, 100);
  EXPECT_EQ(a.x.data, b.x.data);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.x.data, c.x.data);
  Dataset all = load_dataset("digits");
  EXPECT_TRUE(std::equal(head.x.data.begin(), head.x.data.end(), all.x.data.begin()));
  test::expect_error_contains([] { load_dataset("digits", opts(5000)); }, "at most the dataset's 1797");
}

TEST(Data, GeneratorsAreSeededTwoDimensionalAndLabelled) {
  for (std::string name : {"8gaussians", "moons", "checkerboard", "spirals", "gaussian-mixture"}) {
    Dataset a = load_dataset(name, opts(500, 1));
    Dataset b = load_dataset(name, opts(500, 1));
    Dataset c = load_dataset(name, opts(500, 2));
    EXPECT_EQ(a.x.n, 500) << name;
    EXPECT_EQ(a.x.d, 2) << name;
    EXPECT_EQ(a.x.data, b.x.data) << name;
    EXPECT_NE(a.x.data, c.x.data) << name;
    for (float v : a.x.data) EXPECT_TRUE(std::isfinite(v)) << name;
    if (a.num_classes > 0) {
      ASSERT_EQ(a.labels.size(), 500u) << name;
      std::set<int64_t> seen(a.labels.begin(), a.labels.end());
      EXPECT_EQ(static_cast<int64_t>(seen.size()), a.num_classes) << name;
    }
  }
}

TEST(Data, EightGaussiansPointsSitNearTheirComponentMean) {
  Dataset ds = load_dataset("8gaussians", opts(2000, 9));
  for (int64_t i = 0; i < ds.x.n; ++i) {
    const double a = 2 * M_PI * ds.labels[i] / 8;
    const double dx = ds.x.row(i)[0] - 4 * std::cos(a), dy = ds.x.row(i)[1] - 4 * std::sin(a);
    EXPECT_LT(std::hypot(dx, dy), 0.3 * 6) << "point " << i;  // 6 sd (radial chi with 2 dof)
  }
}

TEST(Data, CheckerboardFillsOnlyBlackSquares) {
  Dataset ds = load_dataset("checkerboard", opts(4000, 2));
  for (int64_t i = 0; i < ds.x.n; ++i) {
    const int cx = static_cast<int>(std::floor(ds.x.row(i)[0] / 2)), cy = static_cast<int>(std::floor(ds.x.row(i)[1] / 2));
    EXPECT_EQ(((cx + cy) % 2 + 2) % 2, 0) << "point " << i << " in a white square";
  }
}

TEST(Data, GaussianMixtureHonoursMeansAndWeights) {
  DatasetOptions o;
  o.n = 20000;
  o.means = {0, 0, 10, 10};
  o.weights = {3, 1};
  o.stddev = 0.5f;
  Dataset ds = load_dataset("gaussian-mixture", o);
  int64_t second = std::count(ds.labels.begin(), ds.labels.end(), 1);
  EXPECT_NEAR(second / 20000.0, 0.25, 0.015);  // sd 0.003
  o.weights = {1};
  test::expect_error_contains([&] { load_dataset("gaussian-mixture", o); }, "one weight per mean");
}

TEST(Data, UserNpyWithLabelsAndErrors) {
  test::TempDir dir;
  std::vector<float> x{0, 1, 2, 3, 4, 5};
  write_npy(dir.file("x.npy"), x, {3, 2});
  std::vector<int64_t> l{0, 2, 1};
  write_npy(dir.file("l.npy"), l, {3});
  Dataset ds = load_dataset("npy", npy_opts(dir.file("x.npy"), dir.file("l.npy")));
  EXPECT_EQ(ds.x.n, 3);
  EXPECT_EQ(ds.num_classes, 3);
  std::vector<int64_t> bad{0, 1};
  write_npy(dir.file("bad.npy"), bad, {2});
  test::expect_error_contains([&] { load_dataset("npy", npy_opts(dir.file("x.npy"), dir.file("bad.npy"))); },
                              "one per data point");
  test::expect_error_contains([&] { load_dataset("npy", npy_opts(dir.file("none.npy"))); }, "cannot open");
  test::expect_error_contains([&] { load_dataset("npy"); }, "invalid path");
}

TEST(Data, UnknownNameListsValidOnesAndMissingPackageIsNamed) {
  test::expect_error_contains([] { load_dataset("nope"); }, "fashion-mnist, digits");
  setenv("OTGEN_DIGITS_CSV", "/nonexistent/digits.csv.gz", 1);
  test::expect_error_contains([] { load_dataset("digits"); }, "python3-sklearn");
  unsetenv("OTGEN_DIGITS_CSV");
}

TEST(DataCli, ExportWritesNpyAndLabels) {
  test::TempDir dir;
  auto r = test::run_cli("data export --dataset digits --out " + dir.file("y.npy") + " --labels-out " + dir.file("l.npy"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"n\":1797"), std::string::npos) << r.out;
  Points y = read_points_npy(dir.file("y.npy"), "y");
  EXPECT_EQ(y.n, 1797);
  EXPECT_EQ(y.d, 64);
  EXPECT_EQ(read_int64_npy(dir.file("l.npy"), "l").size(), 1797u);
}

TEST(DataCli, UserErrorsExitTwoWithOneLine) {
  auto r = test::run_cli("data export --dataset nope --out /tmp/never.npy");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("fashion-mnist"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  r = test::run_cli("data export --dataset digits");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--out"), std::string::npos) << r.out;
  r = test::run_cli("data export --dataset moons --out /nonexistent-dir/x.npy");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("invalid --out = '/nonexistent-dir/x.npy': expected a file in an existing folder"),
            std::string::npos) << r.out;
  r = test::run_cli("frobnicate");
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

TEST(DataCli, HelpAndVersionExitZero) {
  auto r = test::run_cli("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("otgen 0."), std::string::npos) << r.out;
  r = test::run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("data"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace otgen
