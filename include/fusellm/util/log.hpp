#pragma once
// Logging through spdlog. Every module logs with the default logger; the CLI sets the level once.
#include <spdlog/spdlog.h>

#include <string>

namespace fusellm {

// Sets the global level from a name (trace, debug, info, warn, error, off); throws Error on an unknown name.
void set_log_level(const std::string& level);

}  // namespace fusellm
