// Exact assignment and exact transport (otgen/ot/assignment.h): Jonker-Volgenant on the engine's score
// matrix, and LEMON's network simplex for the cross-check, rectangular and weighted problems.
#include "otgen/ot/assignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "ot/cost_matrix.h"
#include "ot/jv.h"
#include "ot/weights.h"
#include "otgen/core/error.h"
#include "otgen/core/memory.h"

#ifdef OTGEN_HAVE_LEMON
#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>
#endif

namespace otgen {

void AssignmentOptions::validate() const { scores.validate(); }

bool have_network_simplex() {
#ifdef OTGEN_HAVE_LEMON
  return true;
#else
  return false;
#endif
}

namespace {

template <class T>
void check_cost(std::span<const T> cost, int64_t n, int64_t m, const char* what = "cost") {
  require(n >= 1, "n", n, "at least 1 row");
  require(m >= 1, "m", m, "at least 1 column");
  require(static_cast<int64_t>(cost.size()) == n * m, what, "length " + std::to_string(cost.size()),
          "n * m = " + std::to_string(n * m));
  for (size_t k = 0; k < cost.size(); ++k)
    if (!std::isfinite(cost[k]))
      fail_argument(what, to_text(cost[k]) + " at row " + std::to_string(k / m) + ", column " + std::to_string(k % m),
                    "finite values");
}


template <class T>
AssignmentResult assignment_impl(std::span<const T> cost, int64_t n, const AssignmentOptions& opt) {
  opt.validate();
  check_cost(cost, n, n);
  AssignmentResult r;
  if (opt.solver == AssignmentSolver::JonkerVolgenant) {
    r.permutation = detail::jonker_volgenant(cost.data(), n);
    r.message = "Jonker-Volgenant, n = " + std::to_string(n);
  } else {
    std::vector<double> c(cost.begin(), cost.end());
    RectangularAssignment ra = solve_rectangular_assignment(c, n, n);
    r.permutation = std::move(ra.cols);
    r.message = "network simplex (LEMON), n = " + std::to_string(n);
  }
  r.cost = 0;
  for (int64_t i = 0; i < n; ++i) r.cost += static_cast<double>(cost[i * n + r.permutation[i]]);
  return r;
}

void check_points(PointsView x, PointsView y, bool same_n) {
  require(x.n >= 1, "x", "n = " + std::to_string(x.n), "at least one point");
  require(y.n >= 1, "y", "n = " + std::to_string(y.n), "at least one point");
  require(x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  if (same_n)
    require(x.n == y.n, "y", "n = " + std::to_string(y.n), "as many points as x, " + std::to_string(x.n));
  require_finite(x, "x");
  require_finite(y, "y");
}

#ifdef OTGEN_HAVE_LEMON
using Graph = lemon::SmartDigraph;
using Simplex = lemon::NetworkSimplex<Graph, int64_t, int64_t>;

// Integer costs: (C - min C) * K rounded, + 1 so every unit of flow costs at least 1, with K chosen so
// node potentials (sums of up to n + m costs) stay below 2^51.
std::vector<int64_t> integer_costs(std::span<const double> cost, int64_t n, int64_t m) {
  const auto [lo_it, hi_it] = std::minmax_element(cost.begin(), cost.end());
  const double lo = *lo_it, range = *hi_it - *lo_it;
  const double scale = range > 0 ? std::ldexp(1.0, 50) / (static_cast<double>(n + m) * range) : 1.0;
  std::vector<int64_t> c(cost.size());
  for (size_t k = 0; k < cost.size(); ++k) c[k] = std::llround((cost[k] - lo) * scale) + 1;
  return c;
}

// Largest-remainder rounding of weights w (sum 1) to integers summing to q exactly.
std::vector<int64_t> integer_supplies(const std::vector<double>& w, int64_t q) {
  std::vector<int64_t> s(w.size());
  std::vector<std::pair<double, size_t>> rem(w.size());
  int64_t total = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    const double v = w[k] * static_cast<double>(q);
    s[k] = static_cast<int64_t>(std::floor(v));
    rem[k] = {v - static_cast<double>(s[k]), k};
    total += s[k];
  }
  std::sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (size_t t = 0; total < q && t < rem.size(); ++t, ++total) ++s[rem[t].second];
  for (size_t t = 0; total > q && t < rem.size(); ++t)
    if (s[rem[rem.size() - 1 - t].second] > 0) --s[rem[rem.size() - 1 - t].second], --total;
  return s;
}

struct SimplexFlow {
  std::vector<int64_t> rows, cols, flow;  // arcs with positive flow, sorted by (row, col)
};

// Min-cost flow on the complete bipartite graph rows -> cols with "at least" supply constraints
// (LEMON's GEQ: out-flow of row i >= supply_rows[i], in-flow of column j <= demand_cols[j]); with equal
// totals these are equalities. Costs are positive, so no row sends more than it must. capacity <= 0
// means unbounded arcs.
SimplexFlow run_simplex(std::span<const double> cost, int64_t n, int64_t m, const std::vector<int64_t>& supply_rows,
                        const std::vector<int64_t>& demand_cols, int64_t capacity) {
  require(n * m < (int64_t{1} << 31), "n * m", n * m, "fewer than 2^31 arcs for the network simplex (LEMON's int ids)");
  Graph g;
  g.reserveNode(static_cast<int>(n + m));
  g.reserveArc(static_cast<int>(n * m));
  std::vector<Graph::Node> nodes(n + m);
  for (int64_t k = 0; k < n + m; ++k) nodes[k] = g.addNode();
  const std::vector<int64_t> c = integer_costs(cost, n, m);
  Graph::ArcMap<int64_t> cost_map(g), cap_map(g);
  Graph::NodeMap<int64_t> supply(g);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      const Graph::Arc a = g.addArc(nodes[i], nodes[n + j]);
      cost_map[a] = c[i * m + j];
      if (capacity > 0) cap_map[a] = capacity;
    }
  for (int64_t i = 0; i < n; ++i) supply[nodes[i]] = supply_rows[i];
  for (int64_t j = 0; j < m; ++j) supply[nodes[n + j]] = -demand_cols[j];
  Simplex ns(g);
  ns.costMap(cost_map).supplyMap(supply).supplyType(Simplex::GEQ);
  if (capacity > 0) ns.upperMap(cap_map);
  const Simplex::ProblemType status = ns.run();
  if (status != Simplex::OPTIMAL)
    throw Error(std::string("network simplex: the problem is ") + (status == Simplex::INFEASIBLE ? "infeasible" : "unbounded"));
  SimplexFlow out;
  for (int64_t i = 0; i < n; ++i)
    for (Graph::OutArcIt a(g, nodes[i]); a != lemon::INVALID; ++a) {
      const int64_t f = ns.flow(a);
      if (f > 0) {
        out.rows.push_back(i);
        out.cols.push_back(g.id(g.target(a)) - n);
        out.flow.push_back(f);
      }
    }
  // Arcs of a SmartDigraph node are listed newest first: sort by (row, col).
  std::vector<size_t> order(out.rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return out.rows[a] < out.rows[b] || (out.rows[a] == out.rows[b] && out.cols[a] < out.cols[b]);
  });
  SimplexFlow sorted;
  for (size_t k : order) {
    sorted.rows.push_back(out.rows[k]);
    sorted.cols.push_back(out.cols[k]);
    sorted.flow.push_back(out.flow[k]);
  }
  return sorted;
}
#else
[[noreturn]] void no_lemon() {
  throw Error("the network simplex needs LEMON (liblemon-dev); this build has none");
}
#endif

}  // namespace

