// One field list per options struct (torchtitan's per-component configs): a struct derives from
// FieldList<itself> and lists every field once, with its key and a doc line, in
//     template <typename Self, typename V> static void visit(Self& c, V& v) {
//       v("steps", c.steps, "optimizer steps");  ...
//     }
// Visitors walk that list through fields(v), on a const or a mutable struct: launch/ builds the
// Boost.Program_options table, the printed INI, the round trip and the hash from it; core/ the
// model JSON a checkpoint stores; io/ the checkpoint metadata. A new field is then one member and
// one line.
#pragma once

namespace shardtune::base {

template <typename Derived>
struct FieldList {
  // v(key, member, doc) for every field, in the list's order.
  template <typename V>
  void fields(V&& v) {
    Derived::visit(static_cast<Derived&>(*this), v);
  }
  template <typename V>
  void fields(V&& v) const {
    Derived::visit(static_cast<const Derived&>(*this), v);
  }
};

}  // namespace shardtune::base
