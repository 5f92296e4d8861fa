//! The hot paths of the CPU encoder and decoder, specialised for burn's Flex backend, where its
//! own ops were measured to be the bottleneck (perf, 256² LiteMedSAM on 2 cores):
//!
//! - GELU: Flex evaluates the exact GELU with a scalar libm `erf`, on one thread (~20 % of an
//!   encode). Here: a branch-free rational `erf` (|error| < 5e-7, so GELU within 1.5e-6 of the
//!   exact value; f32 rounding alone gives 4.5e-7) that the compiler vectorises, over chunks run
//!   in parallel.
//! - Softmax over the attention scores: Flex's takes max, subtract, `exp` (scalar libm), sum and
//!   divide as separate passes (~5 %). Here: one pass per row with a vectorisable `exp`, and
//!   max and sum in independent lanes (one running float sum cannot be vectorised: 12 % of an
//!   encode with one).
//! - LayerNorm over the channels of an NCHW tensor (SAM's `LayerNorm2d`, in the neck and the
//!   decoder's upscaling): as composite ops it is eight passes, several of them strided
//!   reductions over the channel axis (~35 ms of a 100 ms box decode). Here: per image, sums over
//!   the channel rows into one accumulator per pixel, then one pass that normalises.
//! - Materialising a permuted view (window partition, heads back to tokens): Flex walks N-d views
//!   one element at a time (~15 %). Here: one `memcpy` per contiguous inner run, in parallel; a
//!   transposed matrix (NCHW ⇄ token-major) tile by tile.
//! - TinyViT's 3×3 depthwise convolution on token-major tokens, so its blocks no longer move
//!   every activation to NCHW and back; SAM's 2×2 stride-2 transposed convolutions as one matrix
//!   product and one pass that places the patches (Flex's scatter was ~16 ms of a 45 ms decode).
//! - Each vectorised loop is compiled for AVX-512, AVX2 + FMA and the baseline, chosen at run time.
//!
//! On every other backend (and on Flex tensors these paths do not cover) these are burn's own
//! ops, so model code stays generic. The backend is recognised by type at run time.

use std::any::{Any, TypeId};

use burn::backend::flex::{FlexTensor, Layout};
use burn::nn::conv::ConvTranspose2d;
use burn::prelude::*;
use burn::tensor::{Bytes, DType, TensorPrimitive, activation};
use rayon::prelude::*;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

/// Defines `fn $name` that runs its body compiled for AVX-512, else for AVX2 + FMA, else for the
/// baseline, whichever the CPU has (checked at run time: the binary must run on any x86-64).
/// Keep the body's loops plain `for` loops over inlined helpers, so that they are compiled in
/// the variant, not called out of it.
macro_rules! simd_variants {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the variant is compiled for (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// GELU (exact form, `x·Φ(x)`), as `burn::tensor::activation::gelu`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match into_flex(x) {
        Ok(t) if t.dtype() == DType::F32 => from_flex(gelu_f32(t)),
        Ok(t) => activation::gelu(from_flex(t)),
        Err(x) => activation::gelu(x),
    }
}

/// Softmax over the last dimension, as `burn::tensor::activation::softmax(x, D - 1)`.
pub fn softmax_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match into_flex(x) {
        Ok(t) if t.dtype() == DType::F32 && t.layout().num_elements() > 0 => from_flex(softmax_f32(t)),
        Ok(t) => activation::softmax(from_flex::<B, D>(t), D - 1),
        Err(x) => activation::softmax(x, D - 1),
    }
}

/// LayerNorm over dimension 1 of an NCHW tensor, with a weight and bias per channel: as
/// `(x − mean) / sqrt(var + eps) · weight + bias`, mean and (biased) variance over the channels.
pub fn layer_norm_channels<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 1>, bias: Tensor<B, 1>, eps: f64) -> Tensor<B, 4> {
    match (into_flex(x), into_flex(weight), into_flex(bias)) {
        (Ok(x), Ok(w), Ok(b))
            if [&x, &w, &b].iter().all(|t| t.dtype() == DType::F32) && x.layout().num_elements() > 0 =>
        {
            from_flex(layer_norm_channels_f32(x, &values_f32(w), &values_f32(b), eps as f32))
        }
        (x, w, b) => layer_norm_channels_composite(back(x), back(w), back(b), eps),
    }
}

fn layer_norm_channels_composite<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 1>, bias: Tensor<B, 1>, eps: f64) -> Tensor<B, 4> {
    let c = weight.dims()[0];
    let mean = x.clone().mean_dim(1);
    let centered = x.sub(mean);
    let var = centered.clone().mul(centered.clone()).mean_dim(1);
    let normed = centered.div(var.add_scalar(eps).sqrt());
    normed.mul(weight.reshape([1, c, 1, 1])).add(bias.reshape([1, c, 1, 1]))
}

