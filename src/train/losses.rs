//! Training losses (MODEL.md): focal + Dice on the mask, BCE on the patch prompts, MSE for
//! distillation. All take logits, are generic over the backend and return a scalar tensor.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::max_pool2d;

/// Weight of the focal term in the mask loss: λ·focal + (1 − λ)·Dice.
pub const MASK_LAMBDA: f64 = 0.7;
/// Focal loss α (weight of the positive class) and γ (focusing), as in RetinaNet.
pub const FOCAL_ALPHA: f64 = 0.25;
pub const FOCAL_GAMMA: f64 = 2.0;
/// Dice smoothing: keeps empty masks (allowed in datasets) from dividing by zero.
pub const DICE_SMOOTH: f64 = 1.0;

/// Binary cross-entropy of logits against 0/1 targets, per element, computed stably:
/// max(x, 0) − x·y + log(1 + e^−|x|).
fn bce_elementwise<B: Backend, const D: usize>(logits: Tensor<B, D>, targets: Tensor<B, D>) -> Tensor<B, D> {
    let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    logits.clone().clamp_min(0.0).sub(logits.mul(targets)).add(softplus)
}

/// Mean binary cross-entropy with logits.
pub fn bce_with_logits<B: Backend, const D: usize>(logits: Tensor<B, D>, targets: Tensor<B, D>) -> Tensor<B, 1> {
    bce_elementwise(logits, targets).mean()
}

/// Sigmoid focal loss, mean over elements: α_t (1 − p_t)^γ · BCE.
pub fn focal<B: Backend, const D: usize>(logits: Tensor<B, D>, targets: Tensor<B, D>) -> Tensor<B, 1> {
    let p = sigmoid(logits.clone());
    let ce = bce_elementwise(logits, targets.clone());
    // p_t = p·y + (1 − p)(1 − y) → 1 − p_t = p + y − 2py.
    let one_minus_pt = p.clone().add(targets.clone()).sub(p.mul(targets.clone()).mul_scalar(2.0));
    let alpha_t = targets.mul_scalar(2.0 * FOCAL_ALPHA - 1.0).add_scalar(1.0 - FOCAL_ALPHA);
    one_minus_pt.powf_scalar(FOCAL_GAMMA).mul(alpha_t).mul(ce).mean()
}

/// Soft Dice loss on (B, 1, H, W) logits: 1 − (2Σpy + s)/(Σp + Σy + s) per image, averaged.
pub fn dice<B: Backend>(logits: Tensor<B, 4>, targets: Tensor<B, 4>) -> Tensor<B, 1> {
    let [b, ..] = logits.dims();
    let p = sigmoid(logits).reshape([b as i32, -1]);
    let y = targets.reshape([b as i32, -1]);
    let intersection = p.clone().mul(y.clone()).sum_dim(1);
    let total = p.sum_dim(1).add(y.sum_dim(1));
    let score = intersection.mul_scalar(2.0).add_scalar(DICE_SMOOTH).div(total.add_scalar(DICE_SMOOTH));
    score.neg().add_scalar(1.0).mean()
}

/// The mask loss: λ·focal + (1 − λ)·Dice, λ = [`MASK_LAMBDA`].
pub fn mask_loss<B: Backend>(logits: Tensor<B, 4>, targets: Tensor<B, 4>) -> Tensor<B, 1> {
    focal(logits.clone(), targets.clone()).mul_scalar(MASK_LAMBDA).add(dice(logits, targets).mul_scalar(1.0 - MASK_LAMBDA))
}

/// The patch target: a patch is "on" when any of its pixels is (max-pooling the 0/1 mask
/// (B, 1, S, S) to (B, 1, grid, grid)).
pub fn patch_targets<B: Backend>(masks: Tensor<B, 4>, grid: usize) -> Tensor<B, 4> {
    let side = masks.dims()[2];
    let k = side / grid;
    max_pool2d(masks, [k, k], [k, k], [0, 0], [1, 1], false)
}

/// BCE between patch logits (B, 1, g, g) and the max-pooled masks (B, 1, S, S).
pub fn patch_loss<B: Backend>(patch_logits: Tensor<B, 4>, masks: Tensor<B, 4>) -> Tensor<B, 1> {
    let grid = patch_logits.dims()[2];
    bce_with_logits(patch_logits, patch_targets(masks, grid))
}

