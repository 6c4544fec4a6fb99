// Shared by the fuzz targets: what counts as a clean rejection, and a hard failure otherwise.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "trix/error.h"

// A finding that is not a crash (an inconsistency): print it and abort, so libFuzzer saves the input.
#define FUZZ_CHECK(cond, what)                                     \
  do {                                                             \
    if (!(cond)) {                                                 \
      std::fprintf(stderr, "fuzz check failed: %s (%s)\n", what, #cond); \
      std::abort();                                                \
    }                                                              \
  } while (0)

// Runs fn; a FormatError or std::invalid_argument is a clean rejection (returns false). Anything
// else escapes and aborts the run: libtrix promises no other exception for bad data.
template <typename Fn>
bool accepted(Fn fn) {
  try {
    fn();
    return true;
  } catch (const trix::FormatError&) {
    return false;
  } catch (const std::invalid_argument&) {
    return false;
  }
}
