#include "otgen/core/npy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/staging.h"

namespace otgen {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "?";
}

namespace {


struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

// The element format stored in the file: kind 'f' (float16/32/64), 'i' or 'u' (8 to 64 bits), either
// byte order. Reading converts it (otgen/core/npy.h: the input policy).
struct Header {
  char kind = 'f';
  int itemsize = 4;
  bool swap = false;  // big-endian on this little-endian machine
  std::vector<int64_t> shape;
  int64_t numel = 1;
  std::string descr;  // as written, for messages
  std::string type_name() const {
    return (kind == 'f' ? "float" : kind == 'i' ? "int" : "uint") + std::to_string(8 * itemsize);
  }
};

// float16 bits -> float (subnormals, infinities and NaN included).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return sign ? -v : v;
}

// Element k of a body chunk as double (any kind) or int64 (integer kinds; uint64 above 2^63 - 1 is
// reported by the caller through `ok`).
template <class T>
T element_at(const unsigned char* p, const Header& h, bool& ok) {
  unsigned char b[8];
  for (int i = 0; i < h.itemsize; ++i) b[i] = p[h.swap ? h.itemsize - 1 - i : i];
  auto get = [&](auto v) {
    std::memcpy(&v, b, sizeof v);
    return v;
  };
  if (h.kind == 'f') {
    const double v = h.itemsize == 2 ? half_to_float(get(uint16_t{})) : h.itemsize == 4 ? get(float{}) : get(double{});
    return static_cast<T>(v);
  }
  if (h.kind == 'i') {
    const int64_t v = h.itemsize == 1 ? get(int8_t{}) : h.itemsize == 2 ? get(int16_t{}) : h.itemsize == 4 ? get(int32_t{}) : get(int64_t{});
    return static_cast<T>(v);
  }
  const uint64_t v = h.itemsize == 1 ? get(uint8_t{}) : h.itemsize == 2 ? get(uint16_t{}) : h.itemsize == 4 ? get(uint32_t{}) : get(uint64_t{});
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) ok = false;
  return static_cast<T>(v);
}

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  throw Error("invalid .npy file '" + path + "': " + what);
}

