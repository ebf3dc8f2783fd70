// Checkpoint I/O: torch.save zip archives (.pth) and safetensors.
//
// Reading maps the file, checks everything the header says (the layout), then copies each
// tensor once out of the mapping (verifying the zip CRC-32 in the same pass); a header read
// is the layout alone. Writing streams one tensor at a time to "<path>.tmp", then renames it
// into place (core/file_io.h).
#include "core/checkpoint.h"

#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/file_io.h"
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "core/pickle.h"
#include "core/zip.h"

namespace eggroll {

namespace {

// Fuzz builds skip CRC checks so that the fuzzer can reach the pickle and tensor code.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
constexpr bool kVerifyCrc = false;
#else
constexpr bool kVerifyCrc = true;
#endif

constexpr uint64_t kMaxSafetensorsHeader = uint64_t(100) << 20;  // the format's own limit


bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}


// ---- .pth -------------------------------------------------------------------------------------

// Large destination buffers get transparent huge pages where the kernel allows them
// ("madvise" mode): a multi-GB load then takes 512x fewer page faults.
void advise_huge(std::vector<uint8_t>& dst) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (dst.capacity() < 2 * kHuge) return;
  uintptr_t b = (reinterpret_cast<uintptr_t>(dst.data()) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t e = (reinterpret_cast<uintptr_t>(dst.data()) + dst.capacity()) & ~(kHuge - 1);
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
}

// Copies n bytes into `dst`, optionally computing their CRC-32 in the same pass.
uint32_t copy_bytes(const uint8_t* src, size_t n, std::vector<uint8_t>& dst, bool crc) {
  constexpr size_t kChunk = size_t(256) << 10;  // stays in L2 between the CRC and the copy
  dst.clear();
  dst.reserve(n);
  advise_huge(dst);
  uint32_t c = 0;
  for (size_t off = 0; off < n; off += kChunk) {
    size_t len = std::min(kChunk, n - off);
    if (crc) c = zip::crc32(src + off, len, c);
    dst.insert(dst.end(), src + off, src + off + len);
  }
  return c;
}

// Copies a strided view of a storage into a row-major buffer (bounds already checked).
void gather(const uint8_t* storage, size_t esize, uint64_t offset, const std::vector<int64_t>& sizes,
            const std::vector<int64_t>& strides, uint64_t numel, std::vector<uint8_t>& dst) {
  dst.resize(size_t(numel) * esize);
  size_t nd = sizes.size();
  std::vector<int64_t> idx(nd, 0);
  uint64_t src = offset;
  for (uint64_t k = 0; k < numel; k++) {
    std::memcpy(dst.data() + k * esize, storage + src * esize, esize);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < sizes[d]) {
        src += uint64_t(strides[d]);
        break;
      }
      src -= uint64_t(strides[d]) * uint64_t(sizes[d] - 1);
      idx[d] = 0;
    }
  }
}

// One tensor's bytes to copy out of the file, planned before any copying starts.
struct CopyJob {
  const zip::Entry* entry = nullptr;  // null for safetensors
  const uint8_t* src = nullptr;       // first byte of the view (contiguous) or storage (strided)
  uint64_t nbytes = 0;
  bool contiguous = true;
  bool crc_fused = false;   // the view is the whole entry: check its CRC while copying
  bool crc_entry = false;   // check the whole entry's CRC before copying
  const pickle::TensorRef* view = nullptr;  // strided copies
};

// Fills one tensor's bytes from the file (its CRC checked where the layout says so).
void copy_job(const CopyJob& j, Tensor& t, const zip::Reader* zr, const std::string& source) {
  if (j.nbytes == 0) return;
  if (j.crc_entry) zr->verify_crc(*j.entry);
  if (j.contiguous) {
    uint32_t c = copy_bytes(j.src, size_t(j.nbytes), t.data, j.crc_fused);
    if (j.crc_fused && c != j.entry->crc)
      throw InputError(source + ": CRC-32 mismatch in zip entry '" + printable(j.entry->name) + "' (file corrupted)");
  } else {
    const pickle::TensorRef& r = *j.view;
    size_t esize = dtype_size(r.dtype);
    gather(j.src, esize, uint64_t(r.storage_offset), r.sizes, r.strides, j.nbytes / esize, t.data);
  }
}

