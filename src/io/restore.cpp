#include "weft/io/restore.hpp"

#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../format.hpp"

namespace weft::io {

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
        mismatched.push_back(fmt::format("{} has shape {} in the target vs {} loaded", weft::detail::quoted(t->first),
                                         a.shape().str(), b.shape().str()));
      if (a.dtype() != b.dtype())
        mismatched.push_back(fmt::format("{} has dtype {} in the target vs {} loaded", weft::detail::quoted(t->first),
                                         name(a.dtype()), name(b.dtype())));
      ++t;
      ++l;
    }
  }
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return loaded;
  std::string msg = fmt::format("weft::io::restore: the loaded variables do not fit the target ({} leaves in the "
                                "target, {} loaded):",
                                target.size(), loaded.size());
  const auto out = std::back_inserter(msg);
  if (!missing.empty()) fmt::format_to(out, " missing from the loaded variables: {};", fmt::join(missing, ", "));
  if (!unexpected.empty()) fmt::format_to(out, " not in the target: {};", fmt::join(unexpected, ", "));
  if (!mismatched.empty()) fmt::format_to(out, " {};", fmt::join(mismatched, ", "));
  msg.back() = '.';
  msg += " Load a checkpoint written by the same model (and options), or build the target to match it.";
  throw DataError(msg);
}

}  // namespace weft::io
