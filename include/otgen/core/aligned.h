// Cache-line aligned storage for packed kernel operands (the bf16 and int8 screens): a 64-byte AMX tile
// row or zmm load then never straddles two cache lines (malloc's large blocks start 16 bytes into a
// page). Blocks of 2 MiB and more are 2 MiB aligned and advised to transparent huge pages: packing
// Fashion-MNIST's columns then takes a few dozen page faults instead of tens of thousands.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <vector>

namespace otgen {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  static std::align_val_t alignment(std::size_t n) { return std::align_val_t{n * sizeof(T) >= kHuge ? kHuge : 64}; }
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    void* p = ::operator new(bytes, alignment(n));
    if (bytes >= kHuge) madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // advisory: ignored where unsupported
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) { ::operator delete(p, alignment(n)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

// A vector whose data() is 64-byte aligned.
template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace otgen
