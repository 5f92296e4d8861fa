//! SAM's mask decoder: output tokens through the two-way transformer, the upscaled image
//! embedding, and one hypernetwork MLP per mask token.

use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

use super::kernels::{contiguous, conv_transpose_2x2, gelu};
use super::layers::{LayerNorm2d, SamMlp};
use super::transformer::{TwoWayTransformer, TwoWayTransformerConfig};

#[derive(Config, Debug)]
pub struct MaskDecoderConfig {
    #[config(default = 256)]
    pub transformer_dim: usize,
    #[config(default = 3)]
    pub num_multimask_outputs: usize,
    #[config(default = 3)]
    pub iou_head_depth: usize,
    #[config(default = 256)]
    pub iou_head_hidden_dim: usize,
    #[config(default = "TwoWayTransformerConfig::new()")]
    pub transformer: TwoWayTransformerConfig,
}

impl MaskDecoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> MaskDecoder<B> {
        let dim = self.transformer_dim;
        let mask_tokens = self.num_multimask_outputs + 1;
        MaskDecoder {
            transformer: self.transformer.init(device),
            iou_token: EmbeddingConfig::new(1, dim).init(device),
            mask_tokens: EmbeddingConfig::new(mask_tokens, dim).init(device),
            output_upscaling: UpscalingConfig::new(dim).init(device),
            output_hypernetworks_mlps: (0..mask_tokens).map(|_| SamMlp::new(dim, dim, dim / 8, 3, device)).collect(),
            iou_prediction_head: SamMlp::new(dim, self.iou_head_hidden_dim, mask_tokens, self.iou_head_depth, device),
        }
    }
}

#[derive(Config, Debug)]
pub struct UpscalingConfig {
    pub dim: usize,
}

impl UpscalingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Upscaling<B> {
        let dim = self.dim;
        Upscaling {
            deconv1: ConvTranspose2dConfig::new([dim, dim / 4], [2, 2]).with_stride([2, 2]).init(device),
            norm: LayerNorm2d::new(dim / 4, device),
            deconv2: ConvTranspose2dConfig::new([dim / 4, dim / 8], [2, 2]).with_stride([2, 2]).init(device),
        }
    }
}

/// Two transposed convolutions: (B, 256, 64, 64) → (B, 32, 256, 256).
#[derive(Module, Debug)]
pub struct Upscaling<B: Backend> {
    pub deconv1: ConvTranspose2d<B>,
    pub norm: LayerNorm2d<B>,
    pub deconv2: ConvTranspose2d<B>,
}

impl<B: Backend> Upscaling<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = gelu(self.norm.forward(conv_transpose_2x2(x, &self.deconv1)));
        gelu(conv_transpose_2x2(x, &self.deconv2))
    }
}

#[derive(Module, Debug)]
pub struct MaskDecoder<B: Backend> {
    pub transformer: TwoWayTransformer<B>,
    pub iou_token: Embedding<B>,
    pub mask_tokens: Embedding<B>,
    pub output_upscaling: Upscaling<B>,
    pub output_hypernetworks_mlps: Vec<SamMlp<B>>,
    pub iou_prediction_head: SamMlp<B>,
}

impl<B: Backend> MaskDecoder<B> {
    /// The single-mask output (SAM's `multimask_output=False`): logits (B, 1, 256, 256) and the
    /// predicted IoU (B, 1). `image_pe` is token-major, (1, H·W, C).
    pub fn forward(
        &self,
        image_embedding: Tensor<B, 4>,
        image_pe: Tensor<B, 3>,
        sparse: Tensor<B, 3>,
        dense: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 2>) {
        let [b, _, dim] = sparse.dims();
        let output_tokens = Tensor::cat(vec![self.iou_token.weight.val(), self.mask_tokens.weight.val()], 0);
        let n_out = output_tokens.dims()[0];
        let output_tokens = output_tokens.unsqueeze_dim::<3>(0).expand([b, n_out, dim]);
        let tokens = Tensor::cat(vec![output_tokens, sparse], 1);

        let src = image_embedding.add(dense);
        let [_, c, h, w] = src.dims();
        let (hs, src) = self.transformer.forward(src, image_pe, tokens);
        let iou_token_out = hs.clone().narrow(1, 0, 1).reshape([b, dim]);
        let mask_token_out = hs.narrow(1, 1, 1).reshape([b, dim]);

        let upscaled = self.output_upscaling.forward(contiguous(src.swap_dims(1, 2)).reshape([b, c, h, w]));
        let [_, uc, uh, uw] = upscaled.dims();
        let hyper = self.output_hypernetworks_mlps[0].forward(mask_token_out).reshape([b, 1, uc]);
        let masks = hyper.matmul(upscaled.reshape([b, uc, uh * uw])).reshape([b, 1, uh, uw]);
        let iou = self.iou_prediction_head.forward(iou_token_out).narrow(1, 0, 1);
        (masks, iou)
    }
}
