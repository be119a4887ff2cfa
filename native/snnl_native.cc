// snnl's native kernels: TensorFlow.js tensors handed to ATen (LibTorch's tensor library) without copies.
//
// Every function takes its output buffer(s) first, then its inputs, all typed arrays viewed in place with
// at::from_blob, and plain numbers; ATen writes the result into the output (with its *_out variants where
// they exist, else by one copy). Outputs are allocated by JavaScript (uninitialized, V8-owned), so their
// memory is reclaimed by V8's own garbage collection and reused by malloc; memory owned by ATen and
// handed to JavaScript would be freed only by finalizers, which Node runs when the event loop turns, so a
// synchronous training loop would grow without bound. Images are NHWC in TensorFlow.js: an NHWC buffer
// is an NCHW tensor in channels-last layout, which is what ATen's convolutions prefer.
//
// The JavaScript side (src/engine/native/) validates shapes and attributes and computes the
// convolution geometry; this file only does arithmetic.
#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <malloc.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace {

using Shape = std::vector<int64_t>;

Shape toShape(const Napi::Value& value) {
  auto array = value.As<Napi::Array>();
  Shape shape(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) shape[i] = array.Get(i).As<Napi::Number>().Int64Value();
  return shape;
}

at::Tensor floats(const Napi::Value& value, const Shape& shape) {
  auto array = value.As<Napi::Float32Array>();
  return at::from_blob(array.Data(), shape, at::TensorOptions().dtype(at::kFloat));
}

// Writes a result into an output view (a no-op when ATen already wrote it there).
void put(const at::Tensor& out, const at::Tensor& result) {
  if (!result.is_same(out)) out.copy_(result);
}

// Wraps a kernel so that ATen's errors reach JavaScript as Error objects with ATen's first line.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F body) {
  try {
    body();
    return info.Env().Undefined();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string message = e.what();
    auto newline = message.find('\n');
    if (newline != std::string::npos) message = message.substr(0, newline);
    throw Napi::Error::New(info.Env(), "native kernel: " + message);
  }
}

// NHWC buffer -> NCHW tensor (channels-last layout, no copy).
at::Tensor nchw(const Napi::Value& value, const Shape& nhwc) { return floats(value, nhwc).permute({0, 3, 1, 2}); }

// tfjs filter [kh, kw, in, out] -> ATen weight [out, in, kh, kw] in channels-last layout.
at::Tensor weight(const Napi::Value& value, const Shape& hwio) {
  return floats(value, hwio).permute({3, 2, 0, 1}).contiguous(at::MemoryFormat::ChannelsLast);
}

struct Geometry {
  Shape strides, dilations;
  int64_t top, bottom, left, right;
  bool symmetric() const { return top == bottom && left == right; }
};

Geometry geometry(const Napi::CallbackInfo& info, size_t at) {
  auto pads = toShape(info[at + 2]);
  return {toShape(info[at]), toShape(info[at + 1]), pads[0], pads[1], pads[2], pads[3]};
}

at::Tensor padded(const at::Tensor& x, const Geometry& g, double value) {
  return at::constant_pad_nd(x, {g.left, g.right, g.top, g.bottom}, value);
}

Shape symmetricPads(const Geometry& g) {
  return g.symmetric() ? Shape{g.top, g.left} : Shape{0, 0};
}

// Output views. `out` is always info[0]; an NHWC output is viewed as NCHW (channels-last).
at::Tensor outNchw(const Napi::CallbackInfo& info, const Shape& nhwcShape) { return nchw(info[0], nhwcShape); }

// conv2d(out, x, xShape, w, wShape, strides, dilations, pads[t, b, l, r], bias | null, relu, outShape)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto x = nchw(info[1], toShape(info[2]));
    auto w = weight(info[3], toShape(info[4]));
    auto g = geometry(info, 5);
    at::Tensor bias;
    if (!info[8].IsNull()) bias = floats(info[8], {w.size(0)});
    auto input = g.symmetric() ? x : padded(x, g, 0.0);
    auto y = at::conv2d(input.contiguous(at::MemoryFormat::ChannelsLast), w, bias, g.strides, symmetricPads(g),
                        g.dilations);
    if (info[9].As<Napi::Boolean>().Value()) y.relu_();
    put(outNchw(info, toShape(info[10])), y);
  });
}

// conv2dBackpropInput(out, dy, dyShape, w, wShape, xShape, strides, dilations, pads)
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto dy = nchw(info[1], toShape(info[2])).contiguous(at::MemoryFormat::ChannelsLast);
    auto w = weight(info[3], toShape(info[4]));
    auto xs = toShape(info[5]);
    auto g = geometry(info, 6);
    int64_t h = xs[1], wd = xs[2];
    int64_t ph = g.symmetric() ? h : h + g.top + g.bottom;
    int64_t pw = g.symmetric() ? wd : wd + g.left + g.right;
    // convolution_backward reads only the input's sizes when the input gradient alone is asked for.
    auto shapeOnly = at::empty({xs[0], xs[3], ph, pw}, dy.options().memory_format(at::MemoryFormat::ChannelsLast));
    auto grads = at::convolution_backward(dy, shapeOnly, w, c10::nullopt, g.strides, symmetricPads(g), g.dilations,
                                          false, {0, 0}, 1, {true, false, false});
    auto dx = std::get<0>(grads);
    if (!g.symmetric()) dx = dx.narrow(2, g.top, h).narrow(3, g.left, wd);
    put(outNchw(info, xs), dx);
  });
}

// conv2dBackpropFilter(out, x, xShape, dy, dyShape, filterShape[kh, kw, in, out], strides, dilations, pads)
Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto x = nchw(info[1], toShape(info[2]));
    auto dy = nchw(info[3], toShape(info[4])).contiguous(at::MemoryFormat::ChannelsLast);
    auto fs = toShape(info[5]);
    auto g = geometry(info, 6);
    auto input = (g.symmetric() ? x : padded(x, g, 0.0)).contiguous(at::MemoryFormat::ChannelsLast);
    // ... and only the weight's sizes when the weight gradient alone is asked for.
    auto shapeOnly = at::empty({fs[3], fs[2], fs[0], fs[1]}, dy.options().memory_format(at::MemoryFormat::ChannelsLast));
    auto grads = at::convolution_backward(dy, input, shapeOnly, c10::nullopt, g.strides, symmetricPads(g),
                                          g.dilations, false, {0, 0}, 1, {false, true, false});
    put(floats(info[0], fs), std::get<1>(grads).permute({2, 3, 1, 0}));
  });
}

// Max pooling. Padding is explicit (-inf), so any padding works, not only the at most half a window
// that ATen accepts.
std::tuple<at::Tensor, at::Tensor, at::Tensor> pool(const at::Tensor& x, const Shape& filter, const Geometry& g) {
  const bool any = g.top || g.bottom || g.left || g.right;
  auto input = (any ? padded(x, g, -INFINITY) : x).contiguous(at::MemoryFormat::ChannelsLast);
  auto result = at::max_pool2d_with_indices(input, filter, g.strides, {0, 0}, g.dilations, false);
  return {input, std::get<0>(result), std::get<1>(result)};
}

// maxPool(out, x, xShape, filter[h, w], strides, dilations, pads, outShape)
Napi::Value MaxPool(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto x = nchw(info[1], toShape(info[2]));
    auto g = geometry(info, 4);
    put(outNchw(info, toShape(info[7])), std::get<1>(pool(x, toShape(info[3]), g)));
  });
}

// maxPoolGrad(out, dy, dyShape, x, xShape, filter, strides, dilations, pads)
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto dy = nchw(info[1], toShape(info[2])).contiguous(at::MemoryFormat::ChannelsLast);
    auto xs = toShape(info[4]);
    auto x = nchw(info[3], xs);
    auto filter = toShape(info[5]);
    auto g = geometry(info, 6);
    auto [input, out, indices] = pool(x, filter, g);
    auto dx = at::max_pool2d_with_indices_backward(dy, input, filter, g.strides, {0, 0}, g.dilations, false, indices);
    if (g.top || g.bottom || g.left || g.right) dx = dx.narrow(2, g.top, xs[1]).narrow(3, g.left, xs[2]);
    put(outNchw(info, xs), dx);
  });
}

