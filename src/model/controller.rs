//! The modality controller of the DC-Encoder (paper eq. 1–2): for each modality and each
//! attention block, learnable key/value tokens with their own bias that the window's queries also
//! attend to, and a bottleneck MLP beside the block's FFN.
//!
//! Zero-initialised means the controller adds exactly nothing: the prefix attention is scaled by
//! a per-head gate that starts at 0 (its own softmax, so the block's attention weights are not
//! renormalised), and the MLP's up-projection starts at 0. Keys, values and the down-projection
//! start random so that gradients reach them once the gate and up-projection move.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;

use super::kernels::gelu;

#[derive(Config, Debug)]
pub struct ControllerConfig {
    /// Learnable key/value tokens per head, per modality, per block.
    #[config(default = 4)]
    pub tokens: usize,
    /// Hidden width of the per-modality bottleneck MLP.
    #[config(default = 16)]
    pub bottleneck: usize,
}

impl ControllerConfig {
    pub fn init<B: Backend>(&self, slots: usize, dim: usize, heads: usize, device: &B::Device) -> ModalityController<B> {
        let key_dim = dim / heads;
        let (t, r) = (self.tokens, self.bottleneck);
        let random = |shape: [usize; 4], std: f64| Tensor::random(shape, Distribution::Normal(0.0, std), device);
        ModalityController {
            prefix_keys: Param::from_tensor(random([slots, heads, t, key_dim], 0.02)),
            prefix_values: Param::from_tensor(random([slots, heads, t, key_dim], 0.02)),
            prefix_bias: Param::from_tensor(Tensor::zeros([slots, heads, t], device)),
            prefix_gate: Param::from_tensor(Tensor::zeros([slots, heads], device)),
            down: Param::from_tensor(Tensor::random([slots, dim, r], Distribution::Normal(0.0, (dim as f64).powf(-0.5)), device)),
            down_bias: Param::from_tensor(Tensor::zeros([slots, r], device)),
            up: Param::from_tensor(Tensor::zeros([slots, r, dim], device)),
            up_bias: Param::from_tensor(Tensor::zeros([slots, dim], device)),
        }
    }
}

/// One attention block's controller, for every modality slot at once (slot = first dimension).
#[derive(Module, Debug)]
pub struct ModalityController<B: Backend> {
    /// (slots, heads, tokens, key_dim)
    pub prefix_keys: Param<Tensor<B, 4>>,
    pub prefix_values: Param<Tensor<B, 4>>,
    /// (slots, heads, tokens): learned attention bias of each prefix token.
    pub prefix_bias: Param<Tensor<B, 3>>,
    /// (slots, heads): how much of the prefix attention is added; 0 at initialisation.
    pub prefix_gate: Param<Tensor<B, 2>>,
    /// (slots, dim, bottleneck) and (slots, bottleneck)
    pub down: Param<Tensor<B, 3>>,
    pub down_bias: Param<Tensor<B, 2>>,
    /// (slots, bottleneck, dim) and (slots, dim); 0 at initialisation.
    pub up: Param<Tensor<B, 3>>,
    pub up_bias: Param<Tensor<B, 2>>,
}

impl<B: Backend> ModalityController<B> {
    pub fn slots(&self) -> usize {
        self.prefix_gate.dims()[0]
    }

    /// The queries (b, heads, n, key_dim) attending to modality `slot`'s tokens, gated:
    /// (b, heads, n, key_dim), to add to the block's attention output before its projection.
    pub fn prefix_attention(&self, slot: usize, q: Tensor<B, 4>, scale: f64) -> Tensor<B, 4> {
        let [b, heads, _, key_dim] = q.dims();
        let t = self.prefix_keys.dims()[2];
        let keys = self.prefix_keys.val().narrow(0, slot, 1).expand([b, heads, t, key_dim]);
        let values = self.prefix_values.val().narrow(0, slot, 1).expand([b, heads, t, key_dim]);
        let bias = self.prefix_bias.val().narrow(0, slot, 1).reshape([1, heads, 1, t]);
        let gate = self.prefix_gate.val().narrow(0, slot, 1).reshape([1, heads, 1, 1]);
        let scores = q.matmul(keys.swap_dims(2, 3)).mul_scalar(scale).add(bias);
        softmax(scores, 3).matmul(values).mul(gate)
    }

    /// Modality `slot`'s bottleneck MLP on tokens (b, l, dim).
    pub fn mlp(&self, slot: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, _, dim] = x.dims();
        let r = self.down.dims()[2];
        let down = self.down.val().narrow(0, slot, 1).expand([b, dim, r]);
        let down_bias = self.down_bias.val().narrow(0, slot, 1).reshape([1, 1, r]);
        let up = self.up.val().narrow(0, slot, 1).expand([b, r, dim]);
        let up_bias = self.up_bias.val().narrow(0, slot, 1).reshape([1, 1, dim]);
        gelu(x.matmul(down).add(down_bias)).matmul(up).add(up_bias)
    }
}
