//! Two hot paths of the CPU encoder, specialised for burn's Flex backend, where its own ops were
//! measured to be the bottleneck (perf, 256² LiteMedSAM encode on 2 cores):
//!
//! - GELU: Flex evaluates the exact GELU with a scalar libm `erf`, on one thread (~20 % of an
//!   encode). Here: a branch-free rational `erf` (|error| < 5e-7, so GELU within 1.5e-6 of the
//!   exact value; f32 rounding alone gives 4.5e-7) that the compiler vectorises, over chunks run
//!   in parallel.
//! - Softmax over the attention scores: Flex's takes max, subtract, `exp` (scalar libm), sum and
//!   divide as separate passes (~5 %). Here: one pass per row with a vectorisable `exp`.
//! - Materialising a permuted view (window partition, heads back to tokens): Flex walks N-d views
//!   one element at a time (~15 %). Here: one `memcpy` per contiguous inner run, in parallel.
//!
//! On every other backend (and on Flex tensors these paths do not cover) these are burn's own
//! `gelu` and a no-op, so model code stays generic. The backend is recognised by type at run time.

use std::any::{Any, TypeId};

use burn::backend::flex::{FlexTensor, Layout};
use burn::prelude::*;
use burn::tensor::{Bytes, DType, TensorPrimitive, activation};
use rayon::prelude::*;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

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
    map_chunks_f32(t, rows_per_task, move |xs| xs.chunks_exact_mut(row).for_each(softmax_row))
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

fn softmax_row(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { softmax_row_avx2(xs) };
        return;
    }
    softmax_row_portable(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(xs: &mut [f32]) {
    softmax_row_portable(xs);
}

#[inline(always)]
fn softmax_row_portable(xs: &mut [f32]) {
    let max = xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    if !max.is_finite() {
        // All −∞, or a NaN/+∞ in the row: leave it to the exact definition (NaN propagates).
        let sum: f32 = xs.iter().map(|x| (x - max).exp()).sum();
        xs.iter_mut().for_each(|x| *x = (*x - max).exp() / sum);
        return;
    }
    let mut sum = 0.0;
    for x in xs.iter_mut() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    let scale = 1.0 / sum;
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

fn gelu_slice(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { gelu_slice_avx2(xs) };
        return;
    }
    gelu_slice_portable(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice_avx2(xs: &mut [f32]) {
    gelu_slice_portable(xs);
}

#[inline(always)]
fn gelu_slice_portable(xs: &mut [f32]) {
    for x in xs {
        *x = gelu_one(*x);
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
        return t.to_contiguous();
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

/// The view as (outer dims as (size, stride), length of the contiguous inner run), with size-1
/// dims dropped and dims that follow each other in memory merged. `None` when the innermost
/// stride is not 1 or a stride is negative.
fn collapse(shape: &[usize], strides: &[isize]) -> Option<(Vec<(usize, usize)>, usize)> {
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
            let ours = ours.into_data().to_vec::<f32>().expect("f32");
            let theirs = theirs.into_data().to_vec::<f32>().expect("f32");
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
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
            let ours = ours.into_data().to_vec::<f32>().expect("f32");
            let theirs = theirs.into_data().to_vec::<f32>().expect("f32");
            assert_eq!(ours.len(), theirs.len());
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
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
    fn collapse_merges_runs_and_refuses_strided_inner_dims() {
        // [2, 3, 4] row-major is one run of 24.
        assert_eq!(collapse(&[2, 3, 4], &[12, 4, 1]), Some((vec![], 24)));
        // Swapping the first two dims keeps runs of 4.
        assert_eq!(collapse(&[3, 2, 4], &[4, 12, 1]), Some((vec![(3, 4), (2, 12)], 4)));
        assert_eq!(collapse(&[4, 3], &[1, 4]), None);
        assert_eq!(outer_offset(5, &[(3, 4), (2, 12)]), 2 * 4 + 12);
    }
}
