// Checkpoint I/O: the fixtures load, .pth <-> safetensors round trips are bit-exact, and
// hostile or damaged files give an InputError (never a crash).
//
// With EGGROLL_CHECKPOINT_OUT=<dir> set, the files this test writes are also copied there,
// for scripts/check_pth_torch.py to load with PyTorch.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/zip.h"
#include "fixtures.h"

namespace fs = std::filesystem;
using namespace eggroll;
using namespace std::string_literals;

namespace {

const std::string kFixtures = EGGROLL_SOURCE_DIR "/../shared/fixtures/rwkv7/";
const std::string kTiny = kFixtures + "tiny-rwkv7-834k.pth";
const std::string kRand = kFixtures + "rand-l3-d256-v1024.pth";

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("eggroll-ckpt-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Copies a written file to $EGGROLL_CHECKPOINT_OUT (when set) for the PyTorch check.
void keep(const std::string& path, const std::string& as) {
  const char* out = std::getenv("EGGROLL_CHECKPOINT_OUT");
  if (!out || !*out) return;
  fs::create_directories(out);
  fs::copy_file(path, fs::path(out) / as, fs::copy_options::overwrite_existing);
}

void require_same(const StateDict& a, const StateDict& b) {
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); i++) {
    INFO("tensor " << i << " " << a.tensors[i].name);
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].dtype == b.tensors[i].dtype);
    CHECK(a.tensors[i].shape == b.tensors[i].shape);
    CHECK(a.tensors[i].data == b.tensors[i].data);
  }
}
bool same(const StateDict& a, const StateDict& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); i++) {
    const Tensor &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) return false;
  }
  return true;
}

Tensor make_tensor(const std::string& name, DType dt, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t;
  t.name = name;
  t.dtype = dt;
  t.shape = std::move(shape);
  std::vector<float> v(t.numel());
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float& x : v) x = nd(rng);
  return Tensor::from_f32(name, t.shape, v.data(), dt);
}

// A few tensors of every dtype, including a scalar and an empty tensor.
StateDict small_dict() {
  StateDict sd;
  sd.add(make_tensor("emb.weight", DType::BF16, {16, 8}, 1));
  sd.add(make_tensor("blocks.0.att.x_r", DType::F32, {1, 1, 8}, 2));
  sd.add(make_tensor("blocks.0.att.r_k", DType::F16, {2, 4}, 3));
  sd.add(make_tensor("scalar", DType::F32, {}, 4));
  sd.add(make_tensor("empty", DType::F16, {0, 3}, 5));
  sd.add(make_tensor("head.weight", DType::F16, {16, 8}, 6));
  return sd;
}

using test::input_error_of;

// ---- a hand-written pickle and zip, for hostile inputs ------------------------------------------

struct Pk {
  std::string b = std::string("\x80\x02", 2);
  Pk& op(char c) {
    b += c;
    return *this;
  }
  Pk& raw(const std::string& s) {
    b += s;
    return *this;
  }
  Pk& str(const std::string& s) {
    b += 'X';
    for (int k = 0; k < 4; k++) b += char((s.size() >> (8 * k)) & 0xff);
    b += s;
    return *this;
  }
  Pk& global(const std::string& m, const std::string& n) { return op('c').raw(m + "\n" + n + "\n"); }
  Pk& i1(int v) {  // BININT1, or BININT2 from 256
    if (v < 256) return op('K').op(char(v));
    return op('M').op(char(v & 0xff)).op(char(v >> 8));
  }
  Pk& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2(storage(key, numel), offset, sizes, strides, False, OrderedDict())
  Pk& tensor(const std::string& storage_class, const std::string& key, int numel, int offset,
             const std::vector<int>& sizes, const std::vector<int>& strides) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", storage_class).str(key).str("cpu").i1(numel).op('t').op('Q');
    i1(offset);
    op('(');
    for (int s : sizes) i1(s);
    op('t').op('(');
    for (int s : strides) i1(s);
    op('t').op('\x89').ordered_dict().op('t').op('R');
    return *this;
  }
  std::vector<uint8_t> bytes() const { return std::vector<uint8_t>(b.begin(), b.end()); }
};