// Runs the copies (in parallel when there is enough to copy) and rethrows the first error.
void run_copies(const std::vector<CopyJob>& jobs, std::vector<Tensor>& tensors, const zip::Reader* zr,
                const std::string& source) {
  uint64_t total = 0;
  for (const CopyJob& j : jobs) total += j.nbytes;
  const bool parallel = total >= (uint64_t(64) << 20);
  std::vector<std::exception_ptr> errors(jobs.size());
  const long n = long(jobs.size());
  auto copy_one = [&](int64_t i) {
    try {
      copy_job(jobs[size_t(i)], tensors[size_t(i)], zr, source);
    } catch (...) {
      errors[size_t(i)] = std::current_exception();
    }
  };
  if (parallel) parallel_for(n, 1, copy_one);
  else
    for (long i = 0; i < n; i++) copy_one(i);
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

// A checked .pth: its tensors without data and the copies that fill them. `jobs` point into
// `refs` and into the zip reader's entries, which must outlive them.
struct PthLayout {
  std::vector<pickle::TensorRef> refs;
  StateDict sd;
  std::vector<CopyJob> jobs;
};

// Everything a .pth load checks before copying tensor data: the pickle (and its CRC), each
// storage record's presence and size, each view's bounds.
void pth_layout(const zip::Reader& zr, size_t size, const std::string& source, PthLayout& out) {
  // The pickle is "<archive>/data.pkl", whatever the archive directory is called.
  const zip::Entry* pkl = nullptr;
  std::string prefix;
  for (const zip::Entry& e : zr.entries()) {
    size_t slash = e.name.find('/');
    if (e.name == "data.pkl" || (slash != std::string::npos && slash + 9 == e.name.size() && ends_with(e.name, "/data.pkl"))) {
      pkl = &e;
      prefix = e.name.substr(0, e.name.size() - 8);
      break;
    }
  }
  if (!pkl) throw InputError(source + ": no data.pkl in the archive (not a torch.save checkpoint)");
  if (kVerifyCrc) zr.verify_crc(*pkl);
  out.refs = pickle::read_state_dict(zr.bytes(*pkl), size_t(pkl->size), source);

  StateDict& sd = out.sd;
  std::vector<CopyJob>& jobs = out.jobs;
  sd.tensors.reserve(out.refs.size());
  jobs.reserve(out.refs.size());
  std::unordered_set<const zip::Entry*> verified;
  // Views may share a storage; a hostile file could repeat a large one many times.
  const uint64_t budget = 4 * uint64_t(size) + (uint64_t(1) << 20);
  uint64_t total = 0;
  for (const pickle::TensorRef& r : out.refs) {
    auto fail = [&](const std::string& what) {
      throw InputError(source + ": tensor '" + printable(r.name) + "': " + what);
    };
    std::string record = prefix + "data/" + r.storage_key;
    const zip::Entry* e = zr.find(record);
    if (!e) fail("storage record '" + printable(record) + "' is missing");
    const uint8_t* storage = zr.bytes(*e);
    size_t esize = dtype_size(r.dtype);
    if (e->size % esize) fail("storage record size " + std::to_string(e->size) + " is not a multiple of the element size");
    uint64_t selems = e->size / esize;

    Tensor t;
    t.name = r.name;
    t.dtype = r.dtype;
    t.shape = r.sizes;
    CopyJob job;
    job.entry = e;
    job.view = &r;
    bool empty = std::any_of(r.sizes.begin(), r.sizes.end(), [](int64_t s) { return s == 0; });
    if (!empty) {
      uint64_t numel = 1, last = uint64_t(r.storage_offset), expect = 1;
      for (size_t d = r.sizes.size(); d-- > 0;) {
        uint64_t sz = uint64_t(r.sizes[d]), term = 0;
        if (r.strides[d] < 0) fail("negative strides are not supported");
        uint64_t st = uint64_t(r.strides[d]);
        if (__builtin_mul_overflow(numel, sz, &numel) || numel > selems)
          fail("larger than its storage (" + std::to_string(selems) + " elements)");
        if (__builtin_mul_overflow(sz - 1, st, &term) || __builtin_add_overflow(last, term, &last))
          fail("strides overflow");
        if (sz != 1 && st != expect) job.contiguous = false;
        expect *= sz;  // <= numel, cannot overflow
      }
      if (last >= selems)
        fail("view (offset " + std::to_string(r.storage_offset) + ") runs past the end of its storage (" +
             std::to_string(selems) + " elements)");
      job.nbytes = numel * esize;
      if ((total += job.nbytes) > budget) fail("the tensors total more than 4x the file size (overlapping views)");
      job.src = job.contiguous ? storage + uint64_t(r.storage_offset) * esize : storage;
      if (kVerifyCrc && verified.insert(e).second) {
        if (job.contiguous && r.storage_offset == 0 && job.nbytes == e->size) job.crc_fused = true;
        else job.crc_entry = true;
      }
    }
    sd.tensors.push_back(std::move(t));
    jobs.push_back(job);
  }
}

}  // namespace