// matMul(out, a, aShape, b, bShape, transposeA, transposeB, bias | null, biasShape, activation, outShape)
enum Activation { kLinear, kReluActivation };

Napi::Value MatMul(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto a = floats(info[1], toShape(info[2]));
    auto b = floats(info[3], toShape(info[4]));
    if (info[5].As<Napi::Boolean>().Value()) a = a.transpose(-2, -1);
    if (info[6].As<Napi::Boolean>().Value()) b = b.transpose(-2, -1);
    at::Tensor bias;
    if (!info[7].IsNull()) bias = floats(info[7], toShape(info[8]));
    auto out = floats(info[0], toShape(info[10]));
    if (a.dim() == 3 && a.size(0) == 1 && b.size(0) == 1) {
      // One matrix product, written by the GEMM in place; a bias over the columns is its beta term.
      auto out2 = out[0];
      const int64_t n = b.size(2);
      if (bias.defined() && bias.numel() == n) {
        at::addmm_out(out2, bias.reshape({1, n}).expand({a.size(1), n}), a[0], b[0]);
      } else {
        at::mm_out(out2, a[0], b[0]);
        if (bias.defined()) out.add_(bias);
      }
    } else {
      at::matmul_out(out, a, b);
      if (bias.defined()) out.add_(bias);
    }
    if (info[9].As<Napi::Number>().Int32Value() == kReluActivation) out.relu_();
  });
}

enum Unary { kRelu, kNeg, kStep, kSquare, kExp, kLog, kSqrt, kSigmoid, kTanh, kAbs, kRsqrt, kReciprocal, kLeakyRelu };

at::Tensor flat(const Napi::Value& value) {
  auto array = value.As<Napi::Float32Array>();
  return floats(value, {static_cast<int64_t>(array.ElementLength())});
}

// tfjs Step: 1 where x > 0, alpha elsewhere, NaN stays NaN. Written branch-free over restrict pointers so
// that it vectorizes (the signs in a ReLU's gradient are random: a branch mispredicts half the time).
void step(const float* __restrict in, float* __restrict out, int64_t begin, int64_t end, float alpha) {
  for (int64_t i = begin; i < end; i++) {
    const float v = in[i];
    const float r = v > 0 ? 1.0f : alpha;
    out[i] = v == v ? r : v;
  }
}

// unary(out, op, x, alpha): elementwise on float32 (shape does not matter); alpha is Step's and LeakyRelu's.
Napi::Value UnaryOp(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto out = flat(info[0]);
    auto op = static_cast<Unary>(info[1].As<Napi::Number>().Int32Value());
    auto x = flat(info[2]);
    switch (op) {
      case kRelu: at::clamp_min_out(out, x, 0); break;
      case kNeg: at::neg_out(out, x); break;
      case kStep: {
        const float alpha = info[3].As<Napi::Number>().FloatValue();
        const float* in = x.data_ptr<float>();
        float* o = out.data_ptr<float>();
        at::parallel_for(0, x.numel(), 65536, [&](int64_t begin, int64_t end) { step(in, o, begin, end, alpha); });
        break;
      }
      case kSquare: at::mul_out(out, x, x); break;
      case kExp: at::exp_out(out, x); break;
      case kLog: at::log_out(out, x); break;
      case kSqrt: at::sqrt_out(out, x); break;
      case kSigmoid: at::sigmoid_out(out, x); break;
      case kTanh: at::tanh_out(out, x); break;
      case kAbs: at::abs_out(out, x); break;
      case kRsqrt: at::rsqrt_out(out, x); break;
      case kReciprocal: at::reciprocal_out(out, x); break;
      case kLeakyRelu: at::leaky_relu_out(out, x, info[3].As<Napi::Number>().DoubleValue()); break;
      default: throw std::runtime_error("unknown unary op");
    }
  });
}

enum Binary { kAdd, kSub, kMul, kDiv, kMaximum, kMinimum, kSquaredDifference };

// binary(out, op, a, aShape, b, bShape, outShape): elementwise with broadcasting, float32.
Napi::Value BinaryOp(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto out = floats(info[0], toShape(info[6]));
    auto op = static_cast<Binary>(info[1].As<Napi::Number>().Int32Value());
    auto a = floats(info[2], toShape(info[3]));
    auto b = floats(info[4], toShape(info[5]));
    switch (op) {
      case kAdd: at::add_out(out, a, b); break;
      case kSub: at::sub_out(out, a, b); break;
      case kMul: at::mul_out(out, a, b); break;
      case kDiv: at::div_out(out, a, b); break;
      case kMaximum: at::maximum_out(out, a, b); break;
      case kMinimum: at::minimum_out(out, a, b); break;
      case kSquaredDifference: at::sub_out(out, a, b).mul_(out); break;
      default: throw std::runtime_error("unknown binary op");
    }
  });
}

enum Reduction { kSum, kMax, kMin, kMean };

// reduce(out, op, x, shape, axes): reduces the given axes away (the output's keepDims shape is the
// caller's business: the values are the same).
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto op = static_cast<Reduction>(info[1].As<Napi::Number>().Int32Value());
    auto x = floats(info[2], toShape(info[3]));
    auto axes = toShape(info[4]);
    Shape kept;
    for (int64_t d = 0; d < x.dim(); d++)
      if (std::find(axes.begin(), axes.end(), d) == axes.end()) kept.push_back(x.size(d));
    auto out = floats(info[0], kept);
    switch (op) {
      case kSum: at::sum_out(out, x, axes); break;
      case kMean: at::mean_out(out, x, axes); break;
      case kMax: at::amax_out(out, x, axes); break;
      case kMin: at::amin_out(out, x, axes); break;
      default: throw std::runtime_error("unknown reduction");
    }
  });
}

// transpose(out, x, shape, perm)
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto x = floats(info[1], toShape(info[2])).permute(toShape(info[3]));
    floats(info[0], x.sizes().vec()).copy_(x);
  });
}

// slice(out, x, shape, begin, size)
Napi::Value Slice(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto x = floats(info[1], toShape(info[2]));
    auto begin = toShape(info[3]);
    auto size = toShape(info[4]);
    for (size_t d = 0; d < begin.size(); d++) x = x.narrow(static_cast<int64_t>(d), begin[d], size[d]);
    floats(info[0], size).copy_(x);
  });
}

// tile(out, x, shape, reps): tfjs's Tile (ATen's repeat).
Napi::Value Tile(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto shape = toShape(info[2]);
    auto reps = toShape(info[3]);
    Shape tiled(shape.size());
    for (size_t d = 0; d < shape.size(); d++) tiled[d] = shape[d] * reps[d];
    put(floats(info[0], tiled), floats(info[1], shape).repeat(reps));
  });
}

// batchNorm(out, x, shape, mean, variance, offset | null, scale | null, epsilon): inference-form batch
// normalization over the last axis (mean, variance, offset and scale hold one value per channel):
// out = x * a + b with a = scale / sqrt(variance + epsilon), b = offset - mean * a.
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto shape = toShape(info[2]);
    Shape channels{shape.back()};
    auto x = floats(info[1], shape);
    auto a = at::rsqrt(floats(info[4], channels) + info[7].As<Napi::Number>().DoubleValue());
    if (!info[6].IsNull()) a = a * floats(info[6], channels);
    auto b = -floats(info[3], channels) * a;
    if (!info[5].IsNull()) b = b + floats(info[5], channels);
    auto out = floats(info[0], shape);
    at::mul_out(out, x, a);
    out.add_(b);
  });
}

// pad(out, x, shape, paddings [before0, after0, before1, after1, ...], value)
Napi::Value Pad(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto shape = toShape(info[2]);
    auto x = floats(info[1], shape);
    auto paddings = toShape(info[3]);
    Shape padded(shape.size());
    for (size_t d = 0; d < shape.size(); d++) padded[d] = shape[d] + paddings[2 * d] + paddings[2 * d + 1];
    auto out = floats(info[0], padded);
    out.fill_(info[4].As<Napi::Number>().DoubleValue());
    auto inner = out;
    for (size_t d = 0; d < shape.size(); d++) inner = inner.narrow(static_cast<int64_t>(d), paddings[2 * d], shape[d]);
    inner.copy_(x);
  });
}