AssignmentResult solve_assignment(std::span<const float> cost, int64_t n, const AssignmentOptions& opt) {
  return assignment_impl(cost, n, opt);
}
AssignmentResult solve_assignment(std::span<const double> cost, int64_t n, const AssignmentOptions& opt) {
  return assignment_impl(cost, n, opt);
}

double exact_assignment_bytes(int64_t n, AssignmentSolver solver) {
  const double n2 = static_cast<double>(n) * static_cast<double>(n);
  return (solver == AssignmentSolver::JonkerVolgenant ? 4.0 : 52.0) * n2;
}

AssignmentResult exact_assignment(PointsView x, PointsView y, const Context& ctx, const AssignmentOptions& opt) {
  opt.validate();
  ctx.validate();
  check_points(x, y, true);
  require_memory("x", std::to_string(x.n) + " points", exact_assignment_bytes(x.n, opt.solver),
                 "the n x n cost matrix of the exact assignment");
  AssignmentResult r;
  if (opt.solver == AssignmentSolver::JonkerVolgenant) {
    // -<x_i - xm, y_j - ym>: the half squared cost minus row and column constants (the same optimal
    // permutation). Centring both batches removes the large shared components (the mean image), which
    // keeps the float entries precise and stops a few rows from being the cheapest for every column.
    const Points xc = detail::centred(x), yc = detail::centred(y);
    std::vector<float> c = detail::neg_inner_products(xc, yc, ctx, opt.scores);
    r.permutation = detail::jonker_volgenant(c.data(), x.n);
    r.message = "Jonker-Volgenant, n = " + std::to_string(x.n);
  } else {
    const std::vector<double> c = detail::half_sqeuclidean_matrix(x, y, ctx, opt.scores);
    r = solve_assignment(std::span<const double>(c), x.n, opt);
  }
  r.cost = matching_cost(x, y, r.permutation);
  return r;
}

