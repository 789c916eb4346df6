#include "weft/core/scope.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "../format.hpp"
#include "weft/error.hpp"
#include "weft/ops.hpp"

namespace weft::core {

namespace {

using weft::detail::quoted;

/// Flax's _fold_in_static: SHA-1 over the names (UTF-8) and the counter (minimal big-endian bytes),
/// first 4 digest bytes as a big-endian uint32. `joined` holds the names with '/' between them (no
/// name contains one), so the bytes hashed are those of the names back to back.
std::uint32_t hash_path(std::string_view joined, std::uint32_t counter) {
  std::string data;
  data.reserve(joined.size() + 4);
  for (const char ch : joined)
    if (ch != '/') data += ch;
  bool leading = true;  // the counter's minimal big-endian bytes: no leading zero bytes
  for (int shift = 24; shift >= 0; shift -= 8) {
    const auto b = static_cast<unsigned char>((counter >> shift) & 0xffu);
    leading = leading && b == 0;
    if (!leading) data += static_cast<char>(b);
  }
  // OpenSSL's libcrypto: a supported SHA-1 (Boost's is an undocumented internal whose digest type
  // changed between releases, which would silently change every key).
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length < 4)
    throw Error("weft::core::Scope::make_rng: OpenSSL's SHA-1 failed (libcrypto could not hash the scope path)");
  return std::uint32_t{digest[0]} << 24 | std::uint32_t{digest[1]} << 16 | std::uint32_t{digest[2]} << 8 |
         std::uint32_t{digest[3]};  // the digest's first 4 bytes, big-endian
}

}  // namespace

std::string Mutable::str() const {
  std::string s = kind_ == Kind::only ? (names_.empty() ? "none" : "only {") : (names_.empty() ? "all" : "all except {");
  if (names_.empty()) return s;
  bool first = true;
  for (const auto& n : names_) {
    s += (first ? "" : ", ") + quoted(n);
    first = false;
  }
  return s + "}";
}

// ---------------------------------------------------------------- Variable

Variable::Variable(detail::ScopeRoot* root, std::string collection, std::string name, std::string scope_path,
                   std::string path)
    : root_(root), alive_(root->alive), collection_(std::move(collection)), name_(std::move(name)),
      scope_path_(std::move(scope_path)), path_(std::move(path)) {}

detail::ScopeRoot& Variable::live_root(const char* op) const {
  if (alive_.expired())
    throw Error(fmt::format("weft::core::Variable::{}: the handle of variable {} is used after the init/apply call "
                            "that made it returned; a handle is valid during its call only: read the variable from the "
                            "Variables the call returned (e.g. variables.at({}))",
                            op, quoted(path_), quoted(path_)));
  return *root_;
}

Tensor Variable::value() const { return live_root("value").variables.at(path_); }

bool Variable::is_mutable() const { return live_root("is_mutable").mutable_collections.contains(collection_); }

void Variable::set(Tensor value) const {
  detail::ScopeRoot& root = live_root("set");
  if (!root.mutable_collections.contains(collection_))
    throw Error(fmt::format("weft::core::Variable::set: Cannot update variable {} in {} because collection {} is "
                            "immutable; pass it as mutable to apply, e.g. nn::apply(model, variables, "
                            "nn::Mutable{{\"{}\"}}, x) or core::apply(f, {{\"{}\"}})(variables, x)",
                            quoted(name_), quoted(scope_path_), quoted(collection_), collection_, collection_));
  const Tensor& old = root.variables.at(path_);
  if (!(old.shape() == value.shape()) || old.dtype() != value.dtype())
    throw ShapeError(fmt::format("weft::core::Variable::set: variable {} has shape {} {} but the new value has shape "
                                 "{} {}; a variable keeps its shape and dtype",
                                 quoted(path_), old.shape().str(), weft::name(old.dtype()), value.shape().str(),
                                 weft::name(value.dtype())));
  root.variables = root.variables.set(path_, stop_gradient(value));
}

// ---------------------------------------------------------------- Scope

