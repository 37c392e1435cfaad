// Jonker-Volgenant linear assignment (see jv.h). Phases, after the 1987 paper:
//   1. row then column reduction: v_j = min_i (C_ij - min_k C_ik), each column offered to its
//      cheapest row;
//   2. reduction transfer for rows that won exactly one column;
//   3. shortest augmenting paths (Dijkstra on reduced costs, stopping at the first free column) for
//      the rows still free, then a price update of the settled columns.
// Costs are read as T (float or double); every reduced cost, distance and dual is double.
// No FP traps are used; this lets GCC vectorise the min reductions below.
#pragma GCC optimize("no-trapping-math")

#include "ot/jv.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>

namespace otgen::detail {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

template <class T>
double row_min(const T* row, int64_t n) {
  double mn = kInf;
#pragma omp simd reduction(min : mn)
  for (int64_t j = 0; j < n; ++j) mn = std::min(mn, static_cast<double>(row[j]));
  return mn;
}

// The first j with p[j] == value (which occurs), testing blocks of 16 with a vectorised any-equal.
int64_t first_equal(const double* p, int64_t n, double value) {
  int64_t j0 = 0;
  for (; j0 + 16 <= n; j0 += 16) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t j = j0; j < j0 + 16; ++j) hit |= p[j] == value;
    if (hit) break;
  }
  for (int64_t j = j0; j < n; ++j)
    if (p[j] == value) return j;
  return n - 1;  // unreachable for a value taken from p
}

// Dijkstra on reduced costs from free row fi, one column per step, until a free column is reached;
// then the prices of the settled columns are updated and the path is flipped. Each step is two
// contiguous, vectorised sweeps over the row (relax, then find the minimum): dm[j] holds the tentative
// distance of unsettled columns (always finite) and +inf for settled ones, so the sweeps need no index
// lists.
template <class T>
void augment(const T* cost, int64_t n, int64_t fi, std::vector<int64_t>& x, std::vector<int64_t>& y,
             std::vector<double>& v, std::vector<double>& dm, std::vector<int64_t>& pred,
             std::vector<double>& dist, std::vector<int64_t>& settled) {
  double* dmp = dm.data();
  int64_t* pp = pred.data();
  const double* vp = v.data();
  {
    const T* row = cost + fi * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      dmp[j] = static_cast<double>(row[j]) - vp[j];
      pp[j] = fi;
    }
  }
  settled.clear();
  int64_t final_j = -1;
  double level = 0;
  for (;;) {
    const double mn = row_min(dmp, n);
    // The first column at the minimum (a free one among ties is found by the next steps anyway: it
    // keeps the same distance).
    const int64_t jmin = first_equal(dmp, n, mn);
    level = mn;
    if (y[jmin] < 0) {
      final_j = jmin;
      break;
    }
    dist[jmin] = mn;
    dmp[jmin] = kInf;
    settled.push_back(jmin);
    const int64_t i = y[jmin];
    const T* row = cost + i * n;
    const double h = static_cast<double>(row[jmin]) - vp[jmin] - mn;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const double c = static_cast<double>(row[j]) - vp[j] - h;
      const bool better = c < dmp[j] && dmp[j] != kInf;  // settled columns stay settled
      dmp[j] = better ? c : dmp[j];
      pp[j] = better ? i : pp[j];
    }
  }
  for (const int64_t j : settled) v[j] += dist[j] - level;
  int64_t j = final_j, i;
  do {
    i = pred[j];
    y[j] = i;
    std::swap(j, x[i]);
  } while (i != fi);
}

}  // namespace

template <class T>
std::vector<int64_t> jonker_volgenant(const T* cost, int64_t n) {
  std::vector<int64_t> x(n, -1), y(n, -1);
  if (n == 1) {
    x[0] = 0;
    return x;
  }
  std::vector<double> v(n);
  // 1. Row then column reduction: u_i = min_j C_ij, v_j = min_i (C_ij - u_i), column j offered to its
  // argmin row (ties: lowest row). The row pass evens out rows of different scales: without it a row
  // that is cheap everywhere wins most columns and leaves most rows free. Every assigned pair then has
  // the smallest reduced cost C_ij - v_j of its row, the invariant the later phases need.
  std::vector<double> u(n);
  for (int64_t i = 0; i < n; ++i) u[i] = row_min(cost + i * n, n);
  for (int64_t j = 0; j < n; ++j) v[j] = static_cast<double>(cost[j]) - u[0], y[j] = 0;
  for (int64_t i = 1; i < n; ++i) {
    const T* row = cost + i * n;
    const double ui = u[i];
    for (int64_t j = 0; j < n; ++j) {
      const double c = static_cast<double>(row[j]) - ui;
      if (c < v[j]) v[j] = c, y[j] = i;
    }
  }
  std::vector<char> unique(n, 1);
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t i = y[j];
    if (x[i] < 0) {
      x[i] = j;
    } else {
      unique[i] = 0;
      y[j] = -1;
    }
  }
  // 2. Reduction transfer.
  std::vector<int64_t> free_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] < 0) {
      free_rows.push_back(i);
    } else if (unique[i]) {
      const int64_t j = x[i];
      const T* row = cost + i * n;
      double mn = kInf;
      for (int64_t j2 = 0; j2 < n; ++j2)
        if (j2 != j) mn = std::min(mn, static_cast<double>(row[j2]) - v[j2]);
      v[j] = static_cast<double>(row[j]) - mn;  // C_ij - v_j becomes the row's second smallest
    }
  }
  // 3. Shortest augmenting paths for the rows still free. (The paper's augmenting row reduction is
  // left out: on noise-to-data batches it bounced rows between columns for longer than the paths
  // it saves.)
  std::vector<double> dm(n), dist(n);
  std::vector<int64_t> pred(n), settled;
  settled.reserve(static_cast<size_t>(n));
  for (const int64_t fi : free_rows) augment(cost, n, fi, x, y, v, dm, pred, dist, settled);
  return x;
}

template std::vector<int64_t> jonker_volgenant<float>(const float*, int64_t);
template std::vector<int64_t> jonker_volgenant<double>(const double*, int64_t);

}  // namespace otgen::detail
