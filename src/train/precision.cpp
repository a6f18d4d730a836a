// Training device and bf16 autocast. LibTorch 2.5+ names autocast's switches per device type
// (set_autocast_enabled(kCPU, on)); earlier versions, 1.13 included, have one function per backend
// (set_cpu_enabled / set_enabled for CUDA). Newer LibTorch keeps the old names only as deprecated wrappers.
#include "fusellm/train/precision.hpp"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "fusellm/util/error.hpp"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define FUSELLM_AUTOCAST_PER_DEVICE_API 1
#endif

namespace fusellm::train {

const char* to_string(Precision p) {
  switch (p) {
    case Precision::Bf16: return "bf16";
    case Precision::Fp64: return "fp64";
    default: return "fp32";
  }
}

at::ScalarType master_dtype(Precision p) { return p == Precision::Fp64 ? at::kDouble : at::kFloat; }

Precision resolve_precision(const std::string& setting, const at::Device& device) {
  if (setting == "fp32") return Precision::Fp32;
  if (setting == "bf16") return Precision::Bf16;
  if (setting == "fp64") return Precision::Fp64;
  FUSELLM_CHECK(setting == "auto", "train.precision: expected 'fp32', 'bf16', 'fp64' or 'auto', got '{}'", setting);
  return device.is_cuda() ? Precision::Bf16 : Precision::Fp32;
}

namespace {

bool autocast_enabled(at::DeviceType type) {
#ifdef FUSELLM_AUTOCAST_PER_DEVICE_API
  return at::autocast::is_autocast_enabled(type);
#else
  return type == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(at::DeviceType type, bool on) {
#ifdef FUSELLM_AUTOCAST_PER_DEVICE_API
  at::autocast::set_autocast_enabled(type, on);
#else
  if (type == at::kCUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

at::ScalarType autocast_dtype(at::DeviceType type) {
#ifdef FUSELLM_AUTOCAST_PER_DEVICE_API
  return at::autocast::get_autocast_dtype(type);
#else
  return type == at::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(at::DeviceType type, at::ScalarType dtype) {
#ifdef FUSELLM_AUTOCAST_PER_DEVICE_API
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == at::kCUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

AutocastScope::AutocastScope(Precision precision, const at::Device& device) {
  if (precision != Precision::Bf16) return;
  FUSELLM_CHECK(device.is_cpu() || device.is_cuda(), "train.precision bf16: autocast supports CPU and CUDA, not {}",
                device.str());
  active_ = true;
  device_type_ = device.type();
  was_enabled_ = autocast_enabled(device_type_);
  previous_dtype_ = autocast_dtype(device_type_);
  set_autocast_dtype(device_type_, at::kBFloat16);
  set_autocast_enabled(device_type_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Leaving the outermost scope drops the cached bf16 copies of the weights (the optimizer changes them).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_enabled(device_type_, was_enabled_);
  set_autocast_dtype(device_type_, previous_dtype_);
}

AutocastState current_autocast_state() {
  AutocastState s;
  s.cpu = autocast_enabled(at::kCPU);
  s.cuda = autocast_enabled(at::kCUDA);
  s.cpu_dtype = autocast_dtype(at::kCPU);
  s.cuda_dtype = autocast_dtype(at::kCUDA);
  return s;
}

namespace {
void apply(const AutocastState& s) {
  set_autocast_dtype(at::kCPU, s.cpu_dtype);
  set_autocast_dtype(at::kCUDA, s.cuda_dtype);
  set_autocast_enabled(at::kCPU, s.cpu);
  set_autocast_enabled(at::kCUDA, s.cuda);
}
}  // namespace

AutocastReplay::AutocastReplay(const AutocastState& state) : previous_(current_autocast_state()) {
  apply(state);
  nested_ = state.cpu || state.cuda;
  if (nested_) at::autocast::increment_nesting();
}

AutocastReplay::~AutocastReplay() {
  if (nested_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  apply(previous_);
}

}  // namespace fusellm::train
