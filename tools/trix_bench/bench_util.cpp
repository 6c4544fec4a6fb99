// What the trix_bench parts share (bench.h).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "bench.h"

namespace trix_bench {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, sep);)
    if (!t.empty()) out.push_back(t);
  return out;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--shapes") o.shapes = split(next(), ',');
    else if (a == "--n") o.ns = split(next(), ',');
    else if (a == "--threads") o.threads = split(next(), ',');
    else if (a == "--levels") o.levels = split(next(), ',');
    else if (a == "--ops") o.ops = split(next(), ',');
    else if (a == "--json") o.json = next();
    else if (a == "--min-ms") o.min_ms = std::stod(next());
    else if (a == "--cold-mib") o.cold_mib = std::stod(next());
    else if (a == "--ffn") continue;
    else throw std::invalid_argument("unknown option '" + a + "'");
  }
  for (const auto& op : o.ops)
    if (op != "int8" && op != "float" && op != "fprep")
      throw std::invalid_argument("--ops takes int8, float, fprep; got '" + op + "'");
  return o;
}

double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
}

namespace {

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}
}  // namespace

Timing time_calls(const std::function<void()>& f, double min_ms) {
  f();
  f();
  std::vector<double> wall, cpu;
  double total = 0;
  while ((total < min_ms * 1e3 || wall.size() < 5) && wall.size() < 2000) {
    const double c0 = thread_cpu_us();
    const auto a = std::chrono::steady_clock::now();
    f();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
    cpu.push_back(thread_cpu_us() - c0);
    wall.push_back(us);
    total += us;
  }
  Timing t;
  std::sort(wall.begin(), wall.end());
  t.best = wall.front();
  t.wall = wall[wall.size() / 2];
  t.p90 = wall[wall.size() * 9 / 10];
  t.cpu = median(cpu);
  return t;
}

trix::PackedTernary random_packed(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<int8_t> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = static_cast<int8_t>(d(g));
  trix::PackedTernary p;
  p.rows = rows;
  p.cols = cols;
  p.data.resize(static_cast<size_t>(rows * trix::packed_row_bytes(cols)));
  trix::pack_int8(w.data(), rows, cols, p.data.data());
  p.scales.assign(1, 0.01f);
  return p;
}

int64_t llc_bytes() {
  // sysfs first: glibc's sysconf can report another figure (256 MiB for a 32 MiB L3 under KVM, seen).
  for (const char* idx : {"3", "2"}) {
    std::ifstream f(std::string("/sys/devices/system/cpu/cpu0/cache/index") + idx + "/size");
    std::string s;
    if (!(f >> s) || s.empty()) continue;
    const char unit = s.back();
    const int64_t mult = unit == 'K' ? 1 << 10 : unit == 'M' ? 1 << 20 : unit == 'G' ? 1 << 30 : 1;
    try {
      const int64_t v = std::stoll(mult == 1 ? s : s.substr(0, s.size() - 1)) * mult;
      if (v > 0) return v;
    } catch (const std::exception&) {
    }
  }
#if defined(_SC_LEVEL3_CACHE_SIZE)
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return l3;
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 > 0) return l2;
#endif
  return int64_t{32} << 20;
}

void write_json(const std::string& path, const std::vector<std::string>& objects) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp);
    if (!o) throw std::runtime_error("cannot write '" + tmp + "'");
    o << "[\n";
    for (size_t i = 0; i < objects.size(); ++i) o << "  " << objects[i] << (i + 1 < objects.size() ? "," : "") << "\n";
    o << "]\n";
    if (!o) throw std::runtime_error("write to '" + tmp + "' failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
}

}  // namespace trix_bench
