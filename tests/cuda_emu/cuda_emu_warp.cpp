// Warp-collective operations of the CUDA emulator: a warp intrinsic is a rendezvous of the lanes named in
// its mask (warp_exchange parks the fiber; resolve_warp, called by the block scheduler, completes it once
// every named lane has arrived), including the tensor-core instructions ldmatrix and mma, computed by the
// PTX ISA's fragment layouts; and the per-thread cp.async copy groups.
#include "cuda_emu_internal.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

namespace cuda_emu {
namespace detail {
namespace {

// ldmatrix.x4 of the warp at `base`: lane 8i+r holds the address of row r of matrix i; lane l receives in
// register i the 4 bytes at byte 4*(l%4) of row l/4 of matrix i (PTX ISA, ldmatrix).
void resolve_ldmatrix(Worker& w, unsigned base) {
  const unsigned char* rows[32];
  for (unsigned p = 0; p < 32; ++p) {
    std::memcpy(&rows[p], w.fibers[base + p].value, sizeof(rows[p]));
    if (reinterpret_cast<uintptr_t>(rows[p]) % 16 != 0) {
      fail(where(w.fibers[base + p]) + ": ldmatrix row address is not 16-byte aligned");
    }
  }
  for (unsigned l = 0; l < 32; ++l) {
    uint32_t r[4];
    for (unsigned i = 0; i < 4; ++i) std::memcpy(&r[i], rows[8 * i + l / 4] + 4 * (l % 4), 4);
    std::memcpy(w.fibers[base + l].value, r, sizeof(r));
  }
}

float mma_element(int kind, uint32_t reg, int half) {
  if (kind == 2) {  // tf32: the hardware ignores the low 13 bits
    const uint32_t bits = reg & 0xffffe000u;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  const uint16_t h = static_cast<uint16_t>(half == 0 ? reg & 0xffffu : reg >> 16);  // lower index: low half
  return kind == 0 ? static_cast<float>(c10::BFloat16(h, c10::BFloat16::from_bits()))
                   : static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}

// mma.sync of the warp at `base`: gathers A, B, C from the lanes' fragments (layouts as documented in
// csrc/cuda/tensor_core.cuh, from the PTX ISA), computes D = A*B + C in float32 (products of 16-bit or
// TF32 values are exact in float32; the sum runs in k order), and scatters D back.
void resolve_mma(Worker& w, unsigned base, int kind) {
  const int K = kind == 2 ? 8 : 16;
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    uint32_t a[4], b[2];
    float c[4];
    const unsigned char* v = w.fibers[base + l].value;
    std::memcpy(a, v, 16);
    std::memcpy(b, v + 16, 8);
    std::memcpy(c, v + 24, 16);
    const int group = l >> 2, quad = l & 3;
    for (int i = 0; i < 4; ++i) {
      const int row = group + 8 * (i & 1);
      if (kind == 2) {
        A[row][quad + 4 * (i >> 1)] = mma_element(kind, a[i], 0);
      } else {
        for (int h = 0; h < 2; ++h) A[row][2 * quad + h + 8 * (i >> 1)] = mma_element(kind, a[i], h);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (kind == 2) {
        B[quad + 4 * i][group] = mma_element(kind, b[i], 0);
      } else {
        for (int h = 0; h < 2; ++h) B[2 * quad + h + 8 * i][group] = mma_element(kind, b[i], h);
      }
    }
    for (int r = 0; r < 4; ++r) C[group + 8 * (r >> 1)][2 * quad + (r & 1)] = c[r];
  }
  for (int l = 0; l < 32; ++l) {
    const int group = l >> 2, quad = l & 3;
    float d[4];
    for (int r = 0; r < 4; ++r) {
      const int row = group + 8 * (r >> 1), col = 2 * quad + (r & 1);
      float acc = C[row][col];
      for (int k = 0; k < K; ++k) acc += A[row][k] * B[k][col];
      d[r] = acc;
    }
    std::memcpy(w.fibers[base + l].value, d, sizeof(d));
  }
}

}  // namespace

// Completes every warp intrinsic of the warp starting at thread `base` whose named lanes have all
// arrived; reports misuse.
bool resolve_warp(Worker& w, unsigned base, unsigned nthreads) {
  bool progressed = false;
  {
    const unsigned lanes = std::min(32u, nthreads - base);
    const unsigned existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
    for (unsigned lane = 0; lane < lanes; ++lane) {
      Fiber& f = w.fibers[base + lane];
      if (f.state != State::AtWarp) continue;
      if (((f.mask >> lane) & 1u) == 0) {
        fail(where(f) + ", but its own lane " + std::to_string(lane) + " is not in the mask");
      }
      const bool shuffle = f.op == WarpOp::Shfl || f.op == WarpOp::ShflUp || f.op == WarpOp::ShflDown ||
                           f.op == WarpOp::ShflXor;
      if (shuffle && (f.width < 1 || f.width > 32 || (f.width & (f.width - 1)) != 0)) {
        fail(where(f) + " with width " + std::to_string(f.width) + " (must be a power of 2 <= 32)");
      }
      const unsigned group = f.mask & existing;
      bool ready = true;
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        const Fiber& g = w.fibers[base + p];
        if (g.state == State::Done) {
          fail(where(f) + ", but lane " + std::to_string(p) + " named in the mask " + where(g));
        }
        if (g.state == State::AtWarp) {
          if (g.op != f.op || g.mask != f.mask || g.width != f.width || g.size != f.size) {
            fail("divergent warp intrinsics: " + where(f) + " (width " + std::to_string(f.width) + "), " +
                 where(g) + " (width " + std::to_string(g.width) + ")");
          }
        } else {
          ready = false;  // still at a barrier: may be a deadlock, decided by the caller
        }
      }
      if (!ready) continue;
      if (f.op == WarpOp::Ldmatrix || f.op == WarpOp::Mma) {
        if (group != 0xffffffffu) fail(where(f) + ": tensor-core instructions need all 32 lanes of a warp");
        if (f.op == WarpOp::Ldmatrix) {
          resolve_ldmatrix(w, base);
        } else {
          resolve_mma(w, base, f.param);
        }
        for (unsigned p = 0; p < 32; ++p) w.fibers[base + p].state = State::Runnable;
        progressed = true;
        continue;
      }

      unsigned char results[32][16];
      unsigned votes = 0;
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        unsigned v;
        std::memcpy(&v, w.fibers[base + p].value, sizeof(v));
        if (f.op == WarpOp::Ballot || f.op == WarpOp::Any || f.op == WarpOp::All) votes |= (v != 0u) << p;
      }
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        const Fiber& g = w.fibers[base + p];
        const unsigned width = static_cast<unsigned>(g.width);
        const unsigned segment = p & ~(width - 1u);
        const unsigned in_seg = p & (width - 1u);
        unsigned src = p;
        switch (g.op) {
          case WarpOp::Shfl:
            src = segment + (static_cast<unsigned>(g.param) & (width - 1u));
            break;
          case WarpOp::ShflUp:
            src = static_cast<unsigned>(g.param) <= in_seg ? p - static_cast<unsigned>(g.param) : p;
            break;
          case WarpOp::ShflDown:
            src = in_seg + static_cast<unsigned>(g.param) < width ? p + static_cast<unsigned>(g.param) : p;
            break;
          case WarpOp::ShflXor:
            src = (p ^ static_cast<unsigned>(g.param)) & 31u;
            if (src >= segment + width) src = p;  // later segments are out of reach: own value
            break;
          default:
            break;
        }
        unsigned r = 0;
        switch (g.op) {
          case WarpOp::Shfl:
          case WarpOp::ShflUp:
          case WarpOp::ShflDown:
          case WarpOp::ShflXor:
            if ((group >> src) & 1u) {
              std::memcpy(results[p], w.fibers[base + src].value, 16);
            } else {
              std::memset(results[p], 0xff, 16);  // an inactive lane's value is undefined: poison
            }
            break;
          case WarpOp::Ballot:
            r = votes;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::Any:
            r = votes != 0u;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::All:
            r = votes == group;
            std::memcpy(results[p], &r, sizeof(r));
            break;
          case WarpOp::Sync:
            break;
        }
      }
      for (unsigned p = 0; p < 32; ++p) {
        if (((group >> p) & 1u) == 0) continue;
        Fiber& g = w.fibers[base + p];
        std::memcpy(g.value, results[p], 16);
        g.state = State::Runnable;
      }
      progressed = true;
    }
  }
  return progressed;
}

}  // namespace detail

