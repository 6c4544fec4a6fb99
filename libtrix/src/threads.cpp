// A small persistent pool. One parallel region at a time; a region requested while another runs
// (from a worker or another user thread) runs on its caller, so TriX never has more than
// get_num_threads() threads busy. Work is handed out in chunks to whichever thread is free.
#include "trix/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "trix/error.h"

namespace trix {
namespace {

int default_threads() {
  if (const char* env = std::getenv("TRIX_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int> g_threads{default_threads()};
thread_local bool t_in_worker = false;

// How long an idle worker (and the caller waiting for its parts) spins before sleeping on a
// condition variable: waking a sleeping thread costs tens of microseconds on a virtual machine,
// more than a whole product of a 1024 x 1024 layer, so back-to-back regions (a model's layers)
// would otherwise pay it twice per call. OpenMP runtimes spin the same way (KMP_BLOCKTIME).
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or kSpin has passed; returns done().
template <class Done>
bool spin_until(Done done) {
  const auto end = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > end) return done();
  }
}

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Runs job(0) on the caller and job(1..parts-1) on the workers that join before the caller's part
  // returns. Returns false if the pool is busy. A worker the OS has not run by then is not waited
  // for: the job hands out its work dynamically, so the caller has done what the late one did not.
  bool run(int parts, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> region(region_mu_, std::try_to_lock);
    if (!region.owns_lock()) return false;
    grow(parts - 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &job;
      parts_ = parts;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_worker = true;  // nested calls from the caller's part run inline too
    job(0);
    t_in_worker = false;
    {
      std::lock_guard<std::mutex> lk(mu_);  // close the region: workers join only under this lock
      job_ = nullptr;
    }
    if (!spin_until([&] { return joined_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return joined_.load(std::memory_order_acquire) == 0; });
    }
    return true;
  }

 private:
  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size()) + 1;  // part handled by this worker
      workers_.emplace_back([this, id] { loop(id); });
    }
  }

  void loop(int id) {
    t_in_worker = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        // The region's fields are read under the lock, so a worker that was slow to see one region
        // reads a consistent later one (a region never ends before its participants have run).
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        if (id >= parts_ || job_ == nullptr) continue;  // not needed, or the region already closed
        job = job_;
        joined_.fetch_add(1, std::memory_order_relaxed);
      }
      (*job)(id);  // the job catches its own exceptions
      if (joined_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);  // the caller may be about to sleep: wake it under the lock
        done_cv_.notify_one();
      }
    }
  }

  std::mutex region_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0;
  std::atomic<int> joined_{0};  // workers inside the current region's job
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_num_threads(int n) {
  TRIX_CHECK_ARG(n >= 1, "set_num_threads", "n", "must be >= 1, got ", n);
  g_threads.store(n);
}

int get_num_threads() { return g_threads.load(); }

void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                  int chunks_per_thread) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t grains = (count + grain - 1) / grain;
  const int parts = static_cast<int>(std::min<int64_t>(get_num_threads(), grains));
  if (parts <= 1 || t_in_worker) {
    fn(0, count);
    return;
  }
  // Chunks of whole grains, a few per thread, handed out in order to whichever thread asks next: a
  // thread the OS runs late (torch's pool may be spinning on the other core) delays nothing. Chunk
  // boundaries depend only on count, grain and the thread count, never on who runs a chunk.
  const int64_t chunks = std::min<int64_t>(grains, int64_t{std::max(chunks_per_thread, 1)} * parts);
  std::atomic<int64_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  const std::function<void(int)> job = [&](int p) {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      const int64_t b = std::min(count, grains * c / chunks * grain);
      const int64_t e = std::min(count, grains * (c + 1) / chunks * grain);
      try {
        if (b < e) fn(b, e);
      } catch (...) {
        errors[static_cast<size_t>(p)] = std::current_exception();
        next.store(chunks, std::memory_order_relaxed);  // stop handing out work
        return;
      }
    }
  };
  if (!pool().run(parts, job)) {
    fn(0, count);
    return;
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace trix
