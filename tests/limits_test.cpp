// Size limits (otgen/core/memory.h) and the parsers of user files on hostile bytes (docs/RELIABILITY.md): .npy headers checked against the
// file before anything is allocated, IDX sizes whose product overflows, CSV fields that are not
// numbers, labels out of range. Every committed fuzzer input (fuzz/corpus/ and the crash regressions in
// tests/data/fuzz_regressions/) is replayed through the entry points of its fuzzer: each must give a
// result or otgen::Error, never a crash (the sanitizer build, make test-asan, checks for memory errors).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/parsers.h"
#include "otgen/core/memory.h"
#include "otgen/core/npy.h"
#include "otgen/core/points.h"
#include "test_util.h"

namespace otgen {
namespace {

namespace fs = std::filesystem;
using test::expect_error_contains;
using test::TempDir;

std::string npy_bytes(const std::string& dict, size_t data_bytes, unsigned char version = 1) {
  std::string header = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(version));
  out.push_back('\0');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  if (version != 1) out.append(2, '\0');
  return out + header + std::string(data_bytes, '\0');
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(MemoryLimits, AvailableMemoryIsPositiveAndRequestsAboveItAreRefusedWithTheBytes) {
  const uint64_t avail = available_memory();
  EXPECT_GT(avail, uint64_t{1} << 20);
  EXPECT_NO_THROW(require_memory("--n", 10, 1000.0, "ten rows"));
  const double twice = 2.0 * static_cast<double>(avail);
  expect_error_contains([&] { require_memory("--n", 7, twice, "seven rows"); }, "invalid --n = 7: expected a size that fits");
  expect_error_contains([&] { require_memory("--n", 7, 2e15, "seven rows"); }, "(seven rows need 2000000000000000 bytes = 2.0 PB, ");
  EXPECT_EQ(bytes_text(999), "999 bytes");
  EXPECT_EQ(bytes_text(28e12), "28.0 TB");
  EXPECT_EQ(bytes_text(1.5e4), "15.0 kB");
  EXPECT_DOUBLE_EQ(rows_bytes(1000000000000, 3, 16), 28e12);  // no int64 overflow either
  EXPECT_DOUBLE_EQ(rows_bytes(int64_t{1} << 62, int64_t{1} << 40, 0), 4.0 * 0x1p102);
}

TEST(NpyLimits, HeaderClaimingMoreElementsThanTheFileHoldsIsRefusedBeforeAllocating) {
  TempDir dir;
  // 2^40 float32 elements promised by a 193-byte file: refused from the file size, naming both.
  std::string b = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", 0);
  b.append(193 - b.size(), '\0');
  ASSERT_EQ(b.size(), 193u);
  write_bytes(dir.file("big.npy"), b);
  expect_error_contains([&] { read_npy(dir.file("big.npy")); }, "1099511627776 float32 elements (4398046511104 bytes)");
  expect_error_contains([&] { read_points_npy(dir.file("big.npy"), "--data"); }, "the file holds 65 data bytes");
  expect_error_contains([&] { read_points_npy(dir.file("big.npy"), "--data"); }, "--data");
  expect_error_contains([&] { read_points_npy(dir.file("big.npy"), "--data"); }, dir.file("big.npy"));
}

TEST(NpyLimits, ShapesAboveTwoToTheFortyElementsAndTruncatedBodiesAreRefused) {
  TempDir dir;
  write_bytes(dir.file("huge.npy"), npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627777,), }", 8));
  expect_error_contains([&] { read_vector_npy(dir.file("huge.npy"), "--potential"); }, "more than 2^40 elements");
  // A product that overflows int64 if multiplied naively.
  write_bytes(dir.file("wrap.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8));
  expect_error_contains([&] { read_npy(dir.file("wrap.npy")); }, "more than 2^40 elements");
  // One element short.
  write_bytes(dir.file("short.npy"), npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 16));
  expect_error_contains([&] { read_int64_npy(dir.file("short.npy"), "--labels"); }, "(24 bytes), the file holds 16");
  // Exactly enough, and trailing bytes beyond the promise (numpy ignores them too), are read.
  write_bytes(dir.file("ok.npy"), npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 24));
  EXPECT_EQ(read_int64_npy(dir.file("ok.npy"), "--labels").size(), 3u);
  write_bytes(dir.file("v2.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 20, 2));
  EXPECT_EQ(read_points_npy(dir.file("v2.npy"), "--data").n, 2);
}

TEST(NpyLimits, MalformedHeadersNameTheFile) {
  TempDir dir;
  const std::string f = dir.file("bad.npy");
  auto expect = [&](const std::string& bytes, const std::string& fragment) {
    write_bytes(f, bytes);
    expect_error_contains([&] { read_npy(f); }, fragment);
    expect_error_contains([&] { read_npy(f); }, f);
  };
  expect("", "bad magic string");
  expect(std::string("\x93NUMPY\x04\x00", 8), "unsupported format version 4");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': }", 0), "malformed shape");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", 0), "malformed shape");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': False, }", 0), "no 'shape' entry");
  expect(npy_bytes("{'descr': '>c8', 'fortran_order': False, 'shape': (1,), }", 8), "dtype '>c8' is not supported");
  expect(npy_bytes("{'descr': '<f3', 'fortran_order': False, 'shape': (1,), }", 4), "dtype '<f3' is not supported");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 4), "Fortran-ordered");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", 4), "malformed fortran_order");
  expect(std::string("\x93NUMPY\x01\x00\xff\x7f", 10), "truncated header");
}

