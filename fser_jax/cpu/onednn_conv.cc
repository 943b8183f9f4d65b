// oneDNN convolutions for XLA:CPU, as typed XLA FFI handlers.
//
// Three handlers for a stride-1 "SAME" 2-D convolution in the layouts JAX
// uses (activations NHWC, kernels HWIO), float32 or bfloat16 (every operand
// the same type): the forward with bias, the input gradient and the weight
// gradient. Direct convolutions read and write NHWC as is (oneDNN's brgemm
// kernels); kernels are reordered to the layout the primitive asks for
// (they are small). With the `winograd` attribute set (float32, 3x3, where
// oneDNN has its Winograd F(4x4, 3x3) kernels: AVX-512) the activations are
// reordered to and from the blocked layout those kernels need, in buffers
// each thread keeps. Primitives are built once per shape and kept; each call
// has its own scratchpad, so concurrent calls from XLA's threads are safe.
// The weight-gradient pass computes the bias gradient too.
//
// Built on first use by fser_jax/onednn.py (g++, the oneDNN 2.x or 3.x
// headers and libdnnl, e.g. Debian's libdnnl-dev); never required.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

struct Conv {
  int64_t n, h, w, c, f, kh, kw;
  memory::data_type dt;
  bool wino = false;  // oneDNN's Winograd, its own activation layouts
  memory::dims src() const { return {n, c, h, w}; }
  memory::dims dst() const { return {n, f, h, w}; }
  memory::dims wei() const { return {f, c, kh, kw}; }
  memory::dims pad_l() const { return {(kh - 1) / 2, (kw - 1) / 2}; }
  memory::dims pad_r() const { return {kh / 2, kw / 2}; }
  // Activations NHWC, the kernel as given (HWIO) or as the primitive likes.
  memory::desc Src() const { return {src(), dt, tag::nhwc}; }
  memory::desc Dst() const { return {dst(), dt, tag::nhwc}; }
  // What the primitive is asked to read and write.
  memory::desc SrcP() const {
    return wino ? memory::desc(src(), dt, tag::any) : Src();
  }
  memory::desc DstP() const {
    return wino ? memory::desc(dst(), dt, tag::any) : Dst();
  }
  dnnl::algorithm Alg() const {
    return wino ? dnnl::algorithm::convolution_winograd
                : dnnl::algorithm::convolution_direct;
  }
  memory::desc Hwio() const { return {wei(), dt, tag::hwio}; }
  memory::desc WeiAny() const { return {wei(), dt, tag::any}; }
  memory::desc Bias() const { return {{f}, dt, tag::x}; }
  std::string Key(const char* kind) const {
    return std::string(kind) + (wino ? "/winograd:" : ":") +
           std::to_string(n) + "," +
           std::to_string(h) + "," + std::to_string(w) + "," +
           std::to_string(c) + "," + std::to_string(f) + "," +
           std::to_string(kh) + "," + std::to_string(kw) + "," +
           std::to_string(static_cast<int>(dt));
  }
};

dnnl::primitive_attr Attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

#if DNNL_VERSION_MAJOR >= 3
dnnl::convolution_forward::primitive_desc FwdPd(const Conv& s) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training,
      s.Alg(), s.SrcP(), s.WeiAny(), s.Bias(),
      s.DstP(), {1, 1}, s.pad_l(), s.pad_r(), Attr());
}
dnnl::convolution_backward_data::primitive_desc BwdDataPd(const Conv& s) {
  return dnnl::convolution_backward_data::primitive_desc(
      Engine(), s.Alg(), s.SrcP(), s.WeiAny(),
      s.DstP(), {1, 1}, s.pad_l(), s.pad_r(), FwdPd(s), Attr());
}
dnnl::convolution_backward_weights::primitive_desc BwdWeiPd(const Conv& s) {
  return dnnl::convolution_backward_weights::primitive_desc(
      Engine(), s.Alg(), s.SrcP(), s.WeiAny(),
      s.Bias(), s.DstP(), {1, 1}, s.pad_l(), s.pad_r(), FwdPd(s), Attr());
}
#else
dnnl::convolution_forward::primitive_desc FwdPd(const Conv& s) {
  dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_training, s.Alg(),
      s.SrcP(), s.WeiAny(), s.Bias(), s.DstP(), {1, 1}, s.pad_l(), s.pad_r());
  return dnnl::convolution_forward::primitive_desc(d, Attr(), Engine());
}
dnnl::convolution_backward_data::primitive_desc BwdDataPd(const Conv& s) {
  dnnl::convolution_backward_data::desc d(
      s.Alg(), s.SrcP(), s.WeiAny(), s.DstP(),
      {1, 1}, s.pad_l(), s.pad_r());
  return dnnl::convolution_backward_data::primitive_desc(d, Attr(), Engine(),
                                                         FwdPd(s));
}
dnnl::convolution_backward_weights::primitive_desc BwdWeiPd(const Conv& s) {
  dnnl::convolution_backward_weights::desc d(
      s.Alg(), s.SrcP(), s.WeiAny(), s.Bias(),
      s.DstP(), {1, 1}, s.pad_l(), s.pad_r());
  return dnnl::convolution_backward_weights::primitive_desc(d, Attr(), Engine(),
                                                            FwdPd(s));
}
#endif

