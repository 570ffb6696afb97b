// The backward of the causal family (cpu/causal.h), in one pass: dx, dweight, dbias and
// dinitial_states. Per row (or per channels-last block or chunk) the pre-activation is recomputed for
// SiLU, dz = dout * silu'(z); the dweight / dbias partials of each part (a batch row, or a (batch, chunk)
// for the channels-last fast path) are summed over the parts in order afterwards: deterministic,
// independent of the thread count. causal_backward is the entry point.
// Kernel code: lives in conv1d_ext::cpu::CPU_CAPABILITY (see kernels.h).
#pragma once

#include "cpu/kernel_header_check.h"

#include "cpu/causal/common.h"

namespace conv1d_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Backward, channels-last: positions in order; dz at t scatters into a ring of dx accumulators, and
// position t - state_len, complete then, is written out (dx, or dinitial_states for s < 0); the last
// state_len positions get grad_final_states at the end. partials as in causal_backward.
template <typename scalar_t, typename A>
void causal_backward_channels_last(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                                   const scalar_t* bias, const int32_t* seq_idx, const scalar_t* init,
                                   const scalar_t* grad_out, const scalar_t* grad_final, scalar_t* dx,
                                   scalar_t* dinit, A* partials) {
  const int64_t S = p.state_len, L = p.len, W = p.width, CB = kCausalChannelBlock, span = S + 1;
  const int64_t blocks = (p.dim + CB - 1) / CB;
  at::parallel_for(0, p.batch * blocks, causal_grain(L * W * CB), [&](int64_t begin, int64_t end) {
    std::vector<A> wt(static_cast<size_t>(W * CB)), ring(static_cast<size_t>(span * CB)),
        dring(static_cast<size_t>(span * CB)), dw(static_cast<size_t>(W * CB)), acc(CB), dz(CB), db(CB),
        bias_row(CB), act(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / blocks, c0 = (r % blocks) * CB, nc = std::min(CB, p.dim - c0);
      causal_block_setup(p, b, c0, nc, weight, init, wt.data(), ring.data());
      if (bias != nullptr) causal_load_channels(bias + c0, 1, nc, bias_row.data());
      std::fill(dring.begin(), dring.end(), A(0));
      std::fill(dw.begin(), dw.end(), A(0));
      std::fill(db.begin(), db.end(), A(0));
      const int32_t* ids = seq_idx != nullptr ? seq_idx + b * L : nullptr;
      const scalar_t* xb = x + b * p.x.batch + c0 * p.x.channel;
      const scalar_t* gb = grad_out + b * p.grad_out.batch + c0 * p.grad_out.channel;
      // Writes position e's gradient (plus grad_final_states where it applies) and clears its ring row.
      auto emit = [&](int64_t e) {
        A* row = dring.data() + causal_ring_slot(e, span) * CB;
        if (grad_final != nullptr && e >= L - S) {
          for (int64_t c = 0; c < nc; ++c)
            row[c] += static_cast<A>(grad_final[(b * p.dim + c0 + c) * S + e - (L - S)]);
        }
        if (e >= 0) {
          scalar_t* o = dx + b * p.out.batch + c0 * p.out.channel + e * p.out.pos;
          for (int64_t c = 0; c < nc; ++c) o[c] = static_cast<scalar_t>(row[c]);  // unit channel stride
        } else {
          for (int64_t c = 0; c < nc; ++c)
            dinit[(b * p.dim + c0 + c) * S + e + S] = static_cast<scalar_t>(row[c]);
        }
        std::fill(row, row + nc, A(0));
      };
      for (int64_t t = 0; t < L; ++t) {
        causal_load_channels(xb + t * p.x.pos, p.x.channel, nc, ring.data() + causal_ring_slot(t, span) * CB);
        causal_load_channels(gb + t * p.grad_out.pos, p.grad_out.channel, nc, dz.data());
        if (p.silu) {
          causal_block_preact(p, t, nc, wt.data(), ring.data(), bias != nullptr ? bias_row.data() : nullptr,
                              ids, acc.data());
          causal_sigmoid_into(acc.data(), act.data(), nc);
          for (int64_t c = 0; c < nc; ++c) dz[c] = dz[c] * act[c] * (A(1) + acc[c] * (A(1) - act[c]));
        }
        if (ids != nullptr && ids[t] < 0) std::fill(dz.begin(), dz.begin() + nc, A(0));
        for (int64_t c = 0; c < nc; ++c) db[c] += dz[c];
        const int64_t base = t % span;
        for (int64_t k = 0; k < W; ++k) {
          const int64_t back = (W - 1 - k) * p.dilation;
          if (ids != nullptr && causal_id(ids, t - back) != ids[t]) continue;
          const int64_t slot = causal_slot_back(base, back, span);
          const A* src = ring.data() + slot * CB;
          A* dst = dring.data() + slot * CB;
          const A* wk = wt.data() + k * CB;
          A* dwk = dw.data() + k * CB;
          for (int64_t c = 0; c < nc; ++c) {
            dwk[c] += dz[c] * src[c];
            dst[c] += wk[c] * dz[c];
          }
        }
        emit(t - S);
      }
      for (int64_t e = std::max<int64_t>(L - S, -S); e < L; ++e) emit(e);
      for (int64_t c = 0; c < nc; ++c) {
        A* part = partials + (b * p.dim + c0 + c) * (W + 1);
        for (int64_t k = 0; k < W; ++k) part[k] = dw[k * CB + c];
        part[W] = db[c];
      }
    }
  });
}