/// A 3×3 depthwise convolution (stride 1, padding 1, with bias) of token-major image tokens
/// (B, H·W, C), as `Conv2d` with `groups = C` does on the same pixels in NCHW. On Flex it runs
/// on the tokens as they are, vectorised over the channels; TinyViT's blocks otherwise move
/// every activation to NCHW and back around the convolution (measured: two transposes per
/// block, ~5 % of an encode). `Err` gives the tokens back where this does not apply.
pub fn depthwise_conv3x3_tokens<B: Backend>(
    x: Tensor<B, 3>,
    (h, w): (usize, usize),
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let [_, l, c] = x.dims();
    if l != h * w || weight.dims() != [c, 1, 3, 3] || bias.dims() != [c] {
        return Err(x);
    }
    match (into_flex(x), into_flex(weight), into_flex(bias)) {
        (Ok(x), Ok(wt), Ok(b)) if [&x, &wt, &b].iter().all(|t| t.dtype() == DType::F32) && l * c > 0 => {
            Ok(from_flex(depthwise_conv3x3_f32(x, (h, w), &values_f32(wt), &values_f32(b))))
        }
        (x, _, _) => Err(back(x)),
    }
}

/// A transposed convolution with a 2×2 kernel and stride 2 (SAM's upscaling), as
/// `deconv.forward(x)`. Every input pixel becomes its own 2×2 output patch, so on Flex it is one
/// matrix product for all of them and one pass that puts the patches in place and adds the bias
/// (Flex's general transposed convolution scatters through a column buffer: ~16 ms of a 45 ms
/// box decode). Any other configuration or backend uses `deconv.forward`.
pub fn conv_transpose_2x2<B: Backend>(x: Tensor<B, 4>, deconv: &ConvTranspose2d<B>) -> Tensor<B, 4> {
    let [ci, co, kh, kw] = deconv.weight.dims();
    let plain = [kh, kw] == [2, 2]
        && deconv.stride == [2, 2]
        && deconv.dilation == [1, 1]
        && deconv.groups == 1
        && deconv.padding == [0, 0]
        && deconv.padding_out == [0, 0];
    let on_flex = TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>();
    if !plain || !on_flex || x.dtype() != DType::F32 || x.dims()[1] != ci {
        return deconv.forward(x);
    }
    let [b, _, h, w] = x.dims();
    let device = x.device();
    // (1, co·4, ci): row (c, dy, dx) holds the weights of output channel c at patch offset (dy, dx).
    let weight = deconv.weight.val().reshape([ci, co * 4]).swap_dims(0, 1).unsqueeze_dim::<3>(0);
    let patches = weight.matmul(x.reshape([b, ci, h * w]));
    let bias = deconv.bias.as_ref().map_or_else(|| Tensor::zeros([co], &device), |bias| bias.val());
    match (into_flex(patches), into_flex(bias)) {
        (Ok(patches), Ok(bias)) => from_flex(place_patches_2x2_f32(patches, (co, h, w), &values_f32(bias))),
        _ => unreachable!("B's float primitive is FlexTensor (checked above)"),
    }
}

/// The same tensor with a row-major layout, so that the reshapes and element-wise ops after it
/// do not copy or walk strides. A no-op where the backend handles layouts itself.
pub fn contiguous<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match into_flex(x) {
        Ok(t) => from_flex(contiguous_flex(t)),
        Err(x) => x,
    }
}

fn into_flex<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>() {
        return Err(x);
    }
    match x.into_primitive() {
        TensorPrimitive::Float(p) => {
            let boxed: Box<dyn Any> = Box::new(p);
            Ok(*boxed.downcast::<FlexTensor>().expect("the type was checked above"))
        }
        quantized => Err(Tensor::from_primitive(quantized)),
    }
}

/// What [`into_flex`] took, as a tensor again.
fn back<B: Backend, const D: usize>(x: Result<FlexTensor, Tensor<B, D>>) -> Tensor<B, D> {
    match x {
        Ok(t) => from_flex(t),
        Err(x) => x,
    }
}

/// Only called with a tensor that came out of [`into_flex`], so `B`'s primitive is `FlexTensor`.
fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(t);
    let p = *boxed.downcast::<B::FloatTensorPrimitive>().expect("B's float primitive is FlexTensor");
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Row-major, offset 0, and the buffer holds exactly the tensor's elements.
fn is_exact(t: &FlexTensor) -> bool {
    let layout = t.layout();
    layout.is_contiguous()
        && layout.start_offset() == 0
        && t.bytes().len() == layout.num_elements() * t.dtype().size()
}

