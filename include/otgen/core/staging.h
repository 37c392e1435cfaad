// How every file otgen writes reaches its place: staged, then published.
//
// A file is written in full under a temporary name in its own folder, temporary_path(path) =
// "<path>.tmp.<pid>", then renamed over `path` (write_file_atomic in otgen/core/npy.h, PNGs, models). A
// reader never sees a half-written file and an old file stays intact until the new one is complete.
//
// Inside an OutputBatch (the CLI opens one around each command) the renames wait for commit(): a
// command that writes several files replaces all of them or none, so a failure on its third output
// leaves the old first and second outputs as they were. Commands whose files must appear while they
// run (checkpoints, caches read by child processes, a fit's periodic potential) call
// publish_as_written() first.
//
// Every temporary file is listed, from its creation to its rename, in a process-wide registry that
// remove_temporaries_signal_safe() empties (the CLI's SIGINT/SIGTERM handler, otgen/core/interrupt.h), and
// one left behind by a killed process (SIGKILL) is found by remove_stale_temporaries(path).
//
// Thread-safety: every function may be called from any thread; OutputBatch is one per process.
#pragma once

#include <string>

namespace otgen {

// "<path>.tmp.<pid>" (same folder: the rename stays on one file system).
std::string temporary_path(const std::string& path);

// Lists `tmp` for removal on interrupt (call before creating it) / takes it off the list.
void register_temporary(const std::string& tmp);
void forget_temporary(const std::string& tmp);

// Moves the complete temporary file `tmp` to `path`: now, or at the commit of the open OutputBatch.
// Throws otgen::Error naming `path` (and removes `tmp`) when the rename fails.
void publish(const std::string& tmp, const std::string& path);

// Removes `tmp` (a failed write) and takes it off the list; never throws.
void discard_temporary(const std::string& tmp) noexcept;

class OutputBatch {
 public:
  OutputBatch();                // opens the process's batch (otgen::Error if one is open)
  ~OutputBatch();               // without commit(): removes every staged file, the targets are untouched
  OutputBatch(const OutputBatch&) = delete;
  OutputBatch& operator=(const OutputBatch&) = delete;
  // Renames every staged file over its target, in the order they were written. Throws otgen::Error
  // naming the target whose rename failed (the ones before it are in place, the rest removed).
  void commit();
};

// Publishes the files written from now on at once, even inside an OutputBatch (files already staged
// still wait for the commit).
void publish_as_written();

// Removes "<path>.tmp.<pid>" files whose process no longer exists; returns how many it removed.
int remove_stale_temporaries(const std::string& path);

// Unlinks every listed temporary file. Async-signal-safe: for signal handlers only.
void remove_temporaries_signal_safe() noexcept;

}  // namespace otgen
