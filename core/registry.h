#pragma once
// A name -> factory table that plugins fill at static-initialisation time (the compute backends of
// core/backend.h, the device communicators of core/comm.h). Registering a name again replaces it.
#include <string>
#include <utility>
#include <vector>

namespace eggroll {

template <class Factory>
class Registry {
 public:
  void add(const std::string& name, Factory f) {
    for (auto& [n, g] : entries_)
      if (n == name) {
        g = std::move(f);
        return;
      }
    entries_.emplace_back(name, std::move(f));
  }
  const Factory* find(const std::string& name) const {
    for (const auto& [n, f] : entries_)
      if (n == name) return &f;
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.first);
    return out;
  }

 private:
  std::vector<std::pair<std::string, Factory>> entries_;
};

}  // namespace eggroll
