// Error reporting: libtrix throws standard exceptions whose message names the argument,
// what was expected and what was given. Nothing aborts on user input.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace trix {

// Thrown for a file or buffer that is not a valid TriX object (bad magic, truncated, corrupt).
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

// Throws std::invalid_argument("<func>: argument '<arg>' <what>").
[[noreturn]] void throw_invalid(const char* func, const char* arg, const std::string& what);

}  // namespace trix

// Check a user-facing precondition; the message parts are streamed after "argument 'name' ".
#define TRIX_CHECK_ARG(cond, func, arg, ...)                                  \
  do {                                                                        \
    if (!(cond)) ::trix::throw_invalid(func, arg, ::trix::detail::concat(__VA_ARGS__)); \
  } while (0)
