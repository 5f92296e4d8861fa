//! Building blocks shared by the encoder and the decoder.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::kernels::layer_norm_channels;

/// Conv2d without bias followed by BatchNorm (TinyViT's `Conv2d_BN`). For inference the
/// BatchNorm is folded into the convolution ([`Conv2dBn::fold`]).
#[derive(Module, Debug)]
pub struct Conv2dBn<B: Backend> {
    pub c: Conv2d<B>,
    pub bn: Option<BatchNorm<B>>,
}

#[derive(Config, Debug)]
pub struct Conv2dBnConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    #[config(default = 1)]
    pub kernel: usize,
    #[config(default = 1)]
    pub stride: usize,
    #[config(default = 0)]
    pub padding: usize,
    #[config(default = 1)]
    pub groups: usize,
}

impl Conv2dBnConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2dBn<B> {
        let p = self.padding;
        let c = Conv2dConfig::new([self.in_channels, self.out_channels], [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_groups(self.groups)
            .with_bias(false)
            .init(device);
        Conv2dBn { c, bn: Some(BatchNormConfig::new(self.out_channels).init(device)) }
    }
}

impl<B: Backend> Conv2dBn<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.c.forward(x);
        match &self.bn {
            // On an autodiff backend burn's BatchNorm uses batch statistics; a frozen one (e.g.
            // the backbone while only the controllers train) must keep its running statistics.
            Some(bn) if !bn.gamma.val().is_require_grad() => {
                let c = x.dims()[1];
                let shape = [1, c, 1, 1];
                let std = bn.running_var.value().add_scalar(bn.epsilon).sqrt().reshape(shape);
                let mean = bn.running_mean.value().reshape(shape);
                x.sub(mean).div(std).mul(bn.gamma.val().reshape(shape)).add(bn.beta.val().reshape(shape))
            }
            Some(bn) => bn.forward(x),
            None => x,
        }
    }

    /// Folds the BatchNorm's running statistics into the convolution: w' = w·γ/σ,
    /// b' = β − μ·γ/σ (+ b·γ/σ), with σ = sqrt(var + ε). Exact for inference.
    pub fn fold(mut self) -> Self {
        let Some(bn) = self.bn.take() else {
            return self;
        };
        let std = bn.running_var.value().add_scalar(bn.epsilon).sqrt();
        let scale = bn.gamma.val().div(std);
        let out = scale.dims()[0];
        let weight = self.c.weight.val().mul(scale.clone().reshape([out, 1, 1, 1]));
        let mut bias = bn.beta.val().sub(bn.running_mean.value().mul(scale.clone()));
        if let Some(b) = &self.c.bias {
            bias = bias.add(b.val().mul(scale));
        }
        self.c.weight = Param::from_tensor(weight);
        self.c.bias = Some(Param::from_tensor(bias));
        self
    }
}

/// LayerNorm over the channel dimension of an NCHW tensor (SAM's `LayerNorm2d`, ε = 1e-6).
#[derive(Module, Debug)]
pub struct LayerNorm2d<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> LayerNorm2d<B> {
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            eps: 1e-6,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        layer_norm_channels(x, self.weight.val(), self.bias.val(), self.eps)
    }
}

/// SAM's `MLP`: linear layers with ReLU between them (not after the last).
#[derive(Module, Debug)]
pub struct SamMlp<B: Backend> {
    pub layers: Vec<Linear<B>>,
}

impl<B: Backend> SamMlp<B> {
    pub fn new(input: usize, hidden: usize, output: usize, depth: usize, device: &B::Device) -> Self {
        let layers = (0..depth)
            .map(|i| {
                let d_in = if i == 0 { input } else { hidden };
                let d_out = if i == depth - 1 { output } else { hidden };
                LinearConfig::new(d_in, d_out).init(device)
            })
            .collect();
        Self { layers }
    }

    pub fn forward<const D: usize>(&self, mut x: Tensor<B, D>) -> Tensor<B, D> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}
