#include "trix/error.h"

namespace trix {

void throw_invalid(const char* func, const char* arg, const std::string& what) {
  throw std::invalid_argument(std::string(func) + ": argument '" + arg + "' " + what);
}

}  // namespace trix
