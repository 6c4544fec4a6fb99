// trix_generate: run a .trixm model (written by `trix export`) from the command line.
//   trix_generate model.trixm --prompt "ROMEO:" -n 200 --temperature 0     prompt + 200 characters
//   trix_generate model.trixm --bench                                      tokens/s, like llama-bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "trix/cpu.h"
#include "trix/model.h"
#include "trix/threads.h"

namespace {

const char* kUsage =
    "usage: trix_generate MODEL.trixm [options]\n"
    "\n"
    "Prints the prompt followed by the generated characters (as `trix generate`).\n"
    "\n"
    "options:\n"
    "  --prompt TEXT       prompt (default \"\\n\"); every character must be in the model's vocabulary\n"
    "  -n, --tokens N      characters to generate (default 500)\n"
    "  --temperature T     sampling temperature (default 0.8); 0 = greedy\n"
    "  --top-k K           sample among the K most likely tokens only (default: all)\n"
    "  --seed S            random seed for sampling and random routing (default 0)\n"
    "  --threads N         libtrix threads (default: TRIX_NUM_THREADS or all cores)\n"
    "  --bench             print tokens/s instead of text: prompt processing and generation\n"
    "  --bench-threads L   comma-separated thread counts for --bench (default: --threads)\n"
    "  --pp N              prompt tokens for --bench (default 512; sequences of at most block_size)\n"
    "  --tg N              generated tokens for --bench (default 128, at most block_size - 1)\n"
    "  --reps N            repetitions for --bench; the median is reported (default 3)\n"
    "  -h, --help          this help\n";

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak resident memory of this process (VmHWM; getrusage's maxrss would include the parent's
// memory at fork on Linux), or -1 where /proc is missing.
double peak_rss_mib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atof(line + 6);
  std::fclose(f);
  return kib / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Prompt processing: pp tokens as ceil(pp / L) sequences of L = min(pp, block_size) in one batch.
double bench_pp(const trix::Model& m, int64_t pp) {
  const trix::ModelConfig& c = m.config();
  const int64_t len = std::min(pp, c.block_size), batch = (pp + len - 1) / len;
  std::vector<int32_t> tok(static_cast<size_t>(batch * len));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>(i * 7 % c.vocab_size);
  std::vector<float> logits(static_cast<size_t>(batch * c.vocab_size));
  trix::State st(m, batch);
  const double t0 = now();
  m.forward(tok.data(), len, st, logits.data(), true);
  return static_cast<double>(batch * len) / (now() - t0);
}

// Generation at batch 1: one cached step per token after a one-token prompt, greedy.
double bench_tg(const trix::Model& m, int64_t tg) {
  const trix::ModelConfig& c = m.config();
  tg = std::min(tg, c.block_size - 1);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  trix::State st(m, 1);
  int32_t tok = 0;
  m.forward(&tok, 1, st, logits.data(), true);
  const trix::SamplingOptions greedy{0.0f, 0, 0};
  uint64_t rng = 0;
  const double t0 = now();
  for (int64_t i = 0; i < tg; ++i) {
    tok = m.sample(logits.data(), greedy, rng);
    m.forward(&tok, 1, st, logits.data(), true);
  }
  return static_cast<double>(tg) / (now() - t0);
}

int run_bench(const trix::Model& m, const std::string& path, const std::vector<int>& threads, int64_t pp, int64_t tg,
              int reps) {
  const trix::ModelConfig& c = m.config();
  std::printf("model: %s (d %lld, %lld layers, %lld heads, ffn %s, routing %s, %lld tiles, block %lld), %.1f MiB, simd %s\n",
              path.c_str(), static_cast<long long>(c.d_model), static_cast<long long>(c.n_layer),
              static_cast<long long>(c.n_head), trix::ffn_kind_name(c.ffn), trix::routing_name(c.routing),
              static_cast<long long>(c.tiles), static_cast<long long>(c.block_size), m.nbytes() / 1048576.0,
              trix::simd_level_name(trix::simd_level()));
  std::printf("| threads | test | tokens/s |\n|---|---|---|\n");
  for (int t : threads) {
    trix::set_num_threads(t);
    bench_pp(m, std::min<int64_t>(pp, 16));  // warm-up: pool threads, page faults of the mapping
    std::vector<double> a, b;
    for (int r = 0; r < reps; ++r) a.push_back(bench_pp(m, pp));
    for (int r = 0; r < reps; ++r) b.push_back(bench_tg(m, tg));
    std::printf("| %d | pp%lld | %.1f |\n", t, static_cast<long long>(pp), median(a));
    std::printf("| %d | tg%lld | %.1f |\n", t, static_cast<long long>(std::min(tg, c.block_size - 1)), median(b));
  }
  std::printf("peak RSS: %.1f MiB\n", peak_rss_mib());
  return 0;
}

bool parse_int(const char* s, int64_t& out) {
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (end == s || *end) return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, prompt;
  int64_t n = 500, top_k = 0, pp = 512, tg = 128, reps = 3, threads = 0, seed = 0;
  float temperature = 0.8f;
  bool bench = false;
  std::string bench_threads;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> const char* {
        if (i + 1 >= argc) throw std::invalid_argument("option " + a + " needs a value");
        return argv[++i];
      };
      auto integer = [&](int64_t lo) {
        int64_t v = 0;
        const char* s = value();
        if (!parse_int(s, v) || v < lo) throw std::invalid_argument("option " + a + " needs an integer >= " + std::to_string(lo) + ", got '" + s + "'");
        return v;
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--prompt") prompt = value();
      else if (a == "-n" || a == "--tokens") n = integer(0);
      else if (a == "--temperature") {
        const char* s = value();
        char* end = nullptr;
        temperature = std::strtof(s, &end);
        if (end == s || *end || !(temperature >= 0)) throw std::invalid_argument(std::string("option --temperature needs a number >= 0, got '") + s + "'");
      } else if (a == "--top-k") top_k = integer(1);
      else if (a == "--seed") seed = integer(0);
      else if (a == "--threads") threads = integer(1);
      else if (a == "--bench") bench = true;
      else if (a == "--bench-threads") bench_threads = value();
      else if (a == "--pp") pp = integer(1);
      else if (a == "--tg") tg = integer(1);
      else if (a == "--reps") reps = integer(1);
      else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option " + a + " (see --help)");
      else if (path.empty()) path = a;
      else throw std::invalid_argument("more than one model file given: '" + path + "' and '" + a + "'");
    }
    if (path.empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    if (threads > 0) trix::set_num_threads(static_cast<int>(threads));
    const trix::Model model = trix::Model::load(path);
    if (bench) {
      std::vector<int> list;
      std::stringstream ss(bench_threads);
      for (std::string part; std::getline(ss, part, ',');) {
        int64_t v = 0;
        if (!parse_int(part.c_str(), v) || v < 1) throw std::invalid_argument("option --bench-threads needs integers >= 1, got '" + part + "'");
        list.push_back(static_cast<int>(v));
      }
      if (list.empty()) list.push_back(trix::get_num_threads());
      return run_bench(model, path, list, pp, tg, static_cast<int>(reps));
    }
    const trix::SamplingOptions opt{temperature, top_k, static_cast<uint64_t>(seed)};
    std::cout << model.generate(prompt, n, opt) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "trix_generate: " << e.what() << "\n";
    return 2;
  }
}
