#include "weft/nn/tabulate.hpp"

#include <algorithm>
#include <map>
#include <iomanip>
#include <sstream>
#include <string_view>

#include <range/v3/algorithm/max.hpp>
#include <range/v3/view/transform.hpp>

namespace weft::nn::detail {

namespace {

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const auto& sh : shapes) {
    if (!s.empty()) s += ", ";
    s += sh.str();
  }
  return s.empty() ? "-" : s;
}

std::string count_str(std::int64_t n) {
  const double bytes = static_cast<double>(n) * 4;  // float32 and int32 are 4 bytes
  std::ostringstream os;
  os << n << " (";
  if (bytes < 1024) os << bytes << " B)";
  else if (bytes < 1024.0 * 1024) os << std::fixed << std::setprecision(1) << bytes / 1024 << " KB)";
  else os << std::fixed << std::setprecision(1) << bytes / (1024.0 * 1024) << " MB)";
  return os.str();
}

/// The row (index into log.calls) that owns a variable of the module at `module_path`: the deepest
/// call whose path is `module_path` or one of its ancestors. Variables that a module's core function
/// creates in child scopes of its own (MultiHeadDotProductAttention's query, key, value and out) are
/// not module calls: they belong to that module's row, so that every variable is counted once.
std::size_t owning_row(const CallLog& log, std::string_view module_path) {
  std::size_t best = 0, best_length = 0;
  for (std::size_t row = 0; row < log.calls.size(); ++row) {
    const std::string_view p = log.calls[row].path;
    const bool ancestor = p == "/" || (module_path.starts_with(p) &&
                                       (module_path.size() == p.size() || module_path[p.size()] == '/'));
    if (ancestor && p.size() > best_length) {  // a child called twice: its first row
      best = row;
      best_length = p.size();
    }
  }
  return best;
}

}  // namespace

std::string format_table(const CallLog& log, const Variables& variables) {
  // Elements per (row, collection), and per collection.
  std::map<std::pair<std::size_t, std::string>, std::int64_t> owned;
  std::map<std::string, std::int64_t> totals;
  for (const auto& [path, value] : variables.leaves()) {
    const auto first = path.find('/'), last = path.rfind('/');
    const std::string collection = path.substr(0, first);
    std::string module(1, '/');
    if (last > first) module += path.substr(first + 1, last - first - 1);
    owned[{owning_row(log, module), collection}] += value.size();
    totals[collection] += value.size();
  }
  const auto collections = variables.collections();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"path", "module", "inputs", "outputs"};
  header.insert(header.end(), collections.begin(), collections.end());
  rows.push_back(header);
  for (std::size_t r = 0; r < log.calls.size(); ++r) {
    const CallRecord& call = log.calls[r];
    std::vector<std::string> row = {call.path, call.type, shapes_str(call.inputs), shapes_str(call.outputs)};
    for (const auto& c : collections) {
      const auto it = owned.find({r, c});
      row.push_back(it == owned.end() ? "" : count_str(it->second));
    }
    rows.push_back(row);
  }
  std::vector<std::string> total = {"Total", "", "", ""};
  for (const auto& c : collections) total.push_back(count_str(totals[c]));
  rows.push_back(total);

  std::vector<std::size_t> widths(header.size(), 0);
  for (std::size_t col = 0; col < header.size(); ++col)
    widths[col] = ranges::max(rows | ranges::views::transform([col](const auto& r) { return r[col].size(); }));
  std::ostringstream os;
  auto rule = [&] {
    for (std::size_t col = 0; col < widths.size(); ++col) os << (col ? "-+-" : "") << std::string(widths[col], '-');
    os << '\n';
  };
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (r == 1 || r + 1 == rows.size()) rule();
    std::string line;
    for (std::size_t col = 0; col < widths.size(); ++col) {
      if (col) line += " | ";
      line += rows[r][col];
      line.append(widths[col] - rows[r][col].size(), ' ');
    }
    os << line.substr(0, line.find_last_not_of(' ') + 1) << '\n';
  }
  return os.str();
}

}  // namespace weft::nn::detail