// Loops compiled for AVX-512, AVX2 and plain x86-64 (target_clones: the loader picks the one the processor
// runs).
#define SNNL_VECTOR __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// The dot product of two float32 rows, summed in 64 lanes: vectorized, and four independent AVX-512 chains (a
// plain float loop is one chain that waits on each add's latency: about 4 cycles a value, 1 ms a pass over
// a batch of 128 rows of the reproduction CNN's 15k hidden values). The same code for every pair, so a k-NN
// pair's distance is the same in knnExact and knnRefine.
SNNL_VECTOR float rowDot(const float* __restrict a, const float* __restrict b, int64_t d) {
  constexpr int64_t kLanes = 64;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) lanes[l] += a[i + l] * b[i + l];
  }
  float s = 0.0f;
  for (; i < d; i++) s += a[i] * b[i];
#pragma omp simd reduction(+ : s)
  for (int64_t l = 0; l < kLanes; l++) s += lanes[l];
  return s;
}

// ---- The Soft Nearest Neighbor Loss, fused (src/loss/fused.ts states the contract; docs/reference.md the math) ----

enum Distance { kSquaredEuclidean, kEuclidean, kCosine };
constexpr double kCosineNormFloor = 1e-12;

// Centred rows (squared Euclidean, Euclidean: distances do not change, and float32 cancellation in
// |x|^2 + |x|^2 - 2 x.x shrinks with the norms) or unit rows and their norms (cosine, floored like
// torch.nn.functional.normalize). Plain loops: at b = 128 a chain of ATen ops costs more than the work.
std::pair<at::Tensor, at::Tensor> prepareRows(const at::Tensor& x, Distance distance) {
  const int64_t b = x.size(0), d = x.size(1);
  const float* px = x.data_ptr<float>();
  auto rows = at::empty({b, d}, x.options());
  float* pr = rows.data_ptr<float>();
  if (distance == kCosine) {
    auto norms = at::empty({b, 1}, x.options());
    float* pn = norms.data_ptr<float>();
    at::parallel_for(0, b, 8, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const float* xi = px + i * d;
        const float norm = std::max(std::sqrt(rowDot(xi, xi, d)), static_cast<float>(kCosineNormFloor));
        pn[i] = norm;
        for (int64_t k = 0; k < d; k++) pr[i * d + k] = xi[k] / norm;
      }
    });
    return {rows, norms};
  }
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < b; i++)
    for (int64_t k = 0; k < d; k++) mean[k] += px[i * d + k];
  std::vector<float> meanF(d);
  for (int64_t k = 0; k < d; k++) meanF[k] = static_cast<float>(mean[k] / b);
  at::parallel_for(0, b, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++)
      for (int64_t k = 0; k < d; k++) pr[i * d + k] = px[i * d + k] - meanF[k];
  });
  return {rows, at::Tensor()};
}

// The BLAS's symmetric rank-k update and general product (every BLAS has them; LibTorch's libblas.so.3 is
// OpenBLAS here).
extern "C" void ssyrk_(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* beta, float* c, const int* ldc);
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

// The feature columns [begin, end) of a b x d product, one run per intra-op thread (at least 128 columns
// each). The BLAS threads these thin shapes poorly; one single-threaded call per thread over its own
// columns, run side by side, is faster (OpenBLAS, 2 threads, b = 128, d = 9216: the rank-k update 1.1 ms
// against 1.9 for one call, the 128 x 128 by 128 x d product 1.8 against 2.1; measured).
std::vector<std::pair<int64_t, int64_t>> featureRuns(int64_t d) {
  const int64_t runs = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), d / 128));
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t r = 0; r < runs; r++) out.emplace_back(d * r / runs, d * (r + 1) / runs);
  return out;
}

// c (b x b, row-major) = rows rows^T for rows (b x d, row-major), by symmetric rank-k updates: half the
// multiply-adds of a general product. In column-major terms a run of rows' columns is A = rows^T (k x b,
// leading dimension d) and C = A^T A; the BLAS writes C's upper triangle (column-major), the lower
// triangle of c row-major. The runs' partial sums are added, then the other triangle is copied.
void gram(float* c, const float* rows, int64_t b, int64_t d) {
  const auto runs = featureRuns(d);
  std::vector<std::vector<float>> partial(runs.size() - 1, std::vector<float>(b * b));
  at::parallel_for(0, static_cast<int64_t>(runs.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int n = static_cast<int>(b), k = static_cast<int>(runs[r].second - runs[r].first);
      const int lda = static_cast<int>(d);
      const float alpha = 1.0f, beta = 0.0f;
      ssyrk_("U", "T", &n, &k, &alpha, rows + runs[r].first, &lda, &beta, r == 0 ? c : partial[r - 1].data(), &n);
    }
  });
  for (const auto& p : partial)
    for (int64_t i = 0; i < b; i++)
      for (int64_t j = 0; j <= i; j++) c[i * b + j] += p[i * b + j];
  for (int64_t i = 0; i < b; i++)
    for (int64_t j = i + 1; j < b; j++) c[i * b + j] = c[j * b + i];
}

// out (b x d) = a (b x b) rows (b x d), all row-major: in column-major terms out^T = rows^T a^T, one general
// product per run of columns (featureRuns), side by side.
void productByRuns(float* out, const float* a, const float* rows, int64_t b, int64_t d) {
  const auto runs = featureRuns(d);
  at::parallel_for(0, static_cast<int64_t>(runs.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int m = static_cast<int>(runs[r].second - runs[r].first), n = static_cast<int>(b);
      const int ld = static_cast<int>(d);
      const float alpha = 1.0f, beta = 0.0f;
      sgemm_("N", "N", &m, &n, &n, &alpha, rows + runs[r].first, &ld, a, &n, &beta, out + runs[r].first, &ld);
    }
  });
}

// A row of the Gram matrix -> distances to row i (the diagonal exactly 0, never negative).
SNNL_VECTOR void gramToDistances(float* row, const float* sq, int64_t i, int64_t b, Distance distance) {
  if (distance == kCosine) {
#pragma omp simd
    for (int64_t j = 0; j < b; j++) row[j] = std::max(0.0f, 1.0f - row[j]);
  } else {
    const float si = sq[i];
#pragma omp simd
    for (int64_t j = 0; j < b; j++) row[j] = std::max(0.0f, si + sq[j] - 2.0f * row[j]);
    if (distance == kEuclidean) {
#pragma omp simd
      for (int64_t j = 0; j < b; j++) row[j] = std::sqrt(row[j]);
    }
  }
  row[i] = 0.0f;
}

// A row of the raw rows' Gram matrix -> cosine distances to row i (1 - g_ij / (|x_i| |x_j|), never negative;
// the diagonal exactly 0).
SNNL_VECTOR void cosineDistances(float* __restrict out, const float* __restrict row, const float* inverseNorms,
                                 int64_t i, int64_t b) {
  const float ni = inverseNorms[i];
#pragma omp simd
  for (int64_t j = 0; j < b; j++) out[j] = std::max(0.0f, 1.0f - row[j] * ni * inverseNorms[j]);
  out[i] = 0.0f;
}

