// Outputs of the CLI (docs/RELIABILITY.md, "Outputs"): every destination is checked before any work
// (writable, distinct from every input and from the other outputs), a command's outputs appear together
// or not at all, Ctrl-C leaves no partial file (and a fit saves its potential), temporary files of
// killed runs are cleared, and errors name the option the user typed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/npy.h"
#include "test_util.h"

namespace otgen {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

// Exit 2, one line, every fragment in it.
void expect_refusal(const test::CliResult& r, std::initializer_list<std::string> fragments) {
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  for (const auto& f : fragments) EXPECT_NE(r.out.find(f), std::string::npos) << "'" << f << "' not in: " << r.out;
}

struct Files {
  TempDir dir;
  std::string y, x, g;
  Files() : y(dir.file("y.npy")), x(dir.file("x.npy")), g(dir.file("g.npy")) {
    write_npy(y, test::gaussian_points(40, 2, 1));
    write_npy(x, test::gaussian_points(40, 2, 2));
    const std::vector<float> zeros(40, 0.0f);
    write_npy(g, zeros, {40});
  }
  std::string q(const std::string& name) const { return "'" + dir.file(name) + "'"; }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(dir.path)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
};

TEST(CliOutputs, AnOutputThatIsAnInputOrAnotherOutputIsRefusedAndTheInputKept) {
  Files f;
  const std::string y_bytes = test::file_text(f.y), g_bytes = test::file_text(f.g);
  const std::string Y = f.q("y.npy"), X = f.q("x.npy"), G = f.q("g.npy");
  struct Case {
    std::string args, option, other;
  } cases[] = {
      {"sdot fit --data " + Y + " --steps 5 --out " + Y, "--out", "--data"},
      {"sdot fit --data " + Y + " --steps 5 --out " + f.q("h.npy") + " --record " + f.q("h.npy.json"), "--out (its sidecar)", "--record"},
      {"sdot fit --data " + Y + " --steps 5 --out " + f.q("h.npy") + " --init " + G + " --record " + G, "--record", "--init"},
      {"sdot assign --data " + Y + " --potential " + G + " --n 5 --out " + G + " --allow-foreign-potential", "--out", "--potential"},
      {"sdot assign --data " + Y + " --potential " + G + " --n 5 --out " + f.q("i.npy") + " --noise-out " + f.q("i.npy") +
           " --allow-foreign-potential", "--out", "--noise-out"},
      {"ot exact --source " + Y + " --target " + X + " --out " + X, "--out", "--target"},
      {"ot sinkhorn --source " + Y + " --target " + X + " --out-f " + f.q("f.npy") + " --out-g " + f.q("f.npy"), "--out-f", "--out-g"},
      {"ot couple --coupling independent --data " + Y + " --noise " + X + " --out " + Y, "--out", "--data"},
      {"data export --dataset moons --n 10 --out " + f.q("m.npy") + " --labels-out " + f.q("m.npy"), "--out", "--labels-out"},
      {"data export --dataset npy --data " + Y + " --out " + Y, "--out", "--data"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    expect_refusal(run_cli(c.args), {"invalid " + c.option + " = ", "a path other than " + c.other});
  }
  EXPECT_EQ(test::file_text(f.y), y_bytes);
  EXPECT_EQ(test::file_text(f.g), g_bytes);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"g.npy", "x.npy", "y.npy"}));
}