fn gelu_f32(t: FlexTensor) -> FlexTensor {
    map_chunks_f32(t, CHUNK, gelu_slice)
}

fn softmax_f32(t: FlexTensor) -> FlexTensor {
    let row = t.layout().shape().as_slice().last().copied().unwrap_or(1).max(1);
    let rows_per_task = row * (CHUNK / row).max(1);
    map_chunks_f32(t, rows_per_task, move |xs| softmax_rows(xs, row))
}

/// Pixels per parallel task of the channel LayerNorm: their values over up to 256 channels
/// stay in the core's L2 cache between the statistics and the normalising pass.
const PIXELS_PER_TASK: usize = 256;

fn layer_norm_channels_f32(x: FlexTensor, weight: &[f32], bias: &[f32], eps: f32) -> FlexTensor {
    let x = row_major(x);
    let shape = x.layout().shape().clone();
    let &[n, c, h, w] = shape.as_slice() else {
        unreachable!("a Tensor<B, 4> has four dimensions")
    };
    assert!(weight.len() == c && bias.len() == c, "LayerNorm2d: {c} channels but {} weights and {} biases", weight.len(), bias.len());
    let hw = h * w;
    let src = row_major_values(&x);
    // Per pixel: mean and 1/σ over the channels (two passes, as the composite form computes them).
    let mut mean = vec![0.0_f32; n * hw];
    let mut inv_std = vec![0.0_f32; n * hw];
    for (image, (mean, inv_std)) in mean.chunks_mut(hw).zip(inv_std.chunks_mut(hw)).enumerate() {
        let image_src = &src[image * c * hw..(image + 1) * c * hw];
        mean.par_chunks_mut(PIXELS_PER_TASK).zip(inv_std.par_chunks_mut(PIXELS_PER_TASK)).enumerate().for_each(
            |(task, (mean, inv_std))| {
                let pixels = task * PIXELS_PER_TASK..task * PIXELS_PER_TASK + mean.len();
                let rows = || image_src.chunks_exact(hw).map(|row| &row[pixels.clone()]);
                for row in rows() {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                mean.iter_mut().for_each(|m| *m /= c as f32);
                for row in rows() {
                    inv_std.iter_mut().zip(row).zip(mean.iter()).for_each(|((s, v), m)| *s += (v - m) * (v - m));
                }
                inv_std.iter_mut().for_each(|s| *s = 1.0 / (*s / c as f32 + eps).sqrt());
            },
        );
    }
    let mut out: Vec<f32> = vec![0.0; src.len()];
    out.par_chunks_mut(hw).zip(src.par_chunks(hw)).enumerate().for_each(|(row, (out, src))| {
        let (image, channel) = (row / c, row % c);
        let (mean, inv_std) = (&mean[image * hw..(image + 1) * hw], &inv_std[image * hw..(image + 1) * hw]);
        let (g, b) = (weight[channel], bias[channel]);
        for (((o, v), m), s) in out.iter_mut().zip(src).zip(mean).zip(inv_std) {
            *o = (v - m) * s * g + b;
        }
    });
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32)
}

fn depthwise_conv3x3_f32(x: FlexTensor, (h, w): (usize, usize), weight: &[f32], bias: &[f32]) -> FlexTensor {
    let x = row_major(x);
    let shape = x.layout().shape().clone();
    let &[_, l, c] = shape.as_slice() else {
        unreachable!("a Tensor<B, 3> has three dimensions")
    };
    let src = row_major_values(&x);
    // Taps first: tap t = 3·dy + dx holds one weight per channel, contiguous like a pixel.
    let taps: Vec<f32> = (0..9).flat_map(|t| (0..c).map(move |ch| weight[ch * 9 + t])).collect();
    let mut out = vec![0.0_f32; src.len()];
    out.par_chunks_mut(w * c).enumerate().for_each(|(row, out_row)| {
        let (image, y) = (row / h, row % h);
        let image_src = &src[image * l * c..(image + 1) * l * c];
        depthwise_row(out_row, image_src, (y, h, w, c), &taps, bias);
    });
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32)
}

simd_variants! {
    /// One output row `y` of [`depthwise_conv3x3_f32`].
    fn depthwise_row(out_row: &mut [f32], src: &[f32], geometry: (usize, usize, usize, usize), taps: &[f32], bias: &[f32]) {
        depthwise_row_portable(out_row, src, geometry, taps, bias);
    }
}