// A zip holding `pickle` as <prefix>data.pkl plus the given records, as bytes.
std::vector<uint8_t> make_zip(const TempDir& dir, const std::vector<uint8_t>& pickle,
                              const std::vector<std::pair<std::string, std::vector<uint8_t>>>& records = {},
                              const std::string& prefix = "archive/") {
  std::string path = dir / "handmade.zip";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  {
    zip::Writer w(f, path);
    w.add(prefix + "data.pkl", pickle.data(), pickle.size());
    for (const auto& [name, data] : records) w.add(prefix + name, data.data(), data.size());
    w.finish();
  }
  std::fclose(f);
  return read_bytes(path);
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Loads through `load`, and checks that the header-only reader agrees: the same tensors
// (names, dtypes, shapes; no data), or the same error. The one difference allowed: damaged
// tensor data (a CRC-32 mismatch in a .pth's data/ record) fails the load, not the header.
template <class Load, class Header>
StateDict load_and_header(Load load, Header header, const uint8_t* data, size_t size, const std::string& source) {
  StateDict head;
  std::string head_error;
  try {
    head = header(data, size, source);
  } catch (const InputError& e) {
    head_error = e.what();
  }
  StateDict full;
  try {
    full = load(data, size, source);
  } catch (const InputError& e) {
    const std::string error = e.what();
    if (head_error.empty()) {
      if (error.find("CRC-32 mismatch in zip entry") == std::string::npos || error.find("/data/") == std::string::npos)
        FAIL_CHECK("the load fails (" << error << ") but the header reads");
    } else if (head_error != error) {
      FAIL_CHECK("the load fails with '" << error << "', the header with '" << head_error << "'");
    }
    throw;
  }
  if (!head_error.empty()) FAIL_CHECK("the load succeeds but the header fails: " << head_error);
  if (head.tensors.size() != full.tensors.size()) FAIL_CHECK("the header has " << head.tensors.size() << " tensors, the load " << full.tensors.size());
  for (size_t i = 0; i < std::min(head.tensors.size(), full.tensors.size()); i++) {
    const Tensor &h = head.tensors[i], &f = full.tensors[i];
    if (h.name != f.name || h.dtype != f.dtype || h.shape != f.shape || !h.data.empty())
      FAIL_CHECK("tensor " << i << ": the header says '" << h.name << "' " << h.shape_str() << " " << dtype_name(h.dtype)
                           << " (" << h.data.size() << " data bytes), the load '" << f.name << "' " << f.shape_str()
                           << " " << dtype_name(f.dtype));
  }
  return full;
}

StateDict load_pth_checked(const uint8_t* data, size_t size, const std::string& source) {
  return load_and_header(load_pth_bytes, read_pth_header_bytes, data, size, source);
}
StateDict load_st_checked(const uint8_t* data, size_t size, const std::string& source) {
  return load_and_header(load_safetensors_bytes, read_safetensors_header_bytes, data, size, source);
}
StateDict load_pth_vec(const std::vector<uint8_t>& b) { return load_pth_checked(b.data(), b.size(), "model.pth"); }
StateDict load_st_vec(const std::vector<uint8_t>& b) { return load_st_checked(b.data(), b.size(), "model.safetensors"); }

// A safetensors file with the given header text and `data_bytes` bytes of data.
std::vector<uint8_t> make_st(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0x3c);
  for (int k = 0; k < 8; k++) b[k] = uint8_t(len >> (8 * k));
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

}  // namespace

// ---- fixtures ---------------------------------------------------------------------------------

TEST_CASE("checkpoint: tiny fp32 fixture loads", "[checkpoint]") {
  StateDict sd = load_pth(kTiny);
  REQUIRE(sd.tensors.size() == 399);
  for (const Tensor& t : sd.tensors) {
    CHECK(t.dtype == DType::F32);
    CHECK(t.data.size() == t.nbytes());
  }
  CHECK(sd.tensors.front().name == "emb.weight");
  CHECK(sd.tensors.back().name == "head.weight");
  const Tensor& emb = sd.at("emb.weight", "test");
  CHECK(emb.shape == std::vector<int64_t>{256, 64});
  CHECK(sd.at("head.weight", "test").shape == std::vector<int64_t>{256, 64});
  CHECK(sd.at("blocks.0.att.x_r", "test").shape == std::vector<int64_t>{1, 1, 64});
  CHECK(sd.at("blocks.0.att.r_k", "test").shape == std::vector<int64_t>{1, 64});
  std::vector<float> v = emb.to_f32();
  CHECK(v[0] == 0.00421142578125f);  // values PyTorch reads from the same file
  CHECK(v[1] == 0.0017852783203125f);
  CHECK(v[2] == 0.00421142578125f);
  // detection by content and by extension
  require_same(load_checkpoint(kTiny), sd);
}

TEST_CASE("checkpoint: random bf16 fixture loads", "[checkpoint]") {
  StateDict sd = load_pth(kRand);
  REQUIRE(sd.tensors.size() == 105);
  for (const Tensor& t : sd.tensors) CHECK(t.dtype == DType::BF16);
  const Tensor& emb = sd.at("emb.weight", "test");
  CHECK(emb.shape == std::vector<int64_t>{1024, 256});
  CHECK(sd.at("head.weight", "test").shape == std::vector<int64_t>{1024, 256});
  CHECK(sd.at("blocks.0.att.r_k", "test").shape == std::vector<int64_t>{4, 64});
  CHECK(sd.at("blocks.0.att.v1", "test").shape == std::vector<int64_t>{256, 16});  // dummy layer-0 v1
  CHECK(sd.at("blocks.1.att.w1", "test").shape == std::vector<int64_t>{256, 32});
  uint16_t raw[3];
  std::memcpy(raw, emb.data.data(), 6);
  CHECK(int16_t(raw[0]) == -16563);  // bits PyTorch reads from the same file
  CHECK(int16_t(raw[1]) == 15619);
  CHECK(int16_t(raw[2]) == 16062);
}