TEST(Labels, NegativeHugeAndMaximalLabelsAreRefusedNamingTheArgument) {
  const std::vector<int64_t> ok{0, 3, 1};
  EXPECT_EQ(require_labels(ok, "labels"), 4);
  EXPECT_EQ(require_labels(std::vector<int64_t>{}, "labels"), 0);
  expect_error_contains([] { require_labels(std::vector<int64_t>{0, -1}, "--labels"); }, "invalid --labels = -1");
  expect_error_contains([] { require_labels(std::vector<int64_t>{1000000000000}, "--labels"); },
                        "1000000000001 classes");
  expect_error_contains([] { require_labels(std::vector<int64_t>{std::numeric_limits<int64_t>::max()}, "y"); },
                        "labels below 2^63 - 1");
}

std::vector<unsigned char> idx_bytes(int dims, const std::vector<uint32_t>& shape, size_t data_bytes, unsigned char fill = 1) {
  std::vector<unsigned char> b{0, 0, 8, static_cast<unsigned char>(dims)};
  for (uint32_t s : shape)
    for (int k = 3; k >= 0; --k) b.push_back(static_cast<unsigned char>(s >> (8 * k)));
  b.insert(b.end(), data_bytes, fill);
  return b;
}

TEST(IdxParser, SizesWhoseProductOverflowsAreComparedWithTheDataWithoutWrapping) {
  std::vector<int64_t> shape;
  // 2^32 - 1 cubed wraps int64; 2^32 x 2^32 x 1 wraps uint64 to 0 and would "match" an empty body.
  expect_error_contains([&] { detail::parse_idx(idx_bytes(3, {0xffffffffu, 0xffffffffu, 0xffffffffu}, 7), 3, shape, "a.idx"); },
                        "7 data bytes, header promises 7.92282e+28");
  expect_error_contains([&] { detail::parse_idx(idx_bytes(3, {65536, 65536, 65536}, 0), 3, shape, "a.idx"); },
                        "0 data bytes, header promises 2.81475e+14");
  const auto data = detail::parse_idx(idx_bytes(3, {2, 3, 3}, 18), 3, shape, "a.idx");
  EXPECT_EQ(data.size(), 18u);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3, 3}));
  expect_error_contains([&] { detail::parse_idx(idx_bytes(1, {5}, 4), 1, shape, "l.idx"); }, "4 data bytes, header promises 5");
  expect_error_contains([&] { detail::parse_idx(idx_bytes(3, {1, 1, 1}, 1), 1, shape, "l.idx"); }, "bad magic");
  expect_error_contains([&] { detail::parse_idx({}, 1, shape, "l.idx"); }, "bad magic");
}

TEST(IdxParser, FashionMnistRefusesLabelsAboveNineNonSquareImagesAndCountMismatches) {
  const auto images = idx_bytes(3, {2, 2, 2}, 8, 255), labels = idx_bytes(1, {2}, 2, 9);
  const Dataset ds = detail::parse_fashion_mnist(images, labels, "i.idx", "l.idx");
  EXPECT_EQ(ds.x.n, 2);
  EXPECT_EQ(ds.x.d, 4);
  EXPECT_EQ(ds.image_side, 2);
  EXPECT_FLOAT_EQ(ds.x.data[0], 1.0f);
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{9, 9}));
  expect_error_contains([&] { detail::parse_fashion_mnist(images, idx_bytes(1, {2}, 2, 10), "i.idx", "l.idx"); },
                        "'l.idx': label 10, expected 0..9");
  expect_error_contains([&] { detail::parse_fashion_mnist(idx_bytes(3, {2, 1, 4}, 8), labels, "i.idx", "l.idx"); },
                        "1 x 4 pixels, expected square images");
  expect_error_contains([&] { detail::parse_fashion_mnist(idx_bytes(3, {2, 0, 0}, 0), labels, "i.idx", "l.idx"); },
                        "0 x 0 pixels");
  expect_error_contains([&] { detail::parse_fashion_mnist(images, idx_bytes(1, {3}, 3), "i.idx", "l.idx"); },
                        "disagree on the count");
}

