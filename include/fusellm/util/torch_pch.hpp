#pragma once
// The precompiled header of every LibTorch-using target: ATen (tensors and ops), torch:: names for them
// (torch::kFloat, torch::zeros, torch::equal), autograd (grad, custom functions) and the CUDA query, plus the
// JSON, fmt and spdlog headers nearly every file uses. Deliberately not <torch/torch.h>: the whole C++ front
// end (nn, optim, data) takes 17 s to parse where this takes 8, and as a 570 MB precompiled header it made
// even files that use none of it 10-15 s slower to compile (every overload set, operator<< included, grew).
// A file that needs more includes it itself (<torch/optim/adamw.h>, <torch/nn/functional.h>, c10d).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/version.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