TEST_CASE("checkpoint: .pth -> safetensors -> .pth is bit-exact", "[checkpoint]") {
  TempDir dir;
  for (const auto& [fixture, stem] : {std::pair{kTiny, std::string("tiny")}, std::pair{kRand, std::string("rand")}}) {
    INFO(fixture);
    StateDict a = load_pth(fixture);
    std::string st = dir / (stem + ".safetensors"), pth = dir / (stem + ".pth");
    save_checkpoint(st, a);  // format from the extension
    StateDict b = load_safetensors(st);
    require_same(a, b);
    save_pth(pth, b);
    StateDict c = load_pth(pth);
    require_same(a, c);
    require_same(load_checkpoint(st), a);
    require_same(load_checkpoint(pth), a);
    CHECK_FALSE(fs::exists(st + ".tmp"));
    CHECK_FALSE(fs::exists(pth + ".tmp"));
    // writing is deterministic
    std::string pth2 = dir / (stem + "2.pth");
    save_checkpoint(pth2, c);
    CHECK(read_bytes(pth2) == read_bytes(pth));
    keep(pth, stem + ".pth");
    keep(st, stem + ".safetensors");
  }
}

TEST_CASE("checkpoint: f16, scalars and empty tensors round trip", "[checkpoint]") {
  TempDir dir;
  StateDict sd = small_dict();
  std::string pth = dir / "small.pth", st = dir / "small.safetensors", z64 = dir / "small-zip64.pth";
  save_pth(pth, sd);
  save_safetensors(st, sd);
  detail::save_pth_zip64(z64, sd);
  require_same(load_pth(pth), sd);
  require_same(load_safetensors(st), sd);
  require_same(load_pth(z64), sd);
  require_same(load_checkpoint(z64), sd);
  CHECK(load_pth(pth).at("scalar", "t").shape.empty());
  CHECK(load_pth(pth).at("empty", "t").data.empty());
  // .pth layout: every record's data starts 64-byte aligned, as torch writes it
  std::vector<uint8_t> bytes = read_bytes(pth);
  zip::Reader zr(bytes.data(), bytes.size(), "small.pth");
  REQUIRE(zr.find("archive/data.pkl"));
  REQUIRE(zr.find("archive/version"));
  REQUIRE(zr.find("archive/byteorder"));
  CHECK(std::string(reinterpret_cast<const char*>(zr.bytes(*zr.find("archive/byteorder"))), 6) == "little");
  for (const zip::Entry& e : zr.entries()) {
    CHECK(e.data_offset % 64 == 0);
    CHECK(e.method == 0);
    CHECK_NOTHROW(zr.verify_crc(e));
  }
  CHECK(zr.find("archive/data/5"));
  // zip64 records are really there
  std::vector<uint8_t> zb = read_bytes(z64);
  const uint8_t loc[4] = {'P', 'K', 6, 7};
  CHECK(std::search(zb.begin(), zb.end(), loc, loc + 4) != zb.end());
  keep(pth, "small.pth");
  keep(st, "small.safetensors");
  keep(z64, "small-zip64.pth");
}

TEST_CASE("checkpoint: f16 values survive the round trip", "[checkpoint]") {
  TempDir dir;
  std::vector<float> v = {0.f, -0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f};
  StateDict sd;
  sd.add(Tensor::from_f32("h", {2, 4}, v.data(), DType::F16));
  for (const std::string& name : {std::string("h.pth"), std::string("h.safetensors")}) {
    save_checkpoint(dir / name, sd);
    StateDict back = load_checkpoint(dir / name);
    require_same(back, sd);
    CHECK(back.tensors[0].to_f32() == v);
  }
}

TEST_CASE("checkpoint: large files (parallel copies) round trip and detect corruption", "[checkpoint]") {
  TempDir dir;
  StateDict sd;  // 3 x 24 MiB: above the size where copies run in parallel
  for (int i = 0; i < 3; i++) {
    Tensor t;
    t.name = "big." + std::to_string(i);
    t.dtype = DType::BF16;
    t.shape = {3072, 4096};
    t.data.resize(t.nbytes());
    for (size_t k = 0; k < t.data.size(); k++) t.data[k] = uint8_t((k * 2654435761u) >> (8 + i));
    sd.add(std::move(t));
  }
  std::string pth = dir / "big.pth", st = dir / "big.safetensors";
  save_pth(pth, sd);
  save_safetensors(st, sd);
  require_same(load_pth(pth), sd);
  require_same(load_safetensors(st), sd);
  std::vector<uint8_t> b = read_bytes(pth);
  zip::Reader zr(b.data(), b.size(), "big.pth");
  b[zr.find("archive/data/2")->data_offset + 12345678] ^= 0x10;
  CHECK_THAT(input_error_of([&] { load_pth_vec(b); }), Catch::Contains("CRC-32 mismatch in zip entry 'archive/data/2'"));
}

// ---- streaming ---------------------------------------------------------------------------------