#[inline(always)]
fn depthwise_row_portable(out_row: &mut [f32], src: &[f32], (y, h, w, c): (usize, usize, usize, usize), taps: &[f32], bias: &[f32]) {
    for x in 0..w {
        let out = &mut out_row[x * c..(x + 1) * c];
        out.copy_from_slice(bias);
        for dy in 0..3 {
            let Some(sy) = (y + dy).checked_sub(1).filter(|&sy| sy < h) else { continue };
            for dx in 0..3 {
                let Some(sx) = (x + dx).checked_sub(1).filter(|&sx| sx < w) else { continue };
                let pixel = &src[(sy * w + sx) * c..(sy * w + sx + 1) * c];
                let tap = &taps[(dy * 3 + dx) * c..(dy * 3 + dx + 1) * c];
                for ((o, v), k) in out.iter_mut().zip(pixel).zip(tap) {
                    *o += v * k;
                }
            }
        }
    }
}

/// (B, C·4, H·W) patches, row (c, dy, dx) → (B, C, 2H, 2W) with `bias` added per channel.
fn place_patches_2x2_f32(patches: FlexTensor, (channels, h, w): (usize, usize, usize), bias: &[f32]) -> FlexTensor {
    let patches = row_major(patches);
    let images = patches.layout().shape()[0];
    let src = row_major_values(&patches);
    let mut out = vec![0.0_f32; src.len()];
    out.par_chunks_mut(2 * w).enumerate().for_each(|(row, out_row)| {
        // Output row `row` is row oy = 2y + dy of plane (image, c).
        let (plane, oy) = (row / (2 * h), row % (2 * h));
        let (y, dy) = (oy / 2, oy % 2);
        let base = plane * 4 * h * w + y * w;
        let left = &src[base + dy * 2 * h * w..][..w];
        let right = &src[base + (dy * 2 + 1) * h * w..][..w];
        let b = bias[plane % channels];
        for ((pair, l), r) in out_row.chunks_exact_mut(2).zip(left).zip(right) {
            pair[0] = l + b;
            pair[1] = r + b;
        }
    });
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous([images, channels, 2 * h, 2 * w].into()), DType::F32)
}

/// A small tensor's values in row-major order.
fn values_f32(t: FlexTensor) -> Vec<f32> {
    row_major_values(&row_major(t)).to_vec()
}

/// The elements of a tensor that [`row_major`] returned, in order.
fn row_major_values(t: &FlexTensor) -> &[f32] {
    let (offset, n) = (t.layout().start_offset(), t.layout().num_elements());
    &t.storage::<f32>()[offset..offset + n]
}

/// A row-major layout, possibly at an offset into a larger buffer.
fn row_major(t: FlexTensor) -> FlexTensor {
    if t.layout().is_contiguous() {
        return t;
    }
    let t = contiguous_flex(t);
    if t.layout().is_contiguous() { t } else { t.to_contiguous() }
}

/// Applies `f` to the row-major values in parallel chunks of `chunk` elements: in place when
/// the buffer is the tensor's own, else (the input is still used elsewhere) into a new one.
fn map_chunks_f32(t: FlexTensor, chunk: usize, f: impl Fn(&mut [f32]) + Sync + Send) -> FlexTensor {
    let mut t = if is_exact(&t) { t } else { contiguous_flex(t) };
    let n = t.layout().num_elements();
    if t.is_unique() {
        t.storage_mut::<f32>()[..n].par_chunks_mut(chunk).for_each(&f);
        return t;
    }
    let mut out = t.storage::<f32>()[..n].to_vec();
    out.par_chunks_mut(chunk).for_each(&f);
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(t.layout().shape().clone()), DType::F32)
}

simd_variants! {
    /// Softmax of each `row`-long row of `xs`. The CPU features are chosen once per chunk, not per
    /// row: the decoder's image-to-token attention has rows of 7. A plain loop: through
    /// `for_each` the row's body was compiled outside the SIMD variant (a libm call per rounding).
    fn softmax_rows(xs: &mut [f32], row: usize) {
        for row in xs.chunks_exact_mut(row) {
            softmax_row_portable(row);
        }
    }
}

/// Independent accumulators per row pass: a float reduction in one accumulator must run in
/// order, which keeps the compiler from vectorising it (measured: softmax was 12 % of an
/// encode with one).
const LANES: usize = 16;