// An activation operand the primitive reads or writes in a layout other
// than NHWC (Winograd's blocked one): that layout and the reorder between.
struct Act {
  bool reorder = false;
  memory::desc md;
  dnnl::reorder re;
};

Act MakeAct(const memory::desc& nhwc, const memory::desc& prim, bool out) {
  Act a;
  a.md = prim;
  a.reorder = !(prim == nhwc);
  if (a.reorder) {
    a.re = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), out ? prim : nhwc, Engine(), out ? nhwc : prim));
  }
  return a;
}

// A built primitive, its kernel layout and the reorder to or from HWIO, and
// its two activation operands (in the handler's argument order).
struct Built {
  dnnl::primitive prim;
  memory::desc wei_md, scratch_md;
  bool reorder;
  dnnl::reorder wei_reorder;
  Act act[2];
  std::string impl;
};

std::mutex mu;
std::unordered_map<std::string, std::shared_ptr<Built>>* cache =
    new std::unordered_map<std::string, std::shared_ptr<Built>>();

template <typename Pd, typename Prim>
std::shared_ptr<Built> Make(const Conv& s, const Pd& pd,
                            const memory::desc& wei_md, bool to_hwio) {
  auto b = std::make_shared<Built>();
  b->prim = Prim(pd);
  b->wei_md = wei_md;
  b->scratch_md = pd.scratchpad_desc();
  memory::desc hwio = s.Hwio();
  b->reorder = !(wei_md == hwio);
  if (b->reorder) {
    b->wei_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), to_hwio ? wei_md : hwio, Engine(), to_hwio ? hwio : wei_md));
  }
  b->impl = pd.impl_info_str();
  return b;
}

std::shared_ptr<Built> Build(const Conv& s, const char* kind);

// The primitive for this shape and pass, built on first use. Where oneDNN
// has no Winograd kernel for it (a CPU without AVX-512, oneDNN 3.x) the
// direct convolution stands in; impls() says so.
std::shared_ptr<Built> Get(const Conv& s, const char* kind) {
  std::string key = s.Key(kind);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  std::shared_ptr<Built> b;
  if (s.wino) {
    try {
      b = Build(s, kind);
    } catch (const dnnl::error&) {
      Conv direct = s;
      direct.wino = false;
      b = Build(direct, kind);
      b->impl += " (no Winograd for this shape)";
    }
  } else {
    b = Build(s, kind);
  }
  (*cache)[key] = b;
  return b;
}

std::shared_ptr<Built> Build(const Conv& s, const char* kind) {
  std::shared_ptr<Built> b;
  if (kind[0] == 'f') {
    auto pd = FwdPd(s);
    b = Make<decltype(pd), dnnl::convolution_forward>(s, pd, pd.weights_desc(),
                                                      false);
    b->act[0] = MakeAct(s.Src(), pd.src_desc(), false);
    b->act[1] = MakeAct(s.Dst(), pd.dst_desc(), true);
  } else if (kind[0] == 'd') {
    auto pd = BwdDataPd(s);
    b = Make<decltype(pd), dnnl::convolution_backward_data>(
        s, pd, pd.weights_desc(), false);
    b->act[0] = MakeAct(s.Dst(), pd.diff_dst_desc(), false);
    b->act[1] = MakeAct(s.Src(), pd.diff_src_desc(), true);
  } else {
    auto pd = BwdWeiPd(s);
    b = Make<decltype(pd), dnnl::convolution_backward_weights>(
        s, pd, pd.diff_weights_desc(), true);
    b->act[0] = MakeAct(s.Src(), pd.src_desc(), false);
    b->act[1] = MakeAct(s.Dst(), pd.diff_dst_desc(), false);
  }
  return b;
}

