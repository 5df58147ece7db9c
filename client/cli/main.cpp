// tidings: the command-line client of the Tidings broker.

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "cli11.hpp"

#include "common.hpp"
#include "helpers.hpp"

namespace {

using namespace tidings::cli;

// CLI11 2.1 puts two blank lines between option groups, none before the usage line and no
// newline after the footer.
std::string help_text(const CLI::App& app) {
  std::string text = app.help();
  for (auto at = text.find("\n\n\n"); at != std::string::npos; at = text.find("\n\n\n", at)) {
    text.erase(at, 1);
  }
  if (const auto usage = text.find("\nUsage:"); usage != std::string::npos) {
    text.insert(usage, "\n");
  }
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "tidings: %s\n", message.c_str());
}

// The subcommand the user was asking about, for "see tidings SUB --help".
std::string help_hint(const CLI::App& app) {
  const auto chosen = app.get_subcommands();
  return chosen.empty() ? "tidings --help" : "tidings " + chosen.front()->get_name() + " --help";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tidings " TIDINGS_VERSION
               ": the command-line client of the Tidings broker (tidingsd).\n"
               "Publishes, subscribes, makes requests, answers them, checks health and "
               "measures\nthroughput and latency.",
               "tidings"};
  app.footer(exit_codes_footer());
  app.get_formatter()->column_width(30);
  app.set_version_flag("--version", std::string("tidings ") + TIDINGS_VERSION,
                       "Print the version and exit");

  std::vector<std::unique_ptr<command>> commands;
  try {
    for (auto* make : {&add_pub_command, &add_sub_command, &add_req_command, &add_reply_command,
                       &add_ping_command, &add_bench_command}) {
      commands.push_back(make(app));
      const auto& details = commands.back()->details();
      commands.back()->subcommand()->footer((details.empty() ? "" : details + "\n\n") +
                                            exit_codes_footer());
    }
  } catch (const std::exception& e) {
    // A mistake in the option definitions themselves.
    print_error(e.what());
    return exit_error;
  }

  try {
    std::vector<std::string> args;  // CLI11 takes them in reverse order
    for (int i = argc - 1; i >= 1; --i)
      args.emplace_back(argv[i]);
    app.parse(std::move(args));
  } catch (const CLI::CallForHelp&) {
    std::fputs(help_text(app).c_str(), stdout);
    return exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(help_text(app).c_str(), stdout);
    return exit_ok;
  } catch (const CLI::CallForVersion&) {
    std::printf("tidings %s\n", TIDINGS_VERSION);
    return exit_ok;
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see " + help_hint(app) + ")");
    return exit_usage;
  }

  const auto chosen = app.get_subcommands();
  if (chosen.empty()) {
    // Without a subcommand there is nothing to do: a usage error, with the help to fix it.
    std::fputs(help_text(app).c_str(), stderr);
    return exit_usage;
  }
  const auto found = std::find_if(commands.begin(), commands.end(),
                                  [&](const auto& c) { return c->subcommand() == chosen.front(); });
  if (found == commands.end()) return exit_usage;
  try {
    return (*found)->run();
  } catch (const failure& e) {
    print_error(e.what());
    return e.code();
  } catch (const tidings::client::exception& e) {
    print_error(describe(e));
    return exit_code_for(e.code());
  } catch (const std::exception& e) {
    print_error(e.what());
    return exit_error;
  }
}
