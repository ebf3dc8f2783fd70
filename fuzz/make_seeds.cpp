// Writes small seed inputs for the checkpoint fuzzers (scripts/fuzz.sh):
//   <out>/pth/*.pth and <out>/safetensors/*.safetensors
// Usage: fuzz_make_seeds <out-dir> [<fixtures/rwkv7 dir>]
// Seeds are kept to a few KB so that libFuzzer mutates real structure quickly: our writer's
// layout, the zip64 layout, a few real tensors from the fixtures, and a hand-written pickle
// in the style of the official files (memo, MARK/SETITEMS, views, shared storages).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/zip.h"

namespace fs = std::filesystem;
using namespace eggroll;

namespace {

Tensor ramp(const std::string& name, DType dt, std::vector<int64_t> shape) {
  Tensor t;
  t.shape = shape;
  std::vector<float> v(t.numel());
  for (size_t i = 0; i < v.size(); i++) v[i] = float(i) * 0.25f - 1.f;
  return Tensor::from_f32(name, shape, v.data(), dt);
}

// The first `n` tensors of a fixture with at most `max_numel` elements each.
StateDict head_of(const std::string& path, size_t n, size_t max_numel) {
  StateDict out;
  for (Tensor& t : load_pth(path).tensors) {
    if (out.tensors.size() == n) break;
    if (t.numel() <= max_numel) out.add(std::move(t));
  }
  return out;
}

struct Pickle {
  std::string b = std::string("\x80\x02", 2);
  uint32_t memo = 0;
  Pickle& op(char c) { b += c; return *this; }
  Pickle& put() {  // BINPUT / LONG_BINPUT, as the official files memoize everything
    if (memo < 256) {
      b += 'q';
      b += char(memo);
    } else {
      b += 'r';
      for (int k = 0; k < 4; k++) b += char((memo >> (8 * k)) & 0xff);
    }
    memo++;
    return *this;
  }
  Pickle& get(uint32_t i) { b += 'h'; b += char(i); return *this; }
  Pickle& str(const std::string& s) {
    b += 'X';
    for (int k = 0; k < 4; k++) b += char((s.size() >> (8 * k)) & 0xff);
    b += s;
    return put();
  }
  Pickle& short_str(const std::string& s) { b += '\x8c'; b += char(s.size()); b += s; return *this; }
  Pickle& global(const std::string& m, const std::string& n) { b += 'c' + m + "\n" + n + "\n"; return put(); }
  Pickle& i1(int v) { b += 'K'; b += char(v); return *this; }
  Pickle& i2(int v) { b += 'M'; b += char(v & 0xff); b += char(v >> 8); return *this; }
  Pickle& long1(int64_t v) {
    b += '\x8a';
    b += char(8);
    for (int k = 0; k < 8; k++) b += char((uint64_t(v) >> (8 * k)) & 0xff);
    return *this;
  }
};

std::vector<uint8_t> f32(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// An official-style pickle: top-level EMPTY_DICT, memoized globals reused through BINGET,
// a transposed view, a storage offset, a shared storage, _rebuild_parameter, LONG1 ints.
void write_handmade(const std::string& path) {
  Pickle p;
  p.op('}').put().op('(');
  // "w": storage 0 (2x3 f32) as is
  p.str("w");
  uint32_t rebuild = p.memo;
  p.global("torch._utils", "_rebuild_tensor_v2").op('(').op('(');
  uint32_t storage = p.memo;
  p.str("storage");
  uint32_t floats = p.memo;
  p.global("torch", "FloatStorage").str("0");
  uint32_t cpu = p.memo;
  p.str("cpu").i1(6).op('t').put().op('Q').i1(0).i1(2).i1(3).op('\x86').put().i1(3).i1(1).op('\x86').put();
  p.op('\x89');
  uint32_t odict = p.memo;
  p.global("collections", "OrderedDict").op(')').op('R').put().op('t').put().op('R').put();
  // "wt": the transpose of storage 0
  p.str("wt").get(rebuild).op('(').op('(').get(storage).get(floats).str("0").get(cpu).i1(6).op('t').op('Q');
  p.i1(0).i1(3).i1(2).op('\x86').i1(1).i1(3).op('\x86').op('\x89').get(odict).op(')').op('R').op('t').op('R');
  // "tail": a view at an offset, sizes given as LONG1
  p.str("tail").get(rebuild).op('(').op('(').get(storage).get(floats).str("0").get(cpu).i1(6).op('t').op('Q');
  p.long1(4).long1(2).op('\x85').i2(1).op('\x85').op('\x89').get(odict).op(')').op('R').op('t').op('R');
  // "p": an nn.Parameter around a bf16 tensor in storage 1
  p.short_str("p").global("torch._utils", "_rebuild_parameter").op('(');
  p.get(rebuild).op('(').op('(').get(storage).global("torch", "BFloat16Storage").str("1").get(cpu).i1(4).op('t').op('Q');
  p.i1(0).i1(4).op('\x85').i1(1).op('\x85').op('\x89').get(odict).op(')').op('R').op('t').op('R');
  p.op('\x88').get(odict).op(')').op('R').op('t').op('R');
  // "h": f16 scalar in storage 2
  p.str("h").get(rebuild).op('(').op('(').get(storage).global("torch", "HalfStorage").str("2").get(cpu).i1(1).op('t').op('Q');
  p.i1(0).op(')').op(')').op('\x89').get(odict).op(')').op('R').op('t').op('R');
  p.op('u').op('.');

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw InputError(path + ": cannot create");
  zip::Writer w(f, path);
  const std::string pre = "tiny-rwkv7-834k/";
  w.add(pre + "data.pkl", p.b.data(), p.b.size());
  std::vector<uint8_t> s0 = f32({0, 1, 2, 3, 4, 5});
  std::vector<uint8_t> s1 = {0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0xc0};
  std::vector<uint8_t> s2 = {0x00, 0x3c};
  w.add(pre + "data/0", s0.data(), s0.size());
  w.add(pre + "data/1", s1.data(), s1.size());
  w.add(pre + "data/2", s2.data(), s2.size());
  w.add(pre + "version", "3\n", 2);
  w.finish();
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <out-dir> [<fixtures/rwkv7 dir>]\n", argv[0]);
    return 2;
  }
  try {
    fs::path out = argv[1];
    fs::create_directories(out / "pth");
    fs::create_directories(out / "safetensors");
    auto pth = [&](const std::string& n) { return (out / "pth" / (n + ".pth")).string(); };
    auto st = [&](const std::string& n) { return (out / "safetensors" / (n + ".safetensors")).string(); };

    StateDict small;
    small.add(ramp("emb.weight", DType::BF16, {4, 3}));
    small.add(ramp("blocks.0.att.x_r", DType::F32, {1, 1, 3}));
    small.add(ramp("blocks.0.att.r_k", DType::F16, {2, 2}));
    small.add(ramp("scalar", DType::F32, {}));
    small.add(ramp("empty", DType::F16, {0, 3}));
    save_pth(pth("small"), small);
    detail::save_pth_zip64(pth("small-zip64"), small);
    save_safetensors(st("small"), small);
    write_handmade(pth("handmade"));
    load_pth(pth("handmade"));  // the hand-written seed must itself be valid

    if (argc > 2) {
      for (const char* name : {"tiny-rwkv7-834k", "rand-l3-d256-v1024"}) {
        fs::path fixture = fs::path(argv[2]) / (std::string(name) + ".pth");
        if (!fs::exists(fixture)) continue;
        StateDict head = head_of(fixture.string(), 6, 64);
        save_pth(pth(std::string(name) + "-head"), head);
        save_safetensors(st(std::string(name) + "-head"), head);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
