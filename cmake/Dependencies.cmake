# Finds every system dependency and exposes two interface targets:
#   fusellm_deps  - the light libraries (spdlog, json, pcre2, zstd, zlib, snappy, xxhash, threads)
#   fusellm_torch - LibTorch, with FUSELLM_HAS_CUDA / FUSELLM_HAS_NCCL defined when the found build has them.
find_package(Threads REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(SNAPPY REQUIRED IMPORTED_TARGET snappy)  # Parquet pages
find_package(ZLIB REQUIRED)

add_library(fusellm_deps INTERFACE)
target_link_libraries(fusellm_deps INTERFACE spdlog::spdlog nlohmann_json::nlohmann_json CLI11::CLI11
  PkgConfig::PCRE2 PkgConfig::ZSTD PkgConfig::XXHASH PkgConfig::SNAPPY ZLIB::ZLIB Threads::Threads)

# LibTorch: Debian's 1.13.1 CPU build by default; pass -DCMAKE_PREFIX_PATH=<torch.utils.cmake_prefix_path>
# to build against a LibTorch 2.x with CUDA.
find_package(Torch REQUIRED)
add_library(fusellm_torch INTERFACE)
target_link_libraries(fusellm_torch INTERFACE ${TORCH_LIBRARIES})
separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(fusellm_torch INTERFACE ${_torch_flags})
set(FUSELLM_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
  set(FUSELLM_HAS_CUDA ON)
  target_compile_definitions(fusellm_torch INTERFACE FUSELLM_HAS_CUDA=1)
  # NCCL ships inside every CUDA LibTorch; c10d's ProcessGroupNCCL header is the tell.
  find_path(FUSELLM_NCCL_HEADER torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  if(FUSELLM_NCCL_HEADER)
    target_compile_definitions(fusellm_torch INTERFACE FUSELLM_HAS_NCCL=1)
  endif()
endif()
# PyPI's LibTorch 2.x ships its own {fmt} (11.x) in its include directory, which comes before the system's
# on the command line; Debian's spdlog 1.10 is written against Debian's {fmt} 9 (fmt::basic_runtime) and
# does not compile with 11. A directory holding only a link to the system's fmt/ goes first with -I, so
# every translation unit sees one {fmt}: the one spdlog and the Debian libraries were built with.
foreach(_dir ${TORCH_INCLUDE_DIRS})
  if(EXISTS "${_dir}/fmt/core.h" AND EXISTS "/usr/include/fmt/core.h" AND NOT _dir STREQUAL "/usr/include")
    set(_fmt_shim "${CMAKE_BINARY_DIR}/system-fmt")
    file(MAKE_DIRECTORY "${_fmt_shim}")
    file(CREATE_LINK "/usr/include/fmt" "${_fmt_shim}/fmt" SYMBOLIC)
    target_include_directories(fusellm_deps BEFORE INTERFACE "${_fmt_shim}")
    message(STATUS "fusellm: LibTorch's bundled {fmt} shadowed by the system's (${_fmt_shim})")
    break()
  endif()
endforeach()
set(_nccl "not found")
if(FUSELLM_NCCL_HEADER)
  set(_nccl "found")
endif()
message(STATUS "fusellm: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}; CUDA ${FUSELLM_HAS_CUDA} ${CUDAToolkit_VERSION}; NCCL process group ${_nccl}")

# libsentencepiece is used only as an independent reference in the tokenizer tests, never linked into
# the library: Debian's build carries its own protobuf 3.14 runtime, which crashes any process that
# also loads LibTorch's protobuf 3.21 (static initializers clash). fusellm reads .model files natively.
pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
