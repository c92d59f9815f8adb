# The checkpoint reader's metadata path (io/checkpoint/verify.cpp and the LibTorch-free files it
# uses), compiled into the target with the fuzzing instrumentation; libhdf5 itself is linked as is
# (uninstrumented: a crash inside it is still a finding, a silent overread there is not seen).
shardtune_add_fuzz_target(fuzz_checkpoint
  SOURCES fuzz_checkpoint.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/verify.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/hdf5.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/info.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/metadata.cpp
          ${PROJECT_SOURCE_DIR}/io/checkpoint/geometry.cpp
  LIBS shardtune_base)
target_include_directories(fuzz_checkpoint SYSTEM PRIVATE ${HDF5_INCLUDE_DIRS})
target_link_libraries(fuzz_checkpoint PRIVATE ${HDF5_C_LIBRARIES} MPI::MPI_CXX)
