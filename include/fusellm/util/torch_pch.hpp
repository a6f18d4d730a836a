#pragma once
// The precompiled header of every LibTorch-using target. Keep it to LibTorch and the standard library.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