// This thread's buffer `slot` of at least `bytes`, kept between calls: a
// fresh multi-megabyte allocation per call (the scratchpad, a blocked
// activation) would fault its pages in every time. A handler runs to its
// end on one thread, so no two calls share a buffer.
void* Buffer(int slot, size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[3];
  if (bytes == 0) return nullptr;
  Buf& b = bufs[slot];
  if (b.n < bytes) {
    std::free(b.p);
    b.n = (bytes + 4095) / 4096 * 4096;
    b.p = std::aligned_alloc(4096, b.n);
    if (!b.p) {
      b.n = 0;
      throw dnnl::error(dnnl_out_of_memory, "no memory for a buffer");
    }
  }
  return b.p;
}

ffi::Error DType(ffi::DataType t, memory::data_type* dt) {
  if (t == ffi::DataType::F32) {
    *dt = memory::data_type::f32;
  } else if (t == ffi::DataType::BF16) {
    *dt = memory::data_type::bf16;
  } else {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "fser_jax oneDNN convolution: float32 or bfloat16 only");
  }
  return ffi::Error::Success();
}

void* Ptr(const ffi::AnyBuffer& b) { return b.untyped_data(); }

template <typename F>
ffi::Error Guard(F f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("fser_jax oneDNN convolution: ") + e.what());
  }
  return ffi::Error::Success();
}

// The HWIO kernel at `data`, in the layout the primitive asks for.
memory KernelFor(const Built& b, const Conv& s, dnnl::stream& st, void* data) {
  memory wk(s.Hwio(), Engine(), data);
  if (!b.reorder) return wk;
  memory wei(b.wei_md, Engine());
  b.wei_reorder.execute(st, wk, wei);
  return wei;
}

// Runs the primitive with its own scratchpad and waits for it.
void Run(const Built& b, dnnl::stream& st,
         std::unordered_map<int, memory> args) {
  args.insert({DNNL_ARG_SCRATCHPAD,
               memory(b.scratch_md, Engine(),
                      Buffer(0, b.scratch_md.get_size()))});
  b.prim.execute(st, args);
  st.wait();
}

// Activation operand i at `data` (NHWC) as the primitive reads it: the
// buffer itself, or (Winograd) its reorder into this thread's buffer.
memory ActIn(const Built& b, int i, const memory::desc& nhwc,
             dnnl::stream& st, void* data) {
  memory user(nhwc, Engine(), data);
  const Act& a = b.act[i];
  if (!a.reorder) return user;
  memory m(a.md, Engine(), Buffer(1 + i, a.md.get_size()));
  a.re.execute(st, user, m);
  return m;
}

// Activation operand i, written by the primitive, for `data` (NHWC): the
// buffer itself, or a buffer that `ActOut` reorders into it afterwards.
memory ActOutBuf(const Built& b, int i, const memory::desc& nhwc,
                 void* data) {
  const Act& a = b.act[i];
  if (!a.reorder) return memory(nhwc, Engine(), data);
  return memory(a.md, Engine(), Buffer(1 + i, a.md.get_size()));
}

void ActOut(const Built& b, int i, const memory::desc& nhwc,
            dnnl::stream& st, memory& m, void* data) {
  if (!b.act[i].reorder) return;
  memory user(nhwc, Engine(), data);
  b.act[i].re.execute(st, m, user);
  st.wait();
}

// y = conv(x, k) + b. x [N,H,W,C], k [KH,KW,C,F], b [F], y [N,H,W,F].
ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer k, ffi::AnyBuffer bias,
                   ffi::Result<ffi::AnyBuffer> y, bool winograd) {
  auto xd = x.dimensions(), kd = k.dimensions();
  if (xd.size() != 4 || kd.size() != 4 || kd[2] != xd[3])
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "fser_jax oneDNN convolution: NHWC input, HWIO kernel");
  Conv s{xd[0], xd[1], xd[2], xd[3], kd[3], kd[0], kd[1]};
  if (auto e = DType(x.element_type(), &s.dt); e.failure()) return e;
  s.wino = winograd;
  return Guard([&] {
    auto b = Get(s, "fwd");
    auto& eng = Engine();
    dnnl::stream st(eng);
    memory src = ActIn(*b, 0, s.Src(), st, Ptr(x));
    memory dst = ActOutBuf(*b, 1, s.Dst(), y->untyped_data());
    memory bm(s.Bias(), eng, Ptr(bias));
    Run(*b, st, {{DNNL_ARG_SRC, src},
                 {DNNL_ARG_WEIGHTS, KernelFor(*b, s, st, Ptr(k))},
                 {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, dst}});
    ActOut(*b, 1, s.Dst(), st, dst, y->untyped_data());
  });
}