// snnlForward(outLoss [b], outK [b, b], x, [b, d], labels, distance, temperature, epsilon (< 0: log-sum-exp))
// K is dLoss/dD per unit row weight (for Euclidean, dLoss/dS with S the squared distance), so that the
// backward pass is H = K * w (rows), A = H + H^T and one product. outK holds, in turn, the Gram matrix,
// the logits (shifted by their row maximum), their exponentials (one vectorized ATen pass), and K.
Napi::Value SnnlForward(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto shape = toShape(info[3]);
    auto x = floats(info[2], shape);
    const int64_t b = shape[0];
    float* loss = info[0].As<Napi::Float32Array>().Data();
    auto outK = floats(info[1], {b, b});
    const int32_t* labels = info[4].As<Napi::Int32Array>().Data();
    auto distance = static_cast<Distance>(info[5].As<Napi::Number>().Int32Value());
    const double t = info[6].As<Napi::Number>().DoubleValue();
    const double epsilon = info[7].As<Napi::Number>().DoubleValue();
    const bool lse = epsilon < 0;
    const float invT = static_cast<float>(1.0 / t);

    // The Gram matrix of the centred rows (squared Euclidean, Euclidean), or of the rows themselves
    // (cosine: scaled by the inverse norms, from its diagonal, as rows are compared; no unit rows written).
    const int64_t d = shape[1];
    float* k = outK.data_ptr<float>();
    at::Tensor centred;
    if (distance != kCosine) centred = prepareRows(x, distance).first;
    gram(k, (distance == kCosine ? x : centred).data_ptr<float>(), b, d);
    std::vector<float> diagonal(b), inverseNorms;
    for (int64_t i = 0; i < b; i++) diagonal[i] = k[i * b + i];
    if (distance == kCosine) {
      inverseNorms.resize(b);
      for (int64_t i = 0; i < b; i++)
        inverseNorms[i] = 1.0f / std::max(std::sqrt(diagonal[i]), static_cast<float>(kCosineNormFloor));
    }
    const float* s = diagonal.data();
    auto distances = at::empty({b, b}, x.options());
    float* dist = distances.data_ptr<float>();
    std::vector<float> shift(b, 0.0f);

    // Distances (diagonal exactly 0; never negative, as in src/loss/distance.ts) and logits -D/T (diagonal
    // -inf: never a neighbour), shifted by the row maximum for log-sum-exp.
    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        float* row = k + i * b;
        float* drow = dist + i * b;
        if (distance == kCosine) {
          cosineDistances(drow, row, inverseNorms.data(), i, b);
        } else {
          std::memcpy(drow, row, b * sizeof(float));
          gramToDistances(drow, s, i, b, distance);
        }
        float top = -INFINITY;
        for (int64_t j = 0; j < b; j++) {
          row[j] = j == i ? -INFINITY : -drow[j] * invT;
          top = std::max(top, row[j]);
        }
        if (lse) {
          shift[i] = top;
          for (int64_t j = 0; j < b; j++) row[j] -= top;
        }
      }
    });
    outK.exp_();

    at::parallel_for(0, b, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        float* row = k + i * b;
        const float* drow = dist + i * b;
        const int32_t yi = labels[i];
        double total = 0, partners = 0;
        int64_t partnerCount = 0;
        for (int64_t j = 0; j < b; j++) {
          total += row[j];
          if (j != i && labels[j] == yi) {
            partners += row[j];
            partnerCount++;
          }
        }
        if (lse) {
          // P_ij = e_ij / total; Q_ij = e_ij / partners over partners. When every partner's term
          // underflowed against the row maximum, shift the partners by their own maximum instead.
          const float lseAll = shift[i] + static_cast<float>(std::log(total));
          if (partnerCount == 0) {
            loss[i] = 0.0f;
            for (int64_t j = 0; j < b; j++) row[j] = static_cast<float>(-row[j] / total) * invT;
          } else if (partners > 1e-30) {
            loss[i] = static_cast<float>(-std::log(partners / total));
            for (int64_t j = 0; j < b; j++) {
              const double e = row[j];
              const double q = labels[j] == yi && j != i ? e / partners : 0.0;
              row[j] = static_cast<float>(q - e / total) * invT;
            }
          } else {
            float top = -INFINITY;
            for (int64_t j = 0; j < b; j++)
              if (j != i && labels[j] == yi) top = std::max(top, -drow[j] * invT);
            double sum = 0;
            for (int64_t j = 0; j < b; j++)
              if (j != i && labels[j] == yi) sum += std::exp(-drow[j] * invT - top);
            const float lsePart = top + static_cast<float>(std::log(sum));
            loss[i] = lseAll - lsePart;
            for (int64_t j = 0; j < b; j++) {
              const float l = -drow[j] * invT;
              const float q = j != i && labels[j] == yi ? std::exp(l - lsePart) : 0.0f;
              row[j] = (q - static_cast<float>(row[j] / total)) * invT;
            }
          }
        } else {
          const double picked = partners / (total + epsilon);
          loss[i] = static_cast<float>(-std::log(picked + epsilon));
          const float scale = static_cast<float>(1.0 / ((picked + epsilon) * (total + epsilon) * t));
          const float m = static_cast<float>(picked);
          for (int64_t j = 0; j < b; j++) {
            const float same = j != i && labels[j] == yi ? 1.0f : 0.0f;
            row[j] = row[j] * scale * (same - m);
          }
        }
        if (distance == kEuclidean) {
          // dD/dS = 1 / (2 D); 0 where D = 0 (the diagonal and duplicate points).
          for (int64_t j = 0; j < b; j++) row[j] = drow[j] > 0 ? row[j] / (2.0f * drow[j]) : 0.0f;
        }
        // K's diagonal (dLoss/dD_ii) is 0: a row is never its own neighbour. For cosine it carries the
        // row's inverse norm to the backward pass instead, which then reads x only once.
        if (distance == kCosine) row[i] = inverseNorms[i];
      }
    });
  });
}

// snnlBackward(out, x, [b, d], K, weights [b], distance) -> dLoss/dX
Napi::Value SnnlBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto shape = toShape(info[2]);
    auto x = floats(info[1], shape);
    auto out = floats(info[0], shape);
    const int64_t b = shape[0];
    const float* k = info[3].As<Napi::Float32Array>().Data();
    const float* w = info[4].As<Napi::Float32Array>().Data();
    auto distance = static_cast<Distance>(info[5].As<Napi::Number>().Int32Value());
    const int64_t d = shape[1];
    const float* px = x.data_ptr<float>();
    // Cosine: the rows' inverse norms (floored like torch.nn.functional.normalize), which the forward pass
    // left on K's diagonal, so that A U is (A scaled by column) X, with no unit rows written. A's diagonal
    // is left out: it would add a multiple of u_i to row i's g_i, which the projection below removes.
    std::vector<float> inverseNorms;
    if (distance == kCosine) {
      inverseNorms.resize(b);
      for (int64_t i = 0; i < b; i++) inverseNorms[i] = k[i * b + i];
    }
    // A = H + H^T with H = K * w (row i scaled by w_i), and its row sums; for cosine A's column j is
    // scaled by 1 / |x_j|. The diagonal of A cancels in both gradients (cosine: above; squared Euclidean:
    // rowsum(A) c_i - (A C)_i), and K's is 0 for the squared and plain Euclidean distances.
    auto a = at::empty({b, b}, x.options());
    auto sums = at::empty({b, 1}, x.options());
    float* pa = a.data_ptr<float>();
    float* ps = sums.data_ptr<float>();
    const float* columnScale = distance == kCosine ? inverseNorms.data() : nullptr;
    // In tiles, so that reading K's columns (for H^T) stays in cache.
    constexpr int64_t kTile = 32;
    at::parallel_for(0, (b + kTile - 1) / kTile, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ti = begin * kTile; ti < std::min(b, end * kTile); ti += kTile) {
        const int64_t iEnd = std::min(b, ti + kTile);
        for (int64_t tj = 0; tj < b; tj += kTile) {
          const int64_t jEnd = std::min(b, tj + kTile);
          for (int64_t i = ti; i < iEnd; i++)
            for (int64_t j = tj; j < jEnd; j++) {
              float v = i == j ? 0.0f : k[i * b + j] * w[i] + k[j * b + i] * w[j];
              if (columnScale) v *= columnScale[j];
              // Subnormal entries (exp(-D/T) of far points) make the product ~50x slower (57 ms against
              // ~1 at b = 128, d = 3200, measured); their share of the gradient is below float32's
              // resolution of the other terms. As the wasm kernel does.
              pa[i * b + j] = std::fabs(v) < FLT_MIN ? 0.0f : v;
            }
        }
        for (int64_t i = ti; i < iEnd; i++) {
          double sum = 0;
          for (int64_t j = 0; j < b; j++) sum += pa[i * b + j];
          ps[i] = static_cast<float>(sum);
        }
      }
    });
    at::Tensor centred;
    if (distance != kCosine) centred = prepareRows(x, distance).first;
    const float* pr = distance == kCosine ? px : centred.data_ptr<float>();
    float* po = out.data_ptr<float>();
    productByRuns(po, pa, pr, b, d);  // A U (cosine, as A diag(1 / |x|) X) or A C (squared Euclidean, Euclidean)
    at::parallel_for(0, b, 8, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        float* oi = po + i * d;
        const float* ri = pr + i * d;
        if (distance == kCosine) {
          // g = -A U, u_i = x_i / |x_i|; dLoss/dx_i = (g_i - u_i (u_i . g_i)) / |x_i|
          //   = (x_i (x_i . (A U)_i) / |x_i|^2 - (A U)_i) / |x_i|
          const float inv = inverseNorms[i];
          const float along = rowDot(ri, oi, d) * inv * inv;
          for (int64_t k = 0; k < d; k++) oi[k] = (ri[k] * along - oi[k]) * inv;
        } else {
          // 2 * (rowsum(A) c_i - (A C)_i)
          for (int64_t k = 0; k < d; k++) oi[k] = 2.0f * (ps[i] * ri[k] - oi[k]);
        }
      }
    });
  });
}

