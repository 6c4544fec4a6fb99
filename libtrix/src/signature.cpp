#include "trix/signature.h"

#include <vector>

#include "trix/error.h"

namespace trix {

void tile_signatures(const TernaryView& up, int64_t tiles, int8_t* sig) {
  check_view(up, "tile_signatures", "up");
  TRIX_CHECK_ARG(tiles > 0 && up.rows % tiles == 0, "tile_signatures", "tiles",
                 "must be positive and divide the row count ", up.rows, ", got ", tiles);
  const int64_t h = up.rows / tiles, d = up.cols;
  std::vector<int32_t> sum(static_cast<size_t>(d));
  for (int64_t t = 0; t < tiles; ++t) {
    std::fill(sum.begin(), sum.end(), 0);
    for (int64_t r = t * h; r < (t + 1) * h; ++r) {
      const uint8_t* row = up.row(r);
      for (int64_t c = 0; c < d; ++c) sum[c] += weight_at(row, c);
    }
    for (int64_t c = 0; c < d; ++c) sig[t * d + c] = static_cast<int8_t>((sum[c] > 0) - (sum[c] < 0));
  }
}

PackedTernary pack_signatures(const TernaryView& up, int64_t tiles) {
  std::vector<int8_t> sig(static_cast<size_t>(tiles > 0 ? tiles * up.cols : 0));
  tile_signatures(up, tiles, sig.data());
  PackedTernary out;
  out.rows = tiles;
  out.cols = up.cols;
  out.data.resize(static_cast<size_t>(tiles * packed_row_bytes(up.cols)));
  pack_int8(sig.data(), tiles, up.cols, out.data.data());
  return out;
}

}  // namespace trix