std::vector<std::string> Scope::path() const {
  std::vector<std::string> names;
  for (std::size_t start = 0; start < joined_.size();) {
    const std::size_t end = std::min(joined_.find('/', start), joined_.size());
    names.emplace_back(joined_.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

std::string Scope::path_str() const {
  std::string s(1, '/');
  s.append(joined_);
  return s;
}

std::string Scope::variable_path(std::string_view collection, std::string_view name) const {
  std::string p;
  p.reserve(collection.size() + joined_.size() + name.size() + 2);
  p.append(collection);
  if (!joined_.empty()) (p += '/') += joined_;
  return (p += '/') += name;
}

void Scope::reserve(std::string_view name, std::string_view collection) {
  if (name.empty() || name.find('/') != std::string_view::npos)
    throw ValueError(fmt::format("weft::core::Scope: invalid name {} in scope {}; names are non-empty and contain no '/'",
                                 quoted(name), quoted(path_str())));
  // Variables of different collections may share a name; a child scope shares it with nothing.
  const bool taken = any_reserved([&](const Reservation& r) {
    return r.name == name &&
           (collection == kChildCollection || r.collection == kChildCollection || r.collection == collection);
  });
  if (taken)
    throw ValueError(fmt::format("weft::core::Scope: Duplicate use of scope name: {} in scope {}; give each child and "
                                 "each variable of a collection its own name",
                                 quoted(name), quoted(path_str())));
  if (reserved_count_ < reserved_inline_.size()) {
    reserved_inline_[reserved_count_].name = name;
    reserved_inline_[reserved_count_].collection = collection;
  } else {
    reserved_overflow_.push_back({std::string(name), std::string(collection)});
  }
  ++reserved_count_;
}

std::string Scope::default_name(std::string_view prefix) const {
  for (int i = 0;; ++i) {
    std::string n = fmt::format("{}{}", prefix, i);
    if (!any_reserved([&](const Reservation& r) { return r.name == n; })) return n;
  }
}

Scope Scope::push(std::string_view name) {
  std::string joined;
  joined.reserve(joined_.size() + 1 + name.size());
  joined.append(joined_);
  if (!joined.empty()) joined += '/';
  joined.append(name);
  return Scope(root_, std::move(joined));
}

bool Scope::is_initializing() const { return root_->initializing; }
bool Scope::is_mutable(std::string_view collection) const { return root_->mutable_collections.contains(collection); }
bool Scope::has_rng(std::string_view stream) const { return root_->rngs.contains(stream); }

bool Scope::has_variable(std::string_view collection, std::string_view name) const {
  check_collection(collection, "has_variable");
  return root_->variables.contains(variable_path(collection, name));
}

Key Scope::make_rng(std::string_view stream) {
  std::string used(stream);
  if (!has_rng(used)) {
    if (has_rng("params")) {
      used = "params";
    } else {
      const std::string who = joined_.empty() ? "None" : std::string(name());
      throw Error(fmt::format("weft::core::Scope::make_rng: {} needs PRNG for {} (scope {}); pass a key for the "
                              "stream, e.g. nn::apply(model, variables, Rngs{{{{\"{}\", key}}}}, x) or "
                              "core::apply(f)(variables, Rngs{{{{\"{}\", key}}}}, x) (a \"params\" key also serves as "
                              "fallback)", who, quoted(stream), quoted(path_str()), stream, stream));
    }
  }
  std::uint32_t& counter = root_->rng_counters[{joined_, used}];
  ++counter;
  return fold_in(root_->rngs.find(used)->second, hash_path(joined_, counter));
}

Tensor Scope::param(std::string_view name, const Initializer& init_fn, const Shape& shape) {
  reserve(name, "params");
  if (const Tensor* existing = root_->variables.find("params", joined_, name)) {
    const Tensor& value = *existing;
    if (!(value.shape() == shape))
      throw ShapeError(fmt::format("weft::core::Scope::param: For parameter {} in {}, the given initializer is "
                                   "expected to generate shape {}, but the existing parameter it received has "
                                   "shape {}; the input shape probably differs from the one used at init: re-run "
                                   "init with the new shapes, or fix the input",
                                   quoted(name), quoted(path_str()), shape.str(), value.shape().str()));
    return value;
  }
  if (!is_mutable("params")) {
    if (!root_->variables.contains_collection("params"))
      throw KeyError(fmt::format("weft::core::Scope::param: Tried to access {} from collection \"params\" in {} but "
                                 "the collection is empty; pass the variables returned by init to apply",
                                 quoted(name), quoted(path_str())));
    throw KeyError(fmt::format("weft::core::Scope::param: Could not find parameter named {} in scope {}; the "
                               "variables given to apply were made for another model or path",
                               quoted(name), quoted(path_str())));
  }
  Tensor value = init_fn(make_rng("params"), shape);
  const std::string path = variable_path("params", name);
  if (!(value.shape() == shape))
    throw ShapeError(fmt::format("weft::core::Scope::param: the initializer of {} returned "
                                 "shape {} but shape {} was asked for",
                                 quoted(path), value.shape().str(), shape.str()));
  root_->variables = root_->variables.set(path, value);
  return value;
}

void Scope::check_collection(std::string_view collection, const char* op) const {
  // A '/' would put the variable in another collection or scope: "params/x" writes a parameter.
  if (collection.empty() || collection.find('/') != std::string_view::npos)
    throw ValueError(fmt::format("weft::core::Scope::{}: invalid collection name {} in scope {}; collection names are "
                                 "non-empty and contain no '/'",
                                 op, quoted(collection), quoted(path_str())));
}

Variable Scope::variable(std::string_view collection, std::string_view name, const std::function<Tensor()>& init_fn) {
  check_collection(collection, "variable");
  if (collection == "params")
    throw ValueError(fmt::format("weft::core::Scope::variable: use param() for the "
                                 "\"params\" collection (variable {} in {})", quoted(name), quoted(path_str())));
  reserve(name, collection);
  const std::string path = variable_path(collection, name);
  if (!root_->variables.contains(path)) {
    if (!is_mutable(collection) || !init_fn) {
      if (!root_->variables.contains_collection(collection))
        throw KeyError(fmt::format("weft::core::Scope::variable: Tried to access {} from collection {} in {} "
                                   "but the collection is empty; pass the variables returned by init (all "
                                   "collections, not only \"params\") to apply",
                                   quoted(name), quoted(collection), quoted(path_str())));
      throw KeyError(fmt::format("weft::core::Scope::variable: No variable named {} in collection {} in scope {}",
                                 quoted(name), quoted(collection), quoted(path_str())));
    }
    root_->variables = root_->variables.set(path, init_fn());
  }
  return Variable(root_, std::string(collection), std::string(name), path_str(), path);
}

bool Scope::sow(std::string_view collection, std::string_view name, const Tensor& value) {
  if (collection == "params")
    throw ValueError(fmt::format("weft::core::Scope::sow: cannot sow into the \"params\" collection (value {} "
                                 "in {}); sow into \"intermediates\" or another collection",
                                 quoted(name), quoted(path_str())));
  if (!is_mutable(collection)) return false;
  const std::string tuple = variable_path(collection, name);
  if (root_->variables.node_identity(tuple) == nullptr) reserve(name, collection);  // the first value
  std::size_t next = 0;
  while (root_->variables.contains(tuple + "/" + std::to_string(next))) ++next;
  root_->variables = root_->variables.set(tuple + "/" + std::to_string(next), value);
  return true;
}

namespace detail {

Scope make_root_scope(ScopeRoot& root) { return Scope(&root, std::string()); }

ScopeRoot& root_of(Scope& scope) noexcept { return *scope.root_; }

void check_apply_variables(const Variables& variables) {
  // Flax's check: a "params" entry directly inside the params collection.
  if (variables.node_identity("params/params") != nullptr)
    throw ValueError(
        "weft::core::apply: expected the variables passed to apply to have the structure {\"params\": ...}, but got "
        "one with an extra params layer, i.e. {\"params\": {\"params\": ...}}; pass the variables returned by init "
        "(or their collection(\"params\")) unchanged");
}

Variables mutable_variables(const ScopeRoot& root) {
  Variables out;
  for (const auto& c : root.variables.collections())
    if (root.mutable_collections.contains(c)) out = out.merge(root.variables.collection(c));
  return out;
}

}  // namespace detail

}  // namespace weft::core
