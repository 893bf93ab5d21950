// Event-driven simulator of TTFS networks (spikeforge.ttfs.engine): float64, CPU, OpenMP.
//
// Times are window-relative. A layer receives, for every input feature, the value
//     x = t_min - t_j >= 0
// of each of its input spikes: how long before this layer's window opens the spike arrived
// (0: a silent neuron, a padding spike or a spike exactly at t_min). A feature that went
// through average pooling carries M sub-spikes, each with 1/M of the synaptic weight.
// Layouts: inputs [B, C, H, W, M], outputs [B, O, Ho, Wo] (hidden: y = t_max - t_i, so that
// the next layer's x is y; readout: membrane potential at t_min). A linear layer is a 1x1
// convolution over C = features, H = W = 1.
//
// Neuron dynamics (nothing here is a closed-form shortcut of the mapping; each neuron is
// integrated over its own input events):
//  * B1 hidden (mode 0): firing blocked until t_min; V(t_min) = sum over input events of
//    w (t_min - t_j); threshold theta = B_n - D (derived here); from t_min the potential rises
//    with slope 1; the first crossing is t_min + (theta - V(t_min)); none before t_max: silent.
//    V(t_min) > theta: the neuron fires at t_min, an early spike. theta and the crossing are
//    kept as exact sums (two_sum), so y = B_n - (theta - V) carries no rounding of B_n.
//  * alpha1 hidden (mode 1): bias current alpha from t_min_prev (u = B_{n-1} before t_min),
//    every input spike switches on its current J; the events are sorted (latest value first
//    = earliest time first) and between events V(u) = P - S u with P = sum w x + alpha B_{n-1}
//    and S the summed currents so far; the first crossing of theta is searched segment by
//    segment. Silent inputs and padding spike at t_min (u = 0): they add their J to the slope
//    for the firing phase (slope alpha + sum_j J_ij, summed here from the weights).
//  * readout (modes 2 = B1, 3 = alpha1): V(t_min) = V0 + sum w x, V0 = D (B1) or
//    alpha (t_min - t_min_prev) (alpha1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

struct Event {
  double u;   // time before t_min at which the spike arrives
  int64_t k;  // tap index within the group's fan-in: (c_local * kh + ki) * kw + kj
};

// d[i] += r[i] * a (no aliasing: lets the compiler vectorise)
inline void axpy(double* __restrict d, const double* __restrict r, double a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] += r[i] * a;
}

// Compensated (Kahan) d[i] += r[i] * a, minus the lost low-order part kept in c[i]. Used for
// each neuron's total input current (alpha1 slope alpha + sum_j J_ij): alpha1 currents reach
// 100 over fan-ins of hundreds, and plain summation there cost ~1e-12 in the spike times.
inline void axpy_comp(double* __restrict d, double* __restrict c, const double* __restrict r,
                      double a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double y = r[i] * a - c[i], t = d[i] + y;
    c[i] = (t - d[i]) - y;
    d[i] = t;
  }
}

// s = fl(a + b) and the rounding error e with a + b = s + e exactly (Knuth's TwoSum; needs
// IEEE arithmetic without reassociation, which the build's flags keep).
inline double two_sum(double a, double b, double& e) {
  const double s = a + b, bb = s - a;
  e = (a - (s - bb)) + (b - bb);
  return s;
}

// Output position reached from input coordinate i through kernel tap k (-1: none), for every
// (i, k): i = o * stride - pad + k * dilation.
std::vector<int64_t> tap_targets(int64_t in, int64_t k, int64_t stride, int64_t pad,
                                 int64_t dil, int64_t out) {
  std::vector<int64_t> t(in * k, -1);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t n = i + pad - j * dil;
      if (n >= 0 && n % stride == 0 && n / stride < out) t[i * k + j] = n / stride;
    }
  return t;
}

}  // namespace

extern "C" {

int ttfs_events_abi() { return 7; }

// Max/min pooling of values x [B, C, H, W] (M = 1): per channel the earliest spike (largest x,
// sign[c] > 0 or sign == null) or the latest (smallest x, sign[c] <= 0); padding never wins.
void ttfs_max_pool(const double* x, int64_t B, int64_t C, int64_t H, int64_t W, const double* sign,
                   int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, int64_t Ho, int64_t Wo, double* out, int threads) {
#pragma omp parallel for num_threads(threads) collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < C; ++c) {
      const bool earliest = sign == nullptr || sign[c] > 0;
      const double* xc = x + (b * C + c) * H * W;
      double* oc = out + (b * C + c) * Ho * Wo;
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          bool any = false;
          double best = 0.0;
          for (int64_t ki = 0; ki < kh; ++ki) {
            const int64_t ih = ho * sh - ph + ki * dh;
            if (ih < 0 || ih >= H) continue;
            for (int64_t kj = 0; kj < kw; ++kj) {
              const int64_t iw = wo * sw - pw + kj * dw;
              if (iw < 0 || iw >= W) continue;
              const double v = xc[ih * W + iw];
              if (!any || (earliest ? v > best : v < best)) {
                best = v;
                any = true;
              }
            }
          }
          oc[ho * Wo + wo] = best;
        }
      }
    }
  }
}

