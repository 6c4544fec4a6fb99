// Loads a .trixm model and prints the prompt followed by n greedily generated characters, then the
// same continuation computed step by step with the KV cache API (they must agree).
#include <trix/model.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.trixm PROMPT N\n";
    return 2;
  }
  try {
    const trix::Model model = trix::Model::load(argv[1]);
    const std::string prompt = argv[2];
    const int64_t n = std::atoll(argv[3]);
    const std::string text = model.generate(prompt, n, trix::SamplingOptions{0.0f, 0, 0});
    std::cout << text << "\n";

    // The same by hand while the context fits: one forward over the prompt, then one cached step per token.
    const trix::ModelConfig& cfg = model.config();
    std::vector<int32_t> ids = model.encode(prompt.empty() ? "\n" : prompt);
    const int64_t steps = std::min<int64_t>(n, cfg.block_size - static_cast<int64_t>(ids.size()));
    if (steps > 0) {
      trix::State state(model, 1);
      std::vector<float> logits(static_cast<size_t>(cfg.vocab_size));
      model.forward(ids.data(), static_cast<int64_t>(ids.size()), state, logits.data(), true);
      for (int64_t i = 0; i < steps; ++i) {
        const int32_t tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        ids.push_back(tok);
        if (i + 1 < steps) model.forward(&tok, 1, state, logits.data(), true);
      }
      const std::string by_hand = model.decode(ids.data(), static_cast<int64_t>(ids.size()));
      if (text.compare(0, by_hand.size(), by_hand) != 0) {
        std::cerr << "the step-by-step continuation differs from generate():\n" << by_hand << "\n";
        return 1;
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    return 2;
  }
}