// Backward, rows: per row, dz = dout * silu'(z) for the whole row in dzp (S zeros on both sides), the
// dweight / dbias partials accumulated in vectors along the way, then dx(s) = sum_k w[k] * dz(s +
// (W - 1 - k) * d) for s in [-S, L) (s < 0: dinitial_states), plus grad_final_states on the last S.
template <typename scalar_t>
void causal_backward_rows_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                               const scalar_t* bias, const scalar_t* init, const scalar_t* grad_out,
                               const scalar_t* grad_final, scalar_t* dx, scalar_t* dinit,
                               acc_t<scalar_t>* partials) {
  using A = acc_t<scalar_t>;
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const int64_t S = p.state_len, L = p.len, W = p.width, d = p.dilation;
  const CausalRowKernel<A> kernel = causal_pick_row_kernel<A>(W);
  at::parallel_for(
      0, p.batch * p.dim, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, L * W)),
      [&](int64_t begin, int64_t end) {
        std::vector<A> win(static_cast<size_t>(S + kCausalChunk)), z(kCausalChunk), g(kCausalChunk),
            dzp(static_cast<size_t>(2 * S + L)), res(kCausalChunk), w(static_cast<size_t>(W)),
            wr(static_cast<size_t>(W)), dwv(static_cast<size_t>(W * V)), dws(static_cast<size_t>(W));
        for (int64_t r = begin; r < end; ++r) {
          const int64_t b = r / p.dim, c = r % p.dim;
          const scalar_t* xr = x + b * p.x.batch + c * p.x.channel;
          const scalar_t* ir = init != nullptr ? init + r * S : nullptr;
          const scalar_t* gr = grad_out + b * p.grad_out.batch + c * p.grad_out.channel;
          for (int64_t k = 0; k < W; ++k) w[k] = wr[W - 1 - k] = static_cast<A>(weight[c * W + k]);
          const A bc = bias != nullptr ? static_cast<A>(bias[c]) : A(0);
          A* dz = dzp.data() + S;  // dz(s) = dz[s], zero for s in [-S, 0) and [L, L + S)
          std::fill(dzp.begin(), dzp.begin() + S, A(0));
          std::fill(dzp.end() - S, dzp.end(), A(0));
          std::fill(dwv.begin(), dwv.end(), A(0));
          std::fill(dws.begin(), dws.end(), A(0));
          Vec dbv(A(0));
          A dbs = 0;
          for (int64_t t0 = 0; t0 < L; t0 += kCausalChunk) {
            const int64_t n = std::min(kCausalChunk, L - t0);
            const A* src = causal_row_inputs(xr, p.x.pos, ir, S, t0, n, win.data());
            const A* gt;
            if (std::is_same<scalar_t, A>::value && p.grad_out.pos == 1) {
              gt = reinterpret_cast<const A*>(gr + t0);
            } else {
              causal_fill_window(gr, p.grad_out.pos, static_cast<const scalar_t*>(nullptr), 0, t0, n,
                                 g.data());
              gt = g.data();
            }
            A* dzt = dz + t0;
            if (p.silu) kernel(src, n, w.data(), W, d, bc, false, z.data());
            int64_t i = 0;
            for (; i + V <= n; i += V) {
              const Vec gv = Vec::loadu(gt + i);
              const Vec dzv = p.silu ? causal_dsilu_vec(Vec::loadu(z.data() + i), gv) : gv;
              dzv.store(dzt + i);
              dbv = dbv + dzv;
              for (int64_t k = 0; k < W; ++k) {
                A* acc = dwv.data() + k * V;
                at::vec::fmadd(dzv, Vec::loadu(src + i - (W - 1 - k) * d), Vec::loadu(acc)).store(acc);
              }
            }
            for (; i < n; ++i) {
              const A dzi = p.silu ? causal_dsilu(z[i], gt[i]) : gt[i];
              dzt[i] = dzi;
              dbs += dzi;
              for (int64_t k = 0; k < W; ++k) dws[k] += dzi * src[i - (W - 1 - k) * d];
            }
          }
          // The row's partials: vector lanes in order, then the scalar tail (fixed order).
          A* part = partials + r * (W + 1);
          for (int64_t k = 0; k <= W; ++k)
            part[k] = lane_sum(k < W ? Vec::loadu(dwv.data() + k * V) : dbv) + (k < W ? dws[k] : dbs);
          // dx(s) for s in [-S, L), chunk by chunk.
          scalar_t* gx = dx + b * p.out.batch + c * p.out.channel;
          const scalar_t* gf = grad_final != nullptr ? grad_final + r * S : nullptr;
          for (int64_t s0 = -S; s0 < L; s0 += kCausalChunk) {
            const int64_t n = std::min(kCausalChunk, L - s0);
            kernel(dz + s0 + S, n, wr.data(), W, d, A(0), false, res.data());
            if (gf != nullptr) {
              for (int64_t i = std::max<int64_t>(0, L - S - s0); i < n; ++i)
                res[i] += static_cast<A>(gf[s0 + i - (L - S)]);
            }
            int64_t i = 0;
            for (; i < n && s0 + i < 0; ++i) dinit[r * S + s0 + i + S] = static_cast<scalar_t>(res[i]);
            if (i == n) continue;
            if (p.out.pos == 1) {
              convert_from_acc(res.data() + i, gx + s0 + i, n - i);
            } else {
              for (; i < n; ++i) gx[(s0 + i) * p.out.pos] = static_cast<scalar_t>(res[i]);
            }
          }
        }
      });
}

