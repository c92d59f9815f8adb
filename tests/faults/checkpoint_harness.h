// Helpers of the checkpoint fault cases (tests/faults/test_faults_checkpoint.cpp): a real
// checkpoint directory written once per test binary by `shardtune train`, copied into each case's
// scratch folder, and edited there with the HDF5 C API the way an attacker or a broken tool would:
// attributes replaced by other types, shapes and sizes, deleted, links planted. reseal() recomputes
// the metadata checksum after an edit, so that a case proves the specific check (a range, a type)
// and not only the checksum. Runs go through tests/faults/fault_case.h (exit code, one error line,
// no trace, time bound, pre-existing files byte-identical).
#pragma once

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "fault_case.h"
#include "io/checkpoint/info.h"
#include "io/checkpoint/metadata.h"

namespace shardtune::faults {

// A tiny llama, 2 steps of synthetic data, checkpoint every step into <dir>/ckpt.
inline std::string tiny_ini(const std::string& dir, int steps = 2) {
  return "[model]\nvocab_size = 260\nhidden_size = 16\nnum_layers = 1\nnum_heads = 2\n"
         "intermediate_size = 32\nmax_position_embeddings = 32\n"
         "[train]\nsteps = " + std::to_string(steps) +
         "\nglobal_batch = 2\nmicro_batch = 1\nseq_len = 16\nlog_every = 1\n"
         "out_dir = " + dir + "/run\n"
         "[data]\nsource = synthetic\nsynthetic_samples = 16\nmax_eval_samples = 2\n"
         "[checkpoint]\ndir = " + dir + "/ckpt\nevery = 1\nkeep_last = 0\n";
}

// ---- HDF5 editing ------------------------------------------------------------------------------

class H5File {
 public:
  explicit H5File(const std::string& path) : id_(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
    if (id_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~H5File() { H5Fclose(id_); }
  hid_t id() const { return id_; }

 private:
  hid_t id_;
};

inline hid_t open_obj(hid_t file, const std::string& obj) { return H5Oopen(file, obj.c_str(), H5P_DEFAULT); }

inline void delete_attr(const std::string& path, const std::string& obj, const char* name) {
  H5File f(path);
  const hid_t o = open_obj(f.id(), obj);
  if (H5Aexists(o, name) > 0) H5Adelete(o, name);
  H5Oclose(o);
}

// Replaces attribute `name` of `obj` by `n` int64 values (n = 0: scalar) or by one value.
inline void set_ints(const std::string& path, const std::string& obj, const char* name,
                     const std::vector<int64_t>& values, bool scalar = true, hid_t type = H5T_STD_I64LE) {
  H5File f(path);
  const hid_t o = open_obj(f.id(), obj);
  if (H5Aexists(o, name) > 0) H5Adelete(o, name);
  const hsize_t n = values.size();
  const hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const hid_t a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, values.data());
  H5Aclose(a);
  H5Sclose(space);
  H5Oclose(o);
}

inline void set_string(const std::string& path, const std::string& obj, const char* name,
                       const std::string& text, bool variable = false) {
  H5File f(path);
  const hid_t o = open_obj(f.id(), obj);
  if (H5Aexists(o, name) > 0) H5Adelete(o, name);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, variable ? H5T_VARIABLE : std::max<size_t>(text.size(), 1));
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (variable) {
    const char* p = text.c_str();
    H5Awrite(a, type, &p);
  } else {
    H5Awrite(a, type, text.c_str());
  }
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  H5Oclose(o);
}

// ---- raw reads (no validation: the forger's view) ----------------------------------------------

inline int64_t raw_int(hid_t obj, const char* name) {
  int64_t v = 0;
  if (H5Aexists(obj, name) <= 0) return 0;
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  const hid_t space = H5Aget_space(a);
  std::vector<int64_t> all(static_cast<size_t>(std::max<hssize_t>(H5Sget_simple_extent_npoints(space), 1)));
  H5Aread(a, H5T_NATIVE_INT64, all.data());
  v = all[0];
  H5Sclose(space);
  H5Aclose(a);
  return v;
}

inline std::string raw_string(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return "";
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  const hid_t type = H5Aget_type(a);
  std::string s(H5Tget_size(type) + 1, '\0');
  const hid_t mem = H5Tcopy(H5T_C_S1);
  H5Tset_size(mem, s.size());
  H5Aread(a, mem, s.data());
  H5Tclose(mem);
  H5Tclose(type);
  H5Aclose(a);
  return s.c_str();
}

inline std::vector<uint64_t> raw_u64s(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return {};
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  const hid_t space = H5Aget_space(a);
  std::vector<uint64_t> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  if (!v.empty()) H5Aread(a, H5T_NATIVE_UINT64, v.data());
  H5Sclose(space);
  H5Aclose(a);
  return v;
}

inline std::string raw_type_name(hid_t type) {
  const auto cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float?";
  if (cls == H5T_INTEGER) {
    return std::string(H5Tget_sign(type) == H5T_SGN_2 ? "int" : "uint") + std::to_string(size * 8);
  }
  return "other";
}

// Recomputes and rewrites `metadata_checksum` from whatever the file now holds, as a forger who
// knows the format would: the edit then has to be caught by the check it targets.
inline void reseal(const std::string& path) {
  H5File f(path);
  io::CheckpointInfo info;
  info.fields([&](const char* name, auto& value, int) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      value = raw_string(f.id(), name);
    } else {
      value = raw_int(f.id(), name);
    }
  });
  std::vector<io::DatasetMeta> metas;
  auto cb = [](hid_t group, const char* name, const H5L_info_t* link, void* data) -> herr_t {
    if (link->type != H5L_TYPE_HARD) return 0;
    const hid_t o = H5Oopen(group, name, H5P_DEFAULT);
    if (H5Iget_type(o) == H5I_DATASET) {
      io::DatasetMeta m;
      m.path = std::string("/") + name;
      const hid_t space = H5Dget_space(o);
      const int nd = H5Sget_simple_extent_ndims(space);
      std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
      if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
      m.shape.assign(dims.begin(), dims.end());
      H5Sclose(space);
      const hid_t type = H5Dget_type(o);
      m.dtype = raw_type_name(type);
      H5Tclose(type);
      m.dim = raw_int(o, "shard_dim");
      m.parts = raw_int(o, "shard_parts");
      m.chunk = raw_int(o, "shard_chunk");
      m.sums = raw_u64s(o, "checksums");
      static_cast<std::vector<io::DatasetMeta>*>(data)->push_back(m);
    }
    H5Oclose(o);
    return 0;
  };
  H5Lvisit(f.id(), H5_INDEX_NAME, H5_ITER_INC, cb, &metas);
  const uint64_t sum = io::metadata_checksum(info, metas);
  if (H5Aexists(f.id(), io::kMetadataChecksum) > 0) H5Adelete(f.id(), io::kMetadataChecksum);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f.id(), io::kMetadataChecksum, H5T_STD_U64LE, space, H5P_DEFAULT,
                             H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_UINT64, &sum);
  H5Aclose(a);
  H5Sclose(space);
}

// ---- MPMD runs (one working directory per rank) ------------------------------------------------

// A case whose two ranks start in different working directories (mpiexec's MPMD form with
// -wdir): relative checkpoint paths then name different directories on the two ranks, as
// node-local paths do on a cluster.
inline Outcome run_two_dirs(const std::string& wdir0, const std::string& wdir1,
                            const std::vector<std::string>& args, double kill_after = 120) {
  // argv_of (fault_case.h) runs one executable on every rank; this MPMD line names two.
  std::vector<std::string> argv;
  std::istringstream launcher(std::string(SHARDTUNE_MPIEXEC) + " " + SHARDTUNE_MPIEXEC_FLAGS +
                              " --bind-to none");
  for (std::string w; launcher >> w;) argv.push_back(w);
  for (const std::string* wdir : {&wdir0, &wdir1}) {
    if (wdir == &wdir1) argv.push_back(":");
    argv.insert(argv.end(), {"-np", "1", "-wdir", *wdir, shardtune_path()});
    argv.insert(argv.end(), args.begin(), args.end());
  }
  FaultCase c;
  c.kill_after_seconds = kill_after;
  return run_argv(c, argv);
}

}  // namespace shardtune::faults
