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
# to build against a LibTorch 2.x with CUDA (scripts/setup-cuda.sh).
find_package(Torch REQUIRED)
# TorchConfig looks up libc10 / libtorch with find_library(... PATHS <prefix>/lib), which searches the system
# directories first: with Debian's libtorch-dev installed, a pip LibTorch 2.x would link Debian's 1.13
# libc10.so next to its own libtorch (a mix that fails at link or load time). Use the found prefix's copy.
foreach(_var c10_LIBRARY TORCH_LIBRARY kineto_LIBRARY)
  if(${_var})
    get_filename_component(_name "${${_var}}" NAME)
    set(_own "${TORCH_INSTALL_PREFIX}/lib/${_name}")
    if(EXISTS "${_own}" AND NOT "${${_var}}" STREQUAL "${_own}")
      list(FIND TORCH_LIBRARIES "${${_var}}" _at)
      if(_at GREATER -1)
        list(REMOVE_AT TORCH_LIBRARIES ${_at})
        list(INSERT TORCH_LIBRARIES ${_at} "${_own}")
      endif()
      set(${_var} "${_own}" CACHE FILEPATH "${_var} of the LibTorch at ${TORCH_INSTALL_PREFIX}" FORCE)
    endif()
  endif()
endforeach()
add_library(fusellm_torch INTERFACE)
target_link_libraries(fusellm_torch INTERFACE ${TORCH_LIBRARIES})
# PyPI's libtorch.so (2.x) exports a statically linked copy of std::filesystem. Listed before libstdc++ in
# a program's NEEDED entries, it interposes the program's own calls, and its remove_all jumps to a null
# pointer. libstdc++ first in that order makes the dynamic linker resolve them to libstdc++'s.
if(Torch_VERSION VERSION_GREATER_EQUAL 2)
  add_link_options(LINKER:--push-state,--no-as-needed -lstdc++ LINKER:--pop-state)
endif()
separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(fusellm_torch INTERFACE ${_torch_flags})
set(FUSELLM_HAS_CUDA OFF)
set(_nccl "not found")
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
  set(FUSELLM_HAS_CUDA ON)
  target_compile_definitions(fusellm_torch INTERFACE FUSELLM_HAS_CUDA=1)
  # The NCCL process group needs three things: c10d's ProcessGroupNCCL header, a LibTorch built with it
  # (torch_cuda then exports USE_C10D_NCCL, as PyPI's does; the header is installed either way but empty
  # without it), and <nccl.h>, which LibTorch does not ship. Prefer the header of the NCCL the wheel loads
  # at run time (the nvidia-nccl package next to torch/), else the CUDA toolkit's or the system's.
  find_path(FUSELLM_NCCL_HEADER torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  set(_torch_cuda_defs "")
  if(TARGET torch_cuda)
    get_target_property(_torch_cuda_defs torch_cuda INTERFACE_COMPILE_DEFINITIONS)
  endif()
  find_path(FUSELLM_NCCL_INCLUDE_DIR nccl.h
    HINTS "${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include" ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_INCLUDE_DIR)
  if(FUSELLM_NCCL_HEADER AND FUSELLM_NCCL_INCLUDE_DIR AND "USE_C10D_NCCL" IN_LIST _torch_cuda_defs)
    # BEFORE: ahead of the CUDA toolkit's include directory, which may hold another NCCL's header.
    target_include_directories(fusellm_torch SYSTEM BEFORE INTERFACE "${FUSELLM_NCCL_INCLUDE_DIR}")
    target_compile_definitions(fusellm_torch INTERFACE FUSELLM_HAS_NCCL=1)
    file(STRINGS "${FUSELLM_NCCL_INCLUDE_DIR}/nccl.h" _nccl_ver REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE "[^0-9;]" "" _nccl_ver "${_nccl_ver}")
    string(REPLACE ";" "." _nccl_ver "${_nccl_ver}")
    get_filename_component(_nccl_dir "${FUSELLM_NCCL_INCLUDE_DIR}" REALPATH)
    set(_nccl "found (${_nccl_ver}, ${_nccl_dir}/nccl.h)")
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
set(_cuda_ver "")
if(FUSELLM_HAS_CUDA)
  set(_cuda_ver " (toolkit ${CUDAToolkit_VERSION})")
endif()
message(STATUS "fusellm: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}; CUDA ${FUSELLM_HAS_CUDA}${_cuda_ver}; NCCL ${_nccl}")

# libsentencepiece is used only as an independent reference in the tokenizer tests, never linked into
# the library: Debian's build carries its own protobuf 3.14 runtime, which crashes any process that
# also loads LibTorch's protobuf 3.21 (static initializers clash). fusellm reads .model files natively.
pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
