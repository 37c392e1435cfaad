// The options of the semidiscrete fit, described once. Each entry of sdot_options() is one field of
// SemidiscreteOT::Options a user can set: its name (the field, the Python keyword and the run-record
// key), its CLI flag, its type, whether it may be left to the data ("auto"), and its help. The CLI's
// `sdot fit` flags, the Python module's keyword parser, the Python docstring's option list and the run
// record are all generated from this table, so a new option is one entry here (plus its field and its
// rule in Options::validate) and is spelled, recorded and checked the same way everywhere.
// Thread-safety: the table is immutable; the functions are pure.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "otgen/ot/semidiscrete.h"

namespace otgen {

// A value as a front end hands it over: unset (auto), a flag, an integer, a real or a name.
using SdotOptionValue = std::variant<std::monostate, bool, int64_t, double, std::string>;

enum class SdotOptionKind { Flag, Integer, Real, Name };

struct SdotOption {
  std::string_view name;   // "batch_size": the Options field, the Python keyword, the record key
  std::string_view flag;   // "--batch": the CLI flag
  SdotOptionKind kind;
  bool can_be_auto;        // unset = derived from the data (the CLI's and the record's "auto")
  // The CLI builds the flag from this entry; false where `sdot fit` spells it its own way (--init also
  // takes a potential file; --engine / --no-int8-screen are shared with assign and check).
  bool generic_flag;
  std::string_view choices;  // Name: the valid names, "sgd, adam"; empty otherwise
  std::string_view help;
  SdotOptionValue (*get)(const SemidiscreteOT::Options&);
  // Sets the field (type-checked: an integer is a valid real, a bool is never a number; names parsed);
  // throws otgen::Error naming `argument`. The field's range rule is Options::validate's.
  void (*set)(SemidiscreteOT::Options&, const SdotOptionValue&, std::string_view argument);
};

// Every option, in the CLI's help order.
std::span<const SdotOption> sdot_options();
// The entry named `name` (the field name), or nullptr.
const SdotOption* find_sdot_option(std::string_view name);
// The names of every option, comma-separated (for "unknown option" messages).
std::string sdot_option_names();

// Text (a CLI argument) to a value: "auto" where the option allows it, an integer, a real ("inf"
// included), "true"/"false" for flags, or a name. Throws otgen::Error naming `argument`.
SdotOptionValue parse_sdot_option_text(const SdotOption& option, std::string_view text, std::string_view argument);
// A value as text: "auto", "true"/"false", the integer, the real in the shortest round-trip form ("inf").
std::string sdot_option_text(const SdotOptionValue& value);

}  // namespace otgen
