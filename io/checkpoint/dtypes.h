// Tensor dtypes in HDF5 (internal to io/checkpoint): the file type of each dtype a checkpoint
// stores, and its name in h5::type_name's naming.
#pragma once

#include <hdf5.h>
#include <torch/types.h>

#include <string>

#include "base/errors.h"

namespace shardtune::io::h5 {

// The file type of a tensor dtype (float32/64, int32/64, uint8); UserError for others.
inline hid_t file_type(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return H5T_NATIVE_FLOAT;
    case torch::kDouble: return H5T_NATIVE_DOUBLE;
    case torch::kLong: return H5T_NATIVE_INT64;
    case torch::kInt: return H5T_NATIVE_INT32;
    case torch::kByte: return H5T_NATIVE_UINT8;
    default: throw UserError(std::string("checkpoint: unsupported dtype ") + c10::toString(dtype));
  }
}

// "float32", "float64", "int64", "int32", "uint8" (h5::type_name's names).
inline std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return "float32";
    case torch::kDouble: return "float64";
    case torch::kLong: return "int64";
    case torch::kInt: return "int32";
    case torch::kByte: return "uint8";
    default: return c10::toString(dtype);
  }
}

}  // namespace shardtune::io::h5
