#include "otgen/npy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "otgen/error.h"

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

size_t element_size_of(DType t) { return t == DType::Float32 ? 4 : 8; }

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

struct Header {
  DType dtype;
  std::vector<int64_t> shape;
  int64_t numel = 1;
};

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
  const uint64_t need = static_cast<uint64_t>(h.numel) * element_size_of(h.dtype);
  if (have < need)
    bad_file(path, "truncated: the header promises " + std::to_string(h.numel) + " " + dtype_name(h.dtype) +
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
  if (descr == "<f4") h.dtype = DType::Float32;
  else if (descr == "<f8") h.dtype = DType::Float64;
  else if (descr == "<i8") h.dtype = DType::Int64;
  else bad_file(path, "dtype '" + descr + "' is not supported (expected float32 '<f4', float64 '<f8' or int64 '<i8')");
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
// positioned at row `begin`. Returns the elements of one row.
int64_t seek_rows(FILE* f, Header& h, int64_t begin, int64_t& end, const std::string& path) {
  const int64_t rows = h.shape.empty() ? 1 : h.shape[0];
  if (end < 0) end = rows;
  if (begin < 0 || begin > end || end > rows)
    bad_file(path, "rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") asked of an array with " +
                       std::to_string(rows) + " rows");
  const int64_t per_row = rows > 0 ? h.numel / rows : 0;
  if (begin > 0 && std::fseek(f, static_cast<long>(begin * per_row * static_cast<int64_t>(element_size_of(h.dtype))), SEEK_CUR) != 0)
    bad_file(path, "cannot seek to row " + std::to_string(begin));
  if (!h.shape.empty()) h.shape[0] = end - begin;
  h.numel = (end - begin) * per_row;
  return per_row;
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
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.bytes.resize(static_cast<size_t>(h.numel) * element_size_of(h.dtype));
  read_body(f.get(), a.bytes.data(), a.bytes.size(), path, h.numel);
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
    const int64_t n = h.shape[0], d = h.shape.size() == 2 ? h.shape[1] : 1;
    Points p;
    p.n = n;
    p.d = d;
    p.data.resize(static_cast<size_t>(n * d));
    if (h.dtype == DType::Float32) {
      read_body(f.get(), p.data.data(), p.data.size() * 4, path, h.numel);
    } else if (h.dtype == DType::Float64) {
      std::vector<double> tmp(p.data.size());
      read_body(f.get(), tmp.data(), tmp.size() * 8, path, h.numel);
      for (size_t k = 0; k < tmp.size(); ++k) p.data[k] = static_cast<float>(tmp[k]);
    } else {
      fail_argument(argument, "'" + path + "' of dtype int64", "a float32 or float64 array");
    }
    if (!allow_nonfinite) require_finite(p.view(), argument + " ('" + path + "')", begin);
    return p;
  });
}

std::vector<double> read_vector_npy(const std::string& path, const std::string& argument) {
  return read_vector_npy_rows(path, argument, 0, -1);
}

std::vector<double> read_vector_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end) {
  NpyArray a = naming_argument(argument, [&] { return read_npy_rows(path, begin, end); });
  if (a.shape.size() != 1) fail_argument(argument, "'" + path + "' of shape " + shape_text(a.shape), "a 1-D array");
  std::vector<double> v(static_cast<size_t>(a.numel()));
  if (a.dtype == DType::Float32) for (size_t k = 0; k < v.size(); ++k) v[k] = a.as<float>()[k];
  else if (a.dtype == DType::Float64) for (size_t k = 0; k < v.size(); ++k) v[k] = a.as<double>()[k];
  else fail_argument(argument, "'" + path + "' of dtype int64", "a float32 or float64 array");
  require_finite(std::span<const double>(v), argument + " ('" + path + "')", begin);
  return v;
}

std::vector<int64_t> read_int64_npy(const std::string& path, const std::string& argument) {
  return read_int64_npy_rows(path, argument, 0, -1);
}

std::vector<int64_t> read_int64_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end) {
  NpyArray a = naming_argument(argument, [&] { return read_npy_rows(path, begin, end); });
  if (a.shape.size() != 1) fail_argument(argument, "'" + path + "' of shape " + shape_text(a.shape), "a 1-D array");
  if (a.dtype != DType::Int64)
    fail_argument(argument, std::string("'") + path + "' of dtype " + dtype_name(a.dtype), "an int64 array");
  return std::vector<int64_t>(a.as<int64_t>(), a.as<int64_t>() + a.numel());
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
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw Error("cannot write '" + path + "': " + std::strerror(errno));
    if (std::fwrite(content.data(), 1, content.size(), f.get()) != content.size() || std::fflush(f.get()) != 0) {
      const int e = errno;
      f.reset();
      std::remove(tmp.c_str());
      throw Error("cannot write '" + path + "': " + std::strerror(e));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
}

}  // namespace otgen
