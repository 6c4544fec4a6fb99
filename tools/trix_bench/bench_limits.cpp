// trix_bench --limits: what bounds the int8 kernels on this machine, measured, and the floors that
// follow for M x K = 4096 x 4096 at one thread:
//   compute: one vpmaddubsw ymm does 32 int8 MACs; a GEMV needs M*K/32 of them (any layout, direct
//     or table: a vpshufb lookup also yields 32 bytes, and an exact int16 table over 2 weights needs
//     two of them, lo and hi bytes, per 64 MACs, i.e. the same count as vpmaddubsw);
//   memory: the packed weights (M*K/4 bytes) at the read bandwidth of the level they live in
//     (the cold model-sized mode: DRAM; warm: the last-level cache), and the last-level cache read
//     by two threads at once (the two-thread GEMV's limit);
//   the instruction mix: the AVX2 GEMV's and GEMM's own loops, in asm from L1 (what the core retires
//     per 128 weights or per vpmaddubsw once every other limit is gone).
// The int8 GEMV itself is timed from L2 (128 rows), where neither memory level limits it, and from
// the LLC (4096 rows) with its spread; the LLC read is also timed pass by pass. On CPUs with
// AVX-512 VNNI also: zmm vpdpbusd alone and with the GEMM's decode ops (shifts, masks, loads) mixed in.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <chrono>
#if defined(__linux__)
#include <sched.h>
#endif
#include <random>
#include <thread>
#include <vector>

#include "bench.h"
#include "limits_avx2.h"
#include "limits_avx512.h"
#include "trix/cpu.h"
#include "trix/matmul.h"
#include "trix/threads.h"

namespace trix_bench {
namespace {

struct Aligned {
  std::unique_ptr<uint8_t[]> mem;
  uint8_t* p;
  explicit Aligned(int64_t bytes) : mem(new uint8_t[static_cast<size_t>(bytes) + 64]) {
    p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mem.get()) + 63) & ~uintptr_t{63});
    std::memset(p, 1, static_cast<size_t>(bytes));  // touch every page before timing
  }
};

// The best of many short runs (~1 ms each): on a shared machine the least disturbed one.
double best_of(int tries, double (*f)(int64_t), int64_t iters) {
  double best = 0;
  for (int i = 0; i < tries; ++i) {
    const double v = f(iters);
    if (v > best) best = v;
  }
  return best;
}

// Read bandwidth from a buffer of `bytes`, read in chunks of `chunk` bytes in turn (each chunk
// after the whole buffer was read once): the best chunk rate. A buffer larger than the LLC is
// read from DRAM in every chunk; a smaller one from the cache level it fits.
double read_gbs(int64_t bytes, int64_t chunk, int passes) {
  Aligned b(bytes);
  avx2_read_bytes_per_ns(b.p, bytes, 1);
  double best = 0;
  for (int p = 0; p < passes; ++p)
    for (int64_t off = 0; off + chunk <= bytes; off += chunk) {
      const double v = avx2_read_bytes_per_ns(b.p + off, chunk, 1);
      if (v > best) best = v;
    }
  return best;
}

// The same read from two threads at once, each over its own half of a `bytes` buffer (the two
// halves of one product's weights): their summed rate.
double read_gbs_two_threads(int64_t bytes, int passes) {
  Aligned b(bytes);
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    double r[2] = {0, 0};
    auto half = [&](int t) {
      avx2_read_bytes_per_ns(b.p + t * (bytes / 2), bytes / 2, 1);
      r[t] = avx2_read_bytes_per_ns(b.p + t * (bytes / 2), bytes / 2, 4);
    };
    std::thread other(half, 1);
    half(0);
    other.join();
    best = std::max(best, r[0] + r[1]);
  }
  return best;
}

// The 4 MiB read again and again, each pass timed: 10th, 50th and 90th percentile rates. A last-level
// cache shared with other tenants of the host shows as a spread that the best-of figures hide.
void read_spread_gbs(int64_t bytes, int passes, double out[3]) {
  Aligned b(bytes);
  avx2_read_bytes_per_ns(b.p, bytes, 1);
  std::vector<double> r;
  for (int p = 0; p < passes; ++p) r.push_back(avx2_read_bytes_per_ns(b.p, bytes, 1));
  std::sort(r.begin(), r.end());
  for (int i = 0; i < 3; ++i) out[i] = r[static_cast<size_t>(passes) * (1 + 4 * i) / 10];
}