// ---- SNNL at many temperatures without its gradient: the loss of a whole data set, and the search for the
// optimal temperature (src/loss/sweep.ts). Memory is set by the block of rows (rows x b distances), not by
// b x b; the distances of a block, and each row's nearest neighbour, are computed once for every
// temperature asked. The per-entry loops are compiled for AVX-512, AVX2 and plain x86-64 (target_clones:
// the loader picks the one the processor runs), and their float sums are vectorized (omp simd) over runs of
// 1024 entries, added up in double.

// The smallest distance to another row, and to another row of the same class (infinity: none).
SNNL_VECTOR void rowMinima(const float* d, const int32_t* labels, int64_t i, int64_t b, float& all, float& partner) {
  const int32_t yi = labels[i];
  float a = INFINITY, p = INFINITY;
#pragma omp simd reduction(min : a, p)
  for (int64_t j = 0; j < b; j++) {
    const float v = j == i ? INFINITY : d[j];
    a = std::min(a, v);
    p = std::min(p, labels[j] == yi ? v : INFINITY);
  }
  all = a;
  partner = p;
}

// The smallest positive and the largest entry of a row.
SNNL_VECTOR void rowRange(const float* d, int64_t b, float& lo, float& hi) {
  float l = INFINITY, h = 0;
#pragma omp simd reduction(min : l) reduction(max : h)
  for (int64_t j = 0; j < b; j++) {
    l = std::min(l, d[j] > 0 ? d[j] : INFINITY);
    h = std::max(h, d[j]);
  }
  lo = l;
  hi = h;
}

SNNL_VECTOR void scaledShift(float* out, const float* d, int64_t n, float beta, float shift) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) out[j] = -beta * (d[j] - shift);
}

// Sums of e_j (s[0]), e_j D_j (s[1]), e_j D_j^2 (s[2]) over all j, and the same over j of class yi
// (s[3..5]); with moments false, only s[0] and s[3].
SNNL_VECTOR void rowSums(const float* e, const float* d, const int32_t* labels, int32_t yi, int64_t b, bool moments,
                         double* s) {
  for (int k = 0; k < 6; k++) s[k] = 0;
  for (int64_t j0 = 0; j0 < b; j0 += 1024) {
    const int64_t j1 = std::min(b, j0 + 1024);
    float s0 = 0, s1 = 0, s2 = 0, p0 = 0, p1 = 0, p2 = 0;
    if (moments) {
#pragma omp simd reduction(+ : s0, s1, s2, p0, p1, p2)
      for (int64_t j = j0; j < j1; j++) {
        const float ej = e[j], dj = d[j], ed = ej * dj, same = labels[j] == yi ? 1.0f : 0.0f;
        s0 += ej;
        s1 += ed;
        s2 += ed * dj;
        p0 += ej * same;
        p1 += ed * same;
        p2 += ed * dj * same;
      }
    } else {
#pragma omp simd reduction(+ : s0, p0)
      for (int64_t j = j0; j < j1; j++) {
        s0 += e[j];
        p0 += labels[j] == yi ? e[j] : 0.0f;
      }
    }
    s[0] += s0;
    s[1] += s1;
    s[2] += s2;
    s[3] += p0;
    s[4] += p1;
    s[5] += p2;
  }
}

// Distances of rows [start, start + rows) to all b rows, into dist (rows x b).
void blockDistances(const at::Tensor& prepared, const at::Tensor& sq, Distance distance, int64_t start, int64_t rows,
                    at::Tensor& dist) {
  const int64_t b = prepared.size(0);
  at::mm_out(dist, prepared.narrow(0, start, rows), prepared.t());
  float* pd = dist.data_ptr<float>();
  const float* s = sq.defined() ? sq.data_ptr<float>() : nullptr;
  at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) gramToDistances(pd + r * b, s, start + r, b, distance);
  });
}

// Rows per block: the block's distances within 32M entries (128 MB), at least one row, at most b.
int64_t sweepBlockRows(int64_t b, int64_t asked) {
  if (asked > 0) return std::min(b, asked);
  return std::max<int64_t>(1, std::min<int64_t>(b, (int64_t{32} << 20) / b));
}

struct SweepInput {
  at::Tensor prepared, sq;
  Distance distance;
  int64_t b, blockRows;
};

// x, [b, d], distance, blockRows from info[xAt] on.
SweepInput sweepInput(const Napi::CallbackInfo& info, size_t xAt) {
  auto shape = toShape(info[xAt + 1]);
  auto x = floats(info[xAt], shape);
  auto distance = static_cast<Distance>(info[xAt + 2].As<Napi::Number>().Int32Value());
  auto [rows, norms] = prepareRows(x, distance);
  at::Tensor sq;
  if (distance != kCosine) sq = rows.square().sum(1);
  const int64_t b = shape[0];
  return {rows, sq, distance, b, sweepBlockRows(b, info[xAt + 3].As<Napi::Number>().Int64Value())};
}

// Calls visit(start, rows, distances) for each block of rows.
template <typename F>
void forEachBlock(const SweepInput& in, F visit) {
  auto dist = at::empty({in.blockRows, in.b}, in.prepared.options());
  for (int64_t start = 0; start < in.b; start += in.blockRows) {
    const int64_t rows = std::min(in.blockRows, in.b - start);
    auto view = dist.narrow(0, 0, rows);
    blockDistances(in.prepared, in.sq, in.distance, start, rows, view);
    visit(start, rows, view.data_ptr<float>());
  }
}

// snnlRange(out Float64Array [2], x, [b, d], distance, blockRows (0: by memory))
// -> the smallest positive and the largest distance between distinct rows.
Napi::Value SnnlRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    double* out = info[0].As<Napi::Float64Array>().Data();
    auto in = sweepInput(info, 1);
    std::vector<float> lo(in.b), hi(in.b);
    forEachBlock(in, [&](int64_t start, int64_t rows, const float* pd) {
      at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) rowRange(pd + r * in.b, in.b, lo[start + r], hi[start + r]);
      });
    });
    out[0] = *std::min_element(lo.begin(), lo.end());
    out[1] = *std::max_element(hi.begin(), hi.end());
  });
}

// One row's loss and its first and second derivatives with respect to beta = 1 / T, from its sums
// (rowSums: shifted by `shift` for log-sum-exp, so that the largest term is 1). d: the row's distances,
// to recompute the partners' sums with their own shift when every one underflowed.
struct RowLoss {
  double loss, dBeta, dBeta2;
};

RowLoss rowLoss(double* s, const float* d, const int32_t* labels, int64_t i, int64_t b, double beta, double shift,
                double partnerShift, double epsilon) {
  if (epsilon < 0) {
    double logP = std::log(s[3]);
    if (!(s[3] > 1e-30)) {
      s[3] = s[4] = s[5] = 0;
      for (int64_t j = 0; j < b; j++) {
        if (j == i || labels[j] != labels[i]) continue;
        const double dj = d[j], ej = std::exp(-beta * (dj - partnerShift));
        s[3] += ej;
        s[4] += ej * dj;
        s[5] += ej * dj * dj;
      }
      logP = std::log(s[3]) - beta * (partnerShift - shift);
    }
    const double meanAll = s[1] / s[0], meanPartner = s[4] / s[3];
    const double varAll = s[2] / s[0] - meanAll * meanAll, varPartner = s[5] / s[3] - meanPartner * meanPartner;
    return {std::log(s[0]) - logP, meanPartner - meanAll, varAll - varPartner};
  }
  // l = -log(m + eps), m = P / (S + eps): derivatives of P and S are -P1, P2 and -S1, S2.
  const double den = s[0] + epsilon, m = s[3] / den;
  const double dm = (s[3] * s[1] - s[4] * den) / (den * den);
  const double d2m = (s[5] * den - s[3] * s[2]) / (den * den) + 2 * s[1] * dm / den;
  const double g = dm / (m + epsilon);
  return {-std::log(m + epsilon), -g, -d2m / (m + epsilon) + g * g};
}