std::string digits_row(const std::string& pixel, const std::string& label) {
  std::string s;
  for (int k = 0; k < 64; ++k) s += (k ? "," : "") + (k == 5 ? pixel : std::string("3"));
  return s + "," + label;
}

TEST(DigitsCsv, ParsesRowsAndCrlfAndRefusesFieldsThatAreNotPixelsOrLabels) {
  const Dataset ds = detail::parse_digits_csv(digits_row("16", "7") + "\r\n" + digits_row("0", "0") + "\n\n", "d.csv");
  ASSERT_EQ(ds.x.n, 2);
  EXPECT_EQ(ds.x.d, 64);
  EXPECT_EQ(ds.labels, (std::vector<int64_t>{7, 0}));
  EXPECT_FLOAT_EQ(ds.x.row(0)[5], 1.0f);   // 16 / 8 - 1
  EXPECT_FLOAT_EQ(ds.x.row(1)[5], -1.0f);  // 0 / 8 - 1
  EXPECT_FLOAT_EQ(ds.x.row(1)[0], 3.0f / 8 - 1);
  auto bad = [](const std::string& text, const std::string& fragment) {
    expect_error_contains([&] { detail::parse_digits_csv(text, "d.csv"); }, fragment);
  };
  bad(digits_row("3", "1e30"), "line 1 has the label 1e+30, expected 0..9");  // was a float-to-int overflow
  bad(digits_row("3", "nan"), "has the label nan");
  bad(digits_row("3", "-1"), "has the label -1");
  bad(digits_row("3", "2.5"), "has the label 2.5");
  bad(digits_row("17", "1"), "has the pixel 17, expected 0..16");
  bad(digits_row("inf", "1"), "has the pixel inf");
  bad(digits_row("x", "1"), "has the field 'x', expected a number");
  bad(digits_row("", "1"), "has the field '', expected a number");
  bad(digits_row("3", "1") + "\n1,2,3", "line 2 has 3 fields, expected 65");
}

// Replays a fuzzer input through the entry points of its fuzzer (the same calls as fuzz/*.cpp).
void replay(const std::string& target, const std::string& bytes, const TempDir& dir) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  auto tolerate = [](auto fn) {
    try {
      fn();
    } catch (const Error&) {
    }
  };
  if (target == "fuzz_npy") {
    const std::string path = dir.file("replay.npy");
    write_bytes(path, bytes);
    tolerate([&] { read_npy(path); });
    tolerate([&] { read_points_npy(path, "--data"); });
    tolerate([&] { read_points_npy(path, "--data", true); });
    tolerate([&] { read_vector_npy(path, "--potential"); });
    tolerate([&] { read_int64_npy(path, "--labels"); });
    tolerate([&] { read_labels_npy(path, "--labels"); });
  } else if (target == "fuzz_idx") {
    if (bytes.empty()) return;
    std::span<const unsigned char> rest(data + 1, bytes.size() - 1);
    std::vector<int64_t> shape;
    const int mode = data[0] % 3;
    if (mode < 2) tolerate([&] { detail::parse_idx(rest, mode == 0 ? 1 : 3, shape, "fuzz.idx"); });
    else if (rest.size() >= 2) {
      const size_t cut = (rest[0] | (rest[1] << 8)) % (rest.size() - 1);
      const auto files = rest.subspan(2);
      tolerate([&] { detail::parse_fashion_mnist(files.first(cut), files.subspan(cut), "i.idx", "l.idx"); });
    }
  } else if (target == "fuzz_csv") {
    tolerate([&] { detail::parse_digits_csv(bytes, "fuzz.csv"); });
  } else if (target == "fuzz_json") {
    // The JSON target's model and options parsers live in otgen_flow (LibTorch); here only the
    // parser itself, which must not throw with allow_exceptions = false.
    EXPECT_NO_THROW(nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false));
  }
}

TEST(FuzzInputs, EverySeedAndEveryCrashRegressionGivesAResultOrAnError) {
  TempDir dir;
  int replayed = 0;
  for (const char* root : {"fuzz/corpus", "tests/data/fuzz_regressions"}) {
    const fs::path base = fs::path(OTGEN_SOURCE_DIR) / root;
    ASSERT_TRUE(fs::is_directory(base)) << base;
    for (const auto& target : fs::directory_iterator(base)) {
      if (!target.is_directory()) continue;
      for (const auto& input : fs::directory_iterator(target.path())) {
        std::ifstream in(input.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        SCOPED_TRACE(input.path().string());
        replay(target.path().filename().string(), bytes, dir);
        ++replayed;
      }
    }
  }
  EXPECT_GE(replayed, 20);
}

}  // namespace
}  // namespace otgen
