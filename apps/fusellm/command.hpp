#pragma once
// Subcommand registry of the CLI: each apps/fusellm/cmd_*.cpp registers itself with
// FUSELLM_COMMAND(name, description, setup). setup adds options to its CLI::App and returns the action.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace fusellm::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App&)>;

struct Command {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<Command>& commands();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string description, Setup setup) {
    commands().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace fusellm::cli

#define FUSELLM_COMMAND(name, description, setup) \
  static ::fusellm::cli::CommandRegistrar fusellm_command_registrar_##name(#name, description, setup)
// For command names that are not identifiers ("align-vocab"): `id` names the registrar only.
#define FUSELLM_COMMAND_NAMED(id, name, description, setup) \
  static ::fusellm::cli::CommandRegistrar fusellm_command_registrar_##id(name, description, setup)