TEST_CASE("checkpoint: streaming writer", "[checkpoint]") {
  TempDir dir;
  StateDict sd = small_dict();
  std::vector<TensorSpec> specs;
  for (const Tensor& t : sd.tensors) specs.push_back({t.name, t.dtype, t.shape});
  for (CheckpointFormat fmt : {CheckpointFormat::Pth, CheckpointFormat::Safetensors}) {
    std::string path = dir / (fmt == CheckpointFormat::Pth ? "s.pth" : "s.safetensors");
    std::vector<size_t> calls;
    save_checkpoint_streaming(path, fmt, specs, [&](size_t i, std::vector<uint8_t>& out) {
      calls.push_back(i);
      REQUIRE(out.size() == sd.tensors[i].data.size());
      std::copy(sd.tensors[i].data.begin(), sd.tensors[i].data.end(), out.begin());
    });
    CHECK(calls == std::vector<size_t>{0, 1, 2, 3, 4, 5});
    require_same(load_checkpoint(path), sd);
    CHECK_FALSE(fs::exists(path + ".tmp"));
    // identical to the non-streaming writer
    std::string again = dir / (fmt == CheckpointFormat::Pth ? "t.pth" : "t.safetensors");
    save_checkpoint(again, sd);
    CHECK(read_bytes(again) == read_bytes(path));

    // a failing producer leaves neither the file nor the temporary
    std::string failing = dir / (fmt == CheckpointFormat::Pth ? "f.pth" : "f.safetensors");
    CHECK_THROWS_WITH(save_checkpoint_streaming(failing, fmt, specs,
                                                [&](size_t i, std::vector<uint8_t>&) {
                                                  if (i == 2) throw std::runtime_error("producer failed");
                                                }),
                      "producer failed");
    CHECK_FALSE(fs::exists(failing));
    CHECK_FALSE(fs::exists(failing + ".tmp"));
  }
  // an unwritable location is an InputError
  CHECK_THROWS_AS(save_pth(dir / "no/such/dir/x.pth", sd), InputError);
  // duplicate names are refused
  specs.push_back(specs[0]);
  CHECK_THROWS_AS(save_checkpoint_streaming(dir / "d.pth", CheckpointFormat::Pth, specs,
                                            [](size_t, std::vector<uint8_t>&) {}),
                  InputError);
}

TEST_CASE("checkpoint: format from path and content", "[checkpoint]") {
  CHECK(format_from_path("a/b.pth") == CheckpointFormat::Pth);
  CHECK(format_from_path("b.pt") == CheckpointFormat::Pth);
  CHECK(format_from_path("B.SafeTensors") == CheckpointFormat::Safetensors);
  CHECK_THROWS_AS(format_from_path("model.bin"), InputError);
  TempDir dir;
  write_bytes(dir / "junk.pth", {'h', 'e', 'l', 'l', 'o'});
  CHECK_THROWS_AS(load_checkpoint(dir / "junk.pth"), InputError);
  write_bytes(dir / "empty.pth", {});
  CHECK_THROWS_AS(load_checkpoint(dir / "empty.pth"), InputError);
  CHECK_THROWS_AS(load_pth(dir / "empty.pth"), InputError);
  CHECK_THROWS_AS(load_pth(dir / "missing.pth"), InputError);
  CHECK_THROWS_AS(load_safetensors(dir / "missing.safetensors"), InputError);
  CHECK_THROWS_AS(load_pth(dir.path.string()), InputError);  // a directory
}

// ---- header-only reads ----------------------------------------------------------------------------