using namespace detail;

void warp_exchange(WarpOp op, unsigned mask, int width, int param, void* value, size_t size, const char* file,
                   int line) {
  Worker& w = tls_worker;
  Fiber* f = &current_fiber("warp intrinsic");
  f->state = State::AtWarp;
  f->op = op;
  f->mask = mask;
  f->width = width;
  f->param = param;
  f->size = size;
  f->file = file;
  f->line = line;
  std::memset(f->value, 0, sizeof(f->value));
  std::memcpy(f->value, value, size);
  switch_to_scheduler(w, *f);
  std::memcpy(value, f->value, size);
}

void ldmatrix_x4(uint32_t (&r)[4], const void* row, const char* file, int line) {
  unsigned char buf[16] = {};
  std::memcpy(buf, &row, sizeof(row));
  warp_exchange(WarpOp::Ldmatrix, 0xffffffffu, 32, 0, buf, sizeof(buf), file, line);
  std::memcpy(r, buf, sizeof(r));
}

void mma(int kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const char* file,
         int line) {
  unsigned char buf[40];
  std::memcpy(buf, a, 16);
  std::memcpy(buf + 16, b, 8);
  std::memcpy(buf + 24, d, 16);
  warp_exchange(WarpOp::Mma, 0xffffffffu, 32, kind, buf, sizeof(buf), file, line);
  std::memcpy(d, buf, sizeof(d));
}

