// The libtrix thread pool. Work is split statically over output rows (or tiles), each row is
// computed by exactly one thread with the same instructions whatever the split, so results are
// identical for any thread count.
//
// Oversubscription policy: the default is TRIX_NUM_THREADS if set, else the number of hardware
// threads. A libtrix call is synchronous, so torch's own intra-op pool is idle while it runs. A call
// made from inside a libtrix worker, or while another thread already uses the pool, runs on the
// calling thread alone instead of queueing more threads. Code that runs torch ops and TriX ops
// concurrently from several threads should call set_num_threads(1).
#pragma once
#include <cstdint>
#include <functional>

namespace trix {

// Threads used by later calls (1 = the caller only). n must be >= 1; throws std::invalid_argument.
void set_num_threads(int n);
int get_num_threads();

// Calls fn(begin, end) on consecutive chunks covering [0, count): chunk boundaries are multiples of
// `grain` (except the last), at most get_num_threads() chunks, never more chunks than grains.
// The first exception thrown by any chunk is rethrown here after all chunks finished.
void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace trix
