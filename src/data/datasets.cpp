#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numbers>
#include <numeric>

#include "data/parsers.h"
#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/core/npy.h"
#include "otgen/core/rng.h"

namespace otgen {

namespace {

std::string join_names() {
  std::string s;
  for (const auto& n : dataset_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string env_or(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return v && *v ? v : fallback;
}

// The whole content of a gzip file.
std::vector<unsigned char> read_gz(const std::string& path, const std::string& package) {
  if (!std::filesystem::exists(path))
    throw Error("missing data file '" + path + "': install the Debian package " + package +
                " (make setup does), or point the OTGEN_* variable to another copy");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open '" + path + "'");
  gzbuffer(f, 1 << 20);
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + got);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string what = msg ? msg : "";
  gzclose(f);
  if (got < 0 || (err != Z_OK && err != Z_STREAM_END)) throw Error("corrupt gzip file '" + path + "': " + what);
  return out;
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

Dataset fashion_mnist(const DatasetOptions& opt) {
  const std::string dir = fashion_mnist_dir();
  const std::string prefix = opt.test_split ? "t10k" : "train";
  const std::string images = dir + "/" + prefix + "-images-idx3-ubyte.gz", labels = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  return detail::parse_fashion_mnist(read_gz(images, "dataset-fashion-mnist"), read_gz(labels, "dataset-fashion-mnist"),
                                     images, labels);
}

Dataset digits() {
  const std::string path = digits_csv_path();
  const auto raw = read_gz(path, "python3-sklearn");
  return detail::parse_digits_csv(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), path);
}

Dataset user_npy(const DatasetOptions& opt) {
  require(!opt.path.empty(), "path", "''", "the .npy file of dataset 'npy'");
  Dataset ds;
  ds.name = "npy";
  ds.x = read_points_npy(opt.path, "path");
  if (!opt.labels_path.empty()) {
    ds.labels = read_labels_npy(opt.labels_path, "labels_path");
    require(static_cast<int64_t>(ds.labels.size()) == ds.x.n, "labels_path", std::to_string(ds.labels.size()) + " labels",
            "one per data point (" + std::to_string(ds.x.n) + ")");
    ds.num_classes = ds.labels.empty() ? 0 : *std::max_element(ds.labels.begin(), ds.labels.end()) + 1;
  }
  return ds;
}

// Seeded 2-D generators. Each point i uses its own stream (seed, i): results do not depend on n's split.
template <class F>
Dataset generate(const std::string& name, int64_t n, int64_t classes, uint64_t seed, F draw) {
  Dataset ds;
  ds.name = name;
  ds.num_classes = classes;
  ds.x = Points(n, 2);
  ds.labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, static_cast<uint64_t>(i));
    ds.labels[i] = draw(rng, ds.x.row(i));
  }
  return ds;
}

int64_t pick(Rng& rng, const std::vector<double>& cumulative) {
  const double u = rng.uniform() * cumulative.back();
  return std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
}

Dataset gaussian_mixture(const std::string& name, const DatasetOptions& opt, int64_t n) {
  // 8gaussians is the flow-matching benchmark's: radius 4, sd 0.3. gaussian-mixture defaults to 8
  // components at radius 2 with sd --stddev.
  const bool eight = name == "8gaussians";
  std::vector<float> means = eight ? std::vector<float>{} : opt.means;
  if (means.empty())
    for (int k = 0; k < 8; ++k) {
      const double a = 2 * std::numbers::pi * k / 8;
      means.push_back(static_cast<float>((eight ? 4 : 2) * std::cos(a)));
      means.push_back(static_cast<float>((eight ? 4 : 2) * std::sin(a)));
    }
  const int64_t K = static_cast<int64_t>(means.size() / 2);
  std::vector<double> cum(K);
  for (int64_t k = 0; k < K; ++k) cum[k] = (k ? cum[k - 1] : 0.0) + (opt.weights.empty() ? 1.0 : opt.weights[k]);
  const float sd = eight ? 0.3f : opt.stddev;
  return generate(name, n, K, opt.seed, [&](Rng& rng, float* p) {
    const int64_t k = pick(rng, cum);
    p[0] = means[2 * k] + sd * static_cast<float>(rng.normal());
    p[1] = means[2 * k + 1] + sd * static_cast<float>(rng.normal());
    return k;
  });
}

}  // namespace

