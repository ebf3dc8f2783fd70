// Commands on models and text: info, logits, tokenize, generate, convert, init-model.
#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/cpu_backend.h"
#include "core/gemm_bf16.h"
#include "core/error.h"
#include "core/file_io.h"
#include "app/commands.h"
#include "app/plan.h"
#include "app/train_config.h"
#include "rwkv/backend_model.h"
#include "rwkv/forward.h"
#include "rwkv/decoder.h"
#include "rwkv/model.h"
#include "rwkv/tokenizer.h"

namespace eggroll {

namespace {
int g_status = 0;

std::string json_dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::unique_ptr<Tokenizer> tokenizer_for(const std::string& vocab, const Model& m) {
  if (!vocab.empty()) {
    auto t = vocab == "byte" ? make_byte_tokenizer() : load_world_tokenizer(vocab);
    if (t->vocab_size() > m.cfg.vocab)
      throw InputError(fmt::format("--vocab {}: tokenizer has {} ids but the model's vocabulary is {}", vocab,
                                   t->vocab_size(), m.cfg.vocab));
    return t;
  }
  if (m.cfg.vocab == 256) return make_byte_tokenizer();
  return nullptr;
}

void check_tokens(const std::string& flag, const std::vector<int32_t>& toks, const Model& m) {
  for (int32_t t : toks)
    if (t < 0 || t >= m.cfg.vocab)
      throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary [0, {})", flag, t, m.cfg.vocab));
}

}  // namespace

int command_status() { return g_status; }
void set_command_status(int s) { g_status = s; }

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  size_t i = 0;
  if (text.empty()) throw InputError(flag + ": empty list");
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw InputError(fmt::format("{}: '{}' is not an integer (expected a comma-separated list like 3,17,0)", flag,
                                   item));
    out.push_back(v);
    i = j + 1;
  }
  return out;
}

std::vector<int32_t> parse_token_list(const std::string& flag, const std::string& text) {
  std::vector<int32_t> out;
  for (int64_t v : parse_int_list(flag, text)) {
    if (v < 0 || v > INT32_MAX) throw InputError(fmt::format("{}: token id {} out of range", flag, v));
    out.push_back(int32_t(v));
  }
  return out;
}