// snnlSweep(out Float64Array [3 nT], x, [b, d], distance, blockRows (0: by memory), labels Int32Array,
//           weights Float32Array [b], epsilon (< 0: log-sum-exp), temperatures Float64Array [nT],
//           derivatives)
// -> for each temperature T: sum_i w_i l_i, and (with derivatives) its first and second derivatives with
// respect to u = log T. With beta = 1 / T they come from the moments of D under the neighbour
// distributions (docs/reference.md): log-sum-exp: dl/dbeta = E_Q[D] - E_P[D], d2l/dbeta2 = Var_P[D] - Var_Q[D].
Napi::Value SnnlSweep(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    double* out = info[0].As<Napi::Float64Array>().Data();
    auto in = sweepInput(info, 1);
    const int32_t* labels = info[5].As<Napi::Int32Array>().Data();
    const float* w = info[6].As<Napi::Float32Array>().Data();
    const double epsilon = info[7].As<Napi::Number>().DoubleValue();
    auto tArray = info[8].As<Napi::Float64Array>();
    const bool derivatives = info[9].As<Napi::Boolean>().Value();
    const double* temps = tArray.Data();
    const int64_t nT = static_cast<int64_t>(tArray.ElementLength());
    const bool lse = epsilon < 0;
    const int64_t b = in.b;
    // Rows per exp call: about 64K values, so that a call's fixed cost stays small and its buffer in cache.
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(in.blockRows, 65536 / b));
    std::vector<double> totals(static_cast<size_t>(3 * nT * b), 0.0);  // per row, so threads never share
    forEachBlock(in, [&](int64_t start, int64_t rows, const float* pd) {
      at::parallel_for(0, (rows + chunk - 1) / chunk, 1, [&](int64_t cBegin, int64_t cEnd) {
        auto buffer = at::empty({chunk * b}, in.prepared.options());
        float* e = buffer.data_ptr<float>();
        std::vector<float> nearest(chunk), nearestPartner(chunk);
        double sums[6];
        for (int64_t c = cBegin; c < cEnd; c++) {
          const int64_t r0 = c * chunk, r1 = std::min(rows, r0 + chunk);
          for (int64_t r = r0; r < r1; r++)
            rowMinima(pd + r * b, labels, start + r, b, nearest[r - r0], nearestPartner[r - r0]);
          auto slice = buffer.narrow(0, 0, (r1 - r0) * b);
          for (int64_t t = 0; t < nT; t++) {
            const double beta = 1.0 / temps[t];
            // Log-sum-exp: shifted by the row's nearest neighbour, so that its term is 1.
            for (int64_t r = r0; r < r1; r++)
              scaledShift(e + (r - r0) * b, pd + r * b, b, static_cast<float>(beta), lse ? nearest[r - r0] : 0.0f);
            slice.exp_();
            for (int64_t r = r0; r < r1; r++) {
              const int64_t i = start + r;
              // Rows with no partner: log-sum-exp leaves them out (weight 0); the epsilon formula counts
              // -log(eps), constant in T.
              if (lse && !(nearestPartner[r - r0] < INFINITY)) continue;
              float* er = e + (r - r0) * b;
              er[i] = 0.0f;  // never its own neighbour
              rowSums(er, pd + r * b, labels, labels[i], b, derivatives, sums);
              const auto l = rowLoss(sums, pd + r * b, labels, i, b, beta, lse ? nearest[r - r0] : 0.0,
                                     nearestPartner[r - r0], epsilon);
              double* ti = totals.data() + 3 * (i * nT + t);
              ti[0] = w[i] * l.loss;
              if (derivatives) {
                ti[1] = w[i] * (-beta * l.dBeta);                        // du: dbeta/du = -beta
                ti[2] = w[i] * (beta * beta * l.dBeta2 + beta * l.dBeta);  // d2beta/du2 = beta
              }
            }
          }
        }
      });
    });
    std::fill(out, out + 3 * nT, 0.0);
    for (int64_t i = 0; i < b; i++)
      for (int64_t k = 0; k < 3 * nT; k++) out[k] += totals[static_cast<size_t>(3 * i * nT + k)];
  });
}

void adam(float* __restrict ov, float* __restrict om, float* __restrict os, const float* __restrict pv,
          const float* __restrict pm, const float* __restrict ps, const float* __restrict pg, int64_t n, float beta1,
          float beta2, float lr, float epsilon, float c1, float c2) {
  const float keep1 = 1.0f - beta1, keep2 = 1.0f - beta2;
  for (int64_t i = 0; i < n; i++) {
    const float gi = pg[i];
    const float mi = pm[i] * beta1 + gi * keep1;
    const float vi = ps[i] * beta2 + gi * gi * keep2;
    om[i] = mi;
    os[i] = vi;
    ov[i] = pv[i] - (lr * (mi / c1)) / (std::sqrt(vi / c2) + epsilon);
  }
}

// adam(outValue, outM, outV, value, m, v, g, beta1, beta2, learningRate, epsilon, correction1, correction2)
// tfjs's AdamOptimizer update, term for term, in one pass.
Napi::Value Adam(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    float* ov = info[0].As<Napi::Float32Array>().Data();
    float* om = info[1].As<Napi::Float32Array>().Data();
    float* os = info[2].As<Napi::Float32Array>().Data();
    const float* pv = info[3].As<Napi::Float32Array>().Data();
    const float* pm = info[4].As<Napi::Float32Array>().Data();
    const float* ps = info[5].As<Napi::Float32Array>().Data();
    auto g = info[6].As<Napi::Float32Array>();
    const float* pg = g.Data();
    const int64_t n = static_cast<int64_t>(g.ElementLength());
    const float beta1 = info[7].As<Napi::Number>().FloatValue();
    const float beta2 = info[8].As<Napi::Number>().FloatValue();
    const float lr = info[9].As<Napi::Number>().FloatValue();
    const float epsilon = info[10].As<Napi::Number>().FloatValue();
    const float c1 = info[11].As<Napi::Number>().FloatValue();
    const float c2 = info[12].As<Napi::Number>().FloatValue();
    at::parallel_for(0, n, 32768, [&](int64_t begin, int64_t end) {
      // Flush subnormals to zero while updating: late in training many gradients are tiny, their squares
      // and the decaying moments fall below float32's normal range, and every operation on a subnormal
      // takes a slow microcode path (measured: Adam grew to half of a CNN epoch). Restored afterwards.
      const unsigned csr = _mm_getcsr();
      _mm_setcsr(csr | 0x8040);  // FTZ | DAZ
      adam(ov + begin, om + begin, os + begin, pv + begin, pm + begin, ps + begin, pg + begin, end - begin, beta1, beta2, lr,
           epsilon, c1, c2);
      _mm_setcsr(csr);
    });
  });
}

// topK(outValues, outIndices, x, rows, cols, k): the k largest values of each row of x [rows, cols], largest
// first, ties in the lower index first: the order of the cpu backend's TopK (and so a k-NN search that
// merges chunks in index order keeps the lowest training index among equal distances). NaN ranks below
// every number (the cpu backend leaves NaN's order undefined), which keeps the comparison a strict order.
Napi::Value TopK(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    float* values = info[0].As<Napi::Float32Array>().Data();
    int32_t* indices = info[1].As<Napi::Int32Array>().Data();
    const float* x = info[2].As<Napi::Float32Array>().Data();
    const int64_t rows = info[3].As<Napi::Number>().Int64Value();
    const int64_t cols = info[4].As<Napi::Number>().Int64Value();
    const int64_t k = info[5].As<Napi::Number>().Int64Value();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> order(cols);
      for (int64_t r = begin; r < end; r++) {
        const float* row = x + r * cols;
        const auto before = [row](int32_t a, int32_t b) {
          const bool nanA = std::isnan(row[a]), nanB = std::isnan(row[b]);
          if (nanA != nanB) return nanB;
          if (!nanA && row[a] != row[b]) return row[a] > row[b];
          return a < b;
        };
        std::iota(order.begin(), order.end(), 0);
        if (k < cols) std::nth_element(order.begin(), order.begin() + k, order.end(), before);
        std::sort(order.begin(), order.begin() + k, before);
        for (int64_t j = 0; j < k; j++) {
          values[r * k + j] = row[order[j]];
          indices[r * k + j] = order[j];
        }
      }
    });
  });
}