namespace detail {

std::vector<unsigned char> parse_idx(std::span<const unsigned char> raw, int dims, std::vector<int64_t>& shape,
                                     const std::string& path) {
  if (raw.size() < 4u + 4u * dims || be32(raw.data()) != 0x800u + static_cast<uint32_t>(dims))
    throw Error("invalid IDX file '" + path + "': bad magic number or header");
  shape.clear();
  // Each size is below 2^32: the product (up to 2^96) is compared with the data bytes without
  // wrapping (a product above the data size stops growing at data + 1), and reported in double.
  const size_t off = 4 + 4 * static_cast<size_t>(dims), data = raw.size() - off;
  uint64_t numel = 1;
  double promised = 1;
  for (int k = 0; k < dims; ++k) {
    const uint64_t s = be32(raw.data() + 4 + 4 * k);
    shape.push_back(static_cast<int64_t>(s));
    numel = s == 0 || numel <= data / s ? numel * s : data + 1;
    promised *= static_cast<double>(s);
  }
  if (numel != data)
    throw Error("invalid IDX file '" + path + "': " + std::to_string(data) + " data bytes, header promises " +
                to_text(promised));
  return {raw.begin() + off, raw.end()};
}

Dataset parse_fashion_mnist(std::span<const unsigned char> images, std::span<const unsigned char> labels,
                            const std::string& images_path, const std::string& labels_path) {
  std::vector<int64_t> ishape, lshape;
  const auto pixels = parse_idx(images, 3, ishape, images_path);
  const auto classes = parse_idx(labels, 1, lshape, labels_path);
  if (ishape[0] != lshape[0])
    throw Error("Fashion-MNIST images '" + images_path + "' (" + std::to_string(ishape[0]) + ") and labels '" +
                labels_path + "' (" + std::to_string(lshape[0]) + ") disagree on the count");
  if (ishape[1] != ishape[2] || ishape[1] == 0)
    throw Error("invalid IDX file '" + images_path + "': images of " + std::to_string(ishape[1]) + " x " +
                std::to_string(ishape[2]) + " pixels, expected square images");
  for (const unsigned char l : classes)
    if (l > 9) throw Error("invalid IDX file '" + labels_path + "': label " + std::to_string(l) + ", expected 0..9");
  Dataset ds;
  ds.name = "fashion-mnist";
  ds.num_classes = 10;
  ds.image_side = ishape[1];
  ds.x = Points(ishape[0], ishape[1] * ishape[2]);
  for (size_t k = 0; k < pixels.size(); ++k) ds.x.data[k] = pixels[k] / 127.5f - 1.0f;
  ds.labels.assign(classes.begin(), classes.end());
  return ds;
}

Dataset parse_digits_csv(std::string_view text, const std::string& path) {
  Dataset ds;
  ds.name = "digits";
  ds.num_classes = 10;
  ds.image_side = 8;
  std::vector<float> values;
  int64_t n = 0, line_no = 0;
  auto bad = [&](const std::string& what) {
    throw Error("invalid digits file '" + path + "': line " + std::to_string(line_no) + " " + what);
  };
  size_t start = 0;
  while (start < text.size()) {
    const size_t eol = std::min(text.find('\n', start), text.size());
    std::string line(text.substr(start, eol - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF
    start = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    std::vector<double> row;
    size_t pos = 0;
    while (pos <= line.size()) {
      const size_t comma = std::min(line.find(',', pos), line.size());
      const std::string field = line.substr(pos, comma - pos);
      char* end = nullptr;
      const double v = std::strtod(field.c_str(), &end);
      if (field.empty() || end != field.c_str() + field.size()) bad("has the field '" + field + "', expected a number");
      row.push_back(v);
      pos = comma + 1;
    }
    if (row.size() != 65) bad("has " + std::to_string(row.size()) + " fields, expected 65");
    for (int k = 0; k < 64; ++k) {
      if (!(row[k] >= 0 && row[k] <= 16)) bad("has the pixel " + to_text(row[k]) + ", expected 0..16");
      values.push_back(static_cast<float>(row[k] / 8.0 - 1.0));  // pixels 0..16 -> [-1, 1]
    }
    if (!(row[64] >= 0 && row[64] <= 9 && row[64] == std::floor(row[64]))) bad("has the label " + to_text(row[64]) + ", expected 0..9");
    ds.labels.push_back(static_cast<int64_t>(row[64]));
    ++n;
  }
  ds.x = Points(std::move(values), n, 64);
  return ds;
}

}  // namespace detail

void DatasetOptions::validate() const {
  require(n >= 0, "n", n, "0 (default) or a positive count");
  require(means.size() % 2 == 0, "means", std::to_string(means.size()) + " values", "K x 2 values (2-D means)");
  if (!weights.empty()) {
    require(weights.size() * 2 == means.size(), "weights", std::to_string(weights.size()) + " values",
            "one weight per mean (" + std::to_string(means.size() / 2) + ")");
    double s = 0;
    for (float w : weights) {
      require(std::isfinite(w) && w >= 0, "weights", w, "non-negative finite weights");
      s += w;
    }
    require(s > 0, "weights", "all zero", "a positive total");
  }
  require(std::isfinite(stddev) && stddev > 0, "stddev", stddev, "a positive standard deviation");
}

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"fashion-mnist", "digits",       "npy",     "8gaussians",
                                              "moons",         "checkerboard", "spirals", "gaussian-mixture"};
  return names;
}

