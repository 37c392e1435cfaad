// Staged outputs and interrupts (otgen/core/staging.h, otgen/core/interrupt.h): a batch of outputs replaces all
// its targets or none; temporary files never outlive a failure, a signal or (once cleared) a killed
// process.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/interrupt.h"
#include "otgen/core/npy.h"
#include "otgen/core/staging.h"
#include "test_util.h"

namespace otgen {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

int count_temporaries(const TempDir& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

TEST(Staging, ABatchPublishesEveryOutputAtTheCommitAndNothingBefore) {
  TempDir dir;
  const std::string a = dir.file("a.txt"), b = dir.file("b.txt");
  write_file_atomic(a, "old a");
  {
    OutputBatch batch;
    write_file_atomic(a, "new a");
    write_file_atomic(b, "new b");
    write_file_atomic(b, "newer b");  // written twice: one rename, the last content
    EXPECT_EQ(test::file_text(a), "old a");
    EXPECT_FALSE(fs::exists(b));
    EXPECT_EQ(count_temporaries(dir), 2);
    batch.commit();
  }
  EXPECT_EQ(test::file_text(a), "new a");
  EXPECT_EQ(test::file_text(b), "newer b");
  EXPECT_EQ(count_temporaries(dir), 0);
}

TEST(Staging, AnAbandonedBatchLeavesEveryOldFileAndNoTemporary) {
  TempDir dir;
  const std::string a = dir.file("a.txt"), b = dir.file("b.txt");
  write_file_atomic(a, "old a");
  try {
    OutputBatch batch;
    write_file_atomic(a, "new a");
    write_file_atomic(dir.file("missing/b.txt"), "x");  // the second output fails
    FAIL() << "the write into a missing folder did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing/b.txt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::file_text(a), "old a");
  EXPECT_FALSE(fs::exists(b));
  EXPECT_EQ(count_temporaries(dir), 0);
}

TEST(Staging, PublishAsWrittenPutsLaterFilesInPlaceAtOnce) {
  TempDir dir;
  const std::string a = dir.file("a.txt"), b = dir.file("b.txt");
  OutputBatch batch;
  write_file_atomic(a, "staged");
  publish_as_written();
  write_file_atomic(b, "now");
  EXPECT_EQ(test::file_text(b), "now");
  EXPECT_FALSE(fs::exists(a));
  batch.commit();
  EXPECT_EQ(test::file_text(a), "staged");
}

TEST(Staging, WithoutABatchAWriteIsInPlaceWhenItReturns) {
  TempDir dir;
  write_file_atomic(dir.file("a.txt"), "x");
  EXPECT_EQ(test::file_text(dir.file("a.txt")), "x");
  EXPECT_EQ(count_temporaries(dir), 0);
  { OutputBatch first; }
  OutputBatch second;  // a batch can be opened again once the last one closed
  EXPECT_THROW(OutputBatch third, Error);
}

TEST(Staging, StaleTemporariesOfDeadProcessesAreRemovedOthersKept) {
  TempDir dir;
  const std::string out = dir.file("g.npy");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);  // `child` is now a pid of no process (until the system reuses it)
  for (const std::string& tail : {std::to_string(child), std::to_string(::getpid()), std::string("1"),
                                  std::string("x12"), std::string("")})
    std::ofstream(out + ".tmp." + tail) << "left";
  std::ofstream(dir.file("other.npy.tmp." + std::to_string(child))) << "left";
  EXPECT_EQ(remove_stale_temporaries(out), 1);
  EXPECT_FALSE(fs::exists(out + ".tmp." + std::to_string(child)));
  EXPECT_TRUE(fs::exists(out + ".tmp." + std::to_string(::getpid())));  // ours: maybe being written
  EXPECT_TRUE(fs::exists(out + ".tmp.1"));                              // a live process
  EXPECT_TRUE(fs::exists(out + ".tmp.x12"));                            // not our naming
  EXPECT_TRUE(fs::exists(dir.file("other.npy.tmp." + std::to_string(child))));  // another output
}

TEST(Staging, TheSignalSafeSweepRemovesListedTemporariesOnly) {
  TempDir dir;
  const std::string listed = dir.file("a.tmp.1"), forgotten = dir.file("b.tmp.1");
  std::ofstream(listed) << "x";
  std::ofstream(forgotten) << "x";
  register_temporary(listed);
  register_temporary(forgotten);
  forget_temporary(forgotten);
  remove_temporaries_signal_safe();
  EXPECT_FALSE(fs::exists(listed));
  EXPECT_TRUE(fs::exists(forgotten));
  forget_temporary(listed);
}

// In a child process: handlers installed, a staged output, then `raises` signals. Returns the status.
int child_status(const std::string& target, int raises, bool in_scope) {
  const pid_t child = ::fork();
  if (child == 0) {
    install_interrupt_handlers();
    int code = 0;
    {
      OutputBatch batch;
      write_file_atomic(target, "staged");
      std::optional<InterruptScope> scope;
      if (in_scope) scope.emplace();
      for (int k = 0; k < raises; ++k) ::raise(SIGINT);
      code = interrupt_requested() ? 42 : 0;  // reached only while the scope holds the signal
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

TEST(Interrupt, ASignalRemovesStagedFilesAndExits130) {
  TempDir dir;
  const int status = child_status(dir.file("out.npy"), 1, false);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(fs::exists(dir.file("out.npy")));
  EXPECT_EQ(count_temporaries(dir), 0);
}

TEST(Interrupt, InsideAScopeTheFirstSignalIsAFlagAndTheSecondEndsTheProcess) {
  TempDir dir;
  int status = child_status(dir.file("out.npy"), 1, true);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42);  // polled: the loop saw the flag and went on to save
  status = child_status(dir.file("out2.npy"), 2, true);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_EQ(count_temporaries(dir), 0);
}

}  // namespace
}  // namespace otgen