// The order of a k-NN list: nearer first, ties to the lower training index, NaN last.
using Candidate = std::pair<float, int32_t>;
bool nearerFirst(const Candidate& a, const Candidate& b) {
  const bool nanA = std::isnan(a.first), nanB = std::isnan(b.first);
  if (nanA != nanB) return nanB;
  if (!nanA && a.first != b.first) return a.first < b.first;
  return a.second < b.second;
}

// The k first of `candidates` in that order, written to row r of a [*, k] list.
void keepNearest(std::vector<Candidate>& candidates, int64_t k, float* outD, int32_t* outI, int64_t r) {
  const int64_t keep = std::min<int64_t>(k, static_cast<int64_t>(candidates.size()));
  if (keep < static_cast<int64_t>(candidates.size()))
    std::nth_element(candidates.begin(), candidates.begin() + keep, candidates.end(), nearerFirst);
  std::sort(candidates.begin(), candidates.begin() + keep, nearerFirst);
  for (int64_t j = 0; j < keep; j++) {
    outD[r * k + j] = candidates[j].first;
    outI[r * k + j] = candidates[j].second;
  }
}

// The k-NN steps' products q t' ([m, c], 32 MB for 2048 x 4096), written into one buffer kept between calls:
// a fresh allocation of that size is a new mmap whose pages fault on first touch, which cost more than the
// product itself for narrow features (measured: 39% of a 16-wide search in OpenBLAS's zeroing of C).
// The kernels are called from JavaScript's thread only, one at a time. Products above 256 MB (chunks far
// larger than the search's own) are not kept.
at::Tensor productsOf(const at::Tensor& q, const at::Tensor& t) {
  static at::Tensor workspace = at::empty({0}, at::TensorOptions().dtype(at::kFloat));
  const int64_t size = q.size(0) * t.size(0);
  if (size > (int64_t{64} << 20)) return at::mm(q, t.t());
  if (workspace.numel() < size) workspace = at::empty({size}, at::TensorOptions().dtype(at::kFloat));
  auto out = workspace.narrow(0, 0, size).view({q.size(0), t.size(0)});
  at::mm_out(out, q, t.t());
  return out;
}

// knnMerge(outDistances, outIndices, q, m, d, qNorms, t, c, tNorms, prevDistances, prevIndices, prevK, k, offset):
// one step of the exact k-NN search. Squared distances of the m queries to the c training rows by one
// GEMM (|q|^2 + |t|^2 - 2 q.t, clamped at 0), merged with each query's k' best so far (training indices
// below `offset`) into its k best, nearest first, ties to the lower index, NaN ranked last. A candidate
// no nearer than a full list's k-th is skipped without being stored (it would lose the tie on index).
Napi::Value KnnMerge(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    float* outD = info[0].As<Napi::Float32Array>().Data();
    int32_t* outI = info[1].As<Napi::Int32Array>().Data();
    const int64_t m = info[3].As<Napi::Number>().Int64Value();
    const int64_t d = info[4].As<Napi::Number>().Int64Value();
    const float* qn = info[5].As<Napi::Float32Array>().Data();
    const int64_t c = info[7].As<Napi::Number>().Int64Value();
    const float* tn = info[8].As<Napi::Float32Array>().Data();
    const float* prevD = info[9].As<Napi::Float32Array>().Data();
    const int32_t* prevI = info[10].As<Napi::Int32Array>().Data();
    const int64_t prevK = info[11].As<Napi::Number>().Int64Value();
    const int64_t k = info[12].As<Napi::Number>().Int64Value();
    const int32_t offset = info[13].As<Napi::Number>().Int32Value();
    auto q = floats(info[2], {m, d});
    auto t = floats(info[6], {c, d});
    auto products = productsOf(q, t);
    const float* g = products.data_ptr<float>();
    at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
      std::vector<Candidate> candidates;
      candidates.reserve(prevK + c);
      for (int64_t r = begin; r < end; r++) {
        candidates.clear();
        for (int64_t j = 0; j < prevK; j++) candidates.emplace_back(prevD[r * prevK + j], prevI[r * prevK + j]);
        // With a full list, only a candidate strictly nearer than its k-th can enter.
        const float bound = prevK == k && k > 0 ? prevD[r * prevK + k - 1] : INFINITY;
        const bool open = prevK < k || std::isnan(bound) || bound == INFINITY;
        const float* row = g + r * c;
        for (int64_t j = 0; j < c; j++) {
          float dist = qn[r] + tn[j] - 2.0f * row[j];
          dist = dist > 0.0f ? dist : (std::isnan(dist) ? dist : 0.0f);
          if (open || dist < bound) candidates.emplace_back(dist, offset + static_cast<int32_t>(j));
        }
        keepNearest(candidates, k, outD, outI, r);
      }
    });
  });
}

// ---- The pruned k-NN search (src/analysis/knn.ts, "bounded search"): a low-rank lower bound on every
// distance by one small GEMM, and exact distances only where the bound cannot rule a training row out.

float exactDistance(const float* q, float qn, const float* t, float tn, int64_t d) {
  const float dist = qn + tn - 2.0f * rowDot(q, t, d);
  return dist > 0.0f ? dist : 0.0f;
}

// knnExact(out, q, m, d, qNorms, t, c, tNorms, indices, prev, width, offset): for each query r and each of
// its `width` candidate training indices, the exact squared distance where the candidate lies in this chunk
// [offset, offset + c), else prev's value.
Napi::Value KnnExact(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    float* out = info[0].As<Napi::Float32Array>().Data();
    const float* q = info[1].As<Napi::Float32Array>().Data();
    const int64_t m = info[2].As<Napi::Number>().Int64Value();
    const int64_t d = info[3].As<Napi::Number>().Int64Value();
    const float* qn = info[4].As<Napi::Float32Array>().Data();
    const float* t = info[5].As<Napi::Float32Array>().Data();
    const int64_t c = info[6].As<Napi::Number>().Int64Value();
    const float* tn = info[7].As<Napi::Float32Array>().Data();
    const int32_t* indices = info[8].As<Napi::Int32Array>().Data();
    const float* prev = info[9].As<Napi::Float32Array>().Data();
    const int64_t width = info[10].As<Napi::Number>().Int64Value();
    const int64_t offset = info[11].As<Napi::Number>().Int64Value();
    at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        for (int64_t j = 0; j < width; j++) {
          const int64_t local = static_cast<int64_t>(indices[r * width + j]) - offset;
          out[r * width + j] =
              local >= 0 && local < c ? exactDistance(q + r * d, qn[r], t + local * d, tn[local], d) : prev[r * width + j];
        }
      }
    });
  });
}