std::string fashion_mnist_dir() { return env_or("OTGEN_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"); }
std::string digits_csv_path() {
  return env_or("OTGEN_DIGITS_CSV", "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz");
}

Dataset load_dataset(const std::string& name, const DatasetOptions& opt) {
  opt.validate();
  const bool real = name == "fashion-mnist" || name == "digits" || name == "npy";
  const int64_t n = opt.n > 0 ? opt.n : 1000;
  if (!real) require_memory("n", n, 16.0 * static_cast<double>(n), "n 2-D float32 points and int64 labels");
  Dataset ds;
  if (name == "fashion-mnist") ds = fashion_mnist(opt);
  else if (name == "digits") ds = digits();
  else if (name == "npy") ds = user_npy(opt);
  else if (name == "8gaussians" || name == "gaussian-mixture") ds = gaussian_mixture(name, opt, n);
  else if (name == "moons")
    ds = generate(name, n, 2, opt.seed, [](Rng& rng, float* p) {
      const int64_t c = rng.below(2);
      const double t = std::numbers::pi * rng.uniform();
      p[0] = static_cast<float>((c ? 1 - std::cos(t) : std::cos(t)) + 0.1 * rng.normal());
      p[1] = static_cast<float>((c ? 0.5 - std::sin(t) : std::sin(t)) + 0.1 * rng.normal());
      return c;
    });
  else if (name == "checkerboard")  // 8 black squares of side 1 on [-2, 2)^2, scaled by 2
    ds = generate(name, n, 0, opt.seed, [](Rng& rng, float* p) {
      const double x1 = 4 * rng.uniform() - 2;
      const double x2 = rng.uniform() - 2.0 * rng.below(2) + std::fmod(std::floor(x1) + 4, 2.0);
      p[0] = static_cast<float>(2 * x1);
      p[1] = static_cast<float>(2 * x2);
      return int64_t{0};
    });
  else if (name == "spirals")  // two interleaved spirals
    ds = generate(name, n, 2, opt.seed, [](Rng& rng, float* p) {
      const int64_t c = rng.below(2);
      const double r = std::sqrt(rng.uniform()) * 3 * std::numbers::pi;
      const double s = c ? -1.0 : 1.0;
      p[0] = static_cast<float>((s * -std::cos(r) * r + 0.5 * rng.uniform()) / 3);
      p[1] = static_cast<float>((s * std::sin(r) * r + 0.5 * rng.uniform()) / 3);
      return c;
    });
  else
    fail_argument("dataset", "'" + name + "'", "one of " + join_names());
  if (ds.num_classes == 0) ds.labels.clear();

  if (real) {
    std::vector<int64_t> order(ds.x.n);
    std::iota(order.begin(), order.end(), 0);
    if (opt.shuffle) {
      Rng rng(opt.seed, 0xDA7A);
      for (int64_t i = ds.x.n - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    }
    const int64_t keep = opt.n > 0 ? opt.n : ds.x.n;
    require(keep <= ds.x.n, "n", keep, "at most the dataset's " + std::to_string(ds.x.n) + " points");
    if (opt.shuffle || keep < ds.x.n) {
      Points x(keep, ds.x.d);
      std::vector<int64_t> labels;
      for (int64_t r = 0; r < keep; ++r) {
        std::copy_n(ds.x.row(order[r]), ds.x.d, x.row(r));
        if (!ds.labels.empty()) labels.push_back(ds.labels[order[r]]);
      }
      ds.x = std::move(x);
      ds.labels = std::move(labels);
    }
  }
  return ds;
}

}  // namespace otgen