// Average pooling as spike routing: x [B, C, H, W, M] -> out [B, C, Ho, Wo, M * kh * kw], the
// sub-spikes of each pooled feature; padding taps are silent (x = 0).
void ttfs_avg_pool(const double* x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t M,
                   int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t Ho, int64_t Wo, double* out, int threads) {
  const int64_t Mo = M * kh * kw;
#pragma omp parallel for num_threads(threads) collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < C; ++c) {
      const double* xc = x + (b * C + c) * H * W * M;
      double* oc = out + (b * C + c) * Ho * Wo * Mo;
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          double* o = oc + (ho * Wo + wo) * Mo;
          int64_t n = 0;
          for (int64_t ki = 0; ki < kh; ++ki) {
            const int64_t ih = ho * sh - ph + ki;
            for (int64_t kj = 0; kj < kw; ++kj) {
              const int64_t iw = wo * sw - pw + kj;
              const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
              for (int64_t m = 0; m < M; ++m) {
                o[n++] = inside ? xc[(ih * W + iw) * M + m] : 0.0;
              }
            }
          }
        }
      }
    }
  }
}

// One layer: synapses (convolution geometry; a linear layer is a 1x1 convolution) and neurons.
//   x      [B, C, H, W, M] input values (see the top of the file), all >= 0
//   wt     [G][K_g][O_g] weights, K_g = (C / G) * kh * kw, transposed so that one input tap's
//          weights to the group's output channels are contiguous
//   param  mode 0: D; mode 1: theta; mode 2: D; mode 3: alpha. [O] or [O, Ho, Wo] (param_pp)
//   alpha  mode 1 only: bias current, [O] or [O, Ho, Wo] (alpha_pp)
//   width_prev = t_min - t_min_prev (B_{n-1}; 1 for the input window), width = B_n
//   out    [B, O, Ho, Wo]; events[b] = synaptic events processed for sample b (input spikes
//          with x > 0 times the output channels they reach); *scans_out = alpha1 neurons
//          scanned in time order; returns the early spikes.
// Per sample, every input spike is delivered to the neurons it reaches (their integrated
// charge), then every neuron finds its spike time.
int64_t ttfs_layer(const double* x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t M,
                   const double* wt, int64_t O, int64_t G, int64_t kh, int64_t kw, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t Ho,
                   int64_t Wo, int mode, const double* param, int param_pp, const double* alpha,
                   int alpha_pp, double width_prev, double width, double* out, int64_t* events,
                   int64_t* scans_out, int always_scan, int threads) {
  const int64_t Cg = C / G, Og = O / G, Kg = Cg * kh * kw, P = Ho * Wo;
  const double inv_m = 1.0 / static_cast<double>(M);
  const bool a1 = mode == 1;
  // total input current of each neuron once every input has spiked (alpha1 firing phase)
  std::vector<double> wsum(O, 0.0), wsum_c(O, 0.0);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      axpy_comp(wsum.data() + g * Og, wsum_c.data() + g * Og, wt + (g * Kg + k) * Og, 1.0, Og);
  for (int64_t o = 0; o < O; ++o) wsum[o] -= wsum_c[o];
  std::vector<double> wneg(a1 ? G * Kg * Og : 0), neg(a1 ? O : 0);
  for (size_t i = 0; i < wneg.size(); ++i) wneg[i] = std::min(wt[i], 0.0);
  for (int64_t g = 0; g < G && a1; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t o = 0; o < Og; ++o) neg[g * Og + o] -= wneg[(g * Kg + k) * Og + o];
  const std::vector<int64_t> to_h = tap_targets(H, kh, sh, ph, dh, Ho);
  const std::vector<int64_t> to_w = tap_targets(W, kw, sw, pw, dw, Wo);
  auto prm = [&](const double* base, int pp, int64_t o, int64_t p) {
    return base[pp ? o * P + p : o];
  };
  int64_t early = 0, scans = 0;
#pragma omp parallel num_threads(threads) reduction(+ : early, scans)
  {
    // per position p and output channel o: charge sum w x (acc), and for alpha1 the sums of
    // negative currents times x (neg_x) and of negative currents (neg), the latest input (lat)
    std::vector<double> acc(P * O), neg_x(a1 ? P * O : 0),
        lat(a1 ? P : 0);
    std::vector<Event> ev(Kg * M + 1);
    std::vector<double> crossing(Og), sp(Og), ss(Og), sth(Og), sal(Og);
    std::vector<int64_t> idx(Og);
    std::vector<char> fired(Og);
#pragma omp for schedule(dynamic, 4)
    for (int64_t b = 0; b < B; ++b) {
      int64_t n_syn = 0;
      const double* xb = x + b * C * H * W * M;
      std::fill(acc.begin(), acc.end(), 0.0);
      if (a1) {
        std::fill(neg_x.begin(), neg_x.end(), 0.0);
        std::fill(lat.begin(), lat.end(), 0.0);
      }
      // 1. deliver every input spike (x > 0) to the neurons it reaches
      for (int64_t c = 0; c < C; ++c) {
        const int64_t g = c / Cg, cl = c % Cg;
        const double* wg = wt + g * Kg * Og;
        const double* wng = a1 ? wneg.data() + g * Kg * Og : nullptr;
        for (int64_t ih = 0; ih < H; ++ih) {
          for (int64_t iw = 0; iw < W; ++iw) {
            const double* src = xb + ((c * H + ih) * W + iw) * M;
            for (int64_t m = 0; m < M; ++m) {
              const double v = src[m];
              if (!(v > 0.0)) continue;
              const double a = v * inv_m;
              for (int64_t ki = 0; ki < kh; ++ki) {
                const int64_t ho = to_h[ih * kh + ki];
                if (ho < 0) continue;
                for (int64_t kj = 0; kj < kw; ++kj) {
                  const int64_t wo = to_w[iw * kw + kj];
                  if (wo < 0) continue;
                  const int64_t p = ho * Wo + wo;
                  const int64_t k = (cl * kh + ki) * kw + kj;
                  axpy(acc.data() + p * O + g * Og, wg + k * Og, a, Og);
                  if (a1) {
                    axpy(neg_x.data() + p * O + g * Og, wng + k * Og, a, Og);
                    lat[p] = std::max(lat[p], v);
                  }
                  n_syn += Og;
                }
              }
            }
          }
        }
      }
      // 2. every neuron's spike time (hidden) or potential (readout)
      for (int64_t p = 0; p < P; ++p) {
        const int64_t ho = p / Wo, wo = p % Wo;
        for (int64_t g = 0; g < G; ++g) {
          const int64_t o0 = g * Og;
          const double* accp = acc.data() + p * O + o0;
          double* outp = out + (b * O + o0) * P + p;  // stride P over o
          if (!a1) {
            for (int64_t o = 0; o < Og; ++o) {
              const double q = prm(param, param_pp, o0 + o, p);
              double result;
              if (mode == 0) {
                // B1 threshold from the window and D, and the time from t_min to the
                // crossing (slope 1), each an unevaluated sum hi + lo (two_sum): the width,
                // large against V and D in late windows, then cancels exactly in y.
                double theta_lo;
                const double theta = two_sum(width, -q, theta_lo);
                double gap_lo;
                const double gap = two_sum(theta, -accp[o], gap_lo);
                gap_lo += theta_lo;
                if (gap + gap_lo < 0.0) {  // above threshold when firing is unblocked
                  ++early;
                  result = width;
                } else {
                  double y_lo;
                  const double y = two_sum(width, -gap, y_lo);
                  result = y + (y_lo - gap_lo);  // y = t_max - t_i = width - gap
                }
                if (result < 0.0) result = 0.0;  // no crossing before t_max: silent
              } else if (mode == 2) {
                result = q + accp[o];
              } else {
                result = q * width_prev + accp[o];  // alpha (t_min - t_min_prev) + sum w x
              }
              outp[o * P] = result;
            }
            continue;
          }
          // alpha1. Bound on V before t_min: V(u) = V(0) - alpha u - sum_j J_j min(x_j, u)
          // <= V(0) + max_u [min(A, N u) - alpha u], A = sum_{J<0} |J| x over the input
          // spikes, N = sum_{J<0} |J| over all inputs (at least that over the spikes). Neurons whose bound stays below theta cannot fire before
          // t_min; the others (all with always_scan, or when an input precedes the bias onset,
          // which the bound does not cover) are scanned in time order.
          const bool before_onset = lat[p] > width_prev;
          int64_t n_scan = 0;
          for (int64_t o = 0; o < Og; ++o) {
            const double al = prm(alpha, alpha_pp, o0 + o, p);
            const double th = prm(param, param_pp, o0 + o, p);
            crossing[o] = al * width_prev + accp[o];  // V(t_min) (a crossing time if fired)
            fired[o] = 0;
            const double big_a = -neg_x[p * O + o0 + o], big_n = neg[o0 + o];
            double bound = crossing[o];
            if (al < 0.0) {
              bound += big_a - al * width_prev;
            } else if (big_n > al) {
              bound += big_a * (1.0 - al / big_n);
            }
            if (always_scan || before_onset || bound >= th) idx[n_scan++] = o;
          }
          std::vector<double>& v_tmin = sal;  // reuse: V(t_min) of scanned neurons
          if (n_scan > 0) {
            // the neuron group's input events, the bias onset among them
            int64_t n = 0;
            for (int64_t cl = 0; cl < Cg; ++cl) {
              const int64_t c = g * Cg + cl;
              for (int64_t ki = 0; ki < kh; ++ki) {
                const int64_t ih = ho * sh - ph + ki * dh;
                if (ih < 0 || ih >= H) continue;
                for (int64_t kj = 0; kj < kw; ++kj) {
                  const int64_t iw = wo * sw - pw + kj * dw;
                  if (iw < 0 || iw >= W) continue;
                  const double* src = xb + ((c * H + ih) * W + iw) * M;
                  const int64_t k = (cl * kh + ki) * kw + kj;
                  for (int64_t m = 0; m < M; ++m)
                    if (src[m] > 0.0) ev[n++] = Event{src[m], k};
                }
              }
            }
            if (width_prev > 0.0) ev[n++] = Event{width_prev, -1};
            std::sort(ev.begin(), ev.begin() + n,
                      [](const Event& l, const Event& r) { return l.u > r.u; });
            std::vector<double> al_s(n_scan);
            for (int64_t i = 0; i < n_scan; ++i) {
              const int64_t o = idx[i];
              al_s[i] = prm(alpha, alpha_pp, o0 + o, p);
              sth[i] = prm(param, param_pp, o0 + o, p);
              sp[i] = 0.0;
              ss[i] = 0.0;
            }
            // Between events V(u) = P - S u; a neuron fires in the first segment with S > 0
            // whose end is at or above theta: at the crossing or, if V was already above
            // theta, at the segment's start.
            const double* wg = wt + g * Kg * Og;
            double u_start = INFINITY;
            for (int64_t e = 0; e <= n; ++e) {
              const double u = e < n ? ev[e].u : 0.0;
              bool hit = false;
              for (int64_t i = 0; i < n_scan; ++i)
                hit |= (ss[i] > 0.0) & (sp[i] - ss[i] * u >= sth[i]);
              if (hit) {
                for (int64_t i = 0; i < n_scan; ++i) {
                  if (ss[i] > 0.0 && sp[i] - ss[i] * u >= sth[i]) {
                    const int64_t o = idx[i];
                    fired[o] = 1;
                    crossing[o] = std::min((sp[i] - sth[i]) / ss[i], u_start);
                    sth[i] = INFINITY;
                  }
                }
              }
              if (e == n) break;
              if (ev[e].k < 0) {  // bias current switched on
                for (int64_t i = 0; i < n_scan; ++i) {
                  sp[i] += al_s[i] * u;
                  ss[i] += al_s[i];
                }
              } else {
                const double a = u * inv_m;
                const double* row = wg + ev[e].k * Og;
                for (int64_t i = 0; i < n_scan; ++i) {
                  const double wv = row[idx[i]];
                  sp[i] += wv * a;
                  ss[i] += wv * inv_m;
                }
              }
              u_start = u;
            }
            scans += n_scan;  // neurons that did not fire keep V(t_min) from step 1
          }
          (void)v_tmin;
          for (int64_t o = 0; o < Og; ++o) {
            double y;
            if (fired[o]) {  // crossing = time before t_min
              if (crossing[o] > 0.0) ++early;
              y = width + crossing[o];
            } else {  // crossing = V(t_min); from t_min every input has spiked
              const double th = prm(param, param_pp, o0 + o, p);
              const double s = prm(alpha, alpha_pp, o0 + o, p) + wsum[o0 + o];
              y = s > 0.0 ? width + (crossing[o] - th) / s : 0.0;
              if (y < 0.0) y = 0.0;  // no crossing before t_max: forced spike at t_max
            }
            outp[o * P] = y;
          }
        }
      }
      if (events != nullptr) events[b] = n_syn;
    }
  }
  if (scans_out != nullptr) *scans_out = scans;
  return early;
}

}  // extern "C"
