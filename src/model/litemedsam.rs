//! LiteMedSAM: TinyViT encoder + SAM prompt encoder + SAM mask decoder, box and point prompts.
//! `encode` runs once per image; `decode` re-uses the embedding for every prompt.

use burn::prelude::*;

use super::mask_decoder::{MaskDecoder, MaskDecoderConfig};
use super::prompt_encoder::{PromptEncoder, PromptEncoderConfig, Prompts};
use super::tinyvit::{TinyVit, TinyVitConfig};

#[derive(Config, Debug)]
pub struct LiteMedSamConfig {
    #[config(default = "TinyVitConfig::new()")]
    pub image_encoder: TinyVitConfig,
    #[config(default = "PromptEncoderConfig::new()")]
    pub prompt_encoder: PromptEncoderConfig,
    #[config(default = "MaskDecoderConfig::new()")]
    pub mask_decoder: MaskDecoderConfig,
}

impl LiteMedSamConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> LiteMedSam<B> {
        LiteMedSam {
            image_encoder: self.image_encoder.init(device),
            prompt_encoder: self.prompt_encoder.init(device),
            mask_decoder: self.mask_decoder.init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct LiteMedSam<B: Backend> {
    pub image_encoder: TinyVit<B>,
    pub prompt_encoder: PromptEncoder<B>,
    pub mask_decoder: MaskDecoder<B>,
}

/// What one decode returns: low-resolution logits over the 256² model input, and the model's
/// own estimate of the mask's IoU.
pub struct Decoded<B: Backend> {
    pub logits: Tensor<B, 4>,
    pub iou: Tensor<B, 2>,
}

impl<B: Backend> LiteMedSam<B> {
    /// Preprocessed image (1, 3, 256, 256) → embedding (1, 256, 64, 64).
    pub fn encode(&self, image: Tensor<B, 4>) -> Tensor<B, 4> {
        self.image_encoder.forward(image)
    }

    /// [`encode`](Self::encode), given up (`None`) when `stop` says so between encoder blocks.
    pub fn encode_unless(&self, image: Tensor<B, 4>, stop: &dyn Fn() -> bool) -> Option<Tensor<B, 4>> {
        self.image_encoder.forward_unless(image, None, stop)
    }

    /// Decodes prompts (in model-input pixels) against a cached embedding.
    pub fn decode(&self, embedding: Tensor<B, 4>, prompts: &Prompts) -> Decoded<B> {
        let image_pe = self.image_pe(&embedding.device());
        self.decode_with_pe(embedding, image_pe, prompts)
    }

    /// The embedding grid's positional encoding (see [`PromptEncoder::dense_pe`]): the same for
    /// every decode, so a caller that decodes often keeps it for [`decode_with_pe`](Self::decode_with_pe).
    pub fn image_pe(&self, device: &B::Device) -> Tensor<B, 3> {
        self.prompt_encoder.dense_pe(device)
    }

    /// [`decode`](Self::decode) with the positional encoding from [`image_pe`](Self::image_pe).
    pub fn decode_with_pe(&self, embedding: Tensor<B, 4>, image_pe: Tensor<B, 3>, prompts: &Prompts) -> Decoded<B> {
        let device = embedding.device();
        let sparse = self.prompt_encoder.sparse_embedding(prompts, &device);
        let dense = self.prompt_encoder.dense_embedding();
        let (logits, iou) = self.mask_decoder.forward(embedding, image_pe, sparse, dense);
        Decoded { logits, iou }
    }

    /// For inference: BatchNorms folded into their convolutions.
    pub fn for_inference(self) -> Self {
        Self { image_encoder: self.image_encoder.fold_batch_norms(), ..self }
    }
}
