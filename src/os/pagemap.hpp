// Layer os: includes base.
// What backs each page right now, without faulting anything in.
//
// Uses the PAGEMAP_SCAN ioctl (Linux 6.7+): one call per range, and it tells the shared zero
// page and THP mappings apart. Older kernels fall back to reading /proc/self/pagemap, which
// cannot see the zero page (it reports it as present) nor huge mappings.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hetmm::os {

enum PageBits : std::uint8_t {
  kPagePresent = 1,  // a page is mapped (possibly the shared zero page)
  kPageSwapped = 2,  // the data is in swap: not missing
  kPageZero = 4,     // the shared zero page
  kPageHuge = 8,     // part of a PMD (2 MiB) mapping
  kPageFile = 16,    // page cache or shared memory
};

// Fills out[i] for each page of [start, start + npages * 4096). Pages in holes get 0.
// Returns false if neither interface is usable (then out is all 0).
bool query_pages(std::uintptr_t start, std::size_t npages, std::uint8_t* out);

// Whether PAGEMAP_SCAN is available (for `hetmm info`).
bool pagemap_scan_supported();

// In a forked child: the cached /proc/self/pagemap descriptor is the parent's; close it.
void forget_pagemap();

}  // namespace hetmm::os