// Extracts the value text after 'key': in the header dictionary.
std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const auto k = header.find("'" + key + "'");
  if (k == std::string::npos) bad_file(path, "header has no '" + key + "' entry");
  auto colon = header.find(':', k);
  if (colon == std::string::npos) bad_file(path, "malformed header");
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  size_t end = start;
  if (start < header.size() && header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) bad_file(path, "malformed shape");
    return header.substr(start, end - start + 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  std::string v = header.substr(start, end - start);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

constexpr int64_t kMaxElements = int64_t{1} << 40;

// A header is checked against the file before anything is allocated: a regular file must hold the
// numel * itemsize bytes its header promises (a 193-byte file claiming 2^40 elements is refused here).
void check_body_size(FILE* f, const Header& h, const std::string& path) {
  struct stat st;
  const long at = std::ftell(f);
  if (at < 0 || ::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) return;  // pipes: read_body checks
  const uint64_t have = static_cast<uint64_t>(st.st_size) > static_cast<uint64_t>(at) ? st.st_size - at : 0;
  const uint64_t need = static_cast<uint64_t>(h.numel) * static_cast<uint64_t>(h.itemsize);
  if (have < need)
    bad_file(path, "truncated: the header promises " + std::to_string(h.numel) + " " + h.type_name() +
                       " elements (" + std::to_string(need) + " bytes), the file holds " + std::to_string(have) +
                       " data bytes");
}

Header read_header(FILE* f, const std::string& path) {
  unsigned char magic[8];
  if (std::fread(magic, 1, 8, f) != 8 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    bad_file(path, "not a NumPy .npy file (bad magic string)");
  const int major = magic[6];
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (std::fread(b, 1, 2, f) != 2) bad_file(path, "truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (std::fread(b, 1, 4, f) != 4) bad_file(path, "truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    bad_file(path, "unsupported format version " + std::to_string(major));
  }
  if (header_len > (1u << 24)) bad_file(path, "header too long");
  std::string header(header_len, '\0');
  if (std::fread(header.data(), 1, header_len, f) != header_len) bad_file(path, "truncated header");

  Header h;
  std::string descr = dict_value(header, "descr", path);
  if (descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"')) descr = descr.substr(1, descr.size() - 2);
  h.descr = descr;
  const bool sized = descr.size() == 3 && std::strchr("<>|=", descr[0]) && std::strchr("fiu", descr[1]) &&
                     std::strchr("1248", descr[2]);
  if (!sized || (descr[1] == 'f' && descr[2] == '1'))
    bad_file(path, "dtype '" + descr + "' is not supported (expected a real number type: float16/32/64 or an "
                   "8- to 64-bit integer, either byte order)");
  h.kind = descr[1];
  h.itemsize = descr[2] - '0';
  h.swap = descr[0] == '>' && h.itemsize > 1;
  const std::string fortran = dict_value(header, "fortran_order", path);
  if (fortran == "True") bad_file(path, "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  if (fortran != "False") bad_file(path, "malformed fortran_order '" + fortran + "'");
  const std::string shape = dict_value(header, "shape", path);
  if (shape.empty() || shape.front() != '(') bad_file(path, "malformed shape '" + shape + "'");
  size_t pos = 1;
  while (pos < shape.size()) {
    while (pos < shape.size() && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size() || shape[pos] == ')') break;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(shape.substr(pos), &used);
    } catch (const std::exception&) {
      bad_file(path, "malformed shape '" + shape + "'");
    }
    if (v < 0 || used == 0) bad_file(path, "malformed shape '" + shape + "'");
    if (v > kMaxElements || (v > 0 && h.numel > kMaxElements / v))
      bad_file(path, "shape " + shape + " has more than 2^40 elements");
    h.shape.push_back(v);
    h.numel *= v;
    pos += used;
  }
  check_body_size(f, h, path);
  return h;
}

File open_read(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  return f;
}

void read_body(FILE* f, void* dst, size_t bytes, const std::string& path, int64_t numel) {
  if (bytes && std::fread(dst, 1, bytes, f) != bytes)
    bad_file(path, "truncated data (header promises " + std::to_string(numel) + " elements)");
}

// The body of h converted to T (float, double or int64_t), read in chunks of 1 MiB (a straight read
// when the stored type is T).
template <class T>
std::vector<T> read_converted(FILE* f, const Header& h, const std::string& path) {
  std::vector<T> out(static_cast<size_t>(h.numel));
  const char kind = std::is_floating_point_v<T> ? 'f' : 'i';
  if (!h.swap && h.kind == kind && static_cast<size_t>(h.itemsize) == sizeof(T)) {
    read_body(f, out.data(), out.size() * sizeof(T), path, h.numel);
    return out;
  }
  std::vector<unsigned char> chunk(size_t{1} << 20);
  const size_t per = chunk.size() / static_cast<size_t>(h.itemsize);
  bool ok = true;
  for (size_t done = 0; done < out.size();) {
    const size_t k = std::min(per, out.size() - done);
    read_body(f, chunk.data(), k * static_cast<size_t>(h.itemsize), path, h.numel);
    for (size_t i = 0; i < k; ++i) out[done + i] = element_at<T>(chunk.data() + i * h.itemsize, h, ok);
    done += k;
  }
  if (std::is_integral_v<T> && !ok) bad_file(path, "uint64 values above 2^63 - 1 do not fit in int64");
  return out;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "(";
  for (size_t k = 0; k < s.size(); ++k) t += (k ? ", " : "") + std::to_string(s[k]);
  return t + (s.size() == 1 ? ",)" : ")");
}

template <class T>
void write_typed(const std::string& path, std::span<const T> values, const std::vector<int64_t>& shape,
                 const char* descr) {
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  if (numel != static_cast<int64_t>(values.size()))
    throw Error("write_npy('" + path + "'): shape " + shape_text(shape) + " does not match " +
                std::to_string(values.size()) + " values");
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  out += dict;
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  write_file_atomic(path, out);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

NpyArray read_npy(const std::string& path) { return read_npy_rows(path, 0, -1); }

namespace {

// The first dimension of h restricted to [begin, end) (end = -1: to the end), checked; the file
// positioned at row `begin`.
void seek_rows(FILE* f, Header& h, int64_t begin, int64_t end, const std::string& path) {
  const int64_t rows = h.shape.empty() ? 1 : h.shape[0];
  if (end < 0) end = rows;
  if (begin < 0 || begin > end || end > rows)
    bad_file(path, "rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") asked of an array with " +
                       std::to_string(rows) + " rows");
  const int64_t per_row = rows > 0 ? h.numel / rows : 0;
  if (begin > 0 && std::fseek(f, static_cast<long>(begin * per_row * h.itemsize), SEEK_CUR) != 0)
    bad_file(path, "cannot seek to row " + std::to_string(begin));
  if (!h.shape.empty()) h.shape[0] = end - begin;
  h.numel = (end - begin) * per_row;
}

}  // namespace

int64_t npy_rows(const std::string& path) {
  File f = open_read(path);
  const Header h = read_header(f.get(), path);
  return h.shape.empty() ? 1 : h.shape[0];
}

NpyArray read_npy_rows(const std::string& path, int64_t begin, int64_t end) {
  File f = open_read(path);
  Header h = read_header(f.get(), path);
  seek_rows(f.get(), h, begin, end, path);
  NpyArray a;
  a.shape = h.shape;
  auto keep = [&a](const auto& v, DType t) {
    a.dtype = t;
    a.bytes.resize(v.size() * sizeof(v[0]));
    if (!v.empty()) std::memcpy(a.bytes.data(), v.data(), a.bytes.size());
  };
  if (h.kind == 'f' && h.itemsize <= 4) keep(read_converted<float>(f.get(), h, path), DType::Float32);
  else if (h.kind == 'f') keep(read_converted<double>(f.get(), h, path), DType::Float64);
  else keep(read_converted<int64_t>(f.get(), h, path), DType::Int64);
  return a;
}

namespace {

// Runs read() and names `argument` in the errors of the file layer (missing, truncated, bad header),
// which know only the path.
template <class F>
auto naming_argument(const std::string& argument, F read) {
  try {
    return read();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find(argument) != std::string::npos) throw;
    throw Error(argument + ": " + msg);
  }
}

}  // namespace

Points read_points_npy(const std::string& path, const std::string& argument, bool allow_nonfinite) {
  return read_points_npy_rows(path, argument, 0, -1, allow_nonfinite);
}

Points read_points_npy_rows(const std::string& path, const std::string& argument, int64_t begin, int64_t end,
                            bool allow_nonfinite) {
  return naming_argument(argument, [&] {
    File f = open_read(path);
    Header h = read_header(f.get(), path);
    if (h.shape.size() != 1 && h.shape.size() != 2)
      fail_argument(argument, "'" + path + "' of shape " + shape_text(h.shape), "a 2-D (n, d) float array");
    seek_rows(f.get(), h, begin, end, path);
    Points p;
    p.n = h.shape[0];
    p.d = h.shape.size() == 2 ? h.shape[1] : 1;
    p.data = read_converted<float>(f.get(), h, path);
    if (!allow_nonfinite) require_finite(p.view(), argument + " ('" + path + "')", begin);
    return p;
  });
}

std::vector<double> read_vector_npy(const std::string& path, const std::string& argument) {
  return read_vector_npy_rows(path, argument, 0, -1);
}

std::vector<double> read_vector_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end) {
  return naming_argument(argument, [&] {
    File f = open_read(path);
    Header h = read_header(f.get(), path);
    if (h.shape.size() != 1) fail_argument(argument, "'" + path + "' of shape " + shape_text(h.shape), "a 1-D array");
    seek_rows(f.get(), h, begin, end, path);
    std::vector<double> v = read_converted<double>(f.get(), h, path);
    require_finite(std::span<const double>(v), argument + " ('" + path + "')", begin);
    return v;
  });
}

std::vector<int64_t> read_int64_npy(const std::string& path, const std::string& argument) {
  return read_int64_npy_rows(path, argument, 0, -1);
}

std::vector<int64_t> read_int64_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end) {
  return naming_argument(argument, [&] {
    File f = open_read(path);
    Header h = read_header(f.get(), path);
    if (h.shape.size() != 1) fail_argument(argument, "'" + path + "' of shape " + shape_text(h.shape), "a 1-D array");
    if (h.kind == 'f')
      fail_argument(argument, "'" + path + "' of dtype " + h.type_name(), "an integer array (int64, int32, uint8, ...)");
    seek_rows(f.get(), h, begin, end, path);
    return read_converted<int64_t>(f.get(), h, path);
  });
}

std::vector<int64_t> read_labels_npy(const std::string& path, const std::string& argument) {
  std::vector<int64_t> l = read_int64_npy(path, argument);
  require_labels(l, argument + " ('" + path + "')");
  return l;
}

void write_npy(const std::string& path, std::span<const float> v, std::vector<int64_t> shape) { write_typed(path, v, shape, "<f4"); }
void write_npy(const std::string& path, std::span<const double> v, std::vector<int64_t> shape) { write_typed(path, v, shape, "<f8"); }
void write_npy(const std::string& path, std::span<const int64_t> v, std::vector<int64_t> shape) { write_typed(path, v, shape, "<i8"); }

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = temporary_path(path);
  register_temporary(tmp);
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) {
      const int e = errno;
      forget_temporary(tmp);
      throw Error("cannot write '" + path + "': " + std::strerror(e));
    }
    if (std::fwrite(content.data(), 1, content.size(), f.get()) != content.size() || std::fflush(f.get()) != 0) {
      const int e = errno;
      f.reset();
      discard_temporary(tmp);
      throw Error("cannot write '" + path + "': " + std::strerror(e));
    }
  }
  publish(tmp, path);
}

}  // namespace otgen
