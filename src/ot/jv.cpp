// Jonker-Volgenant linear assignment (see jv.h). Phases, as in the 1987 paper:
//   1. column reduction: v_j = min_i C_ij, each column offered to its cheapest row;
//   2. reduction transfer for rows that won exactly one column;
//   3. augmenting row reduction (twice): free rows take their cheapest reduced column, displacing its
//      owner and lowering v_j by the gap to the second cheapest;
//   4. shortest augmenting paths (Dijkstra on reduced costs, stopping at the first free column) for
//      the rows still free, then a price update of the scanned columns.
// Costs are read as T (float or double); every reduced cost, distance and dual is double.
#include "ot/jv.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>

namespace otgen::detail {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

template <class T>
void augmenting_row_reduction(const T* cost, int64_t n, std::vector<int64_t>& free_rows, std::vector<int64_t>& x,
                              std::vector<int64_t>& y, std::vector<double>& v) {
  const int64_t nfree = static_cast<int64_t>(free_rows.size());
  int64_t current = 0, new_free = 0, rr_count = 0;
  while (current < nfree) {
    ++rr_count;
    const int64_t fi = free_rows[current++];
    const T* row = cost + fi * n;
    // The cheapest (j1, u1) and second cheapest (j2, u2) reduced costs of row fi.
    int64_t j1 = 0, j2 = -1;
    double u1 = static_cast<double>(row[0]) - v[0], u2 = kInf;
    for (int64_t j = 1; j < n; ++j) {
      const double c = static_cast<double>(row[j]) - v[j];
      if (c < u2) {
        if (c >= u1) {
          u2 = c, j2 = j;
        } else {
          u2 = u1, j2 = j1;
          u1 = c, j1 = j;
        }
      }
    }
    int64_t i0 = y[j1];
    const double v1_new = v[j1] - (u2 - u1);
    const bool lowers = v1_new < v[j1];
    // The bound rr_count < current * n (from the paper) stops cycling between tied rows.
    if (rr_count < current * n) {
      if (lowers) {
        v[j1] = v1_new;
      } else if (i0 >= 0 && j2 >= 0) {
        j1 = j2;
        i0 = y[j2];
      }
      if (i0 >= 0) {
        if (lowers)
          free_rows[--current] = i0;  // the displaced row is processed next
        else
          free_rows[new_free++] = i0;
      }
    } else if (i0 >= 0) {
      free_rows[new_free++] = i0;
    }
    if (i0 >= 0) x[i0] = -1;
    x[fi] = j1;
    y[j1] = fi;
  }
  free_rows.resize(static_cast<size_t>(new_free));
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
  // 1. Column reduction, row by row for contiguous reads; ties keep the lowest row.
  for (int64_t j = 0; j < n; ++j) v[j] = cost[j], y[j] = 0;
  for (int64_t i = 1; i < n; ++i) {
    const T* row = cost + i * n;
    for (int64_t j = 0; j < n; ++j)
      if (static_cast<double>(row[j]) < v[j]) v[j] = row[j], y[j] = i;
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
      v[j] -= mn;
    }
  }
  // 3. Augmenting row reduction, twice.
  for (int round = 0; round < 2 && !free_rows.empty(); ++round) augmenting_row_reduction(cost, n, free_rows, x, y, v);

  // 4. Shortest augmenting paths. cols[0, ready) are settled, [lo, hi) are at the current distance
  // `level` and waiting to be scanned, [hi, n) are still to do.
  std::vector<int64_t> cols(n), pred(n);
  std::vector<double> d(n);
  for (const int64_t fi : free_rows) {
    const T* frow = cost + fi * n;
    for (int64_t j = 0; j < n; ++j) {
      cols[j] = j;
      d[j] = static_cast<double>(frow[j]) - v[j];
      pred[j] = fi;
    }
    int64_t lo = 0, hi = 0, ready = 0, final_j = -1;
    double level = 0;
    while (final_j < 0) {
      if (lo == hi) {
        ready = lo;
        // Move every column at the minimum distance among the to-do ones into [lo, hi).
        hi = lo + 1;
        level = d[cols[lo]];
        for (int64_t k = hi; k < n; ++k) {
          const int64_t j = cols[k];
          if (d[j] <= level) {
            if (d[j] < level) {
              hi = lo;
              level = d[j];
            }
            cols[k] = cols[hi];
            cols[hi++] = j;
          }
        }
        for (int64_t k = lo; k < hi; ++k)
          if (y[cols[k]] < 0) {
            final_j = cols[k];
            break;
          }
      }
      // Scan the columns at the current level: relax the to-do columns through their owners.
      while (final_j < 0 && lo != hi) {
        const int64_t j = cols[lo++];
        const int64_t i = y[j];
        const T* row = cost + i * n;
        const double h = static_cast<double>(row[j]) - v[j] - level;
        for (int64_t k = hi; k < n; ++k) {
          const int64_t jj = cols[k];
          const double c = static_cast<double>(row[jj]) - v[jj] - h;
          if (c < d[jj]) {
            d[jj] = c;
            pred[jj] = i;
            if (c == level) {
              if (y[jj] < 0) {
                final_j = jj;
                break;
              }
              cols[k] = cols[hi];
              cols[hi++] = jj;
            }
          }
        }
      }
    }
    // Price update of the settled columns, then flip the path.
    for (int64_t k = 0; k < ready; ++k) {
      const int64_t j = cols[k];
      v[j] += d[j] - level;
    }
    int64_t j = final_j, i;
    do {
      i = pred[j];
      y[j] = i;
      std::swap(j, x[i]);
    } while (i != fi);
  }
  return x;
}

template std::vector<int64_t> jonker_volgenant<float>(const float*, int64_t);
template std::vector<int64_t> jonker_volgenant<double>(const double*, int64_t);

}  // namespace otgen::detail