// dx = the input gradient of conv(x, k) for the output gradient g.
// g [N,H,W,F], k [KH,KW,C,F], dx [N,H,W,C].
ffi::Error BackwardData(ffi::AnyBuffer g, ffi::AnyBuffer k,
                        ffi::Result<ffi::AnyBuffer> dx, bool winograd) {
  auto gd = g.dimensions(), kd = k.dimensions();
  Conv s{gd[0], gd[1], gd[2], kd[2], gd[3], kd[0], kd[1]};
  if (auto e = DType(g.element_type(), &s.dt); e.failure()) return e;
  s.wino = winograd;
  return Guard([&] {
    auto b = Get(s, "data");
    auto& eng = Engine();
    dnnl::stream st(eng);
    memory dd = ActIn(*b, 0, s.Dst(), st, Ptr(g));
    memory ds = ActOutBuf(*b, 1, s.Src(), dx->untyped_data());
    Run(*b, st, {{DNNL_ARG_DIFF_DST, dd},
                 {DNNL_ARG_WEIGHTS, KernelFor(*b, s, st, Ptr(k))},
                 {DNNL_ARG_DIFF_SRC, ds}});
    ActOut(*b, 1, s.Src(), st, ds, dx->untyped_data());
  });
}

// dk, db = the weight and bias gradients of conv(x, k) + b for the output
// gradient g (one pass). x [N,H,W,C], g [N,H,W,F], dk [KH,KW,C,F], db [F].
ffi::Error BackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer g,
                           ffi::Result<ffi::AnyBuffer> dk,
                           ffi::Result<ffi::AnyBuffer> db, bool winograd) {
  auto xd = x.dimensions(), gd = g.dimensions(), kd = dk->dimensions();
  Conv s{xd[0], xd[1], xd[2], xd[3], gd[3], kd[0], kd[1]};
  if (auto e = DType(x.element_type(), &s.dt); e.failure()) return e;
  s.wino = winograd;
  return Guard([&] {
    auto b = Get(s, "weights");
    auto& eng = Engine();
    dnnl::stream st(eng);
    memory src = ActIn(*b, 0, s.Src(), st, Ptr(x));
    memory dd = ActIn(*b, 1, s.Dst(), st, Ptr(g));
    memory out(s.Hwio(), eng, dk->untyped_data());
    memory dw = b->reorder ? memory(b->wei_md, eng) : out;
    memory dbias(s.Bias(), eng, db->untyped_data());
    Run(*b, st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dd},
                 {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_BIAS, dbias}});
    if (b->reorder) {
      b->wei_reorder.execute(st, dw, out);
      st.wait();
    }
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(FserOnednnConvForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("winograd"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(FserOnednnConvBackwardData, BackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("winograd"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(FserOnednnConvBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("winograd"));

// Which implementation oneDNN picked for each primitive built so far, one
// per line ("fwd:64,64,64,3,32,3,3,3 brg:avx512_core"), for logs and tests.
extern "C" int FserOnednnImpls(char* buf, int size) {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [k, b] : *cache) out += k + " " + b->impl + "\n";
  }
  int n = static_cast<int>(out.size());
  if (buf && size > 0) {
    int m = n < size - 1 ? n : size - 1;
    out.copy(buf, m);
    buf[m] = '\0';
  }
  return n;
}

// 1 where oneDNN has a float32 Winograd implementation of all three passes
// on this CPU (its kernels need AVX-512), else 0.
extern "C" int FserOnednnWinogradOk() {
  try {
    Conv s{1, 8, 8, 16, 16, 3, 3, memory::data_type::f32, true};
    FwdPd(s);
    BwdDataPd(s);
    BwdWeiPd(s);
    return 1;
  } catch (const dnnl::error&) {
    return 0;
  }
}

// 1 where oneDNN has a bfloat16 implementation of all three direct passes
// on this CPU, as capped by ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA (oneDNN
// 2.x needs AVX-512 for them, and below AVX512_BF16 or AMX it emulates
// bfloat16 arithmetic), else 0.
extern "C" int FserOnednnBfloat16Ok() {
  try {
    Conv s{1, 8, 8, 16, 16, 3, 3, memory::data_type::bf16, false};
    FwdPd(s);
    BwdDataPd(s);
    BwdWeiPd(s);
    return 1;
  } catch (const dnnl::error&) {
    return 0;
  }
}
