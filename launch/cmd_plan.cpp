// `shardtune plan` (see cmd_plan.h).
#include "launch/cmd_plan.h"

#include <sched.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/errors.h"
#include "core/plan.h"
#include "launch/agree.h"
#include "launch/args.h"
#include "launch/config.h"
#include "strategies/registry.h"

namespace shardtune::launch {

namespace {

struct PlanArgs {
  int nodes = 1, ranks_per_node = 1;
  int tp = 0;                 // 0: every divisor
  int zero = -1;              // -1: both
  double memory_gb = 0;       // 0: this machine's memory / ranks per node
  double cores_per_node = 0;  // 0: this machine's CPUs
  core::PlanCluster cluster = core::reference_cluster();
  std::string format = "table";
  bool calibration = false, help = false;
  std::vector<std::string> config_args;  // for parse_config
};

// CPUs this process may run on (the affinity mask, as the rank threads are chosen).
int machine_cpus() {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) return CPU_COUNT(&mask);
  return 1;
}

// MemTotal of /proc/meminfo in MB (1e6 bytes); 0 when unreadable.
double machine_memory_mb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key) {
    if (key == "MemTotal:") {
      in >> kb;
      return kb * 1024 / 1e6;
    }
    std::getline(in, key);
  }
  return 0;
}

long parse_int(const std::string& option, const std::string& text, long min) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  require(used == text.size() && used > 0 && v >= min && v <= 1000000,
          "plan: " + option + "='" + text + "' is not an integer in [" + std::to_string(min) +
              ", 1000000]");
  return v;
}

double parse_positive(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  require(used == text.size() && used > 0 && v > 0 && v < 1e12,
          "plan: " + option + "='" + text + "' is not a positive number");
  return v;
}

PlanArgs parse(const std::vector<std::string>& args) {
  PlanArgs p;
  for_each_arg(args, "plan: ", [&](const Arg& a) {
    const std::string& key = a.key;
    auto take = [&] { return a.value(); };
    if (key == "--help" || key == "-h")
      p.help = true;
    else if (key == "--calibration")
      p.calibration = true;
    else if (key == "--nodes")
      p.nodes = static_cast<int>(parse_int(key, take(), 1));
    else if (key == "--ranks-per-node")
      p.ranks_per_node = static_cast<int>(parse_int(key, take(), 1));
    else if (key == "--tp")
      p.tp = static_cast<int>(parse_int(key, take(), 1));
    else if (key == "--zero") {
      const std::string v = take();
      require(v == "0" || v == "1", "plan: --zero='" + v + "' must be 0 or 1");
      p.zero = v == "1" ? 1 : 0;
    } else if (key == "--memory-gb")
      p.memory_gb = parse_positive(key, take());
    else if (key == "--cores-per-node")
      p.cores_per_node = parse_positive(key, take());
    else if (key == "--gflops-fp32")
      p.cluster.gemm_gflops_per_core_fp32 = parse_positive(key, take());
    else if (key == "--gflops-bf16")
      p.cluster.gemm_gflops_per_core_bf16 = parse_positive(key, take());
    else if (key == "--intra-gbs")
      p.cluster.intra_node_gbs = parse_positive(key, take());
    else if (key == "--inter-gbs")
      p.cluster.inter_node_gbs = parse_positive(key, take());
    else if (key == "--format") {
      p.format = take();
      require(p.format == "table" || p.format == "csv",
              "plan: --format='" + p.format + "' is unknown (table | csv)");
    } else {
      p.config_args.push_back(a.raw);  // --config FILE, --section.key=value
    }
  });
  return p;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string millions(int64_t n) { return fmt("%.1fM", static_cast<double>(n) / 1e6); }

}  // namespace

