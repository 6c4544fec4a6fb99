// The parts of trix_bench and what they share: timing, option parsing, random weights, JSON output.
// Each run_* returns a process exit code.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "trix/pack.h"

namespace trix_bench {

int run_kernels(int argc, char** argv);  // bench_kernels.cpp: the products, warm and cold
int run_ffn(int argc, char** argv);      // bench_ffn.cpp: tiled FFN with routing vs the dense FFN
int run_memory(int argc, char** argv);   // bench_memory.cpp
int run_limits(int argc, char** argv);   // bench_limits.cpp: the machine limits the kernels meet
extern const char* const kUsage;         // main.cpp

std::vector<std::string> split(const std::string& s, char sep);

// The options of the product and FFN modes (kUsage lists them); mode flags (--ffn) are skipped.
struct Options {
  std::vector<std::string> shapes{"4096x4096", "2560x6912", "1024x1024"}, ns{"1", "64"}, threads{"1", "2"}, levels,
      ops{"int8", "float", "fprep"};
  std::string json;
  double min_ms = 300;
  double cold_mib = -1;  // < 0: twice the last-level cache
};
Options parse_options(int argc, char** argv);

// Times of repeated calls of f after two warm-up calls: repeats until min_ms of wall time has passed
// (at least 5 calls, at most 2000). wall: median wall µs; best: the fastest call (on a shared machine
// the least disturbed one); cpu: median µs of this thread's CPU time (immune to time slicing, but
// blind to other threads: meaningful for one-thread runs only).
struct Timing {
  double wall = 0, best = 0, cpu = 0, p90 = 0;  // median, fastest, median thread CPU, 90th percentile wall
};
Timing time_calls(const std::function<void()>& f, double min_ms);

// This thread's CPU time in µs: a loop that loses its core to another process is not charged for
// the time it waited (the machine may be shared).
double thread_cpu_us();

// Seeded random ternary weights, one scale 0.01.
trix::PackedTernary random_packed(int64_t rows, int64_t cols, uint32_t seed);

// The last-level cache of this CPU in bytes (sysfs, then sysconf), 32 MiB when the OS does not say.
int64_t llc_bytes();

// One JSON object per row, written to path through a temporary file and a rename (never half-written).
void write_json(const std::string& path, const std::vector<std::string>& objects);

}  // namespace trix_bench
