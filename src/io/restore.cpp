#include "weft/io/restore.hpp"

#include <string>
#include <vector>

#include "../format.hpp"

namespace weft::io {


namespace {

std::string list(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

}  // namespace

Variables restore(const Variables& target, const Variables& loaded) {
  std::vector<std::string> missing, unexpected, mismatched;
  const auto target_leaves = target.leaves(), loaded_leaves = loaded.leaves();
  // Both lists are sorted by path: one merge walk finds every difference.
  auto t = target_leaves.begin(), l = loaded_leaves.begin();
  while (t != target_leaves.end() || l != loaded_leaves.end()) {
    if (l == loaded_leaves.end() || (t != target_leaves.end() && t->first < l->first)) {
      missing.push_back(weft::detail::quoted((t++)->first));
    } else if (t == target_leaves.end() || l->first < t->first) {
      unexpected.push_back(weft::detail::quoted((l++)->first));
    } else {
      const Tensor &a = t->second, &b = l->second;
      if (a.shape() != b.shape())
        mismatched.push_back(weft::detail::quoted(t->first) + " has shape " + a.shape().str() + " in the target vs " + b.shape().str() + " loaded");
      if (a.dtype() != b.dtype())
        mismatched.push_back(weft::detail::quoted(t->first) + " has dtype " + std::string(name(a.dtype())) + " in the target vs " +
                             std::string(name(b.dtype())) + " loaded");
      ++t;
      ++l;
    }
  }
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return loaded;
  std::string msg = "weft::io::restore: the loaded variables do not fit the target (" + std::to_string(target.size()) +
                    " leaves in the target, " + std::to_string(loaded.size()) + " loaded):";
  if (!missing.empty()) msg += " missing from the loaded variables: " + list(missing) + ";";
  if (!unexpected.empty()) msg += " not in the target: " + list(unexpected) + ";";
  if (!mismatched.empty()) msg += std::string(" ") + list(mismatched) + ";";
  msg.back() = '.';
  msg += " Load a checkpoint written by the same model (and options), or build the target to match it.";
  throw DataError(msg);
}

}  // namespace weft::io