RectangularAssignment solve_rectangular_assignment(std::span<const double> cost, int64_t n, int64_t m) {
  check_cost(cost, n, m);
#ifdef OTGEN_HAVE_LEMON
  RectangularAssignment r;
  if (n <= m) {
    const SimplexFlow f = run_simplex(cost, n, m, std::vector<int64_t>(n, 1), std::vector<int64_t>(m, 1), 1);
    r.rows = f.rows;
    r.cols = f.cols;
  } else {
    std::vector<double> t(cost.size());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) t[j * n + i] = cost[i * m + j];
    const SimplexFlow f = run_simplex(t, m, n, std::vector<int64_t>(m, 1), std::vector<int64_t>(n, 1), 1);
    std::vector<std::pair<int64_t, int64_t>> p;
    for (size_t k = 0; k < f.rows.size(); ++k) p.emplace_back(f.cols[k], f.rows[k]);
    std::sort(p.begin(), p.end());
    for (auto [i, j] : p) r.rows.push_back(i), r.cols.push_back(j);
  }
  if (static_cast<int64_t>(r.rows.size()) != std::min(n, m))
    throw Error("network simplex: internal error, " + std::to_string(r.rows.size()) + " pairs for min(n, m) = " +
                std::to_string(std::min(n, m)));
  for (size_t k = 0; k < r.rows.size(); ++k) r.cost += cost[r.rows[k] * m + r.cols[k]];
  r.message = "network simplex (LEMON), " + std::to_string(n) + " x " + std::to_string(m);
  return r;
#else
  no_lemon();
#endif
}

RectangularAssignment exact_rectangular_assignment(PointsView x, PointsView y, const Context& ctx) {
  ctx.validate();
  check_points(x, y, false);
  const std::vector<double> c = detail::half_sqeuclidean_matrix(x, y, ctx, {});
  RectangularAssignment r = solve_rectangular_assignment(c, x.n, y.n);
  // Recompute the cost from the points in double.
  r.cost = 0;
  for (size_t k = 0; k < r.rows.size(); ++k) {
    const float* a = x.row(r.rows[k]);
    const float* b = y.row(r.cols[k]);
    double s = 0;
    for (int64_t t = 0; t < x.d; ++t) s += (static_cast<double>(a[t]) - b[t]) * (static_cast<double>(a[t]) - b[t]);
    r.cost += 0.5 * s;
  }
  return r;
}

TransportPlan exact_transport(std::span<const double> cost, int64_t n, int64_t m, std::span<const double> a,
                              std::span<const double> b) {
  check_cost(cost, n, m);
  const std::vector<double> wa = checked_weights(a, n, "a"), wb = checked_weights(b, m, "b");
#ifdef OTGEN_HAVE_LEMON
  const int64_t q = int64_t{1} << 40;
  const SimplexFlow f = run_simplex(cost, n, m, integer_supplies(wa, q), integer_supplies(wb, q), 0);
  TransportPlan p;
  p.n = n, p.m = m;
  p.rows = f.rows;
  p.cols = f.cols;
  p.mass.resize(f.flow.size());
  for (size_t k = 0; k < f.flow.size(); ++k) {
    p.mass[k] = static_cast<double>(f.flow[k]) / static_cast<double>(q);
    p.cost += p.mass[k] * cost[p.rows[k] * m + p.cols[k]];
  }
  p.message = "network simplex (LEMON), " + std::to_string(n) + " x " + std::to_string(m) + ", " +
              std::to_string(p.mass.size()) + " nonzero entries";
  return p;
#else
  no_lemon();
#endif
}

TransportPlan exact_transport(PointsView x, PointsView y, std::span<const double> a, std::span<const double> b,
                              const Context& ctx) {
  ctx.validate();
  check_points(x, y, false);
  const std::vector<double> c = detail::half_sqeuclidean_matrix(x, y, ctx, {});
  return exact_transport(c, x.n, y.n, a, b);
}

double matching_cost(PointsView x, PointsView y, std::span<const int64_t> sigma) {
  require(static_cast<int64_t>(sigma.size()) == x.n, "sigma", "length " + std::to_string(sigma.size()),
          "the number of x points, " + std::to_string(x.n));
  require(x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  double total = 0;
  for (int64_t i = 0; i < x.n; ++i) {
    require(sigma[i] >= 0 && sigma[i] < y.n, "sigma", sigma[i], "indices in [0, " + std::to_string(y.n) + ")");
    const float* a = x.row(i);
    const float* b = y.row(sigma[i]);
    double s = 0;
    for (int64_t t = 0; t < x.d; ++t) {
      const double u = static_cast<double>(a[t]) - b[t];
      s += u * u;
    }
    total += 0.5 * s;
  }
  return total;
}

}  // namespace otgen