#[inline(always)]
fn softmax_row_portable(xs: &mut [f32]) {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail_max = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for chunk in chunks {
        for (m, &x) in maxes.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    let max = maxes.iter().fold(tail_max, |m, &x| m.max(x));
    if !max.is_finite() {
        // All −∞, or a +∞ in the row: leave it to the exact definition.
        let sum: f32 = xs.iter().map(|x| (x - max).exp()).sum();
        xs.iter_mut().for_each(|x| *x = (*x - max).exp() / sum);
        return;
    }
    for x in xs.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }
    let mut sums = [0.0_f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail_sum: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    let scale = 1.0 / (sums.iter().sum::<f32>() + tail_sum);
    xs.iter_mut().for_each(|x| *x *= scale);
}

/// e^x for x ≤ 0 (relative error < 2e-7; 0 below −87, where f32 has no normal result): 2^n · e^r
/// with n = round(x / ln 2) and |r| ≤ ln 2 / 2, e^r by its degree-7 Taylor polynomial. Branch
/// free, so the row loop vectorises.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    // ln 2 split in two so that n · ln 2 is exact enough: 0.693_145_75 + 1.428_606_8e-6.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let mut p = 1.0 / 5040.0_f32;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
    if underflow { 0.0 } else { p * scale }
}

simd_variants! {
    fn gelu_slice(xs: &mut [f32]) {
        for x in xs {
            *x = gelu_one(*x);
        }
    }
}

#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as the odd rational x·P(x²)/Q(x²) (the widely used single-precision fit of Eigen and
/// XLA; max |error| 4.5e-7), and exactly ±1 where erf rounds to ±1 in f32, so that GELU of a
/// large negative input is 0 rather than a small multiple of it.
#[inline(always)]
fn erf(x: f32) -> f32 {
    if x.abs() >= 3.92 {
        return 1.0_f32.copysign(x);
    }
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_2e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_473_9e-2;
    x * p / q
}

fn contiguous_flex(t: FlexTensor) -> FlexTensor {
    if is_exact(&t) {
        return t;
    }
    let layout = t.layout();
    let Some((outer, inner)) = collapse(layout.shape().as_slice(), layout.strides()) else {
        return match transposed(layout.shape().as_slice(), layout.strides()) {
            Some(matrix) if t.dtype() == DType::F32 => transpose_f32(&t, matrix),
            _ => t.to_contiguous(),
        };
    };
    // Flex copies 1-D and 2-D (transpose-like) views well itself; it is the N-d walk that is slow.
    if t.dtype() != DType::F32 || outer.len() < 2 {
        return t.to_contiguous();
    }
    let n = layout.num_elements();
    let offset = layout.start_offset();
    let src = t.storage::<f32>();
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let runs_per_task = (CHUNK / inner).max(1);
    out.spare_capacity_mut()[..n].par_chunks_mut(inner * runs_per_task).enumerate().for_each(|(task, chunk)| {
        for (i, dst) in chunk.chunks_mut(inner).enumerate() {
            let start = offset + outer_offset(task * runs_per_task + i, &outer);
            for (d, s) in dst.iter_mut().zip(&src[start..start + inner]) {
                d.write(*s);
            }
        }
    });
    // SAFETY: the chunks cover all n elements (n is a multiple of `inner`, `outer` enumerates
    // n / inner runs) and every element of every chunk was written above.
    unsafe { out.set_len(n) };
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(layout.shape().clone()), DType::F32)
}

/// A batch of transposed matrices: `batch` matrices `batch_stride` apart, each `rows`×`cols`
/// in the view, with rows adjacent in memory (stride 1) and columns `col_stride` apart.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transposed {
    batch: usize,
    batch_stride: usize,
    rows: usize,
    cols: usize,
    col_stride: usize,
}

/// The view as a batch of transposed matrices (e.g. an NCHW tensor seen as (N, H·W, C)).
fn transposed(shape: &[usize], strides: &[isize]) -> Option<Transposed> {
    let (batch, batch_stride, rows, cols, col_stride) = match merged_dims(shape, strides)?.as_slice() {
        &[(rows, 1), (cols, col_stride)] => (1, 0, rows, cols, col_stride),
        &[(batch, batch_stride), (rows, 1), (cols, col_stride)] => (batch, batch_stride, rows, cols, col_stride),
        _ => return None,
    };
    (batch > 0 && rows > 0 && cols > 0).then_some(Transposed { batch, batch_stride, rows, cols, col_stride })
}

/// Side of the square tiles of [`transpose_f32`]: two 32×32 f32 tiles fit in L1.
const TILE: usize = 32;

