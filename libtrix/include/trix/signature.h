// Tile signatures: "don't learn what you can read". A tile's signature is the ternary vector
// sign(sum of the tile's up-projection rows), with ties (a zero sum) mapped to 0.
#pragma once
#include <cstdint>

#include "trix/pack.h"

namespace trix {

// up: [T*h, d] packed; sig: [T, d] int8 in {-1, 0, 1}. Exact (integer sums).
void tile_signatures(const TernaryView& up, int64_t tiles, int8_t* sig);

// The same, packed into the public format (no scales): [T, d].
PackedTernary pack_signatures(const TernaryView& up, int64_t tiles);

}  // namespace trix
