// Hostile sizes and files through the CLI (docs/RELIABILITY.md): each is refused before any work or
// allocation with exit code 2 and one line on stderr naming the argument (and, for sizes, the bytes
// needed); no output file is created.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "otgen/core/npy.h"
#include "test_util.h"

namespace otgen {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

// Exit 2, exactly one line, every fragment in it.
void expect_refusal(const test::CliResult& r, std::initializer_list<std::string> fragments) {
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  for (const auto& f : fragments) EXPECT_NE(r.out.find(f), std::string::npos) << "'" << f << "' not in: " << r.out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A version-1 .npy header (padded to 64 bytes) followed by `data_bytes` zero bytes.
std::string npy_bytes(const std::string& dict, size_t data_bytes) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + std::string(data_bytes, '\0');
}

struct Files {
  TempDir dir;
  Files() {
    write_npy(dir.file("y.npy"), test::gaussian_points(20, 3, 1));
    write_npy(dir.file("x.npy"), test::gaussian_points(20, 3, 2));
    const std::vector<double> g(20, 0.0);
    write_npy(dir.file("g.npy"), g, {20});
    std::vector<int64_t> l(20, 0);
    write_npy(dir.file("l.npy"), l, {20});
    l[7] = 1000000000000;
    write_npy(dir.file("l_huge.npy"), l, {20});
    l[7] = std::numeric_limits<int64_t>::max();
    write_npy(dir.file("l_max.npy"), l, {20});
    l[7] = -2;
    write_npy(dir.file("l_neg.npy"), l, {20});
    write_npy(dir.file("l_float.npy"), g, {20});
    // 193 bytes claiming (2^20, 2^20) float32: 2^40 elements.
    std::string big = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", 0);
    big.append(193 - big.size(), '\0');
    write_bytes(dir.file("claims_2_40.npy"), big);
    // 200000 one-dimensional points: a 200000^2 cost matrix (160 GB in float32).
    write_npy(dir.file("wide.npy"), test::gaussian_points(200000, 1, 3));
    write_npy(dir.file("wide2.npy"), test::gaussian_points(200000, 1, 4));
  }
  std::string operator()(const std::string& name) const { return dir.file(name); }
  bool made(const std::string& name) const { return fs::exists(dir.file(name)); }
};

TEST(CliLimits, NpyHeaderClaimingTwoToTheFortyElementsIsRefusedNamingFileAndSizes) {
  Files f;
  const std::string out = " --out " + f("out.npy");
  for (const std::string& cmd : {"ot exact --source " + f("claims_2_40.npy") + " --target " + f("y.npy") + out,
                                "sdot assign --data " + f("claims_2_40.npy") + " --potential " + f("g.npy") + " --n 5" + out,
                                "data export --dataset npy --data " + f("claims_2_40.npy") + out}) {
    SCOPED_TRACE(cmd);
    expect_refusal(run_cli(cmd),
                   {f("claims_2_40.npy"), "1099511627776 float32 elements (4398046511104 bytes)",
                    "the file holds 65 data bytes"});
    EXPECT_FALSE(f.made("out.npy"));
  }
}

TEST(CliLimits, RequestedSizesBeyondAvailableMemoryNameTheArgumentAndTheBytes) {
  Files f;
  expect_refusal(run_cli("sdot assign --data " + f("y.npy") + " --potential " + f("g.npy") + " --n 1000000000000 --out " +
                         f("idx.npy")),
                 {"invalid --n = 1000000000000", "need 28000000000000 bytes = 28.0 TB", "available"});
  expect_refusal(run_cli("sdot fit --data " + f("y.npy") + " --batch 1000000000000 --steps 1 --out " + f("g_out.npy")),
                 {"invalid --batch = 1000000000000", "need 44000000000000 bytes"});
  expect_refusal(run_cli("sdot check --data " + f("y.npy") + " --potential " + f("g.npy") + " --batch 1000000000000 --draws 1000000000000"),
                 {"invalid --batch = 1000000000000", "need 44000000000000 bytes"});
  expect_refusal(run_cli("data export --dataset moons --n 1000000000000 --out " + f("moons.npy")),
                 {"invalid --n = 1000000000000", "need 16000000000000 bytes"});
  expect_refusal(run_cli("wfr --target doublewell --sampler ula --particles 1000000000000 --steps 1 --out " + f("run")),
                 {"invalid --particles = 1000000000000", "need 48000000000000 bytes"});
  expect_refusal(run_cli("wfr --target gaussian --dim 1000000000 --sampler ula --steps 1 --out " + f("run")),
                 {"invalid --dim = 1000000000", "d x d covariance", "need 24000000000000000000 bytes"});
  expect_refusal(run_cli("wfr --target gaussian --dim 100000 --sampler ula --particles 2 --steps 1 --out " + f("run")),
                 {"invalid --dim = 100000", "need 240000000000 bytes"});
  expect_refusal(run_cli("ot exact --source " + f("wide.npy") + " --target " + f("wide2.npy") + " --out " + f("p.npy")),
                 {"invalid --source", "200000 points", "need 160000000000 bytes", "--solver jv"});
  expect_refusal(run_cli("ot exact --solver network-simplex --source " + f("wide.npy") + " --target " + f("wide2.npy") +
                         " --out " + f("p.npy")),
                 {"invalid --source", "need 2080000000000 bytes"});
  expect_refusal(run_cli("ot sinkhorn --mode dense --epsilon 1 --source " + f("wide.npy") + " --target " + f("wide2.npy")),
                 {"invalid --mode = dense", "200000 x 200000 float matrix", "need 160000000000 bytes"});
  // Floating-point text for an integer size is refused by the parser, naming the option.
  expect_refusal(run_cli("sdot assign --data " + f("y.npy") + " --potential " + f("g.npy") + " --n 1e12 --out " +
                         f("idx.npy")),
                 {"Could not convert: --n = 1e12"});
  for (const char* out : {"idx.npy", "g_out.npy", "moons.npy", "run", "p.npy"}) EXPECT_FALSE(f.made(out)) << out;
}

TEST(CliLimits, HostileLabelFilesAreRefusedNamingTheOption) {
  Files f;
  const std::string assign = "sdot assign --data " + f("y.npy") + " --potential " + f("g.npy") + " --n 5 --out " + f("i.npy");
  expect_refusal(run_cli(assign + " --labels " + f("l_huge.npy")),
                 {"invalid --labels", "largest label 1000000000000", "1000000000001 classes", "need 64000000000064 bytes"});
  expect_refusal(run_cli(assign + " --labels " + f("l_max.npy")), {"invalid --labels", "labels below 2^63 - 1"});
  expect_refusal(run_cli(assign + " --labels " + f("l_neg.npy")), {"invalid --labels", "= -2", "labels >= 0 (entry 7)"});
  expect_refusal(run_cli(assign + " --labels " + f("l_float.npy")), {"invalid --labels", "float64", "an integer array"});
  expect_refusal(run_cli("sdot assign --data " + f("y.npy") + " --potential " + f("g.npy") + " --noise " + f("x.npy") +
                         " --labels " + f("l.npy") + " --noise-labels " + f("l_huge.npy") + " --out " + f("i.npy")),
                 {"invalid --noise-labels", "1000000000001 classes"});
  expect_refusal(run_cli("sdot fit --data " + f("y.npy") + " --labels " + f("l_huge.npy") + " --steps 1 --out " + f("g_out.npy")),
                 {"invalid --labels", "1000000000001 classes"});
  expect_refusal(run_cli("ot couple --data " + f("y.npy") + " --noise " + f("x.npy") + " --labels " + f("l_huge.npy")),
                 {"invalid --labels", "1000000000001 classes"});
  expect_refusal(run_cli("data info --dataset npy --data " + f("y.npy") + " --labels " + f("l_huge.npy")),
                 {"invalid --labels", "1000000000001 classes"});
  EXPECT_FALSE(f.made("i.npy"));
  EXPECT_FALSE(f.made("g_out.npy"));
}

TEST(CliLimits, FilesThatAreNotNpyArraysOfTheRightKindAreRefusedNamingTheOption) {
  Files f;
  write_bytes(f("empty.npy"), "");
  write_bytes(f("text.npy"), "x,y\n1,2\n");
  write_bytes(f("short.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (20, 3), }", 200));
  write_bytes(f("b1.npy"), npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (20, 3), }", 60));
  write_bytes(f("c8.npy"), npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (20, 3), }", 480));
  write_bytes(f("fortran.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (20, 3), }", 240));
  write_bytes(f("cube.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 5), }", 80));
  write_bytes(f("noshape.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, }", 80));
  std::vector<float> nan(60, 0.0f);
  nan[31] = std::numeric_limits<float>::quiet_NaN();
  write_npy(f("nan.npy"), std::span<const float>(nan), {20, 3});
  fs::create_directories(f("folder.npy"));
  auto cmd = [&](const std::string& data) {
    return "sdot assign --data " + data + " --potential " + f("g.npy") + " --n 5 --out " + f("i.npy");
  };
  expect_refusal(run_cli(cmd(f("empty.npy"))), {"--data", f("empty.npy"), "bad magic string"});
  expect_refusal(run_cli(cmd(f("text.npy"))), {"--data", "bad magic string"});
  expect_refusal(run_cli(cmd("/dev/null")), {"--data", "/dev/null", "bad magic string"});
  expect_refusal(run_cli(cmd(f("folder.npy"))), {"--data", f("folder.npy")});
  expect_refusal(run_cli(cmd(f("missing.npy"))), {"--data", f("missing.npy"), "No such file"});
  expect_refusal(run_cli(cmd(f("short.npy"))), {"--data", "60 float32 elements (240 bytes), the file holds 200 data bytes"});
  expect_refusal(run_cli(cmd(f("b1.npy"))), {"--data", "dtype '|b1' is not supported", "a real number type"});
  expect_refusal(run_cli(cmd(f("c8.npy"))), {"--data", "dtype '<c8' is not supported"});
  expect_refusal(run_cli(cmd(f("fortran.npy"))), {"--data", "Fortran-ordered"});
  expect_refusal(run_cli(cmd(f("cube.npy"))), {"invalid --data", "shape (2, 2, 5)", "a 2-D (n, d) float array"});
  expect_refusal(run_cli(cmd(f("noshape.npy"))), {"--data", "no 'shape' entry"});
  expect_refusal(run_cli(cmd(f("nan.npy"))), {"--data", "NaN"});
  EXPECT_FALSE(f.made("i.npy"));
}

TEST(CliLimits, CorruptDatasetFilesAreRefusedNamingTheFile) {
  TempDir dir;
  // A digits CSV whose label is 1e30 (a float-to-integer overflow before), and an empty Fashion-MNIST.
  std::string row;
  for (int k = 0; k < 64; ++k) row += "1,";
  write_bytes(dir.file("digits.csv"), row + "1e30\n");
  const std::string cli = OTGEN_CLI_PATH;
  auto shell = [](const std::string& cmd) {
    test::CliResult res{-1, {}};
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) res.out.append(buf, got);
    const int status = pclose(p);
    res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return res;
  };
  expect_refusal(shell("OTGEN_DIGITS_CSV=" + dir.file("digits.csv") + " " + cli + " data info --dataset digits"),
                 {dir.file("digits.csv"), "line 1 has the label 1e+30, expected 0..9"});
  fs::create_directories(dir.file("fm"));
  write_bytes(dir.file("fm/train-images-idx3-ubyte.gz"), std::string("\0\0\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16));
  write_bytes(dir.file("fm/train-labels-idx1-ubyte.gz"), std::string("\0\0\x08\x01\0\0\0\0", 8));
  expect_refusal(shell("OTGEN_FASHION_MNIST_DIR=" + dir.file("fm") + " " + cli + " data info --dataset fashion-mnist"),
                 {dir.file("fm/train-images-idx3-ubyte.gz"), "0 data bytes, header promises 7.92282e+28"});
}

}  // namespace
}  // namespace otgen
