#include "fusellm/util/log.hpp"

#include "fusellm/util/error.hpp"

namespace fusellm {

void set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only accept "off" when it was asked for.
  if (lvl == spdlog::level::off && level != "off") {
    fail("--log-level: unknown level '{}' (use trace, debug, info, warn, error, off)", level);
  }
  spdlog::set_level(lvl);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
}

}  // namespace fusellm
