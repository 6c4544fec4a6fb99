// The libtrix thread pool. Work is split into chunks of output rows (or tiles) handed to whichever
// thread is free; each row is computed by exactly one thread with the same instructions whatever
// the split, so results are identical for any thread count.
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

// Calls fn(begin, end) on consecutive chunks covering [0, count), concurrently on up to
// get_num_threads() threads: chunk boundaries are multiples of `grain` (except the last), at most
// chunks_per_thread chunks per thread (more let a thread take over the work of one the OS runs
// late; fewer cost less hand-over), never more chunks than grains. After an exception no further
// chunk starts; the first one thrown is rethrown here once the running chunks finished.
void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                  int chunks_per_thread = 4);

}  // namespace trix