TEST_CASE("checkpoint: header-only reads match the loaders, on disk and in memory", "[checkpoint]") {
  TempDir dir;
  auto header_of_file = [&](const std::string& path) {
    const StateDict head = read_checkpoint_header(path);
    const StateDict full = load_checkpoint(path);
    REQUIRE(head.tensors.size() == full.tensors.size());
    for (size_t i = 0; i < head.tensors.size(); i++) {
      INFO(path << " tensor " << i);
      CHECK(head.tensors[i].name == full.tensors[i].name);
      CHECK(head.tensors[i].dtype == full.tensors[i].dtype);
      CHECK(head.tensors[i].shape == full.tensors[i].shape);
      CHECK(head.tensors[i].data.empty());
    }
    return head;
  };
  CHECK(header_of_file(kTiny).tensors.size() == 399);
  CHECK(header_of_file(kRand).tensors.front().dtype == DType::BF16);
  save_pth(dir / "small.pth", small_dict());
  save_safetensors(dir / "small.safetensors", small_dict());
  CHECK(header_of_file(dir / "small.pth").tensors.size() == 6);
  CHECK(header_of_file(dir / "small.safetensors").tensors.front().name == "emb.weight");

  // bad files: the header reader fails with the loader's error, word for word
  auto same_error = [&](const std::string& path) {
    const std::string e = input_error_of([&] { load_checkpoint(path); });
    CHECK(e != "(no InputError)");
    CHECK(input_error_of([&] { read_checkpoint_header(path); }) == e);
    return e;
  };
  write_bytes(dir / "junk.pth", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  CHECK_THAT(same_error(dir / "junk.pth"), Catch::Contains("neither a torch .pth (zip) nor a safetensors file"));
  write_bytes(dir / "empty.pth", {});
  same_error(dir / "empty.pth");
  CHECK_THAT(same_error(dir / "missing.pth"), Catch::Contains("missing.pth: cannot open"));
  same_error(dir.path.string());  // a directory
  for (const char* name : {"small.pth", "small.safetensors"}) {
    const std::vector<uint8_t> b = read_bytes(dir / name);
    for (size_t cut : {size_t(9), size_t(40), b.size() / 2, b.size() - 30, b.size() - 1}) {
      INFO(name << " cut at " << cut << " of " << b.size());
      write_bytes(dir / ("cut_" + std::string(name)), std::vector<uint8_t>(b.begin(), b.begin() + long(cut)));
      same_error(dir / ("cut_" + std::string(name)));
    }
  }
  // a safetensors file cut inside its data: the header is whole, the offsets point past the end
  {
    std::vector<uint8_t> b = read_bytes(dir / "small.safetensors");
    b.resize(b.size() - 4);
    write_bytes(dir / "short.safetensors", b);
    CHECK_THAT(same_error(dir / "short.safetensors"), Catch::Contains("outside the data"));
  }
  // damaged tensor bytes: only the load, which reads them, sees it
  {
    std::vector<uint8_t> b = read_bytes(dir / "small.pth");
    zip::Reader zr(b.data(), b.size(), "x");
    b[zr.find("archive/data/0")->data_offset + 3] ^= 1;
    write_bytes(dir / "flipped.pth", b);
    CHECK_THAT(input_error_of([&] { load_checkpoint(dir / "flipped.pth"); }), Catch::Contains("CRC-32 mismatch"));
    CHECK(read_checkpoint_header(dir / "flipped.pth").tensors.size() == 6);
  }
}

// ---- one tensor at a time --------------------------------------------------------------------------

namespace {

// What load_checkpoint_streaming hands over, checking the order of its calls: the header once,
// first and without data, then every tensor in its order, named as the header says.
StateDict load_streamed(const std::string& path) {
  StateDict header, got;
  bool have_header = false;
  load_checkpoint_streaming(
      path,
      [&](const StateDict& h) {
        REQUIRE_FALSE(have_header);
        have_header = true;
        header = h;
        for (const Tensor& t : h.tensors) REQUIRE(t.data.empty());
      },
      [&](size_t i, Tensor&& t) {
        REQUIRE(have_header);
        REQUIRE(i == got.tensors.size());
        REQUIRE(i < header.tensors.size());
        CHECK(t.name == header.tensors[i].name);
        CHECK(t.shape == header.tensors[i].shape);
        CHECK(t.data.size() == t.nbytes());
        got.tensors.push_back(std::move(t));
      });
  REQUIRE(got.tensors.size() == header.tensors.size());
  return got;
}

}  // namespace

TEST_CASE("checkpoint: the tensor-at-a-time loader hands over load_checkpoint's tensors and errors", "[checkpoint]") {
  TempDir dir;
  save_pth(dir / "small.pth", small_dict());
  save_safetensors(dir / "small.safetensors", small_dict());
  for (const std::string& path : {kTiny, kRand, dir / "small.pth", dir / "small.safetensors"}) {
    INFO(path);
    require_same(load_streamed(path), load_checkpoint(path));
  }
  // Views sharing one storage of several pages: each tensor's pages are released once it is read,
  // and the next view of the same storage still reads the file's bytes.
  {
    std::vector<float> s(8192);
    for (size_t k = 0; k < s.size(); k++) s[k] = float(k) * 0.5f;
    Pk p;
    p.ordered_dict().op('(');
    p.str("whole").tensor("FloatStorage", "0", 8192, 0, {8192}, {1});
    p.str("tail").tensor("FloatStorage", "0", 8192, 4096, {4096}, {1});
    p.str("transposed").tensor("FloatStorage", "0", 8192, 0, {128, 64}, {1, 128});
    p.str("whole_again").tensor("FloatStorage", "0", 8192, 0, {8192}, {1});
    p.op('u').op('.');
    write_bytes(dir / "shared.pth", make_zip(dir, p.bytes(), {{"data/0", f32_bytes(s)}}));
    const StateDict got = load_streamed(dir / "shared.pth");
    require_same(got, load_checkpoint(dir / "shared.pth"));
    REQUIRE(got.tensors.size() == 4);
    CHECK(got.tensors[3].to_f32() == s);
    CHECK(got.tensors[1].to_f32() == std::vector<float>(s.begin() + 4096, s.end()));
    CHECK(got.tensors[2].to_f32()[1] == s[128]);
  }
  // the reader by index, in any order: the same tensors; an index past the end is refused
  {
    const CheckpointReader r(kTiny);
    const StateDict whole = load_checkpoint(kTiny);
    REQUIRE(r.header().tensors.size() == whole.tensors.size());
    StateDict backwards;
    for (size_t i = whole.tensors.size(); i-- > 0;) backwards.tensors.insert(backwards.tensors.begin(), r.read(i));
    require_same(backwards, whole);
    require_same(StateDict{{r.read(3)}}, StateDict{{whole.tensors[3]}});  // read again
    CHECK_THROWS_AS(r.read(whole.tensors.size()), std::out_of_range);
  }
  // bad files: load_checkpoint's error, word for word; header faults before any tensor
  size_t taken = 0;
  auto streamed_error = [&](const std::string& path) {
    taken = 0;
    return input_error_of([&] { load_checkpoint_streaming(path, [](const StateDict&) {}, [&](size_t, Tensor&&) { taken++; }); });
  };
  auto same_error = [&](const std::string& path) {
    const std::string e = input_error_of([&] { load_checkpoint(path); });
    CHECK(e != "(no InputError)");
    CHECK(streamed_error(path) == e);
    return e;
  };
  write_bytes(dir / "junk.pth", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  CHECK_THAT(same_error(dir / "junk.pth"), Catch::Contains("neither a torch .pth (zip) nor a safetensors file"));
  CHECK_THAT(same_error(dir / "missing.pth"), Catch::Contains("missing.pth: cannot open"));
  for (const char* name : {"small.pth", "small.safetensors"}) {
    const std::vector<uint8_t> b = read_bytes(dir / name);
    for (size_t cut : {size_t(9), b.size() / 2, b.size() - 1}) {
      INFO(name << " cut at " << cut << " of " << b.size());
      write_bytes(dir / ("cut_" + std::string(name)), std::vector<uint8_t>(b.begin(), b.begin() + long(cut)));
      same_error(dir / ("cut_" + std::string(name)));
      CHECK(taken == 0);
    }
  }
  {  // damaged bytes of the last tensor: the tensors before it are handed over, then the CRC error
    std::vector<uint8_t> b = read_bytes(dir / "small.pth");
    zip::Reader zr(b.data(), b.size(), "x");
    const size_t last = small_dict().tensors.size() - 1;
    b[zr.find("archive/data/" + std::to_string(last))->data_offset + 1] ^= 1;
    write_bytes(dir / "flipped.pth", b);
    CHECK_THAT(same_error(dir / "flipped.pth"), Catch::Contains("CRC-32 mismatch"));
    CHECK(taken == last);
  }
  // an error of the consumer propagates and ends the load
  struct Stop {};
  size_t calls = 0;
  CHECK_THROWS_AS(load_checkpoint_streaming(kTiny, [](const StateDict&) {},
                                            [&](size_t i, Tensor&&) {
                                              calls++;
                                              if (i == 2) throw Stop{};
                                            }),
                  Stop);
  CHECK(calls == 3);
}

// ---- damaged files ------------------------------------------------------------------------------

TEST_CASE("checkpoint: truncated .pth files are rejected", "[checkpoint]") {
  TempDir dir;
  save_pth(dir / "small.pth", small_dict());
  std::vector<uint8_t> b = read_bytes(dir / "small.pth");
  for (size_t cut = 0; cut < b.size(); cut++) {
    INFO("cut at " << cut << " of " << b.size());
    CHECK_THROWS_AS(load_pth_checked(b.data(), cut, "small.pth"), InputError);
  }
  std::vector<uint8_t> tiny = read_bytes(kTiny);
  for (size_t k = 0; k < 48; k++) {
    size_t cut = tiny.size() * k / 48 + k * 7;
    INFO("cut at " << cut);
    CHECK_THROWS_AS(load_pth_checked(tiny.data(), cut, "tiny.pth"), InputError);
  }
  for (size_t cut = tiny.size() - 300; cut < tiny.size(); cut++)
    CHECK_THROWS_AS(load_pth_checked(tiny.data(), cut, "tiny.pth"), InputError);
}

TEST_CASE("checkpoint: byte flips in a .pth load identically or fail cleanly", "[checkpoint]") {
  TempDir dir;
  StateDict sd = small_dict();
  save_pth(dir / "small.pth", sd);
  std::vector<uint8_t> b = read_bytes(dir / "small.pth");
  size_t errors = 0;
  for (size_t pos = 0; pos < b.size(); pos++) {
    for (uint8_t mask : {uint8_t(0xff), uint8_t(0x01), uint8_t(0x80)}) {
      b[pos] ^= mask;
      try {
        StateDict got = load_pth_vec(b);
        // CRC-32 protects pickle and data: what loads must be the original
        if (!same(got, sd)) FAIL("flip at " << pos << " loaded different tensors");
      } catch (const InputError&) {
        errors++;
      }
      b[pos] ^= mask;
    }
  }
  CHECK(errors > b.size());  // most positions matter
}

TEST_CASE("checkpoint: compressed or corrupted zip entries are rejected", "[checkpoint]") {
  TempDir dir;
  save_pth(dir / "small.pth", small_dict());
  std::vector<uint8_t> b = read_bytes(dir / "small.pth");
  // mark the first central directory entry (data.pkl) as deflated
  const uint8_t sig[4] = {'P', 'K', 1, 2};
  auto cd = std::search(b.begin(), b.end(), sig, sig + 4);
  REQUIRE(cd != b.end());
  cd[10] = 8;
  CHECK_THAT(input_error_of([&] { load_pth_vec(b); }), Catch::Contains("compressed"));
  cd[10] = 0;
  // flip a byte of tensor data: the CRC catches it
  zip::Reader zr(b.data(), b.size(), "x");
  b[zr.find("archive/data/0")->data_offset + 3] ^= 1;
  CHECK_THAT(input_error_of([&] { load_pth_vec(b); }), Catch::Contains("CRC"));
}

TEST_CASE("checkpoint: truncated and flipped safetensors are rejected", "[checkpoint]") {
  TempDir dir;
  StateDict sd = small_dict();
  save_safetensors(dir / "small.safetensors", sd);
  std::vector<uint8_t> b = read_bytes(dir / "small.safetensors");
  for (size_t cut = 0; cut < b.size(); cut++) {
    INFO("cut at " << cut);
    CHECK_THROWS_AS(load_st_checked(b.data(), cut, "small.safetensors"), InputError);
  }
  for (size_t pos = 0; pos < b.size(); pos++) {
    b[pos] ^= 0xff;
    try {
      load_st_vec(b);
    } catch (const InputError&) {
    }
    b[pos] ^= 0xff;
  }
}

// ---- hostile pickles ---------------------------------------------------------------------------

TEST_CASE("checkpoint: pickle globals outside the allow-list are rejected", "[checkpoint]") {
  TempDir dir;
  std::vector<uint8_t> z = make_zip(dir, Pk().global("os", "system").str("echo hi").op('\x85').op('R').op('.').bytes());
  CHECK(input_error_of([&] { load_pth_vec(z); }) == "model.pth: unsupported pickle global 'os.system'");
  z = make_zip(dir, Pk().global("builtins", "eval").str("1").op('\x85').op('R').op('.').bytes());
  CHECK_THAT(input_error_of([&] { load_pth_vec(z); }), Catch::Contains("'builtins.eval'"));
  // STACK_GLOBAL goes through the same check
  z = make_zip(dir, Pk().str("posix").str("system").op('\x93').op('.').bytes());
  CHECK_THAT(input_error_of([&] { load_pth_vec(z); }), Catch::Contains("'posix.system'"));
  // storage classes we do not read
  z = make_zip(dir, Pk().op('}').str("w").tensor("DoubleStorage", "0", 1, 0, {1}, {1}).op('s').op('.').bytes(),
               {{"data/0", std::vector<uint8_t>(8)}});
  CHECK_THAT(input_error_of([&] { load_pth_vec(z); }), Catch::Contains("'torch.DoubleStorage'"));
}

TEST_CASE("checkpoint: malformed pickles are rejected", "[checkpoint]") {
  TempDir dir;
  auto err = [&](const Pk& p) {
    std::vector<uint8_t> z = make_zip(dir, p.bytes());
    return input_error_of([&] { load_pth_vec(z); });
  };
  CHECK_THAT(err(Pk().raw("I1\n.")), Catch::Contains("unsupported pickle opcode 0x49 ('I')"));
  CHECK_THAT(err(Pk().raw("h\x05.")), Catch::Contains("memo index 5"));
  CHECK_THAT(err(Pk().raw(std::string("j\xff\xff\xff\xff.", 6))), Catch::Contains("memo index"));
  CHECK_THAT(err(Pk().op('R').op('.')), Catch::Contains("stack underflow"));
  CHECK_THAT(err(Pk().op('}').op('(').op('s').op('.')), Catch::Contains("stack underflow"));
  CHECK_THAT(err(Pk().op('t').op('.')), Catch::Contains("MARK"));
  CHECK_THAT(err(Pk().op('}')), Catch::Contains("truncated"));
  CHECK_THAT(err(Pk().raw("X\xff\xff\xff\x7f")), Catch::Contains("truncated"));
  CHECK_THAT(err(Pk().raw("cos\nsys")), Catch::Contains("truncated"));
  CHECK_THAT(err(Pk().op('.')), Catch::Contains("empty stack"));
  CHECK_THAT(err(Pk().raw("\x8a\x09")), Catch::Contains("too large"));
  // deep nesting
  CHECK_THAT(err(Pk().op(')').raw(std::string(1000, '\x85')).op('.')), Catch::Contains("deeper"));
  // a list inside itself, and a container changed after being stored
  CHECK_THAT(err(Pk().raw("]q\x00h\x00"s).op('a').op('.')), Catch::Contains("inside itself"));
  CHECK_THAT(err(Pk().raw("}q\x00\x85h\x00"s).str("a").str("b").op('s').op('.')), Catch::Contains("already stored"));
  // not a state dict
  CHECK_THAT(err(Pk().op(')').op('.')), Catch::Contains("not a state dict"));
  CHECK_THAT(err(Pk().op('}').str("a").i1(1).op('s').op('.')), Catch::Contains("'a' is a int, not a tensor"));
  CHECK_THAT(err(Pk().op('}').i1(1).op(')').op('s').op('.')), Catch::Contains("key is a int"));
  CHECK_THAT(err(Pk().global("torch", "FloatStorage").op(')').op('R').op('.')), Catch::Contains("cannot be called"));
  CHECK(load_pth_vec(make_zip(dir, Pk().op('}').op(')').op('b').op('.').bytes())).tensors.empty());  // empty BUILD
  CHECK_THAT(err(Pk().op('}').op('}').str("x").i1(1).op('s').op('b').op('.')), Catch::Contains("BUILD"));
  // a pickle with no data.pkl at all
  std::vector<uint8_t> z = make_zip(dir, Pk().op('}').op('.').bytes(), {}, "a/b/");
  CHECK_THAT(input_error_of([&] { load_pth_vec(z); }), Catch::Contains("no data.pkl"));
}

TEST_CASE("checkpoint: storage offsets, strides and views", "[checkpoint]") {
  TempDir dir;
  std::vector<float> s = {0, 1, 2, 3, 4, 5};  // storage "0": a 2x3 row-major matrix
  auto load = [&](const Pk& p) {
    return load_pth_vec(make_zip(dir, p.bytes(), {{"data/0", f32_bytes(s)}}, "weird_prefix/"));
  };
  auto with = [](const std::string& name, int offset, std::vector<int> sizes, std::vector<int> strides) {
    return Pk().op('}').str(name).tensor("FloatStorage", "0", 6, offset, sizes, strides).op('s').op('.');
  };
  // transposed view: materialised row-major
  StateDict t = load(with("t", 0, {3, 2}, {1, 3}));
  CHECK(t.tensors[0].shape == std::vector<int64_t>{3, 2});
  CHECK(t.tensors[0].to_f32() == std::vector<float>{0, 3, 1, 4, 2, 5});
  // offset into the storage
  CHECK(load(with("o", 4, {2}, {1})).tensors[0].to_f32() == std::vector<float>{4, 5});
  // a column, and a broadcast that stays within the storage size
  CHECK(load(with("c", 1, {2}, {3})).tensors[0].to_f32() == std::vector<float>{1, 4});
  CHECK(load(with("b", 2, {2, 3}, {0, 1})).tensors[0].to_f32() == std::vector<float>{2, 3, 4, 2, 3, 4});
  // size-1 dims with odd strides are still contiguous
  CHECK(load(with("r", 0, {1, 6}, {99, 1})).tensors[0].to_f32() == s);
  // out of range: offset, extent, expansion beyond the storage
  CHECK_THAT(input_error_of([&] { load(with("x", 5, {2}, {1})); }), Catch::Contains("past the end"));
  CHECK_THAT(input_error_of([&] { load(with("x", 0, {2, 3}, {4, 1})); }), Catch::Contains("past the end"));
  CHECK_THAT(input_error_of([&] { load(with("x", 0, {4, 3}, {0, 1})); }), Catch::Contains("larger than its storage"));
  CHECK_THAT(input_error_of([&] { load(with("x", 0, {7}, {1})); }), Catch::Contains("tensor 'x'"));
  CHECK_THAT(input_error_of([&] { load(Pk().op('}').str("m").tensor("FloatStorage", "9", 6, 0, {2}, {1}).op('s').op('.')); }),
             Catch::Contains("'weird_prefix/data/9' is missing"));
  // empty tensors need no storage bytes
  CHECK(load(with("e", 6, {0, 5}, {5, 1})).tensors[0].data.empty());
  // _rebuild_parameter around a tensor; a repeated key keeps its place and takes the last value
  Pk p;
  p.ordered_dict().op('(').str("a");
  p.global("torch._utils", "_rebuild_parameter").op('(').tensor("FloatStorage", "0", 6, 0, {6}, {1});
  p.op('\x88').ordered_dict().op('t').op('R');
  p.str("b").tensor("FloatStorage", "0", 6, 1, {1}, {1});
  p.str("a").tensor("FloatStorage", "0", 6, 2, {1}, {1});
  p.op('u').op('.');
  StateDict d = load(p);
  REQUIRE(d.tensors.size() == 2);
  CHECK(d.tensors[0].name == "a");
  CHECK(d.tensors[0].to_f32() == std::vector<float>{2});
  CHECK(d.tensors[1].name == "b");
}

// ---- bad safetensors headers ------------------------------------------------------------------

TEST_CASE("checkpoint: bad safetensors headers are rejected", "[checkpoint]") {
  auto err = [&](const std::vector<uint8_t>& b) { return input_error_of([&] { load_st_vec(b); }); };
  const std::string ok = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  StateDict good = load_st_vec(make_st(ok, 12));
  REQUIRE(good.tensors.size() == 2);
  CHECK(good.tensors[0].name == "a");  // data order, not header order
  CHECK(good.tensors[1].name == "b");
  CHECK(good.tensors[1].dtype == DType::F16);

  CHECK_THAT(err({1, 2, 3}), Catch::Contains("too short"));
  CHECK_THAT(err(make_st(ok, 12, 1u << 20)), Catch::Contains("exceeds the file size"));
  CHECK_THAT(err(make_st(ok, 12, ~uint64_t(0) - 3)), Catch::Contains("exceeds the file size"));
  CHECK_THAT(err(make_st("{bad json", 0)), Catch::Contains("not valid JSON"));
  CHECK_THAT(err(make_st("[1,2]", 0)), Catch::Contains("not a JSON object"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)), Catch::Contains("outside the data"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,4]}})", 12)), Catch::Contains("outside the data"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), Catch::Contains("shape needs 12"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("tensor 'a'"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8)), Catch::Contains("unsupported dtype \"I64\""));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 8)), Catch::Contains("non-negative"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", 8)), Catch::Contains("non-negative"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[2]}})", 8)), Catch::Contains("data_offsets"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)), Catch::Contains("data_offsets"));
  CHECK_THAT(err(make_st(R"({"a":[1]})", 8)), Catch::Contains("not an object"));
  CHECK_THAT(err(make_st(R"({"__metadata__":3})", 8)), Catch::Contains("__metadata__"));
  CHECK_THAT(err(make_st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
             Catch::Contains("overlap"));
  // empty tensors and an empty file are fine
  CHECK(load_st_vec(make_st(R"({"a":{"dtype":"BF16","shape":[0,4],"data_offsets":[0,0]}})", 0)).tensors[0].data.empty());
  CHECK(load_st_vec(make_st("{}", 0)).tensors.empty());
}