/// Copies a view of transposed matrices into a row-major tensor, tile by tile, row blocks in
/// parallel.
fn transpose_f32(t: &FlexTensor, m: Transposed) -> FlexTensor {
    let layout = t.layout();
    let offset = layout.start_offset();
    let src = t.storage::<f32>();
    let n = m.batch * m.rows * m.cols;
    let mut out: Vec<f32> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n].par_chunks_mut(m.rows * m.cols).enumerate().for_each(|(matrix, out_matrix)| {
        out_matrix.par_chunks_mut(TILE * m.cols).enumerate().for_each(|(block_index, block)| {
            // Rows row0.. of the matrix (its last block may be shorter).
            let row0 = block_index * TILE;
            let block_rows = block.len() / m.cols;
            let base = offset + matrix * m.batch_stride + row0;
            for col0 in (0..m.cols).step_by(TILE) {
                for col in col0..(col0 + TILE).min(m.cols) {
                    let column = &src[base + col * m.col_stride..base + col * m.col_stride + block_rows];
                    for (row, value) in column.iter().enumerate() {
                        block[row * m.cols + col].write(*value);
                    }
                }
            }
        });
    });
    // SAFETY: the row blocks cover all n elements and every (row, column) of each was written.
    unsafe { out.set_len(n) };
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(layout.shape().clone()), DType::F32)
}

/// Size-1 dims dropped and dims that follow each other in memory merged, as (size, stride);
/// `None` when a stride is negative.
fn merged_dims(shape: &[usize], strides: &[isize]) -> Option<Vec<(usize, usize)>> {
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&size, &stride) in shape.iter().zip(strides) {
        if size == 1 {
            continue;
        }
        let stride = usize::try_from(stride).ok()?;
        match dims.last_mut() {
            Some(last) if last.1 == stride * size => *last = (last.0 * size, stride),
            _ => dims.push((size, stride)),
        }
    }
    Some(dims)
}

/// The view as (outer dims as (size, stride), length of the contiguous inner run), with size-1
/// dims dropped and dims that follow each other in memory merged. `None` when the innermost
/// stride is not 1 or a stride is negative.
fn collapse(shape: &[usize], strides: &[isize]) -> Option<(Vec<(usize, usize)>, usize)> {
    let mut dims = merged_dims(shape, strides)?;
    match dims.pop() {
        Some((size, 1)) => Some((dims, size)),
        Some(_) => None,
        None => Some((Vec::new(), 1)),
    }
}