// CPUs this process may run on (taskset narrows it).
int cpus_allowed() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
  return static_cast<int>(std::thread::hardware_concurrency());
}

// A two-thread parallel_for over 4096 rows whose chunks spin for `work_us` of wall time in total
// (split in proportion to their rows): its fastest wall time minus work_us / 2 is the cost of
// handing work to the second thread and waiting for it.
double handover_us(double work_us, int chunks_per_thread) {
  trix::set_num_threads(2);
  const Timing t = time_calls([&] {
    trix::parallel_for(4096, 80, [&](int64_t b, int64_t e) {
      const auto t0 = std::chrono::steady_clock::now();
      const double us = work_us * static_cast<double>(e - b) / 4096.0;
      while (std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() < us) {
      }
    }, chunks_per_thread);
  }, 200);
  trix::set_num_threads(1);
  return t.best - work_us / 2;
}

}  // namespace

int run_limits(int, char**) {
  if (!trix::simd_level_supported(trix::SimdLevel::avx2)) {
    std::printf("trix_bench --limits measures AVX2 loops; this CPU or build has no AVX2 level\n");
    return 0;
  }
  trix::set_num_threads(1);
  const int64_t it = 200000, llc = llc_bytes();
  const double ghz = best_of(50, scalar_add_chain_per_ns, it);
  const double madd = best_of(50, avx2_maddubs_per_ns, it / 4), shuf = best_of(50, avx2_shuffle_per_ns, it / 4);
  const double vand = best_of(50, avx2_and_per_ns, it / 4), mix = best_of(50, avx2_maddubs_shuffle_mix_per_ns, it / 4);
  const double gmix = best_of(200, avx2_gemv_mix_blocks_per_ns, it);  // noisier than the one-op loops: more tries
  const double mmix = best_of(200, avx2_gemm_mix_maddubs_per_ns, it / 4);
  std::printf("one thread; CPU-time rates, best of many ~1 ms runs; core clock (dependent add chain): %.2f GHz\n", ghz);
  std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpmaddubsw ymm (32 int8 MACs each)", madd, madd / ghz);
  std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpshufb ymm (32 table lookups each)", shuf, shuf / ghz);
  std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpmaddubsw + vpshufb interleaved (total)", mix, mix / ghz);
  std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpand ymm", vand, vand / ghz);
  std::printf("%-44s %8.2f /ns  %5.2f cycles each\n", "AVX2 GEMV op mix, 128-weight row blocks (L1)", gmix, ghz / gmix);
  std::printf("%-44s %8.2f /ns  %5.2f cycles each\n", "AVX2 GEMM op mix, per vpmaddubsw (L1)", mmix, ghz / mmix);
  const double l2 = read_gbs(256 << 10, 256 << 10, 500), l3 = read_gbs(4 << 20, 4 << 20, 20),
               dram = read_gbs(8 * llc, 4 << 20, 2);
  std::printf("%-44s %8.1f GB/s\n", "read bandwidth, 256 KiB (L2)", l2);
  std::printf("%-44s %8.1f GB/s\n", "read bandwidth, 4 MiB (last-level cache)", l3);
  std::printf("%-44s %8.1f GB/s\n", "read bandwidth, 8x the last-level cache (DRAM)", dram);
  double spread[3];
  read_spread_gbs(4 << 20, 200, spread);
  std::printf("%-44s %8.1f / %.1f / %.1f GB/s (slowest 10%% / median / fastest 10%%)\n",
              "read bandwidth, 4 MiB LLC, pass by pass", spread[0], spread[1], spread[2]);
  const double l3x2 = read_gbs_two_threads(4 << 20, 20);
  std::printf("%-44s %8.1f GB/s\n", "read bandwidth, 4 MiB LLC, two threads (sum)", l3x2);
  const bool vnni = trix::simd_level_supported(trix::SimdLevel::avx512_vnni);
  double dp = 0, dpmix = 0;
  if (vnni) {
    dp = best_of(50, vnni_dpbusd_per_ns, it / 4);
    dpmix = best_of(50, vnni_dpbusd_with_decode_per_ns, it / 4);
    std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpdpbusd zmm (64 int8 MACs each)", dp, dp / ghz);
    std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "  + per 16: 4 vpsrlw, 8 vpandd, 8 loads", dpmix, dpmix / ghz);
    if (const double pb = best_of(50, vbmi_permb_per_ns, it / 4); pb > 0)
      std::printf("%-44s %8.2f /ns  %5.2f /cycle\n", "vpermb zmm (64 byte-table lookups each)", pb, pb / ghz);
  }

  // The int8 GEMV at the best level on 128 rows x 4096 (128 KiB packed: in L2).
  const int64_t rows = 128, k = 4096;
  const auto w = random_packed(rows, k, 9);
  std::vector<int8_t> x(static_cast<size_t>(k));
  std::mt19937 g(3);
  for (auto& v : x) v = static_cast<int8_t>(g() % 256 - 128);
  std::vector<int32_t> acc(static_cast<size_t>(rows));
  const Timing t = time_calls([&] { trix::matmul_i8_acc(x.data(), 1, w.view(), acc.data()); }, 300);
  const double ns_row = t.best * 1e3 / rows;
  std::printf("%-44s %8.1f ns/row (fastest wall call; %s), %.1f G MAC/s\n", "int8 GEMV, 128 x 4096 from L2", ns_row,
              trix::simd_level_name(trix::simd_level()), k / ns_row);

  // The same GEMV on 4096 rows (4 MiB packed: from the last-level cache), one matrix again and again.
  const auto wbig = random_packed(4096, k, 10);
  std::vector<int32_t> accbig(4096);
  const Timing tb = time_calls([&] { trix::matmul_i8_acc(x.data(), 1, wbig.view(), accbig.data()); }, 1000);
  std::printf("%-44s %8.1f / %.1f / %.1f us (fastest / median / 90th percentile)\n", "int8 GEMV, 4096 x 4096 warm (LLC)",
              tb.best, tb.wall, tb.p90);

  if (cpus_allowed() >= 2)
    std::printf("%-44s %8.2f us (fastest call; 2 / 4 chunks per thread: %.2f / %.2f us with 30 us of work)\n",
                "parallel_for hand-over, two threads, empty", handover_us(0, 4), handover_us(30, 2), handover_us(30, 4));
  else
    std::printf("parallel_for hand-over: not measured (this process may run on one CPU only; run without taskset)\n");

  const double macs = 4096.0 * 4096.0, wbytes = macs / 4;
  std::printf("\nfloors for 4096 x 4096, one thread (us):\n");
  std::printf("  %-58s %8.1f\n", "N=1 compute: M*K/32 vpmaddubsw (= 2 vpshufb per 64 MACs)", macs / 32 / madd / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 the kernel's own rate from L2 (4096 rows)", ns_row * 4096 / 1e3);
  if (gmix > 0)
    std::printf("  %-58s %8.1f\n", "N=1 the AVX2 GEMV's op mix at its L1 rate", macs / 128 / gmix / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 warm: 4 MiB packed at last-level-cache bandwidth", wbytes / l3 / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 cold: 4 MiB packed at DRAM bandwidth", wbytes / dram / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 cold torch float32: 64 MiB at DRAM bandwidth", 16 * wbytes / dram / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 cold torch int8: 16 MiB at DRAM bandwidth", 4 * wbytes / dram / 1e3);
  std::printf("  %-58s %8.1f\n", "N=64 compute: 64*M*K/32 vpmaddubsw", 64 * macs / 32 / madd / 1e3);
  if (mmix > 0)
    std::printf("  %-58s %8.1f\n", "N=64 the AVX2 GEMM's op mix at its L1 rate", 64 * macs / 32 / mmix / 1e3);
  std::printf("  %-58s %8.1f\n", "N=1 warm, two threads: 4 MiB at their summed LLC bandwidth", wbytes / l3x2 / 1e3);
  if (vnni) {
    std::printf("  %-58s %8.1f\n", "N=1 compute: M*K/64 vpdpbusd zmm", macs / 64 / dp / 1e3);
    std::printf("  %-58s %8.1f\n", "N=64 compute: 64*M*K/64 vpdpbusd zmm", 64 * macs / 64 / dp / 1e3);
    std::printf("  %-58s %8.1f\n", "N=64 compute with the decode ops mixed in", 64 * macs / 64 / dpmix / 1e3);
  }
  return 0;
}

}  // namespace trix_bench