TEST(CliOutputs, UnwritableDestinationsAreReportedBeforeAnyWorkAndNothingIsWritten) {
  Files f;
  const std::string Y = f.q("y.npy"), X = f.q("x.npy");
  struct Case {
    std::string args, option;
  } cases[] = {
      {"sdot fit --data " + Y + " --out " + f.q("h.npy") + " --record " + f.q("nodir/r.json"), "--record"},
      {"data export --dataset moons --n 10 --out " + f.q("m.npy") + " --labels-out /proc/l.npy", "--labels-out"},
      {"ot sinkhorn --source " + Y + " --target " + X + " --out-f " + f.q("f.npy") + " --out-g /proc/g.npy", "--out-g"},
      {"ot exact --source " + Y + " --target " + X + " --out " + f.q("nodir/p.npy"), "--out"},
      {"wfr --sampler ula --steps 5 --out /proc/none/w", "--out"},
      {"wfr --sampler ula --steps 5 --out " + Y, "--out"},
      {"sdot fit --data " + Y + " --out " + f.q(""), "--out"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    expect_refusal(run_cli(c.args), {"invalid " + c.option + " = "});
  }
  EXPECT_EQ(f.names(), (std::vector<std::string>{"g.npy", "x.npy", "y.npy"}));
}

TEST(CliOutputs, TemporaryFilesOfAKilledRunAreClearedByTheNextRun) {
  Files f;
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);  // a pid that no process has now
  const std::string stale = f.dir.file("i.npy.tmp." + std::to_string(child));
  std::ofstream(stale) << "half-written by a killed run";
  const auto r = run_cli("sdot assign --data " + f.q("y.npy") + " --potential " + f.q("g.npy") +
                         " --n 5 --allow-foreign-potential --out " + f.q("i.npy"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(read_int64_npy(f.dir.file("i.npy"), "i").size(), 5u);
}

TEST(CliOutputs, CtrlCStopsAFitAfterItsStepSavesThePotentialAndExits130) {
  Files f;
  write_npy(f.y, test::gaussian_points(3000, 16, 3));
  const std::string rec = f.dir.file("r.json"), out = f.dir.file("h.npy");
  // Start a fit that would run for minutes; once its first record exists, send SIGINT.
  const std::string script = std::string(OTGEN_CLI_PATH) + " sdot fit --data " + f.q("y.npy") + " --out '" + out +
                             "' --record '" + rec +
                             "' --steps 100000000 --target-chi2 0 --chi2-every 5 --threads 1 -q > /dev/null 2> " +
                             f.q("err") + " & p=$!; i=0; while [ ! -f '" + rec +
                             "' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; kill -INT $p; wait $p; echo $?";
  const auto r = test::run_shell(script);
  EXPECT_EQ(r.out, "130\n");
  const std::string err = test::file_text(f.dir.file("err"));
  EXPECT_NE(err.find("sdot fit: interrupted after"), std::string::npos) << err;
  EXPECT_NE(err.find("--init"), std::string::npos) << err;
  const auto doc = nlohmann::json::parse(test::file_text(rec));
  EXPECT_EQ(doc["result"]["termination"], "interrupted");
  EXPECT_EQ(doc["result"]["stopped_by"], "interrupted");
  const std::vector<double> g = read_vector_npy(out, "g");
  ASSERT_EQ(g.size(), 3000u);
  EXPECT_TRUE(std::all_of(g.begin(), g.end(), [](double v) { return std::isfinite(v); }));
  for (const auto& name : f.names()) EXPECT_EQ(name.find(".tmp."), std::string::npos) << name;
}

TEST(CliOutputs, LibraryFieldsInErrorsAreTheOptionsTheUserTyped) {
  Files f;
  const std::string Y = f.q("y.npy"), G = f.q("g.npy");
  struct Case {
    std::string args, start;
  } cases[] = {
      {"sdot fit --data " + Y + " --out " + f.q("h.npy") + " --batch 1", "invalid --batch = 1"},
      {"sdot fit --data " + Y + " --out " + f.q("h.npy") + " --chi2-every -3", "invalid --chi2-every = -3"},
      {"sdot fit --data " + Y + " --out " + f.q("h.npy") + " --warmup-steps -1", "invalid --warmup-steps = -1"},
      {"wfr --sampler ula --steps 5 --particles 1 --out " + f.q("w"), "invalid --particles = 1"},
      {"sdot assign --data " + Y + " --potential " + G + " --n -1 --out " + f.q("i.npy"), "invalid --n = -1"},
      {"sdot assign --data " + Y + " --potential " + G + " --n 0 --out " + f.q("i.npy"), "invalid --n = 0"},
      {"sdot assign --data " + Y + " --potential " + G + " --n 5 --noise-labels " + G + " --out " + f.q("i.npy"),
       "invalid --noise-labels = "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_cli(c.args);
    expect_refusal(r, {});
    EXPECT_EQ(r.out.rfind("otgen: " + c.start, 0), 0u) << r.out;
  }
}

TEST(CliOutputs, OptionsThatWouldBeIgnoredOrOverflowTheMessageAreRefusedPlainly) {
  Files f;
  const std::string Y = f.q("y.npy");
  std::vector<float> g5(5, 0.0f);
  write_npy(f.dir.file("g5.npy"), g5, {5});
  expect_refusal(run_cli("wfr --sampler ula --target doublewell --dim 3 --steps 5 --out " + f.q("w")),
                 {"invalid --dim = 3", "doublewell has a fixed dimension"});
  // A sampler option the chosen sampler does not read, named as typed (--ula-moves sets mala_moves).
  expect_refusal(run_cli("wfr --sampler ula --beta 2 --steps 5 --out " + f.q("w")),
                 {"invalid --beta = given: expected it only with the birth-death, wfr samplers (ula does not use it)"});
  expect_refusal(run_cli("wfr --sampler birth-death --ess-threshold 0.3 --steps 5 --out " + f.q("w")),
                 {"invalid --ess-threshold = given", "only with the wfr, smc-wfr, tempered-smc samplers (birth-death"});
  expect_refusal(run_cli("wfr --sampler smc-wfr --ula-moves --steps 5 --out " + f.q("w")),
                 {"invalid --ula-moves = given", "only with the tempered-smc samplers (smc-wfr does not"});
  EXPECT_EQ(run_cli("wfr --sampler wfr --beta 2 --ess-threshold 0.3 --resample stratified --bandwidth 0.2 --steps 3 "
                    "--particles 20 --quiet --out " + f.q("w-wfr")).exit_code, 0);
  expect_refusal(run_cli("sdot fit --data " + Y + " --out " + f.q("h.npy") + " --init " + f.q("g5.npy")),
                 {"invalid --init = length 5", "one value per data point (40)"});
  const auto r = run_cli("sdot fit --data " + Y + " --out " + f.q("h.npy") + " --threads -1");
  expect_refusal(r, {"--threads", "-1"});
  EXPECT_LT(r.out.size(), 120u) << r.out;  // not DBL_MAX in 300 digits
  // A Sinkhorn epsilon far below the cost scale: a non-finite plan is a failure, not a result.
  const auto s = run_cli("ot sinkhorn --source " + Y + " --target " + f.q("x.npy") + " --epsilon 1e-300 --max-iter 50 -q");
  EXPECT_EQ(s.exit_code, 2) << s.out;
  EXPECT_NE(s.out.find("otgen: ot sinkhorn: the plan's cost is not finite (epsilon 1e-300"), std::string::npos) << s.out;
  EXPECT_FALSE(fs::exists(f.dir.file("w")));
}

}  // namespace
}  // namespace otgen