uint32_t tf32_round(uint32_t bits) {
  if ((bits & 0x7f800000u) == 0x7f800000u) return bits;  // Inf, NaN
  return (bits + 0x1000u) & 0xffffe000u;                 // ties: the magnitude rounds up, i.e. away from zero
}

void cp_async(void* dst, const void* src, size_t bytes, size_t src_bytes) {
  Fiber* f = &current_fiber("cp.async");
  TORCH_CHECK(bytes <= 16 && src_bytes <= bytes, "cuda_emu: cp.async of ", bytes, " bytes");
  if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 ||
      (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % bytes != 0)) {
    fail(where(*f) + ": cp.async of " + std::to_string(bytes) + " bytes on a misaligned address");
  }
  PendingCopy c{dst, bytes, -1, {}};
  if (src_bytes > 0) std::memcpy(c.data, src, src_bytes);
  std::memset(dst, 0xff, bytes);  // in flight: a read before the wait sees poison
  f->copies.push_back(c);
}

void cp_async_commit() {
  Fiber* f = &current_fiber("cp.async.commit_group");
  for (PendingCopy& c : f->copies)
    if (c.group < 0) c.group = f->groups_committed;
  ++f->groups_committed;
}

void cp_async_wait(int pending_groups) {
  Fiber* f = &current_fiber("cp.async.wait_group");
  const int64_t complete_below = f->groups_committed - pending_groups;
  size_t kept = 0;
  for (PendingCopy& c : f->copies) {
    if (c.group >= 0 && c.group < complete_below) {
      std::memcpy(c.dst, c.data, c.bytes);
    } else {
      f->copies[kept++] = c;
    }
  }
  f->copies.resize(kept);
}

unsigned active_mask() {
  Worker& w = tls_worker;
  Fiber* f = &current_fiber("__activemask");
  const unsigned linear = static_cast<unsigned>(f - w.fibers.data());
  const unsigned base = linear / 32 * 32;
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  unsigned m = 0;
  for (unsigned p = 0; p < 32 && base + p < n; ++p)
    if (w.fibers[base + p].state != State::Done) m |= 1u << p;
  return m;
}

}  // namespace cuda_emu