std::string plan_usage() {
  const core::PlanCluster here = core::reference_cluster();
  return std::string{} +
         "usage: shardtune plan --config FILE [--section.key=value ...] --nodes N --ranks-per-node "
         "R\n"
         "                      [--tp T] [--zero 0|1] [--memory-gb G] [--format table|csv]\n"
         "       shardtune plan --calibration\n"
         "Per-rank memory and step time of every TP x DP layout of N nodes x R ranks for the\n"
         "configuration's [model], [train] and [strategy], and the fastest layout that fits\n"
         "(docs/planning.md). [parallel] tp and zero are ignored: every layout is tried.\n"
         "options:\n"
         "  --nodes N            nodes (default 1)\n"
         "  --ranks-per-node R   ranks on each node (default 1), placed in blocks: a TP group\n"
         "                       inside a node uses --intra-gbs, one spanning nodes --inter-gbs\n"
         "  --tp T               only layouts with this tensor-parallel size\n"
         "  --zero 0|1           only this ZeRO stage (default: both where dp > 1)\n"
         "  --memory-gb G        memory budget per rank in GB (default: this machine's MemTotal /\n"
         "                       ranks per node)\n"
         "  --cores-per-node C   cores of a node (default: this process's CPUs)\n"
         "  --gflops-fp32 F      GEMM GFLOP/s of one core in fp32 (default " +
         fmt("%g", here.gemm_gflops_per_core_fp32) + ", measured here)\n" +
         "  --gflops-bf16 F      GEMM GFLOP/s of one core in bf16 (default " +
         fmt("%g", here.gemm_gflops_per_core_bf16) + ", measured here)\n" +
         "  --intra-gbs B        all-reduce bus bandwidth inside a node, GB/s (default " +
         fmt("%g", here.intra_node_gbs) + ", measured\n" +
         "                       here)\n" +
         "  --inter-gbs B        all-reduce bus bandwidth between nodes, GB/s (default " +
         fmt("%g", here.inter_node_gbs) + ", assumed)\n"
         "  --format table|csv   output (default table)\n"
         "  --calibration        print the predicted-vs-measured table of the reference runs\n";
}

