# `cmake --install build --prefix P` installs ShardTune as a library and a program:
#   P/bin/shardtune                         the command line
#   P/include/shardtune/<folder>/*.h        every layer's headers, same layout as the source tree,
#                                           so `#include "core/model.h"` compiles unchanged
#   P/lib/libshardtune_*.a                  one static library per folder
#   P/lib/cmake/ShardTune/                  the package: find_package(ShardTune) gives
#       ShardTune::shardtune    everything (the CLI entry launch::run_cli, Trainer, strategies,
#                               io, core, parallel, base), what a program that embeds ShardTune
#                               links
#       ShardTune::<layer>      the finer targets: base, parallel, core, core_headers, strategies,
#                               records, io, tokenizers, bootstrap, launch (same edges as in the
#                               build)
# examples/custom_strategy/ is a program built against it; tests/install.cmake runs it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SHARDTUNE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ShardTune)

# The umbrella target: ShardTune::shardtune (the executable already owns the name `shardtune`
# inside this build, hence the export name).
add_library(shardtune_all INTERFACE)
target_link_libraries(shardtune_all INTERFACE shardtune_launch shardtune_strategies
                      shardtune_bootstrap shardtune_io shardtune_core shardtune_parallel
                      shardtune_base)
add_library(ShardTune::shardtune ALIAS shardtune_all)
set_target_properties(shardtune_all PROPERTIES EXPORT_NAME shardtune)

set(_shardtune_libraries shardtune_base shardtune_parallel shardtune_core shardtune_core_headers
    shardtune_strategies shardtune_records shardtune_io shardtune_tokenizers shardtune_bootstrap
    shardtune_launch)
foreach(_lib ${_shardtune_libraries})
  string(REPLACE "shardtune_" "" _export_name ${_lib})
  set_target_properties(${_lib} PROPERTIES EXPORT_NAME ${_export_name})
  add_library(ShardTune::${_export_name} ALIAS ${_lib})
endforeach()

install(TARGETS ${_shardtune_libraries} shardtune_all
        EXPORT ShardTuneTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS shardtune RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# SentencePiece is dlopen()ed by path (io/tokenizers/sentencepiece_shim.h); installed beside the
# libraries for programs that set that path to the installed copy.
install(TARGETS shardtune_sentencepiece LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# Headers: each layer's folder (and its subfolders: io/checkpoint, io/tokenizers) under one root.
foreach(_folder base parallel core strategies io launch)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_folder}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shardtune/${_folder}
          FILES_MATCHING PATTERN "*.h")
endforeach()

install(EXPORT ShardTuneTargets NAMESPACE ShardTune:: DESTINATION ${SHARDTUNE_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ShardTuneConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ShardTuneConfig.cmake
                              INSTALL_DESTINATION ${SHARDTUNE_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ShardTuneConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ShardTuneConfig.cmake
              ${PROJECT_BINARY_DIR}/ShardTuneConfigVersion.cmake
        DESTINATION ${SHARDTUNE_INSTALL_CMAKEDIR})
