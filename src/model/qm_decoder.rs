//! The QM-Decoder: SAM's two-way transformer and upscaling, with one query token and one
//! hypernetwork MLP per modality. Only the chosen modality's token enters the transformer, so
//! decoding one modality never depends on the others' parameters.

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

use super::kernels::contiguous;
use super::layers::SamMlp;
use super::mask_decoder::{Upscaling, UpscalingConfig};
use super::transformer::{TwoWayTransformer, TwoWayTransformerConfig};

#[derive(Config, Debug)]
pub struct QmDecoderConfig {
    #[config(default = 256)]
    pub transformer_dim: usize,
    #[config(default = "TwoWayTransformerConfig::new()")]
    pub transformer: TwoWayTransformerConfig,
}

impl QmDecoderConfig {
    pub fn init<B: Backend>(&self, slots: usize, device: &B::Device) -> QmDecoder<B> {
        let dim = self.transformer_dim;
        QmDecoder {
            transformer: self.transformer.init(device),
            modality_tokens: EmbeddingConfig::new(slots, dim).init(device),
            output_upscaling: UpscalingConfig::new(dim).init(device),
            output_hypernetworks_mlps: (0..slots).map(|_| SamMlp::new(dim, dim, dim / 8, 3, device)).collect(),
        }
    }
}

#[derive(Module, Debug)]
pub struct QmDecoder<B: Backend> {
    pub transformer: TwoWayTransformer<B>,
    /// (slots, 256): one query token per modality.
    pub modality_tokens: Embedding<B>,
    pub output_upscaling: Upscaling<B>,
    /// One hypernetwork per modality: query token → 32 weights over the upscaled channels.
    pub output_hypernetworks_mlps: Vec<SamMlp<B>>,
}

impl<B: Backend> QmDecoder<B> {
    pub fn slots(&self) -> usize {
        self.output_hypernetworks_mlps.len()
    }

    /// Prompted embedding (B, 256, 64, 64) and its positional encoding, token-major (1, 64·64, 256) →
    /// modality `slot`'s mask logits over the model input (B, 1, 256, 256).
    pub fn forward(&self, prompted: Tensor<B, 4>, image_pe: Tensor<B, 3>, slot: usize) -> Tensor<B, 4> {
        let [b, c, h, w] = prompted.dims();
        let token = self.modality_tokens.weight.val().narrow(0, slot, 1).reshape([1, 1, c]).expand([b, 1, c]);
        let (hs, src) = self.transformer.forward(prompted, image_pe, token);
        let upscaled = self.output_upscaling.forward(contiguous(src.swap_dims(1, 2)).reshape([b, c, h, w]));
        let [_, uc, uh, uw] = upscaled.dims();
        let hyper = self.output_hypernetworks_mlps[slot].forward(hs.reshape([b, c])).reshape([b, 1, uc]);
        hyper.matmul(upscaled.reshape([b, uc, uh * uw])).reshape([b, 1, uh, uw])
    }
}