/// Mean squared error between student and teacher embeddings.
pub fn distillation<B: Backend>(student: Tensor<B, 4>, teacher: Tensor<B, 4>) -> Tensor<B, 1> {
    let diff = student.sub(teacher);
    diff.clone().mul(diff).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::Cpu;

    fn t4(values: &[f32], shape: [usize; 4]) -> Tensor<Cpu, 4> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
    }

    fn close(tensor: Tensor<Cpu, 1>, expected: f64) {
        let got = f64::from(tensor.into_scalar());
        assert!((got - expected).abs() < 1e-5, "got {got}, expected {expected}");
    }

    // Hand computation with logits (0, 2, −1, 3) and targets (1, 0, 0, 1):
    // σ = (0.5, 0.880797, 0.268941, 0.952574)
    // BCE = (ln 2, 2 + ln(1+e⁻²), ln(1+e⁻¹), ln(1+e⁻³)) = (0.693147, 2.126928, 0.313262, 0.048587)
    const LOGITS: [f32; 4] = [0.0, 2.0, -1.0, 3.0];
    const TARGETS: [f32; 4] = [1.0, 0.0, 0.0, 1.0];

    #[test]
    fn bce_by_hand() {
        let expected = (0.693147 + 2.126928 + 0.313262 + 0.048587) / 4.0;
        close(bce_with_logits(t4(&LOGITS, [1, 1, 2, 2]), t4(&TARGETS, [1, 1, 2, 2])), expected);
        // Large logits stay finite.
        let big = bce_with_logits(t4(&[100.0, -100.0], [1, 1, 1, 2]), t4(&[0.0, 1.0], [1, 1, 1, 2]));
        close(big, 100.0);
    }

    #[test]
    fn focal_by_hand() {
        // 1 − p_t = (0.5, 0.880797, 0.268941, 0.047426); α_t = (0.25, 0.75, 0.75, 0.25).
        let terms = [
            0.25 * 0.5f64.powi(2) * 0.693147,
            0.75 * 0.880797f64.powi(2) * 2.126928,
            0.75 * 0.268941f64.powi(2) * 0.313262,
            0.25 * 0.047426f64.powi(2) * 0.048587,
        ];
        close(focal(t4(&LOGITS, [1, 1, 2, 2]), t4(&TARGETS, [1, 1, 2, 2])), terms.iter().sum::<f64>() / 4.0);
    }

    #[test]
    fn dice_by_hand() {
        // Σpy = 0.5 + 0.952574 = 1.452574; Σp = 2.602312; Σy = 2.
        let expected = 1.0 - (2.0 * 1.452574 + 1.0) / (2.602312 + 2.0 + 1.0);
        close(dice(t4(&LOGITS, [1, 1, 2, 2]), t4(&TARGETS, [1, 1, 2, 2])), expected);
        // Per image, then averaged: an empty target predicted empty scores (almost) perfectly.
        let logits = t4(&[-20.0, -20.0, 20.0, 20.0], [2, 1, 1, 2]);
        let targets = t4(&[0.0, 0.0, 1.0, 1.0], [2, 1, 1, 2]);
        close(dice(logits, targets), 0.0);
    }

    #[test]
    fn mask_loss_combines_with_lambda() {
        let logits = t4(&LOGITS, [1, 1, 2, 2]);
        let targets = t4(&TARGETS, [1, 1, 2, 2]);
        let f = f64::from(focal(logits.clone(), targets.clone()).into_scalar());
        let d = f64::from(dice(logits.clone(), targets.clone()).into_scalar());
        close(mask_loss(logits, targets), 0.7 * f + 0.3 * d);
    }

    #[test]
    fn patch_targets_max_pool() {
        // A 4×4 mask with one pixel in the bottom-right 2×2 block → grid 2×2 = (0, 0, 0, 1).
        let mut mask = [0.0f32; 16];
        mask[15] = 1.0;
        let pooled = patch_targets(t4(&mask, [1, 1, 4, 4]), 2).into_data().to_vec::<f32>().unwrap();
        assert_eq!(pooled, vec![0.0, 0.0, 0.0, 1.0]);
        // Patch logits (0, 0, 0, 0) against that: BCE = ln 2 everywhere.
        close(patch_loss(t4(&[0.0; 4], [1, 1, 2, 2]), t4(&mask, [1, 1, 4, 4])), std::f64::consts::LN_2);
    }

    #[test]
    fn distillation_is_mse() {
        let student = t4(&[1.0, 2.0, 3.0, 4.0], [1, 4, 1, 1]);
        let teacher = t4(&[1.0, 0.0, 3.0, 7.0], [1, 4, 1, 1]);
        close(distillation(student, teacher), (0.0 + 4.0 + 0.0 + 9.0) / 4.0);
    }
}