// Backward, channels-last: a work item is (batch, chunk [t0, t1) of positions), all channels; dz rows
// for [t0, min(L, t1 + S)) in dzb (the halo recomputed), dx rows [t0, t1) (and [-S, 0) for the first
// chunk: dinitial_states) gathered from them; the item's dweight / dbias partials in
// partials[((b * tblocks + chunk) * dim + c) * (W + 1)].
template <typename scalar_t>
void causal_backward_cl_fast(const CausalParams& p, const scalar_t* x, const scalar_t* weight,
                             const scalar_t* bias, const scalar_t* init, const scalar_t* grad_out,
                             const scalar_t* grad_final, scalar_t* dx, scalar_t* dinit,
                             acc_t<scalar_t>* partials) {
  using A = acc_t<scalar_t>;
  using Vec = at::vec::Vectorized<A>;
  constexpr int64_t V = Vec::size();
  const int64_t S = p.state_len, L = p.len, W = p.width, D = p.dim, d = p.dilation, xp = p.x.pos;
  const int64_t CB = D, TC = kCausalClBwdPositions;
  std::vector<A> wt, bt;
  causal_transpose_weights(p, weight, bias, wt, bt);
  const A* btp = bias != nullptr ? bt.data() : nullptr;
  // At least one chunk: with seqlen 0 it still writes dinitial_states.
  const int64_t cblocks = (D + CB - 1) / CB, tblocks = causal_cl_chunks(L);
  at::parallel_for(0, p.batch * cblocks * tblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> dzb(static_cast<size_t>((TC + S) * CB)), z(CB), row(CB), dwb(static_cast<size_t>(W * CB)),
        dbb(CB);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / (cblocks * tblocks), c0 = (r / tblocks) % cblocks * CB, tb = r % tblocks;
      const int64_t t0 = tb * TC, t1 = std::min(L, t0 + TC), te = std::min(L, t1 + S);
      const int64_t nc = std::min(CB, D - c0);
      const scalar_t* xb = x + b * p.x.batch + c0;
      std::fill(dwb.begin(), dwb.end(), A(0));
      std::fill(dbb.begin(), dbb.end(), A(0));
      // grad_output into dzb (then turned into dz in place): row by row when it is channels-last too,
      // else channel by channel (a grad_output contiguous along seqlen is read in runs, not a row apart).
      const scalar_t* gb = grad_out + b * p.grad_out.batch + c0 * p.grad_out.channel;
      if (p.grad_out.channel == 1) {
        for (int64_t t = t0; t < te; ++t)
          convert_to_acc(gb + t * p.grad_out.pos, dzb.data() + (t - t0) * CB, nc);
      } else {
        for (int64_t c = 0; c < nc; ++c) {
          const scalar_t* gc = gb + c * p.grad_out.channel;
          for (int64_t t = t0; t < te; ++t) dzb[(t - t0) * CB + c] = static_cast<A>(gc[t * p.grad_out.pos]);
        }
      }
      for (int64_t t = t0; t < te; ++t) {
        A* dz = dzb.data() + (t - t0) * CB;
        int64_t c = 0;
        if (p.silu) {
          causal_cl_row(p, b, c0, nc, t, x, wt.data(), btp, init, false, z.data());
          for (; c + V <= nc; c += V)
            causal_dsilu_vec(Vec::loadu(z.data() + c), Vec::loadu(dz + c)).store(dz + c);
          for (; c < nc; ++c) dz[c] = causal_dsilu(z[c], dz[c]);
        }
        if (t >= t1) continue;  // halo: dz only
        c = 0;
        if (t >= S) {
          const scalar_t* xt = xb + t * xp;
          for (; c + V <= nc; c += V) {
            const Vec g = Vec::loadu(dz + c);
            (Vec::loadu(dbb.data() + c) + g).store(dbb.data() + c);
            for (int64_t k = 0; k < W; ++k) {
              A* acc = dwb.data() + k * CB + c;
              at::vec::fmadd(g, load_acc(xt - (W - 1 - k) * d * xp + c), Vec::loadu(acc)).store(acc);
            }
          }
        }
        for (; c < nc; ++c) {
          const scalar_t* ir = init != nullptr ? init + (b * D + c0 + c) * S : nullptr;
          dbb[c] += dz[c];
          for (int64_t k = 0; k < W; ++k) {
            dwb[k * CB + c] += dz[c] * causal_input_at<scalar_t, A>(xb + c, xp, ir, S, t - (W - 1 - k) * d);
          }
        }
      }
      A* part = partials + ((b * tblocks + tb) * D + c0) * (W + 1);
      for (int64_t c = 0; c < nc; ++c) {
        for (int64_t k = 0; k < W; ++k) part[c * (W + 1) + k] = dwb[k * CB + c];
        part[c * (W + 1) + W] = dbb[c];
      }
      for (int64_t s = t0 == 0 ? -S : t0; s < t1; ++s) {
        scalar_t* o = dx + b * p.out.batch + c0 + s * p.out.pos;  // unit channel stride
        const bool direct = std::is_same<scalar_t, A>::value && s >= 0;
        A* dst = direct ? reinterpret_cast<A*>(o) : row.data();
        int64_t c = 0;
        for (; c + V <= nc; c += V) {
          Vec acc(A(0));
          for (int64_t k = 0; k < W; ++k) {
            const int64_t u = s + (W - 1 - k) * d;
            if (u < 0 || u >= L) continue;
            acc = at::vec::fmadd(Vec::loadu(wt.data() + k * D + c0 + c),
                                 Vec::loadu(dzb.data() + (u - t0) * CB + c), acc);
          }
          acc.store(dst + c);
        }
        for (; c < nc; ++c) {
          A a = 0;
          for (int64_t k = 0; k < W; ++k) {
            const int64_t u = s + (W - 1 - k) * d;
            if (u >= 0 && u < L) a += wt[k * D + c0 + c] * dzb[(u - t0) * CB + c];
          }
          dst[c] = a;
        }
        if (grad_final != nullptr && s >= L - S) {
          for (int64_t c2 = 0; c2 < nc; ++c2)
            dst[c2] += static_cast<A>(grad_final[(b * D + c0 + c2) * S + s - (L - S)]);
        }
        if (s < 0) {
          for (int64_t c2 = 0; c2 < nc; ++c2)
            dinit[(b * D + c0 + c2) * S + s + S] = static_cast<scalar_t>(dst[c2]);
        } else if (!direct) {
          convert_from_acc(row.data(), o, nc);
        }
      }
    }
  });
}

