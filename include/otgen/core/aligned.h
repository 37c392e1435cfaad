// Cache-line aligned storage for packed kernel operands (the bf16 and int8 screens): a 64-byte AMX tile
// row or zmm load then never straddles two cache lines (malloc's large blocks start 16 bytes into a page).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace otgen {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

// A vector whose data() is 64-byte aligned.
template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace otgen