void register_model_commands(CLI::App& app) {
  // ---- info ----
  {
    auto* c = app.add_subcommand("info", "Print a checkpoint's inferred configuration and parameter count");
    auto model = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    c->add_option("--model", *model, "checkpoint (.pth or .safetensors)")->required();
    c->add_flag("--json", *json, "print JSON");
    c->callback([=] {
      StateDict sd = load_checkpoint(*model);
      ModelConfig cfg = ModelConfig::infer(sd, *model);
      nlohmann::json j = {{"model", *model},         {"n_layer", cfg.n_layer},   {"n_embd", cfg.n_embd},
                          {"n_head", cfg.n_head},     {"head_size", cfg.head_size}, {"vocab", cfg.vocab},
                          {"ffn", cfg.ffn},           {"dw", cfg.dw},             {"da", cfg.da},
                          {"dv", cfg.dv},             {"dg", cfg.dg},             {"layer0_vlora", cfg.layer0_vlora},
                          {"dtype", dtype_name(sd.tensors.front().dtype)},      {"tensors", sd.tensors.size()},
                          {"params", cfg.param_count()}};
      if (*json) {
        std::cout << json_dump(j) << "\n";
      } else {
        fmt::print("{}\n{}\ndtype {}, {} tensors, {} parameters ({:.1f}M)\n", *model, cfg.describe(),
                   dtype_name(sd.tensors.front().dtype), sd.tensors.size(), cfg.param_count(),
                   double(cfg.param_count()) / 1e6);
      }
    });
  }
  // ---- logits ----
  {
    auto* c = app.add_subcommand("logits", "Write float32 logits [T, V]: row t after tokens[0..t]");
    auto model = std::make_shared<std::string>();
    auto tokens = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    c->add_option("--model", *model, "checkpoint")->required();
    c->add_option("--tokens", *tokens, "comma-separated token ids, e.g. 3,17,0")->required();
    c->add_option("--out", *out, "output file (float32 little-endian)")->required();
    c->callback([=] {
      auto toks = parse_token_list("--tokens", *tokens);
      Model m = Model::load(*model);
      check_tokens("--tokens", toks, m);
      Forward fwd(m);
      BatchState st(m.cfg, 1);
      std::vector<float> all(toks.size() * size_t(m.cfg.vocab));
      const int slot = 0;
      for (size_t t = 0; t < toks.size(); t++)
        fwd.step(std::span(&toks[t], 1), std::span(&slot, 1), st, all.data() + t * size_t(m.cfg.vocab));
      try {
        write_file_atomic(*out, std::string_view(reinterpret_cast<const char*>(all.data()), all.size() * 4));
      } catch (const InputError& e) {
        throw InputError(fmt::format("--out {}", e.what()));  // "--out <file>.tmp: cannot create: ..."
      }
    });
  }
  // ---- tokenize ----
  {
    auto* c = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
    auto vocab = std::make_shared<std::string>();
    auto text = std::make_shared<std::string>();
    c->add_option("--vocab", *vocab, "World vocab file (rwkv_vocab_v20230424.txt) or 'byte'")->required();
    c->add_option("--text", *text, "text to encode")->required();
    c->callback([=] {
      auto tok = *vocab == "byte" ? make_byte_tokenizer() : load_world_tokenizer(*vocab);
      std::cout << json_dump(tok->encode(*text)) << "\n";
    });
  }
  // ---- generate ----
  {
    auto* c = app.add_subcommand("generate", "Generate a continuation of a prompt");
    struct Opts {
      std::string model, prompt, vocab, tokens, stop, matrix_dtype = "auto";
      int max_tokens = 64, top_k = 0, n = 1;
      float temperature = 0.f, top_p = 1.f;
      uint64_t seed = 0;
      bool json = false, no_stop = false;
    };
    auto o = std::make_shared<Opts>();
    c->add_option("--model", o->model, "checkpoint")->required();
    auto* po = c->add_option("--prompt", o->prompt, "prompt text (needs --vocab unless the model is byte-level)");
    auto* to = c->add_option("--tokens", o->tokens, "prompt as comma-separated token ids");
    po->excludes(to);
    c->add_option("--vocab", o->vocab, "World vocab file, or 'byte'");
    c->add_option("--max-tokens", o->max_tokens, "tokens to generate at most")->check(CLI::Range(1, 1 << 24));
    c->add_option("--temperature", o->temperature, "0 = greedy")->check(CLI::Range(0.f, 100.f));
    c->add_option("--top-k", o->top_k, "0 = off")->check(CLI::Range(0, 1 << 30));
    c->add_option("--top-p", o->top_p, "1 = off")->check(CLI::Range(0.f, 1.f));
    c->add_option("--seed", o->seed, "sampling seed");
    c->add_option("-n,--num", o->n, "independent samples of the same prompt (one batch)")->check(CLI::Range(1, 65536));
    c->add_option("--stop", o->stop, "stop string (default: blank line \"\\n\\n\" when a tokenizer is known)");
    c->add_flag("--no-stop", o->no_stop, "do not stop on a string");
    c->add_flag("--json", o->json, "print a JSON object");
    c->add_option("--matrix-dtype", o->matrix_dtype,
                  "matrix products: f32, bf16, or auto (bf16 for a 16-bit checkpoint on a CPU with AVX512-BF16)")
        ->check(CLI::IsMember({"auto", "f32", "bf16"}));
    c->callback([=] {
      if (o->prompt.empty() && o->tokens.empty()) throw InputError("generate: give --prompt TEXT or --tokens IDS");
      if (o->top_p <= 0.f) throw InputError("--top-p: must be in (0, 1]");
      DType stored = DType::F32;
      read_checkpoint_config(o->model, &stored);  // the header alone: decides how to load
      const bool bf16 = matrix_dtype_for(o->matrix_dtype, stored, cpu_has_bf16_dot()) == "bf16";
      // bf16: 16-bit matrices stay as their bits until their panels exist (never widened to fp32)
      Model m = load_model(o->model, bf16 ? Model::MatrixBits::Keep : Model::MatrixBits::Widen);
      auto tok = tokenizer_for(o->vocab, m);
      std::vector<int32_t> prompt;
      if (!o->tokens.empty()) {
        prompt = parse_token_list("--tokens", o->tokens);
      } else {
        if (!tok) throw InputError("--prompt: the model is not byte-level, so --vocab PATH is needed to encode text");
        prompt = tok->encode(o->prompt);
        if (prompt.empty()) throw InputError("--prompt: empty prompt");
      }
      check_tokens("--tokens", prompt, m);
      GenOptions go;
      go.max_tokens = o->max_tokens;
      go.sampling = {o->temperature, o->top_k, o->top_p};
      go.tokenizer = tok.get();
      if (tok && !o->no_stop) go.stop_strings = {o->stop.empty() ? std::string("\n\n") : o->stop};
      std::vector<GenRequest> reqs(size_t(o->n));
      for (int i = 0; i < o->n; i++) reqs[size_t(i)] = {prompt, o->seed + uint64_t(i), 0};
      GenStats stats;
      std::vector<GenResult> res;
      // placing and packing a large model takes a while (seconds per GB): say so
      const bool large = std::filesystem::file_size(o->model) >= kLargeCheckpointBytes;
      const auto t0 = std::chrono::steady_clock::now();
      if (large) fmt::print(stderr, "packing the matrices for the {} products\n", bf16 ? "bf16" : "fp32");
      auto packed = [&] {
        if (large)
          fmt::print(stderr, "packed in {:.1f} s\n",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      };
      if (bf16) {  // bf16 panels only: each host tensor is freed once placed
        CpuBackend be;
        BackendModel bm(be, std::move(m), DType::BF16);
        bm.prepare_products();
        packed();
        Decoder dec(be, bm.weights(), int64_t(o->n));
        res = generate(dec, reqs, go, &stats);
      } else {
        Forward fwd(m);
        packed();
        res = generate(fwd, reqs, go, nullptr, &stats);
      }
      if (o->json) {
        auto one = [&](const GenResult& r) {
          nlohmann::json j = {{"tokens", r.tokens}, {"stop_reason", r.stop_reason}};
          if (tok) j["text"] = r.text;
          return j;
        };
        nlohmann::json j = one(res[0]);
        j["prompt_tokens"] = prompt;
        if (o->n > 1) {
          j["samples"] = nlohmann::json::array();
          for (auto& r : res) j["samples"].push_back(one(r));
        }
        j["tokens_per_second"] = stats.seconds > 0 ? double(stats.generated_tokens) / stats.seconds : 0.0;
        j["matrix_dtype"] = bf16 ? "bf16" : "f32";
        std::cout << json_dump(j) << "\n";
      } else {
        for (auto& r : res) {
          if (tok) std::cout << r.text << "\n";
          else std::cout << json_dump(r.tokens) << "\n";
        }
        fmt::print(stderr, "{} tokens in {:.2f}s ({:.1f} tokens/s)\n", stats.generated_tokens, stats.seconds,
                   stats.seconds > 0 ? double(stats.generated_tokens) / stats.seconds : 0.0);
      }
    });
  }
  // ---- convert ----
  {
    auto* c = app.add_subcommand("convert", "Convert a checkpoint between .pth and .safetensors");
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto dtype = std::make_shared<std::string>();
    c->add_option("--model", *in, "input checkpoint")->required();
    c->add_option("--out", *out, "output path (.pth or .safetensors)")->required();
    c->add_option("--dtype", *dtype, "convert tensors to f32, bf16 or f16 (default: keep)");
    c->callback([=] {
      format_from_path(*out);  // validate the extension before reading
      DType dt{};
      if (!dtype->empty() && !parse_dtype(*dtype, dt))
        throw InputError(fmt::format("--dtype: '{}' is not one of f32, bf16, f16", *dtype));
      // one tensor at a time: read, converted, written (never the whole checkpoint in memory)
      const CheckpointReader r(*in);
      std::vector<TensorSpec> specs;
      for (const Tensor& t : r.header().tensors) specs.push_back({t.name, dtype->empty() ? t.dtype : dt, t.shape});
      save_checkpoint_streaming(*out, format_from_path(*out), specs, [&](size_t i, std::vector<uint8_t>& bytes) {
        const Tensor t = r.read(i);
        if (t.dtype == specs[i].dtype) bytes = t.data;
        else convert_from_f32(specs[i].dtype, t.to_f32().data(), bytes.data(), t.numel());
      });
      fmt::print(stderr, "wrote {} ({} tensors)\n", *out, specs.size());
    });
  }
  // ---- init-model ----
  {
    auto* c = app.add_subcommand("init-model", "Write a random RWKV-7 checkpoint with the real shapes");
    struct Opts {
      std::string preset, out, dtype = "bf16";
      int layers = 0, embd = 0, vocab = 65536, dw = 0, da = 0, dv = 0, dg = 0, ffn = 0;
      uint64_t seed = 0;
    };
    auto o = std::make_shared<Opts>();
    std::string presets;
    for (auto& n : ModelConfig::preset_names()) presets += (presets.empty() ? "" : ", ") + n;
    c->add_option("--preset", o->preset, "size preset: " + presets);
    c->add_option("--layers", o->layers, "explicit dims: number of layers")->check(CLI::Range(1, 1024));
    c->add_option("--embd", o->embd, "explicit dims: n_embd (multiple of 64)")->check(CLI::Range(64, 1 << 16));
    c->add_option("--vocab", o->vocab, "vocabulary size")->check(CLI::Range(2, 1 << 24));
    c->add_option("--dw", o->dw, "decay LoRA width")->check(CLI::Range(1, 1 << 16));
    c->add_option("--da", o->da, "in-context-rate LoRA width")->check(CLI::Range(1, 1 << 16));
    c->add_option("--dv", o->dv, "value LoRA width")->check(CLI::Range(1, 1 << 16));
    c->add_option("--dg", o->dg, "gate LoRA width")->check(CLI::Range(1, 1 << 16));
    c->add_option("--ffn", o->ffn, "FFN width (default 4 x n_embd)")->check(CLI::Range(1, 1 << 20));
    c->add_option("--seed", o->seed, "random seed");
    c->add_option("--dtype", o->dtype, "f32, bf16 (default) or f16");
    c->add_option("--out", o->out, "output path (.pth or .safetensors)")->required();
    c->callback([=] {
      DType dt{};
      if (!parse_dtype(o->dtype, dt)) throw InputError(fmt::format("--dtype: '{}' is not one of f32, bf16, f16", o->dtype));
      ModelConfig cfg;
      if (!o->preset.empty()) {
        if (o->layers || o->embd) throw InputError("--preset: give either a preset or --layers/--embd, not both");
        cfg = ModelConfig::preset(o->preset, o->vocab);
      } else {
        if (!o->layers || !o->embd) throw InputError("init-model: give --preset NAME or both --layers and --embd");
        if (o->embd % 64) throw InputError(fmt::format("--embd: {} is not a multiple of the head size 64", o->embd));
        cfg.n_layer = o->layers, cfg.n_embd = o->embd, cfg.n_head = o->embd / 64, cfg.vocab = o->vocab;
        cfg.ffn = 4 * o->embd, cfg.dw = 64, cfg.da = 64, cfg.dv = 32, cfg.dg = 128;
      }
      if (o->dw) cfg.dw = o->dw;
      if (o->da) cfg.da = o->da;
      if (o->dv) cfg.dv = o->dv;
      if (o->dg) cfg.dg = o->dg;
      if (o->ffn) cfg.ffn = o->ffn;
      format_from_path(o->out);
      write_random_checkpoint(o->out, cfg, o->seed, dt);
      fmt::print(stderr, "wrote {}: {} ({} parameters)\n", o->out, cfg.describe(), cfg.param_count());
    });
  }
}

}  // namespace eggroll