StateDict load_pth_bytes(const uint8_t* data, size_t size, const std::string& source) {
  zip::Reader zr(data, size, source);
  PthLayout layout;
  pth_layout(zr, size, source, layout);
  run_copies(layout.jobs, layout.sd.tensors, &zr, source);
  return std::move(layout.sd);
}

StateDict read_pth_header_bytes(const uint8_t* data, size_t size, const std::string& source) {
  zip::Reader zr(data, size, source);
  PthLayout layout;
  pth_layout(zr, size, source, layout);
  return std::move(layout.sd);
}

StateDict load_pth(const std::string& path) {
  MappedFile f(path);
  return load_pth_bytes(f.data(), f.size(), path);
}

// ---- safetensors ------------------------------------------------------------------------------

namespace {

bool parse_st_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "BF16") out = DType::BF16;
  else if (s == "F16") out = DType::F16;
  else return false;
  return true;
}
const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
  }
  return "?";
}

// Everything a safetensors load checks before copying tensor data (the header, each tensor's
// dtype, shape and data offsets, overlaps): its tensors without data and their copies.
void safetensors_layout(const uint8_t* data, size_t size, const std::string& source, StateDict& sd,
                        std::vector<CopyJob>& jobs) {
  auto fail = [&](const std::string& what) { throw InputError(source + ": " + what); };
  if (size < 8) fail("too short for a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t hlen = 0;
  for (int k = 0; k < 8; k++) hlen |= uint64_t(data[k]) << (8 * k);
  if (hlen > size - 8)
    fail("safetensors header length " + std::to_string(hlen) + " exceeds the file size (truncated?)");
  if (hlen > kMaxSafetensorsHeader) fail("safetensors header larger than 100 MB");

  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(data + 8, data + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("safetensors header is not a JSON object");

  const uint8_t* base = data + 8 + hlen;
  const uint64_t dsize = size - 8 - hlen;
  struct Item {
    Tensor t;
    uint64_t begin, end;
  };
  std::vector<Item> items;
  items.reserve(header.size());
  for (auto& el : header.items()) {
    const std::string& name = el.key();
    const nlohmann::ordered_json& v = el.value();
    auto bad = [&](const std::string& what) { fail("tensor '" + printable(name) + "': " + what); };
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not an object");
      continue;
    }
    if (!v.is_object()) bad("header entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || off == v.end()) bad("needs dtype, shape and data_offsets");
    Item it;
    it.t.name = name;
    if (!dt->is_string() || !parse_st_dtype(dt->get<std::string>(), it.t.dtype))
      bad("unsupported dtype " + dt->dump() + " (F32, BF16 and F16 are supported)");
    if (!sh->is_array()) bad("shape is not an array");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) bad("shape holds " + d.dump() + ", not a non-negative integer");
      uint64_t n = d.get<uint64_t>();
      if (n > uint64_t(INT64_MAX)) bad("dimension too large");
      if (numel != 0 && n != 0 && __builtin_mul_overflow(numel, n, &numel)) bad("shape overflows");
      if (n == 0) numel = 0;
      it.t.shape.push_back(int64_t(n));
    }
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      bad("data_offsets must be [begin, end]");
    it.begin = (*off)[0].get<uint64_t>();
    it.end = (*off)[1].get<uint64_t>();
    if (it.begin > it.end || it.end > dsize)
      bad("data_offsets [" + std::to_string(it.begin) + ", " + std::to_string(it.end) +
          "] outside the data (" + std::to_string(dsize) + " bytes)");
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(it.t.dtype)), &nbytes) || nbytes != it.end - it.begin)
      bad("data_offsets span " + std::to_string(it.end - it.begin) + " bytes but the shape needs " +
          (nbytes == 0 && numel ? std::string("more") : std::to_string(nbytes)));
    items.push_back(std::move(it));
  }
  // File order is the order of the data; keys of a JSON object carry no order.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < items.size(); i++)
    if (items[i].begin < items[i - 1].end)
      fail("tensors '" + printable(items[i - 1].t.name) + "' and '" + printable(items[i].t.name) + "' overlap");

  sd.tensors.reserve(items.size());
  jobs.resize(items.size());
  for (size_t i = 0; i < items.size(); i++) {
    jobs[i].src = base + items[i].begin;
    jobs[i].nbytes = items[i].end - items[i].begin;
    sd.tensors.push_back(std::move(items[i].t));
  }
}

}  // namespace