// knnRefine(outD, outI, outCount, q, m, d, qNorms, qBound, t, c, tNorms, tBound, a, limits, slack, prevD, prevI,
// prevK, k, offset): one chunk of the pruned search. qBound / tBound rows are [P x (a - 2 values), rLow, rHigh]
// for an orthonormal basis P: x's coordinates in the basis and an interval holding the norm of its residual
// x - P'P x. |P q - P t|^2 + (the gap between the two residual intervals)^2 is a lower bound of |q - t|^2;
// limits[r] is an upper bound of query r's final k-th distance. A training row is ruled out when its lower
// bound, less the rounding slack * (|q|^2 + |t|^2), exceeds the smaller of limits[r] and a full list's k-th;
// every other row's exact distance is computed and merged as knnMerge does. The list is always k wide: while
// fewer rows are found, its free places hold (infinity, -1). outCount[r]: exact distances computed for query r.
Napi::Value KnnRefine(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    float* outD = info[0].As<Napi::Float32Array>().Data();
    int32_t* outI = info[1].As<Napi::Int32Array>().Data();
    int32_t* outCount = info[2].As<Napi::Int32Array>().Data();
    const float* q = info[3].As<Napi::Float32Array>().Data();
    const int64_t m = info[4].As<Napi::Number>().Int64Value();
    const int64_t d = info[5].As<Napi::Number>().Int64Value();
    const float* qn = info[6].As<Napi::Float32Array>().Data();
    const float* qbRaw = info[7].As<Napi::Float32Array>().Data();
    const float* t = info[8].As<Napi::Float32Array>().Data();
    const int64_t c = info[9].As<Napi::Number>().Int64Value();
    const float* tn = info[10].As<Napi::Float32Array>().Data();
    const float* tbRaw = info[11].As<Napi::Float32Array>().Data();
    const int64_t a = info[12].As<Napi::Number>().Int64Value();
    const float* limits = info[13].As<Napi::Float32Array>().Data();
    const float slack = info[14].As<Napi::Number>().FloatValue();
    const float* prevD = info[15].As<Napi::Float32Array>().Data();
    const int32_t* prevI = info[16].As<Napi::Int32Array>().Data();
    const int64_t prevK = info[17].As<Napi::Number>().Int64Value();
    const int64_t k = info[18].As<Napi::Number>().Int64Value();
    const int32_t offset = info[19].As<Napi::Number>().Int32Value();
    const int64_t p = a - 2;
    auto qp = floats(info[7], {m, a}).narrow(1, 0, p);
    auto tp = floats(info[11], {c, a}).narrow(1, 0, p);
    auto products = productsOf(qp, tp);
    auto qpn = qp.square().sum(1).contiguous();
    auto tpn = tp.square().sum(1).contiguous();
    const float* g = products.data_ptr<float>();
    const float* qps = qpn.data_ptr<float>();
    const float* tps = tpn.data_ptr<float>();
    // Queries go in blocks of kBlock consecutive rows (the caller orders similar queries together): each
    // training row that any of the block needs is read from memory once for all of them.
    constexpr int64_t kBlock = 8;
    at::parallel_for(0, (m + kBlock - 1) / kBlock, 1, [&](int64_t firstBlock, int64_t endBlock) {
      std::vector<Candidate> candidates[kBlock];
      std::vector<uint8_t> needs(kBlock * c);
      std::vector<int32_t> wanted;
      float bound[kBlock];
      for (int64_t blk = firstBlock; blk < endBlock; blk++) {
        const int64_t r0 = blk * kBlock, rows = std::min(kBlock, m - r0);
        for (int64_t i = 0; i < rows; i++) {
          const int64_t r = r0 + i;
          auto& list = candidates[i];
          list.clear();
          // The list so far (-1: a free place, while fewer than k rows have been found).
          for (int64_t j = 0; j < prevK; j++) {
            if (prevI[r * prevK + j] >= 0) list.emplace_back(prevD[r * prevK + j], prevI[r * prevK + j]);
          }
          bound[i] = limits[r];
          if (static_cast<int64_t>(list.size()) >= k && k > 0) bound[i] = std::min(bound[i], list[k - 1].first);
          const float* row = g + r * c;
          const float qLow = qbRaw[r * a + p], qHigh = qbRaw[r * a + p + 1];
          uint8_t* need = needs.data() + i * c;
          for (int64_t j = 0; j < c; j++) {
            const float gap = std::max({0.0f, qLow - tbRaw[j * a + p + 1], tbRaw[j * a + p] - qHigh});
            const float lower = qps[r] + tps[j] - 2.0f * row[j] + gap * gap;
            need[j] = lower - slack * (qn[r] + tn[j]) <= bound[i];
          }
        }
        wanted.clear();
        for (int64_t j = 0; j < c; j++) {
          uint8_t any = 0;
          for (int64_t i = 0; i < rows; i++) any |= needs[i * c + j];
          if (any) wanted.push_back(static_cast<int32_t>(j));
        }
        int32_t count[kBlock] = {};
        for (const int32_t j : wanted) {
          const float* tj = t + j * d;
          for (int64_t i = 0; i < rows; i++) {
            if (!needs[i * c + j]) continue;
            const int64_t r = r0 + i;
            const float dist = exactDistance(q + r * d, qn[r], tj, tn[j], d);
            count[i]++;
            if (dist <= bound[i]) candidates[i].emplace_back(dist, offset + j);
          }
        }
        for (int64_t i = 0; i < rows; i++) {
          const int64_t r = r0 + i;
          outCount[r] = count[i];
          for (int64_t j = static_cast<int64_t>(candidates[i].size()); j < k; j++) {
            outD[r * k + j] = INFINITY;
            outI[r * k + j] = -1;
          }
          keepNearest(candidates[i], k, outD, outI, r);
        }
      }
    });
  });
}

// orthonormalize(out, y, rows, cols): an orthonormal basis of y's columns (rows >= cols), by QR in double.
Napi::Value Orthonormalize(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const int64_t rows = info[2].As<Napi::Number>().Int64Value();
    const int64_t cols = info[3].As<Napi::Number>().Int64Value();
    auto y = floats(info[1], {rows, cols}).to(at::kDouble);
    auto q = std::get<0>(at::linalg_qr(y, "reduced"));
    put(floats(info[0], {rows, cols}), q.to(at::kFloat));
  });
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

// The numeric codes of the generic ops, by the tfjs kernel (or activation, or distance) each runs. The
// JavaScript side declares the same tables (src/kernel-names.ts) and refuses an addon whose codes differ.
Napi::Value Codes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto table = [&](std::initializer_list<std::pair<const char*, int>> items) {
    auto object = Napi::Object::New(env);
    for (const auto& [name, code] : items) object.Set(name, code);
    return object;
  };
  auto codes = Napi::Object::New(env);
  codes.Set("unary", table({{"Relu", kRelu}, {"Neg", kNeg}, {"Step", kStep}, {"Square", kSquare}, {"Exp", kExp},
                            {"Log", kLog}, {"Sqrt", kSqrt}, {"Sigmoid", kSigmoid}, {"Tanh", kTanh}, {"Abs", kAbs},
                            {"Rsqrt", kRsqrt}, {"Reciprocal", kReciprocal}, {"LeakyRelu", kLeakyRelu}}));
  codes.Set("binary", table({{"Add", kAdd}, {"Sub", kSub}, {"Multiply", kMul}, {"RealDiv", kDiv},
                             {"Maximum", kMaximum}, {"Minimum", kMinimum}, {"SquaredDifference", kSquaredDifference}}));
  codes.Set("reduce", table({{"Sum", kSum}, {"Max", kMax}, {"Min", kMin}, {"Mean", kMean}}));
  codes.Set("activation", table({{"linear", kLinear}, {"relu", kReluActivation}}));
  codes.Set("distance", table({{"squared-euclidean", kSquaredEuclidean}, {"euclidean", kEuclidean}, {"cosine", kCosine}}));
  return codes;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // A training step allocates and frees the same large buffers every step. glibc serves blocks above
  // 128 KiB with fresh mmap()s by default, so every output would pay page faults on first touch (a
  // 1.5 MB Adam update took 3 ms instead of 0.3). Keep blocks up to 16 MiB in the heap,
  // and do not hand freed memory back to the system eagerly.
  mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  exports.Set("conv2d", Napi::Function::New(env, Conv2d));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2dBackpropFilter));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("matMul", Napi::Function::New(env, MatMul));
  exports.Set("unary", Napi::Function::New(env, UnaryOp));
  exports.Set("binary", Napi::Function::New(env, BinaryOp));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("pad", Napi::Function::New(env, Pad));
  exports.Set("tile", Napi::Function::New(env, Tile));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("snnlForward", Napi::Function::New(env, SnnlForward));
  exports.Set("snnlBackward", Napi::Function::New(env, SnnlBackward));
  exports.Set("snnlRange", Napi::Function::New(env, SnnlRange));
  exports.Set("snnlSweep", Napi::Function::New(env, SnnlSweep));
  exports.Set("adam", Napi::Function::New(env, Adam));
  exports.Set("topK", Napi::Function::New(env, TopK));
  exports.Set("knnMerge", Napi::Function::New(env, KnnMerge));
  exports.Set("knnExact", Napi::Function::New(env, KnnExact));
  exports.Set("knnRefine", Napi::Function::New(env, KnnRefine));
  exports.Set("orthonormalize", Napi::Function::New(env, Orthonormalize));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("codes", Napi::Function::New(env, Codes));
  return exports;
}

}  // namespace

NODE_API_MODULE(snnl_native, Init)
