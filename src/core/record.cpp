#include "otgen/core/record.h"

#include <ctime>

#include "otgen/core/blas_threads.h"
#include "otgen/core/npy.h"
#include "otgen/core/version.h"

namespace otgen {

nlohmann::json run_record(const std::string& command, const Context& ctx) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {{"otgen_version", OTGEN_VERSION_STRING},
          {"compiler", __VERSION__},
          {"command", command},
          {"seed", ctx.seed},
          {"threads", ctx.resolved_threads()},
          {"blas_core", blas_core_name()},
          {"started_at", when}};
}

void write_json(const std::string& path, const nlohmann::json& doc) { write_file_atomic(path, doc.dump(2) + "\n"); }

}  // namespace otgen