// dx has the strides p.out; grad_output p.grad_out.
template <typename scalar_t>
void causal_backward(const CausalParams& p, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                     const int32_t* seq_idx, const scalar_t* init, const scalar_t* grad_out,
                     const scalar_t* grad_final, scalar_t* dx, scalar_t* dweight, scalar_t* dbias,
                     scalar_t* dinit) {
  using A = acc_t<scalar_t>;
  const int64_t S = p.state_len, L = p.len, W = p.width, n = S + L, d = p.dilation;
  const std::vector<int32_t> ids = seq_idx != nullptr ? causal_row_ids(p, seq_idx) : std::vector<int32_t>();
  // partials[(j * dim + c) * (W + 1) + k]: part j of channel c's dweight[k] (index W: its dbias); the
  // parts are the batch rows, or (batch, chunk) for the channels-last fast path.
  const bool fast = seq_idx == nullptr;
  const int64_t nparts = fast && causal_use_channels_last(p) ? p.batch * causal_cl_chunks(L) : p.batch;
  std::vector<A> partials(static_cast<size_t>(nparts * p.dim * (W + 1)));
  if (fast && causal_use_channels_last(p)) {
    causal_backward_cl_fast(p, x, weight, bias, init, grad_out, grad_final, dx, dinit, partials.data());
  } else if (fast) {
    causal_backward_rows_fast(p, x, weight, bias, init, grad_out, grad_final, dx, dinit, partials.data());
  } else if (causal_use_channels_last(p)) {
    causal_backward_channels_last(p, x, weight, bias, seq_idx, init, grad_out, grad_final, dx, dinit,
                                  partials.data());
  } else {
    at::parallel_for(0, p.batch * p.dim, causal_grain(n * W), [&](int64_t begin, int64_t end) {
      std::vector<A> xs(static_cast<size_t>(n)), dxs(static_cast<size_t>(n)), z(static_cast<size_t>(L)),
          w(static_cast<size_t>(W)), act(static_cast<size_t>(L));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / p.dim, c = r % p.dim;
        causal_load_row(p, b, c, x, init, xs.data());
        for (int64_t k = 0; k < W; ++k) w[k] = static_cast<A>(weight[c * W + k]);
        const int32_t* row_ids = seq_idx != nullptr ? ids.data() + b * n : nullptr;
        // z becomes dz: grad of the pre-activation.
        if (p.silu) {
          causal_row_preact(p, xs.data(), w.data(), bias != nullptr ? static_cast<A>(bias[c]) : A(0), row_ids,
                            z.data());
          causal_sigmoid_into(z.data(), act.data(), L);
        }
        const scalar_t* go = grad_out + b * p.grad_out.batch + c * p.grad_out.channel;
        const int64_t sg = p.grad_out.pos;
        for (int64_t t = 0; t < L; ++t) {
          const A g = static_cast<A>(go[t * sg]);
          if (p.silu) {
            const A s = act[t];
            z[t] = g * s * (A(1) + z[t] * (A(1) - s));
          } else {
            z[t] = g;
          }
        }
        if (row_ids != nullptr) {
          for (int64_t t = 0; t < L; ++t) z[t] = row_ids[S + t] < 0 ? A(0) : z[t];
        }
        A* part = partials.data() + r * (W + 1);
        A db = 0;
        for (int64_t t = 0; t < L; ++t) db += z[t];
        part[W] = db;
        std::fill(dxs.begin(), dxs.end(), A(0));
        if (grad_final != nullptr) {
          const scalar_t* gf = grad_final + (b * p.dim + c) * S;
          for (int64_t j = 0; j < S; ++j) dxs[L + j] = static_cast<A>(gf[j]);
        }
        for (int64_t k = 0; k < W; ++k) {
          const A wk = w[k];
          const A* src = xs.data() + k * d;
          A* dsrc = dxs.data() + k * d;
          A dw = 0;
          if (row_ids == nullptr) {
            for (int64_t t = 0; t < L; ++t) dw += z[t] * src[t];
            for (int64_t t = 0; t < L; ++t) dsrc[t] += wk * z[t];
          } else {
            const int32_t* src_id = row_ids + k * d;
            const int32_t* own_id = row_ids + S;
            for (int64_t t = 0; t < L; ++t) dw += src_id[t] == own_id[t] ? z[t] * src[t] : A(0);
            for (int64_t t = 0; t < L; ++t) dsrc[t] += src_id[t] == own_id[t] ? wk * z[t] : A(0);
          }
          part[k] = dw;
        }
        scalar_t* gi = dinit + (b * p.dim + c) * S;
        for (int64_t j = 0; j < S; ++j) gi[j] = static_cast<scalar_t>(dxs[j]);
        scalar_t* gx = dx + b * p.out.batch + c * p.out.channel;
        const int64_t sx = p.out.pos;
        for (int64_t t = 0; t < L; ++t) gx[t * sx] = static_cast<scalar_t>(dxs[S + t]);
      }
    });
  }
  // Sum the partials over the parts, in order.
  at::parallel_for(0, p.dim, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, nparts * (W + 1))),
                   [&](int64_t begin, int64_t end) {
                     std::vector<A> acc(static_cast<size_t>(W + 1));
                     for (int64_t c = begin; c < end; ++c) {
                       std::fill(acc.begin(), acc.end(), A(0));
                       for (int64_t j = 0; j < nparts; ++j) {
                         const A* part = partials.data() + (j * p.dim + c) * (W + 1);
                         for (int64_t k = 0; k <= W; ++k) acc[k] += part[k];
                       }
                       for (int64_t k = 0; k < W; ++k) dweight[c * W + k] = static_cast<scalar_t>(acc[k]);
                       dbias[c] = static_cast<scalar_t>(acc[W]);
                     }
                   });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace conv1d_ext