StateDict load_safetensors_bytes(const uint8_t* data, size_t size, const std::string& source) {
  StateDict sd;
  std::vector<CopyJob> jobs;
  safetensors_layout(data, size, source, sd, jobs);
  run_copies(jobs, sd.tensors, nullptr, source);
  return sd;
}

StateDict read_safetensors_header_bytes(const uint8_t* data, size_t size, const std::string& source) {
  StateDict sd;
  std::vector<CopyJob> jobs;
  safetensors_layout(data, size, source, sd, jobs);
  return sd;
}

StateDict load_safetensors(const std::string& path) {
  MappedFile f(path);
  return load_safetensors_bytes(f.data(), f.size(), path);
}

// ---- by format ----------------------------------------------------------------------------------

CheckpointFormat format_from_path(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ends_with(lower, ".pth") || ends_with(lower, ".pt")) return CheckpointFormat::Pth;
  if (ends_with(lower, ".safetensors")) return CheckpointFormat::Safetensors;
  throw InputError(path + ": unknown checkpoint format (expected .pth, .pt or .safetensors)");
}

namespace {

// The format of a checkpoint from its first bytes (zip magic vs a JSON header after the length).
CheckpointFormat format_from_bytes(const uint8_t* d, size_t n, const std::string& path) {
  if (n >= 4 && d[0] == 'P' && d[1] == 'K' && ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6)))
    return CheckpointFormat::Pth;
  if (n >= 9 && d[8] == '{') return CheckpointFormat::Safetensors;
  throw InputError(path + ": neither a torch .pth (zip) nor a safetensors file");
}

}  // namespace

StateDict load_checkpoint(const std::string& path) {
  MappedFile f(path);
  return format_from_bytes(f.data(), f.size(), path) == CheckpointFormat::Pth
             ? load_pth_bytes(f.data(), f.size(), path)
             : load_safetensors_bytes(f.data(), f.size(), path);
}

