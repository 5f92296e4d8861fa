//! The SP-Generator: the model prompts itself. A patch generator marks which of the 32×32
//! patches hold the target; the marked grid (or one the user painted) becomes a dense prompt
//! added to the image embedding.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use super::kernels::gelu;
use super::layers::LayerNorm2d;

/// Side of the patch-prompt grid (the 64² embedding halved).
pub const GRID_SIZE: usize = 32;

#[derive(Config, Debug)]
pub struct SpGeneratorConfig {
    #[config(default = 256)]
    pub embed_dim: usize,
    #[config(default = 64)]
    pub hidden: usize,
}

impl SpGeneratorConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SpGenerator<B> {
        let (dim, hidden) = (self.embed_dim, self.hidden);
        let mut prompt_norm = LayerNorm2d::new(dim, device);
        // The dense prompt starts at exactly 0 (GELU(0) = 0), so a fresh model decodes the
        // LiteMedSAM embedding unchanged until training teaches it to use the patches.
        prompt_norm.weight = burn::module::Param::from_tensor(Tensor::zeros([dim], device));
        SpGenerator {
            patch_conv: Conv2dConfig::new([dim, hidden], [2, 2]).with_stride([2, 2]).init(device),
            patch_norm: LayerNorm2d::new(hidden, device),
            patch_out: Conv2dConfig::new([hidden, 1], [1, 1]).init(device),
            prompt_conv: Conv2dConfig::new([1, dim], [1, 1]).with_padding(PaddingConfig2d::Valid).init(device),
            prompt_norm,
        }
    }
}

#[derive(Module, Debug)]
pub struct SpGenerator<B: Backend> {
    pub patch_conv: Conv2d<B>,
    pub patch_norm: LayerNorm2d<B>,
    pub patch_out: Conv2d<B>,
    pub prompt_conv: Conv2d<B>,
    pub prompt_norm: LayerNorm2d<B>,
}

impl<B: Backend> SpGenerator<B> {
    /// Embedding (B, 256, 64, 64) → patch logits (B, 1, 32, 32).
    pub fn patch_logits(&self, embedding: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = gelu(self.patch_norm.forward(self.patch_conv.forward(embedding)));
        self.patch_out.forward(x)
    }

    /// Patch logits → the binary grid (B, 1, 32, 32): sigmoid ≥ 0.5, i.e. logit ≥ 0.
    pub fn grid_from_logits(logits: Tensor<B, 4>) -> Tensor<B, 4> {
        logits.greater_equal_elem(0.0).float()
    }

    /// A binary grid (B, 1, 32, 32) → dense prompt (B, 256, 64, 64): nearest ×2, 1×1 conv,
    /// LayerNorm2d, GELU.
    pub fn dense_prompt(&self, grid: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, _, h, w] = grid.dims();
        let up = grid.reshape([b, h, 1, w, 1]).expand([b, h, 2, w, 2]).reshape([b, 1, 2 * h, 2 * w]);
        gelu(self.prompt_norm.forward(self.prompt_conv.forward(up)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::backend::Cpu;

    #[test]
    fn shapes_and_nearest_upsampling() {
        let device = Default::default();
        let sp = SpGeneratorConfig::new().init::<Cpu>(&device);
        let embedding = Tensor::<Cpu, 4>::random([2, 256, 64, 64], burn::tensor::Distribution::Default, &device);
        let logits = sp.patch_logits(embedding);
        assert_eq!(logits.dims(), [2, 1, 32, 32]);
        let grid = SpGenerator::grid_from_logits(logits);
        let values = grid.clone().into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| *v == 0.0 || *v == 1.0));
        assert_eq!(sp.dense_prompt(grid).dims(), [2, 256, 64, 64]);

        // One marked patch at (row 3, col 5) lights exactly the 2×2 cells (6..8, 10..12).
        let mut cells = vec![0.0f32; 32 * 32];
        cells[3 * 32 + 5] = 1.0;
        let grid = Tensor::<Cpu, 4>::from_data(TensorData::new(cells, [1, 1, 32, 32]), &device);
        let [b, _, h, w] = grid.dims();
        let up: Vec<f32> =
            grid.reshape([b, h, 1, w, 1]).expand([b, h, 2, w, 2]).reshape([1, 1, 64, 64]).into_data().to_vec().unwrap();
        let lit: Vec<(usize, usize)> = (0..64 * 64).filter(|i| up[*i] == 1.0).map(|i| (i / 64, i % 64)).collect();
        assert_eq!(lit, vec![(6, 10), (6, 11), (7, 10), (7, 11)]);
    }

    #[test]
    fn fresh_dense_prompt_is_zero() {
        let device = Default::default();
        let sp = SpGeneratorConfig::new().init::<Cpu>(&device);
        let grid = Tensor::<Cpu, 4>::ones([1, 1, 32, 32], &device);
        let max = sp.dense_prompt(grid).abs().max().into_scalar();
        assert_eq!(max, 0.0);
    }
}
