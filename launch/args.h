#pragma once
// The argument walk of the standalone commands (tokenize, plan): "--key=value", "--key value" and
// bare flags, with one place for the splitting and for the "needs a value" error.

#include <cstddef>
#include <string>
#include <vector>

#include "base/errors.h"

namespace shardtune::launch {

// One argument as a command sees it. `key`: the argument without an inline "=value" (only
// "--key=value" is split); `raw`: the argument as given; value(): the inline value, else the next
// argument (consumed), else a UserError "<who><key> needs a value".
class Arg {
 public:
  Arg(const std::vector<std::string>& args, std::size_t& i, const std::string& who)
      : raw(args[i]), key(raw), args_(args), i_(i), who_(who) {
    const auto eq = raw.find('=');
    inline_ = raw.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_) {
      value_ = raw.substr(eq + 1);
      key = raw.substr(0, eq);
    }
  }
  std::string value() const {
    if (inline_) return value_;
    require(i_ + 1 < args_.size(), who_ + key + " needs a value");
    return args_[++i_];
  }

  const std::string raw;
  std::string key;

 private:
  const std::vector<std::string>& args_;
  std::size_t& i_;
  const std::string& who_;
  bool inline_ = false;
  std::string value_;
};

// Calls visit(Arg) for every argument, in order.
template <class Visit>
void for_each_arg(const std::vector<std::string>& args, const std::string& who, Visit&& visit) {
  for (std::size_t i = 0; i < args.size(); ++i) visit(Arg(args, i, who));
}

}  // namespace shardtune::launch
