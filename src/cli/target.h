// The target of the sdot commands (--data, --weights, --labels) and its potential, read whole on one
// process or, under mpirun, as this rank's contiguous row range (docs/dist.md): every rank reads only
// its rows, and every rank agrees on the outcome (a bad file on one rank ends all with its message).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/communicator.h"
#include "otgen/core/points.h"
#include "otgen/ot/semidiscrete.h"

namespace otgen::cli {

struct Target {
  std::string data, weights, labels;
  Points y;                  // this rank's rows [rows.begin, rows.end) of `total`
  std::vector<double> b;
  std::vector<int64_t> l;
  int64_t total = 0;
  RowRange rows;
  void load(const Communicator& comm);
  // The (total,) potential at `path` (named `argument` in errors), this rank's rows, as float.
  std::vector<float> potential(const std::string& path, const std::string& argument, const Communicator& comm) const;
  // The sidecar document of the whole target (otgen/ot/potential_meta.h). Sharded: collective; rank 0
  // hashes --data in row chunks (never holding it all) and gets the document, the others get null.
  nlohmann::json meta(double epsilon, SdotCost cost, double class_penalty, const Communicator& comm) const;
  // The semidiscrete problem of this rank's rows under `cost` and `class_penalty` (views into this Target).
  SdotProblem problem(SdotCost cost, double class_penalty) const { return {y, b, l, cost, class_penalty}; }
};

}  // namespace otgen::cli