struct CheckpointReader::Impl {
  explicit Impl(const std::string& p) : path(p), file(p) {}
  std::string path;
  MappedFile file;
  std::unique_ptr<zip::Reader> zr;
  PthLayout pth;  // a .pth's layout (its jobs point into refs and the reader's entries)
  StateDict st_sd;  // a safetensors file's
  std::vector<CopyJob> st_jobs;
  const StateDict* sd = &st_sd;
  const std::vector<CopyJob>* jobs = &st_jobs;
};

CheckpointReader::CheckpointReader(const std::string& path) : impl_(std::make_unique<Impl>(path)) {
  Impl& m = *impl_;
  if (format_from_bytes(m.file.data(), m.file.size(), path) == CheckpointFormat::Pth) {
    m.zr = std::make_unique<zip::Reader>(m.file.data(), m.file.size(), path);
    pth_layout(*m.zr, m.file.size(), path, m.pth);
    m.sd = &m.pth.sd, m.jobs = &m.pth.jobs;
  } else {
    safetensors_layout(m.file.data(), m.file.size(), path, m.st_sd, m.st_jobs);
  }
}

CheckpointReader::~CheckpointReader() = default;

const StateDict& CheckpointReader::header() const { return *impl_->sd; }

Tensor CheckpointReader::read(size_t i) const {
  const Impl& m = *impl_;
  if (i >= m.jobs->size()) throw std::out_of_range("CheckpointReader::read: no tensor " + std::to_string(i));
  const CopyJob& j = (*m.jobs)[i];
  const Tensor& h = m.sd->tensors[i];
  Tensor t;
  t.name = h.name, t.dtype = h.dtype, t.shape = h.shape;
  copy_job(j, t, m.zr.get(), m.path);
  // The pages this tensor came from (a .pth view's whole storage record) leave the resident set.
  if (j.entry) m.file.release(m.zr->bytes(*j.entry), size_t(j.entry->size));
  else m.file.release(j.src, size_t(j.nbytes));
  return t;
}

void load_checkpoint_streaming(const std::string& path, const std::function<void(const StateDict&)>& header,
                               const std::function<void(size_t, Tensor&&)>& take) {
  const CheckpointReader r(path);
  header(r.header());
  for (size_t i = 0; i < r.header().tensors.size(); i++) take(i, r.read(i));
}

StateDict read_checkpoint_header(const std::string& path) {
  MappedFile f(path, MappedFile::Access::Random);
  return format_from_bytes(f.data(), f.size(), path) == CheckpointFormat::Pth
             ? read_pth_header_bytes(f.data(), f.size(), path)
             : read_safetensors_header_bytes(f.data(), f.size(), path);
}

// ---- writing ----------------------------------------------------------------------------------

size_t TensorSpec::nbytes() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n * dtype_size(dtype);
}

