// fp16/bf16 conversions against independent references: the compiler's _Float16 (libgcc's soft-float
// conversion) for fp16, and a nearest-neighbour search in double arithmetic for bf16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fusellm/teacher/half_float.hpp"

namespace fusellm::teacher {
namespace {

#ifdef __FLT16_MAX__
uint16_t reference_fp16(float x) {
  const _Float16 h = static_cast<_Float16>(x);
  uint16_t bits;
  std::memcpy(&bits, &h, sizeof bits);
  return bits;
}
float reference_fp16_decode(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, sizeof h);
  return static_cast<float>(h);
}
#endif

// bf16 by definition: the bf16 value (a truncated fp32) nearest to x, ties to an even mantissa. Distances are
// exact in double; the value past the largest finite bf16 stands in for infinity at 2^128.
uint16_t reference_bf16(float x) {
  const uint32_t bits = float_bits(x);
  const uint16_t sign = static_cast<uint16_t>(bits >> 16) & 0x8000u;
  const uint16_t low = static_cast<uint16_t>(bits >> 16) & 0x7FFFu;  // truncation toward zero
  const uint16_t high = static_cast<uint16_t>(low + 1);
  auto value = [](uint16_t m) {
    return m == 0x7F80u ? std::ldexp(1.0, 128) : static_cast<double>(bf16_to_fp32(m));
  };
  const double mag = std::fabs(static_cast<double>(x));
  const double d_low = mag - value(low), d_high = value(high) - mag;
  if (d_low == 0) return sign | low;
  if (d_low < d_high) return sign | low;
  if (d_high < d_low) return sign | high;
  return sign | ((low & 1u) ? high : low);
}

// Inputs that probe every rounding decision: a stride through all fp32 patterns, plus for every finite
// 16-bit value its exact value, the midpoint to its successor, and the fp32 neighbours of that midpoint.
std::vector<float> probe_inputs(float (*decode)(uint16_t), uint16_t max_finite) {
  std::vector<float> xs;
  for (uint64_t b = 0; b < (uint64_t(1) << 32); b += 4099) xs.push_back(bits_to_float(static_cast<uint32_t>(b)));
  for (uint32_t h = 0; h <= max_finite; ++h) {
    const double lo = decode(static_cast<uint16_t>(h));
    const double hi = h == max_finite ? 2.0 * lo - decode(static_cast<uint16_t>(h - 1)) : decode(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact: 16-bit midpoints are fp32 values
    for (float x : {static_cast<float>(lo), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
  }
  for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()})
    xs.push_back(x);
  return xs;
}

TEST(HalfFloat, Fp16DecodeMatchesCompilerForAllPatterns) {
#ifndef __FLT16_MAX__
  GTEST_SKIP() << "compiler has no _Float16 to compare against";
#else
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = fp16_to_fp32(static_cast<uint16_t>(h));
    const float ref = reference_fp16_decode(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(ours)) << std::hex << h;
    } else {
      ASSERT_EQ(float_bits(ours), float_bits(ref)) << std::hex << h;
    }
  }
#endif
}

TEST(HalfFloat, Fp16EncodeRoundsToNearestEvenLikeCompiler) {
#ifndef __FLT16_MAX__
  GTEST_SKIP() << "compiler has no _Float16 to compare against";
#else
  const std::vector<float> xs = probe_inputs(fp16_to_fp32, 0x7BFF);
  size_t checked = 0;
  for (float x : xs) {
    const uint16_t ours = fp32_to_fp16(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(fp16_to_fp32(ours))) << float_bits(x);
      continue;
    }
    ASSERT_EQ(ours, reference_fp16(x)) << "x = " << x << " bits " << std::hex << float_bits(x);
    ++checked;
  }
  EXPECT_GT(checked, 1000000u);
  // Spot values: ties go to even, 65520 is the first value that overflows, 2^-25 rounds to zero.
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3C00);  // tie between 1 and 1+2^-10 -> even (1)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048), 0x3C02);  // tie -> even (1+2^-9)
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
#endif
}

TEST(HalfFloat, Fp16ErrorWithinHalfUlp) {
  // Independent of any reference: |x - fp16(x)| <= 2^-11 |x| over the normal range of log-probs.
  // Below 2^-14 (subnormal fp16) the bound is absolute: half the subnormal step, 2^-25.
  for (float x = -60000.0f; x < -1e-7f; x *= 0.999f) {
    const float back = fp16_to_fp32(fp32_to_fp16(x));
    const float bound = std::max(std::ldexp(std::fabs(x), -11), std::ldexp(1.0f, -25));
    ASSERT_LE(std::fabs(back - x), bound) << x;
  }
}

TEST(HalfFloat, Bf16EncodeIsNearestEven) {
  const std::vector<float> xs = probe_inputs(bf16_to_fp32, 0x7F7F);
  for (float x : xs) {
    const uint16_t ours = fp32_to_bf16(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(ours)));
      continue;
    }
    ASSERT_EQ(ours, reference_bf16(x)) << "x = " << x << " bits " << std::hex << float_bits(x);
  }
  for (uint32_t b = 0; b < 65536; ++b) {  // every bf16 value survives a round trip
    const float x = bf16_to_fp32(static_cast<uint16_t>(b));
    if (!std::isnan(x)) ASSERT_EQ(fp32_to_bf16(x), b);
  }
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xFF80);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A signalling NaN whose payload sits only in the low bits must stay NaN (not become infinity).
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_to_float(0x7F800001u)))));
}

}  // namespace
}  // namespace fusellm::teacher