int run_plan(const std::vector<std::string>& args) {
  try {
    PlanArgs p = parse(args);
    if (p.help) {
      std::fputs(plan_usage().c_str(), stdout);
      return 0;
    }
    if (p.calibration) {
      std::fputs(core::plan_calibration_markdown().c_str(), stdout);
      return 0;
    }
    Config config;
    std::string help;
    parse_config(p.config_args, config, help);
    config.model.validate();
    config.train.validate();
    require(config.train.seq_len <= config.model.max_position_embeddings,
            "[train] seq_len=" + std::to_string(config.train.seq_len) +
                " exceeds [model] max_position_embeddings=" +
                std::to_string(config.model.max_position_embeddings));
    strategies::make_strategy(config.strategy, config.strategy_options);  // checks its options

    const int world = p.nodes * p.ranks_per_node;
    core::PlanCluster cluster = p.cluster;
    cluster.nodes = p.nodes;
    cluster.ranks_per_node = p.ranks_per_node;
    cluster.cores_per_node = p.cores_per_node > 0 ? p.cores_per_node : machine_cpus();
    cluster.memory_mb_per_rank =
        p.memory_gb > 0 ? p.memory_gb * 1e3 : machine_memory_mb() / p.ranks_per_node;
    const core::PlanWorkload w = plan_workload(config);
    if (p.tp > 0) {
      require(world % p.tp == 0, "plan: --tp=" + std::to_string(p.tp) +
                                     " does not divide the world size " + std::to_string(world) +
                                     " (--nodes x --ranks-per-node)");
    }
    const auto rows = core::plan_layouts(w, cluster, p.tp, p.zero);
    if (p.tp > 0) {
      for (const auto& r : rows)
        require(r.valid, "plan: --tp=" + std::to_string(p.tp) + ": " + r.invalid_reason);
    }
    const core::PlanRow* best = core::recommended(rows);

    std::ostringstream out;
    if (p.format == "csv") {
      out << "tp,dp,zero,params_mb,grads_mb,optimizer_mb,activations_mb,baseline_mb,total_mb,fits,"
             "step_s,tokens_per_s,compute_s,tp_s,dp_s,tp_mb,tp_calls,dp_mb,recommended\n";
      for (const auto& r : rows) {
        if (!r.valid) continue;
        out << r.layout.tp << ',' << r.layout.dp << ',' << r.layout.zero << ','
            << fmt("%.1f", r.params_mb) << ',' << fmt("%.1f", r.grads_mb) << ','
            << fmt("%.1f", r.optimizer_mb) << ',' << fmt("%.1f", r.activations_mb) << ','
            << fmt("%.1f", r.baseline_mb) << ',' << fmt("%.1f", r.total_mb) << ','
            << (r.fits ? "yes" : "no") << ',' << fmt("%.3f", r.step_s) << ','
            << fmt("%.1f", r.tokens_per_s) << ',' << fmt("%.3f", r.compute_s) << ','
            << fmt("%.3f", r.tp_s) << ',' << fmt("%.3f", r.dp_s) << ',' << fmt("%.1f", r.tp_mb)
            << ',' << r.tp_calls << ',' << fmt("%.1f", r.dp_mb) << ',' << (&r == best ? 1 : 0)
            << '\n';
      }
      std::fputs(out.str().c_str(), stdout);
      return 0;
    }
    const auto& m = config.model;
    const int64_t total = core::parameter_count(m);
    out << "# " << m.family << " " << millions(total) << " parameters, strategy " << config.strategy
        << ", " << config.train.dtype << ", recompute " << config.train.recompute
        << "; global batch " << config.train.global_batch << ", micro-batch "
        << config.train.micro_batch << ", seq " << config.train.seq_len << "\n# " << p.nodes
        << " node(s) x " << p.ranks_per_node << " rank(s), " << fmt("%g", cluster.cores_per_node)
        << " cores/node, budget " << fmt("%.0f", cluster.memory_mb_per_rank) << " MB/rank\n";
    for (const auto& r : rows) {
      if (!r.valid) continue;
      out << "# MB per rank (1e6 bytes) include " << fmt("%.0f", r.baseline_mb)
          << " MB of process baseline; params_MB holds bf16 weight copies under dtype=bf16\n";
      break;
    }
    char line[256];
    std::snprintf(line, sizeof line, "%4s %4s %4s %10s %10s %10s %10s %10s %4s %9s %10s\n", "tp",
                  "dp", "zero", "params_MB", "grads_MB", "optim_MB", "activ_MB", "total_MB", "fits",
                  "step_s", "tok/s");
    out << line;
    for (const auto& r : rows) {
      if (!r.valid) continue;
      std::snprintf(
          line, sizeof line, "%4d %4d %4d %10.1f %10.1f %10.1f %10.1f %10.1f %4s %9.3f %10.1f\n",
          r.layout.tp, r.layout.dp, r.layout.zero, r.params_mb, r.grads_mb, r.optimizer_mb,
          r.activations_mb, r.total_mb, r.fits ? "yes" : "no", r.step_s, r.tokens_per_s);
      out << line;
    }
    for (const auto& r : rows) {
      if (!r.valid) {
        out << "# not possible: tp=" << r.layout.tp << " dp=" << r.layout.dp
            << " zero=" << r.layout.zero << ": " << r.invalid_reason << "\n";
      }
    }
    if (best) {
      out << "recommended: tp=" << best->layout.tp << " dp=" << best->layout.dp
          << " zero=" << best->layout.zero << "\n";
    } else {
      out << "recommended: none (no layout fits " << fmt("%.0f", cluster.memory_mb_per_rank)
          << " MB per rank)\n";
    }
    std::fputs(out.str().c_str(), stdout);
    return 0;
  } catch (const UserError& e) {
    print_error(e.what());
    return kUserErrorExitCode;
  }
}

core::PlanWorkload plan_workload(const Config& c) {
  core::PlanWorkload w;
  w.model = c.model;
  w.global_batch = c.train.global_batch;
  w.micro_batch = c.train.micro_batch;
  w.seq_len = c.train.seq_len;
  w.bf16 = c.train.dtype == "bf16";
  w.recompute = c.train.recompute == "block";
  w.strategy = c.strategy;
  w.strategy_options = c.strategy_options;
  return w;
}

}  // namespace shardtune::launch
