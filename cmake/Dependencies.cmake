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
message(STATUS "fusellm: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}; CUDA ${FUSELLM_HAS_CUDA}")

# libsentencepiece is used only as an independent reference in the tokenizer tests, never linked into
# the library: Debian's build carries its own protobuf 3.14 runtime, which crashes any process that
# also loads LibTorch's protobuf 3.21 (static initializers clash). fusellm reads .model files natively.
pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