namespace {

// Where tensor i's bytes come from while writing.
using Source = std::function<std::pair<const uint8_t*, size_t>(size_t index)>;

void validate_specs(const std::string& path, const std::vector<TensorSpec>& specs) {
  std::unordered_set<std::string> names;
  for (const TensorSpec& s : specs) {
    if (!names.insert(s.name).second) throw InputError(path + ": duplicate tensor name '" + printable(s.name) + "'");
    if (s.name == "__metadata__") throw InputError(path + ": '__metadata__' cannot name a tensor");
    uint64_t n = dtype_size(s.dtype);
    for (int64_t d : s.shape)
      if (d < 0 || __builtin_mul_overflow(n, uint64_t(d), &n))
        throw InputError(path + ": tensor '" + printable(s.name) + "' has a bad shape");
  }
}

void write_pth(std::FILE* f, const std::string& path, const std::vector<TensorSpec>& specs,
               const Source& source, bool force_zip64) {
  std::vector<pickle::WriteItem> items;
  items.reserve(specs.size());
  for (const TensorSpec& s : specs) items.push_back({s.name, s.dtype, s.shape});
  std::vector<uint8_t> pkl = pickle::write_state_dict(items);
  zip::Writer zw(f, path, 64, force_zip64);
  zw.add("archive/data.pkl", pkl.data(), pkl.size());
  zw.add("archive/byteorder", "little", 6);
  for (size_t i = 0; i < specs.size(); i++) {
    auto [p, n] = source(i);
    zw.add("archive/data/" + std::to_string(i), p, n);
  }
  zw.add("archive/version", "3\n", 2);
  zw.finish();
}

void write_safetensors(std::FILE* f, const std::string& path, const std::vector<TensorSpec>& specs,
                       const Source& source) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const TensorSpec& s : specs) {
    uint64_t n = s.nbytes();
    h[s.name] = {{"dtype", st_dtype(s.dtype)}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": cannot write the safetensors header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  uint8_t len[8];
  for (int k = 0; k < 8; k++) len[k] = uint8_t(uint64_t(text.size()) >> (8 * k));
  write_all(f, path, len, 8);
  write_all(f, path, text.data(), text.size());
  for (size_t i = 0; i < specs.size(); i++) {
    auto [p, n] = source(i);
    write_all(f, path, p, n);
  }
}

void save_streaming(const std::string& path, CheckpointFormat fmt, const std::vector<TensorSpec>& specs,
                    const Source& source, bool force_zip64) {
  validate_specs(path, specs);
  write_file_atomic(path, [&](std::FILE* f, const std::string& tmp) {
    if (fmt == CheckpointFormat::Pth) write_pth(f, tmp, specs, source, force_zip64);
    else write_safetensors(f, tmp, specs, source);
  });
}

std::vector<TensorSpec> specs_of(const StateDict& sd) {
  std::vector<TensorSpec> specs;
  specs.reserve(sd.tensors.size());
  for (const Tensor& t : sd.tensors) specs.push_back({t.name, t.dtype, t.shape});
  return specs;
}

Source source_of(const StateDict& sd, const std::string& path) {
  return [&sd, path](size_t i) {
    const Tensor& t = sd.tensors[i];
    if (t.data.size() != t.nbytes())
      throw InputError(path + ": tensor '" + printable(t.name) + "' holds " + std::to_string(t.data.size()) +
                       " bytes, its shape needs " + std::to_string(t.nbytes()));
    return std::pair<const uint8_t*, size_t>(t.data.data(), t.data.size());
  };
}

}  // namespace

void save_checkpoint_streaming(const std::string& path, CheckpointFormat fmt, const std::vector<TensorSpec>& specs,
                               const TensorProducer& produce) {
  std::vector<uint8_t> buf;
  Source source = [&](size_t i) {
    size_t n = specs[i].nbytes();
    buf.resize(n);
    produce(i, buf);
    if (buf.size() != n)
      throw std::logic_error("save_checkpoint_streaming: producer resized tensor '" + specs[i].name + "'");
    return std::pair<const uint8_t*, size_t>(buf.data(), n);
  };
  save_streaming(path, fmt, specs, source, false);
}

void save_checkpoint(const std::string& path, const StateDict& sd) {
  CheckpointFormat fmt = format_from_path(path);
  save_streaming(path, fmt, specs_of(sd), source_of(sd, path), false);
}

void save_pth(const std::string& path, const StateDict& sd) {
  save_streaming(path, CheckpointFormat::Pth, specs_of(sd), source_of(sd, path), false);
}

void save_safetensors(const std::string& path, const StateDict& sd) {
  save_streaming(path, CheckpointFormat::Safetensors, specs_of(sd), source_of(sd, path), false);
}

namespace detail {
void save_pth_zip64(const std::string& path, const StateDict& sd) {
  save_streaming(path, CheckpointFormat::Pth, specs_of(sd), source_of(sd, path), true);
}
}  // namespace detail

}  // namespace eggroll