/// Offset of the `run`-th inner run: `run` in mixed radix over the outer sizes, dotted with strides.
fn outer_offset(mut run: usize, outer: &[(usize, usize)]) -> usize {
    let mut offset = 0;
    for &(size, stride) in outer.iter().rev() {
        offset += (run % size) * stride;
        run /= size;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::Cpu;
    use burn::backend::NdArray;

    /// The largest |ours − theirs| over two tensors of the same shape.
    fn max_abs_difference<const D: usize>(ours: Tensor<Cpu, D>, theirs: Tensor<NdArray, D>) -> f32 {
        assert_eq!(ours.dims(), theirs.dims());
        let ours = ours.into_data().to_vec::<f32>().expect("f32");
        let theirs = theirs.into_data().to_vec::<f32>().expect("f32");
        ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    fn exact_gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn gelu_matches_the_exact_form() {
        let mut worst = 0.0_f64;
        for i in -120_000..=120_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((gelu_one(x) as f64 - exact_gelu(x as f64)).abs());
        }
        assert!(worst < 2e-6, "max |error| {worst}");
        for x in [-1e30, -1e4, -50.0, -6.0] {
            assert_eq!(gelu_one(x), 0.0, "gelu({x})");
        }
        assert_eq!(gelu_one(50.0), 50.0);
        assert!(gelu_one(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0.0_f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            worst = worst.max((exp_nonpositive(x) as f64 - exact).abs() / exact);
        }
        assert!(worst < 2e-7, "max relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1000.0), 0.0);
    }

    #[test]
    fn flex_softmax_equals_burns_on_views_and_shared_buffers() {
        let device = Default::default();
        let data: Vec<f32> = (0..2 * 3 * 49 * 49).map(|i| ((i * 37) % 1001) as f32 / 40.0 - 12.0).collect();
        let x = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &device).reshape([2, 3, 49, 49]);
        let reference = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape([2, 3, 49, 49]);
        for (ours, theirs) in [
            (softmax_last(x.clone()), activation::softmax(reference.clone(), 3)),
            (softmax_last(x.clone().swap_dims(2, 3)), activation::softmax(reference.clone().swap_dims(2, 3), 3)),
            (softmax_last(x.clone().narrow(3, 4, 20)), activation::softmax(reference.clone().narrow(3, 4, 20), 3)),
        ] {
            let worst = max_abs_difference(ours, theirs);
            assert!(worst < 1e-6, "max |error| {worst}");
        }
        assert_eq!(x.into_data().to_vec::<f32>().expect("f32"), data);
        let masked = Tensor::<Cpu, 2>::from_floats([[f32::NEG_INFINITY, 0.0, 0.0]], &device);
        assert_eq!(softmax_last(masked).into_data().to_vec::<f32>().expect("f32"), vec![0.0, 0.5, 0.5]);
    }

    #[test]
    fn flex_gelu_equals_burns_on_views_and_shared_buffers() {
        let device = Default::default();
        let data: Vec<f32> = (0..2 * 3 * 40 * 50).map(|i| ((i * 37) % 1001) as f32 / 100.0 - 5.0).collect();
        let x = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &device).reshape([2, 3, 40, 50]);
        let reference = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default())
            .reshape([2, 3, 40, 50]);
        for (ours, theirs) in [
            (gelu(x.clone()), activation::gelu(reference.clone())),
            (gelu(x.clone().swap_dims(1, 3)), activation::gelu(reference.clone().swap_dims(1, 3))),
            (gelu(x.clone().narrow(2, 5, 20)), activation::gelu(reference.clone().narrow(2, 5, 20))),
        ] {
            let worst = max_abs_difference(ours, theirs);
            assert!(worst < 2e-6, "max |error| {worst}");
        }
        // The input was shared with the views above and must be unchanged.
        assert_eq!(x.into_data().to_vec::<f32>().expect("f32"), data);
    }

    #[test]
    fn contiguous_keeps_values_of_permuted_and_sliced_views() {
        let device = Default::default();
        let shape = [2, 6, 5, 7, 4];
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let x = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &device).reshape(shape);
        let reference = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape(shape);
        let views: [(Tensor<Cpu, 5>, Tensor<NdArray, 5>); 4] = [
            (x.clone().swap_dims(1, 3), reference.clone().swap_dims(1, 3)),
            (x.clone().swap_dims(2, 3).narrow(4, 1, 2), reference.clone().swap_dims(2, 3).narrow(4, 1, 2)),
            (x.clone().narrow(1, 2, 3), reference.clone().narrow(1, 2, 3)),
            (x.clone().swap_dims(3, 4), reference.clone().swap_dims(3, 4)),
        ];
        for (ours, theirs) in views {
            let ours = contiguous(ours);
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(ours.into_data().to_vec::<f32>().expect("f32"), theirs.into_data().to_vec::<f32>().expect("f32"));
        }
    }

    #[test]
    fn contiguous_transposes_matrices_larger_than_a_tile() {
        let device = Default::default();
        let shape = [3, 70, 45];
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let x = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &device).reshape(shape);
        let reference = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape(shape);
        let views: [(Tensor<Cpu, 3>, Tensor<NdArray, 3>); 3] = [
            (x.clone().swap_dims(1, 2), reference.clone().swap_dims(1, 2)),
            (x.clone().narrow(0, 1, 1).swap_dims(1, 2), reference.clone().narrow(0, 1, 1).swap_dims(1, 2)),
            (x.clone().narrow(2, 3, 40).swap_dims(1, 2), reference.clone().narrow(2, 3, 40).swap_dims(1, 2)),
        ];
        for (ours, theirs) in views {
            let ours = contiguous(ours);
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(ours.into_data().to_vec::<f32>().expect("f32"), theirs.into_data().to_vec::<f32>().expect("f32"));
        }
        let strides: Vec<isize> = vec![1, 70];
        assert_eq!(
            transposed(&[45, 70], &strides),
            Some(Transposed { batch: 1, batch_stride: 0, rows: 45, cols: 70, col_stride: 70 })
        );
    }

    #[test]
    fn flex_channel_layer_norm_equals_the_composite_form() {
        let device = Default::default();
        let shape = [2, 5, 9, 31];
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| ((i * 37) % 1001) as f32 / 100.0 - 5.0).collect();
        let weight: Vec<f32> = (0..5).map(|i| 0.5 + i as f32).collect();
        let bias: Vec<f32> = (0..5).map(|i| i as f32 - 2.0).collect();
        let x = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &device).reshape(shape);
        let reference = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape(shape);
        let (w, b) = (Tensor::<Cpu, 1>::from_floats(weight.as_slice(), &device), Tensor::<Cpu, 1>::from_floats(bias.as_slice(), &device));
        let (rw, rb) = (
            Tensor::<NdArray, 1>::from_floats(weight.as_slice(), &Default::default()),
            Tensor::<NdArray, 1>::from_floats(bias.as_slice(), &Default::default()),
        );
        for (ours, theirs) in [
            (layer_norm_channels(x.clone(), w.clone(), b.clone(), 1e-6), layer_norm_channels(reference.clone(), rw.clone(), rb.clone(), 1e-6)),
            (
                layer_norm_channels(x.clone().swap_dims(2, 3), w.clone(), b.clone(), 1e-6),
                layer_norm_channels(reference.clone().swap_dims(2, 3), rw.clone(), rb.clone(), 1e-6),
            ),
        ] {
            let worst = max_abs_difference(ours, theirs);
            assert!(worst < 1e-5, "max |error| {worst}");
        }
    }

    #[test]
    fn flex_depthwise_conv_on_tokens_equals_burns_conv2d() {
        use burn::nn::PaddingConfig2d;
        use burn::nn::conv::Conv2dConfig;
        let (b, c, h, w) = (2, 5, 6, 7);
        let conv = Conv2dConfig::new([c, c], [3, 3]).with_groups(c).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        let ours_conv = conv.init::<Cpu>(&Default::default());
        let theirs_conv = conv.init::<NdArray>(&Default::default());
        let weight: Vec<f32> = ours_conv.weight.val().into_data().to_vec().expect("f32");
        let bias: Vec<f32> = ours_conv.bias.as_ref().expect("bias").val().into_data().to_vec().expect("f32");
        let theirs_conv = burn::nn::conv::Conv2d {
            weight: burn::module::Param::from_tensor(Tensor::<NdArray, 1>::from_floats(weight.as_slice(), &Default::default()).reshape([c, 1, 3, 3])),
            bias: Some(burn::module::Param::from_tensor(Tensor::from_floats(bias.as_slice(), &Default::default()))),
            ..theirs_conv
        };
        let data: Vec<f32> = (0..b * h * w * c).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
        let tokens = Tensor::<Cpu, 1>::from_floats(data.as_slice(), &Default::default()).reshape([b, h * w, c]);
        let ours = depthwise_conv3x3_tokens(tokens, (h, w), ours_conv.weight.val(), ours_conv.bias.as_ref().expect("bias").val())
            .expect("Flex has the kernel");
        let nchw = Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape([b, h, w, c]).permute([0, 3, 1, 2]);
        let theirs = theirs_conv.forward(nchw).permute([0, 2, 3, 1]).reshape([b, h * w, c]);
        let worst = max_abs_difference(ours, theirs);
        assert!(worst < 1e-5, "max |error| {worst}");
        // Not a 3×3 depthwise weight: the tokens come back for the general path.
        let tokens = Tensor::<Cpu, 3>::zeros([1, 4, c], &Default::default());
        assert!(depthwise_conv3x3_tokens(tokens, (2, 2), Tensor::zeros([c, 1, 1, 1], &Default::default()), Tensor::zeros([c], &Default::default())).is_err());
    }

    #[test]
    fn flex_2x2_transposed_convolution_equals_burns() {
        use burn::nn::conv::ConvTranspose2dConfig;
        let (b, ci, co, h, w) = (2, 6, 4, 3, 5);
        let config = ConvTranspose2dConfig::new([ci, co], [2, 2]).with_stride([2, 2]);
        let ours_deconv = config.init::<Cpu>(&Default::default());
        let weight: Vec<f32> = ours_deconv.weight.val().into_data().to_vec().expect("f32");
        let bias: Vec<f32> = ours_deconv.bias.as_ref().expect("bias").val().into_data().to_vec().expect("f32");
        let theirs_deconv = burn::nn::conv::ConvTranspose2d {
            weight: burn::module::Param::from_tensor(Tensor::<NdArray, 1>::from_floats(weight.as_slice(), &Default::default()).reshape([ci, co, 2, 2])),
            bias: Some(burn::module::Param::from_tensor(Tensor::from_floats(bias.as_slice(), &Default::default()))),
            ..config.init::<NdArray>(&Default::default())
        };
        let data: Vec<f32> = (0..b * ci * h * w).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
        let ours = conv_transpose_2x2(Tensor::<Cpu, 1>::from_floats(data.as_slice(), &Default::default()).reshape([b, ci, h, w]), &ours_deconv);
        let theirs = theirs_deconv.forward(Tensor::<NdArray, 1>::from_floats(data.as_slice(), &Default::default()).reshape([b, ci, h, w]));
        assert_eq!(ours.dims(), [b, co, 2 * h, 2 * w]);
        let worst = max_abs_difference(ours, theirs);
        assert!(worst < 1e-5, "max |error| {worst}");
    }

    #[test]
    fn collapse_merges_runs_and_refuses_strided_inner_dims() {
        // [2, 3, 4] row-major is one run of 24.
        assert_eq!(collapse(&[2, 3, 4], &[12, 4, 1]), Some((vec![], 24)));
        // Swapping the first two dims keeps runs of 4.
        assert_eq!(collapse(&[3, 2, 4], &[4, 12, 1]), Some((vec![(3, 4), (2, 12)], 4)));
        assert_eq!(collapse(&[4, 3], &[1, 4]), None);
        assert_eq!(outer_offset(5, &[(3, 4), (2, 12)]), 2 * 4 + 12);
    }
}
